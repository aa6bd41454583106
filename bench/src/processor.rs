//! What the end-to-end measurements run between an input and an output
//! topic: the baseline loop, the real `runnel` binary or the Kafka Streams
//! peer, each as a child process that the harness watches from outside
//! (`/proc`, the topics).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::baseline::METRICS_LOG_PREFIX;
use crate::histogram::{Buckets, PROCESSING_METRIC};
use crate::kafka::{Cluster, TopicPair};
use crate::kafka_streams::StreamsSettings;
use crate::procfs::{self, Memory};
use crate::runnel_config::{PipelineSpec, RunnelConfig};

/// The default of `linger.ms` in Runnel's producer, which the baseline copies.
pub const RUNNEL_LINGER_MS: u32 = 5;

/// Everything a measurement needs from the outside world.
pub struct Harness {
    pub cluster: Cluster,
    /// The `runnel` binary under test.
    pub runnel: PathBuf,
    /// Where the example plugins' `.wasm` files are.
    pub plugins: PathBuf,
    /// The built Kafka Streams peer (`bench/kafka-streams/build.sh`); the
    /// peer is left out without it.
    pub kafka_streams: Option<PathBuf>,
    /// Generated configs and child logs.
    pub work_dir: PathBuf,
    /// The broker's JVM, for its CPU time.
    pub broker_pid: Option<u32>,
    /// `--set` overrides for the measured Runnel pipeline (named
    /// `uppercase`), to try what a setting changes.
    pub runnel_overrides: Vec<String>,
}

impl Harness {
    pub fn plugin(&self, name: &str) -> PathBuf {
        self.plugins
            .join(format!("{}.wasm", name.replace('-', "_")))
    }
}

/// Who turns the input topic into the output topic.
#[derive(Debug, Clone)]
pub enum Subject {
    /// The raw rdkafka loop of `baseline.rs`.
    Baseline { gated: bool, linger_ms: u32 },
    /// `runnel run` with the uppercase plugin, all else at its defaults
    /// unless `diagnostic` changes one setting.
    Runnel {
        batch_size: usize,
        batch_timeout: Duration,
        linger_ms: u32,
        /// `exactly_once = true`: outputs and offsets in transactions.
        exactly_once: bool,
        diagnostic: Option<Diagnostic>,
    },
    /// `runnel run` with the uppercase plugin and `profile = "realtime"`,
    /// nothing else set: per-message mode as it ships.
    RunnelRealtime,
    /// The Kafka Streams program of `bench/kafka-streams/`.
    KafkaStreams(StreamsSettings),
}

/// A Runnel setting changed from its default, to show what it costs or
/// buys: such runs are reported, and count for no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnostic {
    /// The pipeline's `max_in_flight`.
    MaxInFlight(usize),
    /// The host's `runtime.worker_threads`.
    WorkerThreads(usize),
    /// Other pipelines on the same host whose plugins misbehave.
    Beside(Neighbours),
}

/// Pipelines that share the measured one's host, each fed poisoned
/// messages of its own for the whole run (see [`crate::tenants`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbours {
    /// Its plugin spins on every message until the call times out.
    pub looping: bool,
    /// Its plugin grows its memory on every message until it is refused.
    pub hungry: bool,
}

impl Neighbours {
    /// The neighbours present: pipeline name and the command each of its
    /// messages holds for the `misbehave` plugin.
    pub fn present(self) -> Vec<(&'static str, &'static str)> {
        let mut present = Vec::new();
        if self.looping {
            present.push(("looping", "loop"));
        }
        if self.hungry {
            present.push(("hungry", "oom"));
        }
        present
    }

    pub fn label(self) -> String {
        match (self.looping, self.hungry) {
            (false, false) => "alone".into(),
            (true, false) => "beside a looping pipeline".into(),
            (false, true) => "beside a memory-hungry pipeline".into(),
            (true, true) => "beside a looping and a memory-hungry pipeline".into(),
        }
    }
}

