//! The `run` command: every section in turn on one broker, then the results
//! page, the chart's CSV and the chart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Args, ValueEnum};

use crate::kafka::Cluster;
use crate::machine::Machine;
use crate::processor::{Diagnostic, Harness, RUNNEL_LINGER_MS, Subject};
use crate::report::{self, LatencyResult, Method, Results, ThroughputResult};
use crate::{footprint, latency, throughput, wasm_stage};

/// Runnel's batch_timeout in the throughput runs. Batches fill at once from
/// a preloaded topic, so it matters only for each partition's last batch,
/// which should not sit out Runnel's default 100 ms at the end of a run of
/// a second or two.
const THROUGHPUT_BATCH_TIMEOUT: Duration = Duration::from_millis(5);

/// max_in_flight of the diagnostic Runnel run: far above any backlog the
/// runs preload, so fetching is never paused (Runnel's default is 10 000).
const DIAGNOSTIC_MAX_IN_FLIGHT: usize = 10_000_000;

/// How long the broker is warmed up before the latency rounds.
const LATENCY_WARM_UP: Duration = Duration::from_secs(20);

/// Batch mode in the latency runs: full batches at high rates, and at most
/// this long a wait at low ones.
const LATENCY_BATCH: (usize, Duration) = (100, Duration::from_millis(5));

/// Plugins in the idle hosts: the target's ten, and one to tell the fixed
/// part from the part per plugin.
const IDLE_PLUGIN_COUNTS: [usize; 2] = [1, 10];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// The WebAssembly stage alone (no broker needed).
    Wasm,
    /// End-to-end throughput, baseline and Runnel.
    Throughput,
    /// End-to-end latency at fixed rates.
    Latency,
    /// Resident memory of idle hosts.
    Footprint,
}

#[derive(Debug, Args)]
// bench/run.sh passes the paths it built; a repeated option wins over them.
#[command(args_override_self = true)]
pub struct RunOptions {
    /// Bootstrap address of the broker (every section but `wasm` needs it).
    #[arg(long, env = "RUNNEL_BENCH_BROKERS")]
    brokers: Option<String>,
    /// PID of the broker's process, to report its CPU time per message.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// One line describing the broker, for the results.
    #[arg(long, default_value = "Apache Kafka, single node on 127.0.0.1")]
    broker_description: String,
    /// The `runnel` binary to measure.
    #[arg(long, default_value = "target/release/runnel")]
    runnel: PathBuf,
    /// Directory holding the built example plugins (`uppercase.wasm`, ...).
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
    plugins: PathBuf,
    /// Where `latest.md`, `throughput.csv` and `throughput.png` go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Sections to run, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wasm,throughput,latency,footprint"
    )]
    sections: Vec<Section>,
    /// Fewest messages preloaded for an end-to-end throughput run (faster
    /// subjects get more, to be timed for a few seconds).
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Rounds of throughput runs (each subject once per round); the median
    /// is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Batch sizes of Runnel's throughput runs and of the WASM stage.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    batch_sizes: Vec<usize>,
    /// Fixed rates of the latency runs, messages per second.
    #[arg(long, value_delimiter = ',', default_value = "500,2000")]
    rates: Vec<u32>,
    /// Seconds at each latency rate, in each round.
    #[arg(long, default_value_t = 4)]
    latency_seconds: u64,
    /// Rounds of latency runs (every subject once per round, in turn); each
    /// subject's rounds are pooled.
    #[arg(long, default_value_t = 3)]
    latency_rounds: usize,
    /// Seconds per timed window of the WASM stage (seven per point).
    #[arg(long, default_value_t = 0.4)]
    wasm_seconds: f64,
    /// Fewer messages and shorter runs everywhere: to try the harness out,
    /// not for numbers to quote.
    #[arg(long)]
    quick: bool,
    /// A `runnel --set` override for the measured pipeline (named
    /// `uppercase`), e.g. `pipelines.uppercase.max_in_flight=100000`; named in
    /// the results. Repeatable.
    #[arg(long = "runnel-set", value_name = "PATH=VALUE")]
    runnel_set: Vec<String>,
    /// Keep the generated configs and the children's logs.
    #[arg(long)]
    keep_work: bool,
    /// The command to name in the results.
    #[arg(long, default_value = "bench/run.sh")]
    command_line: String,
}

impl RunOptions {
    fn scale_down(&mut self) {
        self.messages = self.messages.min(30_000);
        self.rounds = 1;
        self.latency_rounds = 1;
        self.latency_seconds = self.latency_seconds.min(2);
        self.wasm_seconds = self.wasm_seconds.min(0.2);
    }

