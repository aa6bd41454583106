//! The machine and build the numbers come from, written next to them:
//! numbers without their machine cannot be compared with anything.

use std::process::Command;
use std::time::Duration;

/// How long the machine's load is sampled before the run starts.
const LOAD_SAMPLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    /// The commit measured, with `+changes` when the work tree differs.
    pub commit: String,
    /// Cores busy with other work just before the run: on a shared machine
    /// this says how far to trust the numbers.
    pub busy_cores_before: Option<f64>,
}

impl Machine {
    pub fn describe() -> Self {
        Self {
            cpu: cpu_model().unwrap_or_else(|| "unknown CPU".into()),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: memory_kib().map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0)),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |text| text.trim().to_owned()),
            rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            commit: commit().unwrap_or_else(|| "unknown".into()),
            busy_cores_before: busy_cores(LOAD_SAMPLE),
        }
    }

    /// One line, for the chart.
    pub fn one_line(&self) -> String {
        format!(
            "{}, {} cores, {:.0} GiB, Linux {}",
            self.cpu, self.cores, self.memory_gib, self.kernel
        )
    }
}

/// The kernel's 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Waits, for at most `patience`, until less than `threshold` cores are busy
/// over a second (a broker that has just started burns a core or more for a
/// while); returns the last sample.
pub fn wait_until_quiet(threshold: f64, patience: Duration) -> Option<f64> {
    let started = std::time::Instant::now();
    loop {
        let busy = busy_cores(Duration::from_secs(1))?;
        if busy < threshold || started.elapsed() >= patience {
            return Some(busy);
        }
    }
}

/// Cores busy (not idle, not waiting for I/O) on average over `window`,
/// counting every process on the machine.
fn busy_cores(window: Duration) -> Option<f64> {
    let (total_before, idle_before) = cpu_jiffies()?;
    std::thread::sleep(window);
    let (total_after, idle_after) = cpu_jiffies()?;
    let total = total_after.checked_sub(total_before)? as f64;
    let idle = idle_after.checked_sub(idle_before)? as f64;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    (total > 0.0).then(|| (total - idle) / total * cores)
}

/// Cores kept busy by processes other than the measured ones over a span:
/// what the whole machine used, less what the harness, the subject and the
/// broker used. Above a few tenths of a core, other work disturbed the run.
pub struct OtherLoad {
    pids: Vec<u32>,
    started: std::time::Instant,
    jiffies: (u64, u64),
    ours: f64,
}

impl OtherLoad {
    /// Starts measuring; `pids` are the measured processes (this one is
    /// added).
    pub fn start(pids: &[u32]) -> Option<Self> {
        let mut pids = pids.to_vec();
        pids.push(std::process::id());
        Some(Self {
            ours: cpu_seconds_of(&pids),
            jiffies: cpu_jiffies()?,
            started: std::time::Instant::now(),
            pids,
        })
    }

    /// Cores busy with other work since the start, on average.
    pub fn cores(&self) -> Option<f64> {
        let ours = (cpu_seconds_of(&self.pids) - self.ours) / self.started.elapsed().as_secs_f64();
        Some((self.machine_busy_cores()? - ours).max(0.0))
    }

    /// Cores the whole machine kept busy since the start, on average, the
    /// measured processes included: near the core count, work queued for a
    /// CPU and every latency shows it.
    pub fn machine_busy_cores(&self) -> Option<f64> {
        let (total_after, idle_after) = cpu_jiffies()?;
        let total = total_after.checked_sub(self.jiffies.0)? as f64;
        let idle = idle_after.checked_sub(self.jiffies.1)? as f64;
        if total <= 0.0 {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        Some((total - idle) / total * cores)
    }
}

fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&pid| crate::procfs::cpu_seconds(pid))
        .sum()
}

/// All CPU time and the idle part of it, from the first line of /proc/stat.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let times: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = times.get(3)? + times.get(4).copied().unwrap_or(0);
    Some((times.iter().take(8).sum(), idle))
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn memory_kib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Read-only git queries; none of them changes the repository.
fn commit() -> Option<String> {
    let head = command_output("git", &["rev-parse", "--short", "HEAD"])?;
    let changed = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    Some(if changed {
        format!("{head}+changes")
    } else {
        head
    })
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
