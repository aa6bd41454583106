//! What the kernel says about a process: resident memory and CPU time, read
//! from `/proc` so no measurement needs to run inside the measured process.

use std::process::Command;
use std::sync::OnceLock;

/// Resident memory now and at its peak, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub resident: u64,
    pub peak_resident: u64,
}

/// `VmRSS` and `VmHWM` of a live process.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Memory {
        resident: status_kib(&status, "VmRSS:")? * 1024,
        peak_resident: status_kib(&status, "VmHWM:")? * 1024,
    })
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU time the process has used so far, in seconds
/// (all its threads, as `/proc/PID/stat` counts them).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis are plain. utime and stime are fields 14 and 15,
    // so the 12th and 13th after the state field.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((user + system) as f64 / clock_ticks_per_second())
}

/// Nanoseconds the calling thread has spent on a CPU, from the scheduler's
/// own accounting (`/proc/thread-self/schedstat`): unlike wall-clock time it
/// does not grow while other processes have the core.
pub fn thread_cpu_ns() -> Option<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

/// The kernel's `USER_HZ`, asked of `getconf` once: the one value in `stat`
/// that differs between systems. 100 is what Linux uses on every common
/// architecture, so it is the fallback.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let memory = memory(pid).expect("own status is readable");
        assert!(memory.resident > 0 && memory.peak_resident >= memory.resident);
        assert!(cpu_seconds(pid).expect("own stat is readable") >= 0.0);
        assert!(thread_cpu_ns().expect("own schedstat is readable") > 0);
    }
}