    fn runs(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

pub fn run(mut options: RunOptions) -> anyhow::Result<()> {
    if options.quick {
        options.scale_down();
    }
    let clock = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("runnel-bench-")
        .tempdir()
        .context("creating the work directory")?;
    let mut work = work;
    if options.keep_work {
        work.disable_cleanup(true);
        clock.say(&format!("keeping work files in {}", work.path().display()));
    }
    let harness = harness(&options, work.path())?;
    clock.say("sampling the machine's load");
    let mut results = Results {
        machine: Machine::describe(),
        method: method(&options),
        throughput: Vec::new(),
        stage: Vec::new(),
        latency: Vec::new(),
        footprint: Vec::new(),
        elapsed: Duration::ZERO,
        load_average_at_end: String::new(),
    };
    if options.runs(Section::Wasm) {
        // First, while nothing else runs on the machine.
        results.stage = measure_stage(&harness, &options, &clock)?;
    }
    if options.runs(Section::Throughput) {
        results.throughput = measure_throughput(&harness, &options, &clock)?;
    }
    if options.runs(Section::Latency) {
        results.latency = measure_latency(&harness, &options, &clock)?;
    }
    if options.runs(Section::Footprint) {
        results.footprint = measure_footprint(&harness, &clock)?;
    }
    results.elapsed = clock.elapsed();
    results.load_average_at_end = crate::machine::load_average();
    let page = write_results(&results, &options.out)?;
    println!("{page}");
    clock.say(&format!(
        "results in {}",
        options.out.join("latest.md").display()
    ));
    Ok(())
}

fn harness(options: &RunOptions, work_dir: &Path) -> anyhow::Result<Harness> {
    let needs_broker = options.sections.iter().any(|s| *s != Section::Wasm);
    let brokers = match &options.brokers {
        Some(brokers) => brokers.clone(),
        None if needs_broker => {
            bail!("--brokers is needed for every section but `wasm`; bench/run.sh starts a broker")
        }
        None => String::new(),
    };
    if needs_broker {
        ensure!(
            options.runnel.is_file(),
            "no runnel binary at {}; build it with `cargo build --release -p runnel`",
            options.runnel.display()
        );
    }
    let harness = Harness {
        cluster: Cluster::new(&brokers),
        runnel: absolute(&options.runnel)?,
        plugins: absolute(&options.plugins)?,
        work_dir: work_dir.to_owned(),
        broker_pid: options.broker_pid,
        runnel_overrides: options.runnel_set.clone(),
    };
    let uppercase = harness.plugin("uppercase");
    ensure!(
        uppercase.is_file(),
        "no plugin at {}; build the plugins with `cargo build --release` in plugins/",
        uppercase.display()
    );
    Ok(harness)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn method(options: &RunOptions) -> Method {
    Method {
        command: options.command_line.clone(),
        broker: options.broker_description.clone(),
        messages: options.messages,
        rounds: options.rounds,
        throughput_batch_timeout: THROUGHPUT_BATCH_TIMEOUT,
        latency_seconds: options.latency_seconds,
        latency_rounds: options.latency_rounds,
        wasm_window: Duration::from_secs_f64(options.wasm_seconds),
        runnel_overrides: options.runnel_set.clone(),
    }
}

fn measure_stage(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
) -> anyhow::Result<Vec<wasm_stage::StageRun>> {
    clock.say("WASM stage alone: waiting for the machine to settle");
    // One thread's speed depends on what its core's neighbours do, even when
    // measured in its own CPU time.
    if let Some(busy) = crate::machine::wait_until_quiet(0.3, Duration::from_secs(30)) {
        clock.say(&format!("  {busy:.1} cores busy; measuring"));
    }
    let path = harness.plugin("uppercase");
    let wasm = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let window = Duration::from_secs_f64(options.wasm_seconds);
    let runs = wasm_stage::measure(&wasm, &options.batch_sizes, window)?;
    for run in &runs {
        clock.say(&format!(
            "  {} B, batch {}, fuel {}: {} msg/s, {} calls/s",
            run.value_bytes,
            run.batch_size,
            if run.fuel_metering { "on" } else { "off" },
            report::rate(run.messages_per_sec()),
            report::rate(run.calls_per_sec)
        ));
    }
    Ok(runs)
}

/// Every subject once per round, in turn, so slow drift on the machine
/// spreads over all of them instead of favouring whoever ran first.
fn measure_throughput(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
) -> anyhow::Result<Vec<ThroughputResult>> {
    let mut subjects = vec![
        Subject::Baseline {
            gated: true,
            linger_ms: RUNNEL_LINGER_MS,
        },
        Subject::Baseline {
            gated: false,
            linger_ms: RUNNEL_LINGER_MS,
        },
    ];
    let runnel = |batch_size, diagnostic| Subject::Runnel {
        batch_size,
        batch_timeout: THROUGHPUT_BATCH_TIMEOUT,
        linger_ms: RUNNEL_LINGER_MS,
        diagnostic,
    };
    subjects.extend(options.batch_sizes.iter().map(|&size| runnel(size, None)));
    // What Runnel's in-flight bound costs: the largest batch again, with the
    // bound out of the way.
    if let Some(&largest) = options.batch_sizes.iter().max() {
        subjects.push(runnel(
            largest,
            Some(Diagnostic::MaxInFlight(DIAGNOSTIC_MAX_IN_FLIGHT)),
        ));
    }
    let mut results: Vec<ThroughputResult> = subjects
        .into_iter()
        .map(|subject| ThroughputResult {
            subject,
            runs: Vec::new(),
        })
        .collect();
    // A freshly started broker is slower until the JVM has compiled its hot
    // paths; one untimed run first keeps that out of the first round.
    clock.say("throughput: warming the broker up (untimed)");
    let warm_up = throughput::measure(harness, &results[0].subject, options.messages)
        .context("warming the broker up")?;
    // The warm-up's rate sizes the baselines' first runs.
    let mut previous_rates: Vec<Option<f64>> = results
        .iter()
        .map(|result| match result.subject {
            Subject::Baseline { .. } => Some(warm_up.messages_per_sec),
            Subject::Runnel { .. } => None,
        })
        .collect();
    for round in 1..=options.rounds {
        for (result, previous_rate) in results.iter_mut().zip(&mut previous_rates) {
            let label = result.subject.label();
            let messages = throughput::message_count(options.messages, *previous_rate);
            clock.say(&format!(
                "throughput, round {round}/{}: {label}, {messages} messages",
                options.rounds
            ));
            let run = throughput::measure(harness, &result.subject, messages)
                .with_context(|| format!("throughput of {label}"))?;
            *previous_rate = Some(run.messages_per_sec);
            clock.say(&format!(
                "  {} msg/s ({:.1} s to the first output)",
                report::rate(run.messages_per_sec),
                run.time_to_first_output.as_secs_f64()
            ));
            result.runs.push(run);
        }
    }
    Ok(results)
}

/// The baseline and per-message Runnel at Runnel's default linger.ms and
/// at 0 (which shows the pipeline's own overhead without the producer's
/// batching wait), and batch mode at the default.
fn measure_latency(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
) -> anyhow::Result<Vec<LatencyResult>> {
    let subjects = latency_subjects();
    warm_up_for_latency(harness, options, clock, &subjects[0].0)?;
    // samples[subject][round][rate]
    let mut samples = vec![Vec::new(); subjects.len()];
    for round in 1..=options.latency_rounds {
        for ((subject, calibration), rounds) in subjects.iter().zip(&mut samples) {
            let label = report::latency_label(subject, *calibration);
            clock.say(&format!(
                "latency round {round}/{}: {label}, linger.ms={}",
                options.latency_rounds,
                subject.linger_ms()
            ));
            let by_rate =
                latency::measure(harness, subject, &options.rates, options.latency_seconds)
                    .with_context(|| format!("latency of {label}"))?;
            for rate in &by_rate {
                clock.say(&format!(
                    "  {}/s: p99 {} µs ({}/{} received), in the process {}, machine busy {:.2} cores",
                    rate.rate,
                    rate.p99_us(),
                    rate.latencies_us.len(),
                    rate.sent,
                    rate.in_host.percentiles_label(),
                    rate.machine_busy_cores.unwrap_or(f64::NAN)
                ));
            }
            rounds.push(by_rate);
        }
    }
    Ok(pool_latency_rounds(subjects, samples, &options.rates))
}

/// What the latency section measures, in the order of each round; `true`
/// marks the baseline's second run.
fn latency_subjects() -> [(Subject, bool); 9] {
    let (batch_size, batch_timeout) = LATENCY_BATCH;
    let per_message = |linger_ms, diagnostic| Subject::Runnel {
        batch_size: 1,
        batch_timeout,
        linger_ms,
        diagnostic,
    };
    // Per-message mode on one runtime thread: with two, each worker woken
    // for a message first wakes the other, which finds nothing to do.
    let one_thread = Some(Diagnostic::WorkerThreads(1));
    let baseline = |linger_ms| Subject::Baseline {
        gated: true,
        linger_ms,
    };
    // The baseline's second run (the `true`) brackets per-message Runnel
    // with the first, so that drift over the round moves both comparisons.
    [
        (baseline(RUNNEL_LINGER_MS), false),
        (per_message(RUNNEL_LINGER_MS, None), false),
        (per_message(RUNNEL_LINGER_MS, one_thread), false),
        (baseline(RUNNEL_LINGER_MS), true),
        (
            Subject::Runnel {
                batch_size,
                batch_timeout,
                linger_ms: RUNNEL_LINGER_MS,
                diagnostic: None,
            },
            false,
        ),
        (baseline(0), false),
        (per_message(0, None), false),
        (per_message(0, one_thread), false),
        (baseline(0), true),
    ]
}

/// A broker that has not run this load yet (a latency-only run, with no
/// throughput section before it) is still compiling its hot paths: at
/// 2000 msg/s its p99 stayed above 100 ms for the first 6 s of such a
/// run. The baseline runs untimed at the highest rate first, long enough
/// for that to pass.
fn warm_up_for_latency(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
    baseline: &Subject,
) -> anyhow::Result<()> {
    let top_rate = options.rates.iter().copied().max().unwrap_or(0);
    clock.say(&format!(
        "latency warm-up: the baseline at {top_rate}/s for {} s, untimed",
        LATENCY_WARM_UP.as_secs()
    ));
    latency::measure(harness, baseline, &[top_rate], LATENCY_WARM_UP.as_secs())
        .context("latency warm-up")?;
    Ok(())
}

/// Each subject's runs at each rate, its rounds pooled; `samples` holds
/// `samples[subject][round][rate]`.
fn pool_latency_rounds(
    subjects: [(Subject, bool); 9],
    samples: Vec<Vec<Vec<latency::RateSamples>>>,
    rates: &[u32],
) -> Vec<LatencyResult> {
    subjects
        .into_iter()
        .zip(samples)
        .map(|((subject, calibration), rounds)| {
            let runs = rates
                .iter()
                .enumerate()
                .map(|(index, &rate)| {
                    let at_rate: Vec<_> = rounds.iter().map(|round| &round[index]).collect();
                    latency::LatencyRun::pooled(rate, &at_rate)
                })
                .collect();
            LatencyResult {
                subject,
                calibration,
                runs,
            }
        })
        .collect()
}

fn measure_footprint(
    harness: &Harness,
    clock: &Progress,
) -> anyhow::Result<Vec<footprint::Footprint>> {
    let mut results = Vec::new();
    for plugins in IDLE_PLUGIN_COUNTS {
        clock.say(&format!("footprint: idle host with {plugins} plugins"));
        let footprint = footprint::measure(harness, plugins)
            .with_context(|| format!("footprint with {plugins} plugins"))?;
        clock.say(&format!(
            "  {:.1} MiB resident",
            footprint.memory.resident as f64 / (1024.0 * 1024.0)
        ));
        results.push(footprint);
    }
    Ok(results)
}

/// Writes `latest.md`, and with throughput numbers `throughput.csv` and the
/// chart; returns the page.
fn write_results(results: &Results, out: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let page = report::markdown(results);
    let page_path = out.join("latest.md");
    std::fs::write(&page_path, &page)
        .with_context(|| format!("writing {}", page_path.display()))?;
    if !results.throughput.is_empty() {
        let csv_path = out.join("throughput.csv");
        std::fs::write(&csv_path, report::throughput_csv(results))
            .with_context(|| format!("writing {}", csv_path.display()))?;
        draw_chart(&csv_path, &out.join("throughput.png"), results)?;
    }
    Ok(page)
}

/// The chart is drawn by `bench/plot.py` with matplotlib, which renders
/// text without depending on the system's fonts.
fn draw_chart(csv: &Path, png: &Path, results: &Results) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("plot.py");
    let caption = format!(
        "{}; {}; commit {}",
        results.machine.one_line(),
        results.method.broker,
        results.machine.commit
    );
    let status = Command::new("python3")
        .arg(&script)
        .arg(csv)
        .arg(png)
        .arg(caption)
        .status()
        .context("running python3 for the chart")?;
    ensure!(
        status.success(),
        "{} failed ({status}); is matplotlib installed? (python3 -m pip install matplotlib)",
        script.display()
    );
    Ok(())
}

/// Progress lines on stderr, stamped with the time since the start.
struct Progress {
    started: Instant,
}

impl Progress {
    fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn say(&self, line: &str) {
        eprintln!("[{:>5.0} s] {line}", self.elapsed().as_secs_f64());
    }
}
