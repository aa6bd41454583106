//! The `run` command: every section in turn on one broker, then the results
//! page, the chart's CSV and the chart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Args, ValueEnum};

use crate::kafka::Cluster;
use crate::kafka_streams::{Guarantee, StreamsSettings};
use crate::languages::{self, LANGUAGES};
use crate::machine::Machine;
use crate::processor::{Diagnostic, Harness, RUNNEL_LINGER_MS, Subject};
use crate::report::{self, Method, Results, ThroughputResult};
use crate::{footprint, throughput, wasm_stage};

mod latency_section;

/// Runnel's batch_timeout in the throughput runs. Batches fill at once from
/// a preloaded topic, so it matters only for each partition's last batch,
/// which should not sit out Runnel's default 100 ms at the end of a run of
/// a second or two.
const THROUGHPUT_BATCH_TIMEOUT: Duration = Duration::from_millis(5);

/// max_in_flight of the diagnostic Runnel run: far above any backlog the
/// runs preload, so fetching is never paused (Runnel's default is 10 000).
const DIAGNOSTIC_MAX_IN_FLIGHT: usize = 10_000_000;

/// Runnel's batching when exactly once, as in the targets: batch ≥ 100.
pub const EXACTLY_ONCE_BATCH: usize = 100;

/// Plugins in the idle hosts: the target's ten, and one to tell the fixed
/// part from the part per plugin.
const IDLE_PLUGIN_COUNTS: [usize; 2] = [1, 10];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// The WebAssembly stage alone (no broker needed).
    Wasm,
    /// The uppercase handler in every SDK's language (no broker needed).
    Languages,
    /// End-to-end throughput, baseline and Runnel.
    Throughput,
    /// End-to-end latency at fixed rates.
    Latency,
    /// Resident memory of idle hosts.
    Footprint,
    /// A healthy pipeline beside misbehaving ones on the same host.
    Tenants,
}