impl Diagnostic {
    pub fn label(self) -> String {
        match self {
            Self::MaxInFlight(messages) => format!("max_in_flight {messages}"),
            Self::WorkerThreads(threads) => format!("worker_threads {threads}"),
            Self::Beside(neighbours) => neighbours.label(),
        }
    }
}

impl Subject {
    pub fn label(&self) -> String {
        match self {
            Subject::Baseline { gated: true, .. } => "baseline (offsets after delivery)".into(),
            Subject::Baseline { gated: false, .. } => {
                "baseline, ungated (offsets on receipt)".into()
            }
            Subject::Runnel {
                batch_size,
                batch_timeout,
                exactly_once,
                diagnostic,
                ..
            } => {
                let mode = if *batch_size == 1 {
                    "per-message (batch 1)".to_owned()
                } else if diagnostic.is_some() {
                    format!("batch {batch_size}")
                } else {
                    format!("batch {batch_size} / {}ms", batch_timeout.as_millis())
                };
                let guarantee = if *exactly_once { ", exactly once" } else { "" };
                match diagnostic {
                    Some(diagnostic) => format!(
                        "Runnel, {mode}{guarantee}, {} (diagnostic, not a default)",
                        diagnostic.label()
                    ),
                    None => format!("Runnel, {mode}{guarantee}"),
                }
            }
            Subject::RunnelRealtime => "Runnel, per-message, `realtime` profile".into(),
            Subject::KafkaStreams(settings) => settings.label(),
        }
    }

    /// Runs with a setting changed from Runnel's defaults: shown, but
    /// counted for no target.
    pub fn is_diagnostic(&self) -> bool {
        self.diagnostic().is_some()
    }

    pub fn diagnostic(&self) -> Option<Diagnostic> {
        match self {
            Subject::Runnel { diagnostic, .. } => *diagnostic,
            _ => None,
        }
    }

    /// Runnel's batch size, where the harness sets it.
    pub fn batch_size(&self) -> Option<usize> {
        match self {
            Subject::Runnel { batch_size, .. } => Some(*batch_size),
            _ => None,
        }
    }

    /// Whether outputs become visible only when a transaction commits.
    pub fn is_exactly_once(&self) -> bool {
        match self {
            Subject::Runnel { exactly_once, .. } => *exactly_once,
            Subject::KafkaStreams(settings) => {
                settings.guarantee == crate::kafka_streams::Guarantee::ExactlyOnce
            }
            Subject::Baseline { .. } | Subject::RunnelRealtime => false,
        }
    }

    /// The subject's producer `linger.ms`; `None` where it is left to a
    /// Runnel profile.
    pub fn linger_ms(&self) -> Option<u32> {
        match self {
            Subject::Baseline { linger_ms, .. } | Subject::Runnel { linger_ms, .. } => {
                Some(*linger_ms)
            }
            Subject::RunnelRealtime => None,
            Subject::KafkaStreams(settings) => Some(settings.linger_ms()),
        }
    }

    /// Whether the subject runs on a JVM, whose JIT compiler compiles its
    /// hot paths while it processes its first messages: in a trial here,
    /// Kafka Streams' rate rose from 20 k to 70 k msg/s over its first
    /// 500 k messages and then held.
    pub fn compiles_while_running(&self) -> bool {
        matches!(self, Subject::KafkaStreams(_))
    }

    /// Whether the subject records `runnel_message_processing_seconds`:
    /// Runnel and the baseline do, Kafka Streams has no such histogram.
    pub fn records_processing_time(&self) -> bool {
        !matches!(self, Subject::KafkaStreams(_))
    }