impl Section {
    fn needs_broker(self) -> bool {
        !matches!(self, Section::Wasm | Section::Languages)
    }
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
    /// Directory holding the other languages' built examples
    /// (`<language>/uppercase.wasm`, as `scripts/sdks.sh` builds them); a
    /// language without one is left out of the languages section.
    #[arg(long, default_value = "plugins/target/sdk")]
    sdk_examples: PathBuf,
    /// Directory holding the built Kafka Streams peer, as printed by
    /// `bench/kafka-streams/build.sh`; without it the peer is left out.
    #[arg(long)]
    kafka_streams: Option<PathBuf>,
    /// Where `latest.md`, `throughput.csv` and `throughput.png` go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Sections to run, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wasm,languages,throughput,latency,footprint,tenants"
    )]
    sections: Vec<Section>,
    /// Fewest messages preloaded for an end-to-end throughput run (faster
    /// subjects get more, to be timed for a few seconds).
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Messages a JVM subject (Kafka Streams) processes before its
    /// throughput clock starts, while its JIT compiler works.
    #[arg(long, default_value_t = 500_000)]
    jvm_warm_up_messages: usize,
    /// Rounds of throughput runs (each subject once per round); the median
    /// is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Batch sizes of Runnel's throughput runs and of the WASM stage.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    batch_sizes: Vec<usize>,
    /// Fixed rates of the latency runs, messages per second. The realtime
    /// targets are judged at 1000/s, the rate they are set at.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
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
        self.jvm_warm_up_messages = self.jvm_warm_up_messages.min(50_000);
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
    if harness.kafka_streams.is_none() && options.sections.iter().any(|s| s.needs_broker()) {
        clock.say("no --kafka-streams: the Kafka Streams peer is left out");
    }
    clock.say("sampling the machine's load");
    let mut results = Results {
        machine: Machine::describe(),
        method: method(&options),
        throughput: Vec::new(),
        stage: Vec::new(),
        languages: Vec::new(),
        latency: Vec::new(),
        footprint: Vec::new(),
        tenants: Vec::new(),
        elapsed: Duration::ZERO,
        load_average_at_end: String::new(),
    };
    if options.runs(Section::Wasm) {
        // First, while nothing else runs on the machine.
        results.stage = measure_stage(&harness, &options, &clock)?;
    }
    if options.runs(Section::Languages) {
        results.languages = measure_languages(&harness, &options, &clock)?;
    }
    if options.runs(Section::Throughput) {
        results.throughput = measure_throughput(&harness, &options, &clock)?;
    }
    if options.runs(Section::Latency) {
        results.latency = latency_section::measure(&harness, &options, &clock)?;
    }
    if options.runs(Section::Footprint) {
        results.footprint = measure_footprint(&harness, &clock)?;
    }
    if options.runs(Section::Tenants) {
        clock.say("tenants: a healthy pipeline alone and beside misbehaving ones");
        results.tenants =
            crate::tenants::measure(&harness, options.rounds, options.messages, |line| {
                clock.say(line)
            })?;
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
    let needs_broker = options.sections.iter().any(|s| s.needs_broker());
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
    let kafka_streams = match &options.kafka_streams {
        Some(dir) => {
            ensure!(
                dir.join("uppercase-streams-1.jar").is_file(),
                "no Kafka Streams peer in {}; bench/kafka-streams/build.sh builds it and prints \
                 its directory",
                dir.display()
            );
            Some(absolute(dir)?)
        }
        None => None,
    };
    let harness = Harness {
        cluster: Cluster::new(&brokers),
        runnel: absolute(&options.runnel)?,
        plugins: absolute(&options.plugins)?,
        kafka_streams,
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
        jvm_warm_up_messages: options.jvm_warm_up_messages,
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

fn measure_languages(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
) -> anyhow::Result<Vec<languages::LanguageRun>> {
    clock.say("uppercase in every language: waiting for the machine to settle");
    if let Some(busy) = crate::machine::wait_until_quiet(0.3, Duration::from_secs(30)) {
        clock.say(&format!("  {busy:.1} cores busy; measuring"));
    }
    let sdk_examples = absolute(&options.sdk_examples)?;
    let components: Vec<_> = LANGUAGES
        .iter()
        .map(|&language| {
            (
                language,
                language.uppercase(&harness.plugins, &sdk_examples),
            )
        })
        .collect();
    let window = Duration::from_secs_f64(options.wasm_seconds);
    let runs = languages::measure(&components, window, |line| clock.say(line))?;
    for run in &runs {
        let rates: Vec<String> = run
            .messages_per_sec
            .iter()
            .map(|(batch, rate)| format!("{} msg/s at batch {batch}", report::rate(*rate)))
            .collect();
        clock.say(&format!("  {}: {}", run.language.name(), rates.join(", ")));
    }
    Ok(runs)
}

/// What the throughput section measures, in the order of each round: the
/// baselines, Runnel at each batch size, the in-flight diagnostic, Runnel
/// exactly once, and the peer at both guarantees when it is built.
fn throughput_subjects(options: &RunOptions, with_kafka_streams: bool) -> Vec<Subject> {
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
    let runnel = |batch_size, exactly_once, diagnostic| Subject::Runnel {
        batch_size,
        batch_timeout: THROUGHPUT_BATCH_TIMEOUT,
        linger_ms: RUNNEL_LINGER_MS,
        exactly_once,
        diagnostic,
    };
    subjects.extend(
        options
            .batch_sizes
            .iter()
            .map(|&size| runnel(size, false, None)),
    );
    // What Runnel's in-flight bound costs: the largest batch again, with the
    // bound out of the way.
    if let Some(&largest) = options.batch_sizes.iter().max() {
        subjects.push(runnel(
            largest,
            false,
            Some(Diagnostic::MaxInFlight(DIAGNOSTIC_MAX_IN_FLIGHT)),
        ));
    }
    subjects.push(runnel(EXACTLY_ONCE_BATCH, true, None));
    if with_kafka_streams {
        for guarantee in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
            subjects.push(Subject::KafkaStreams(StreamsSettings {
                guarantee,
                tuned: false,
            }));
        }
    }
    subjects
}

/// Every subject once per round, in turn, so slow drift on the machine
/// spreads over all of them instead of favouring whoever ran first.
fn measure_throughput(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
) -> anyhow::Result<Vec<ThroughputResult>> {
    let subjects = throughput_subjects(options, harness.kafka_streams.is_some());
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
    let warm_up = throughput::measure(harness, &results[0].subject, options.messages, 0)
        .context("warming the broker up")?;
    // The warm-up's rate sizes the baselines' first runs.
    let mut previous_rates: Vec<Option<f64>> = results
        .iter()
        .map(|result| match result.subject {
            Subject::Baseline { .. } => Some(warm_up.messages_per_sec),
            _ => None,
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
            let jvm_warm_up = if result.subject.compiles_while_running() {
                options.jvm_warm_up_messages
            } else {
                0
            };
            let run = throughput::measure(harness, &result.subject, messages, jvm_warm_up)
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
pub(super) struct Progress {
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

    pub(super) fn say(&self, line: &str) {
        eprintln!("[{:>5.0} s] {line}", self.elapsed().as_secs_f64());
    }
}