    /// Starts the subject reading `topics.input` from the beginning, in
    /// the consumer group `group`.
    pub fn start(
        &self,
        harness: &Harness,
        topics: &TopicPair,
        group: &str,
    ) -> anyhow::Result<Processor> {
        let log_path = harness.work_dir.join(format!("{group}.log"));
        match self {
            Subject::Baseline { gated, linger_ms } => {
                let mut command = Command::new(
                    std::env::current_exe().context("finding the harness's own binary")?,
                );
                command
                    .args(["baseline", "--brokers", harness.cluster.brokers()])
                    .args(["--input", &topics.input, "--output", &topics.output])
                    .args(["--group", group])
                    .arg(format!("--producer=linger.ms={linger_ms}"));
                if !gated {
                    command.arg("--ungated");
                }
                Processor::spawn(command, &log_path, true)
            }
            Subject::Runnel { .. } | Subject::RunnelRealtime => {
                if let Some(Diagnostic::Beside(neighbours)) = self.diagnostic() {
                    for (name, command) in neighbours.present() {
                        let input = neighbour_input(group, name);
                        harness.cluster.create_topics(&[&input], 4)?;
                        harness
                            .cluster
                            .preload_values(&input, NEIGHBOUR_MESSAGES, |_| command.into())?;
                    }
                }
                let config = self.runnel_config(harness, topics, group);
                Processor::start_runnel(harness, &config, group, &harness.runnel_overrides)
            }
            Subject::KafkaStreams(settings) => {
                let classpath = harness.kafka_streams.as_deref().context(
                    "the Kafka Streams peer is not built; bench/kafka-streams/build.sh builds it",
                )?;
                let command = settings.command(
                    classpath,
                    harness.cluster.brokers(),
                    topics,
                    group,
                    &harness.work_dir.join(format!("{group}.state")),
                );
                Processor::spawn(command, &log_path, false)
            }
        }
    }

    /// The `runnel.toml` of a Runnel subject.
    fn runnel_config(&self, harness: &Harness, topics: &TopicPair, group: &str) -> RunnelConfig {
        let mut pipeline = PipelineSpec {
            name: "uppercase".into(),
            input: topics.input.clone(),
            output: topics.output.clone(),
            group: group.to_owned(),
            plugin: harness.plugin("uppercase"),
            profile: None,
            batch_size: None,
            batch_timeout: None,
            max_in_flight: None,
            exactly_once: false,
            plugin_config: Vec::new(),
        };
        let mut config = RunnelConfig {
            brokers: harness.cluster.brokers().to_owned(),
            producer: Vec::new(),
            worker_threads: None,
            pipelines: Vec::new(),
        };
        match self {
            Subject::Runnel {
                batch_size,
                batch_timeout,
                linger_ms,
                exactly_once,
                diagnostic,
            } => {
                pipeline.batch_size = Some(*batch_size);
                pipeline.batch_timeout = Some(*batch_timeout);
                pipeline.exactly_once = *exactly_once;
                config.producer = vec![("linger.ms".into(), linger_ms.to_string())];
                match diagnostic {
                    Some(Diagnostic::MaxInFlight(messages)) => {
                        pipeline.max_in_flight = Some(*messages)
                    }
                    Some(Diagnostic::WorkerThreads(threads)) => {
                        config.worker_threads = Some(*threads)
                    }
                    Some(Diagnostic::Beside(neighbours)) => {
                        for (name, _) in neighbours.present() {
                            config.pipelines.push(PipelineSpec {
                                name: name.into(),
                                input: neighbour_input(group, name),
                                // It fails every message: nothing is written.
                                output: format!("{group}-{name}-out"),
                                group: format!("{group}-{name}"),
                                plugin: harness.plugin("misbehave"),
                                ..PipelineSpec::new_batch(*batch_size, *batch_timeout)
                            });
                        }
                    }
                    None => {}
                }
            }
            _ => pipeline.profile = Some("realtime"),
        }
        config.pipelines.push(pipeline);
        config
    }
}

/// Poisoned messages preloaded for each neighbour: more than a neighbour
/// gets through in a run (a looping one takes its 5 s call timeout per
/// message once its batches are split down to one).
const NEIGHBOUR_MESSAGES: usize = 2_000;

/// The input topic of a measured pipeline's neighbour `name`.
fn neighbour_input(group: &str, name: &str) -> String {
    format!("{group}-{name}-in")
}

/// A running child process: the baseline or a Runnel host.
pub struct Processor {
    child: Child,
    log_path: PathBuf,
    /// Whether it serves `runnel_message_processing_seconds`.
    records_processing_time: bool,
    /// Where its `/metrics` is, once read from its log.
    metrics_url: Option<String>,
}

impl Processor {
    /// Writes `config` and starts `runnel run` on it with JSON logs.
    pub fn start_runnel(
        harness: &Harness,
        config: &RunnelConfig,
        name: &str,
        overrides: &[String],
    ) -> anyhow::Result<Self> {
        let config_path = harness.work_dir.join(format!("{name}.toml"));
        config.write(&config_path)?;
        let mut command = Command::new(&harness.runnel);
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(overrides.iter().flat_map(|spec| ["--set", spec]))
            .env("RUNNEL_LOG_FORMAT", "json")
            .env("RUNNEL_LOG", "info");
        Processor::spawn(command, &harness.work_dir.join(format!("{name}.log")), true)
    }

    fn spawn(
        mut command: Command,
        log_path: &Path,
        records_processing_time: bool,
    ) -> anyhow::Result<Self> {
        let log = File::create(log_path)
            .with_context(|| format!("creating the log file {}", log_path.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(Self {
            child,
            log_path: log_path.to_owned(),
            records_processing_time,
            metrics_url: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        procfs::cpu_seconds(self.pid())
    }

    pub fn memory(&self) -> Option<Memory> {
        procfs::memory(self.pid())
    }

    /// Fails, with the end of the child's log, if it has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "process {} exited ({status}); the end of its log ({}):\n{}",
                self.child.id(),
                self.log_path.display(),
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// Waits until Runnel logs a line whose message is `message`.
    pub fn wait_for_log_message(&mut self, message: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.ensure_running()?;
            if self.log_has_message(message) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "no `{message}` in the log within {timeout:?}; its end:\n{}",
            self.log_tail(20)
        )
    }

    fn log_has_message(&self, message: &str) -> bool {
        self.json_log_lines()
            .any(|line| line["fields"]["message"] == message)
    }

    /// The lines of a Runnel log; none of the baseline's.
    fn json_log_lines(&self) -> impl Iterator<Item = serde_json::Value> {
        let file = File::open(&self.log_path).ok();
        file.into_iter()
            .flat_map(|file| BufReader::new(file).lines().map_while(Result::ok))
            .filter_map(|line| serde_json::from_str(&line).ok())
    }

    /// The time each message spent in the process so far (see
    /// `histogram.rs`), read from its `/metrics`; `None` for a process
    /// that does not record it.
    pub fn processing_buckets(&mut self) -> anyhow::Result<Option<Buckets>> {
        if !self.records_processing_time {
            return Ok(None);
        }
        let url = self.metrics_url()?;
        let exposition = reqwest::blocking::get(&url)
            .and_then(|response| response.error_for_status())
            .and_then(|response| response.text())
            .with_context(|| format!("reading {url}"))?;
        Buckets::parse(&exposition, PROCESSING_METRIC).map(Some)
    }

    /// Runnel logs the address it serves HTTP on (`http listening`), the
    /// baseline the one it serves its metrics on.
    fn metrics_url(&mut self) -> anyhow::Result<String> {
        if let Some(url) = &self.metrics_url {
            return Ok(url.clone());
        }
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let address = log
            .lines()
            .find_map(|line| {
                if let Some(address) = line.strip_prefix(METRICS_LOG_PREFIX) {
                    return Some(address.to_owned());
                }
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                let fields = &line["fields"];
                (fields["message"] == "http listening")
                    .then(|| fields["address"].as_str().map(str::to_owned))?
            })
            .with_context(|| format!("no metrics address in {}", self.log_path.display()))?;
        let url = format!("http://{address}/metrics");
        self.metrics_url = Some(url.clone());
        Ok(url)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM (Runnel drains and commits, Kafka Streams closes and
    /// commits, the baseline just ends), then SIGKILL if it is still there
    /// after a while.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop within 10 s; killing it", self.child.id());
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
