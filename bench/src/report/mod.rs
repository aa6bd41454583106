//! Turns the measurements into the results page: the machine, the targets
//! (see `targets.rs`), one table per section and the chart.
//! The page is Markdown, printed as is and written to `latest.md`.

use std::fmt::Write as _;
use std::time::Duration;

mod languages;
mod latency;
mod peer;
mod tenants;

use crate::footprint::Footprint;
use crate::kafka_streams::Guarantee;
use crate::languages::{Language, LanguageRun};
use crate::latency::LatencyRun;
use crate::machine::Machine;
use crate::processor::Subject;
use crate::targets::{self, TargetRow};
use crate::tenants::TenantsRun;
use crate::throughput::ThroughputRun;
use crate::wasm_stage::{self, StageRun};

/// How the measurements were made, for the text around the tables.
#[derive(Debug, Clone)]
pub struct Method {
    pub command: String,
    pub broker: String,
    pub messages: usize,
    /// Messages a JVM subject processes before its clock starts.
    pub jvm_warm_up_messages: usize,
    pub rounds: usize,
    pub throughput_batch_timeout: Duration,
    pub latency_seconds: u64,
    pub latency_rounds: usize,
    pub wasm_window: Duration,
    /// `--set` overrides the measured Runnel ran with.
    pub runnel_overrides: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ThroughputResult {
    pub subject: Subject,
    pub runs: Vec<ThroughputRun>,
}

impl ThroughputResult {
    /// The run with the median rate (the lower middle for an even count).
    pub fn median(&self) -> Option<&ThroughputRun> {
        let mut runs: Vec<&ThroughputRun> = self.runs.iter().collect();
        runs.sort_by(|a, b| a.messages_per_sec.total_cmp(&b.messages_per_sec));
        runs.get(runs.len().saturating_sub(1) / 2).copied()
    }

    fn range(&self) -> (f64, f64) {
        let rates = self.runs.iter().map(|run| run.messages_per_sec);
        let min = rates.clone().fold(f64::INFINITY, f64::min);
        (min, rates.fold(0.0, f64::max))
    }
}

#[derive(Debug, Clone)]
pub struct LatencyResult {
    pub subject: Subject,
    /// A second run of the baseline, in the same rounds: how far apart the
    /// same subject measures against itself, which is the finest
    /// difference the latency rows can tell.
    pub calibration: bool,
    pub runs: Vec<LatencyRun>,
}

impl LatencyResult {
    pub fn label(&self) -> String {
        latency_label(&self.subject, self.calibration)
    }
}

/// The subject's producer linger.ms, or whose default it is.
pub fn linger_label(subject: &Subject) -> String {
    subject
        .linger_ms()
        .map_or_else(|| "the profile's".into(), |linger_ms| linger_ms.to_string())
}

/// A latency subject's name, the baseline's second run told apart.
pub fn latency_label(subject: &Subject, calibration: bool) -> String {
    if calibration {
        format!("{}, again (resolution check)", subject.label())
    } else {
        subject.label()
    }
}

#[derive(Debug, Clone)]
pub struct Results {
    pub machine: Machine,
    pub method: Method,
    pub throughput: Vec<ThroughputResult>,
    pub stage: Vec<StageRun>,
    pub languages: Vec<LanguageRun>,
    pub latency: Vec<LatencyResult>,
    pub footprint: Vec<Footprint>,
    pub tenants: Vec<TenantsRun>,
    pub elapsed: Duration,
    /// /proc/loadavg when the run ended.
    pub load_average_at_end: String,
}

impl Results {
    /// The healthy pipeline's median rate with no neighbour, if measured.
    pub fn tenants_alone_rate(&self) -> Option<f64> {
        self.tenants
            .iter()
            .find(|run| run.is_alone())
            .map(TenantsRun::median)
            .filter(|&rate| rate > 0.0)
    }

    /// No measurements, for tests to fill in.
    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self {
            machine: Machine {
                cpu: String::new(),
                cores: 2,
                memory_gib: 24.0,
                kernel: String::new(),
                rustc: String::new(),
                commit: String::new(),
                busy_cores_before: None,
            },
            method: Method {
                command: String::new(),
                broker: String::new(),
                messages: 0,
                jvm_warm_up_messages: 0,
                rounds: 1,
                throughput_batch_timeout: Duration::ZERO,
                latency_seconds: 1,
                latency_rounds: 1,
                wasm_window: Duration::ZERO,
                runnel_overrides: Vec::new(),
            },
            throughput: Vec::new(),
            stage: Vec::new(),
            languages: Vec::new(),
            latency: Vec::new(),
            footprint: Vec::new(),
            tenants: Vec::new(),
            elapsed: Duration::ZERO,
            load_average_at_end: String::new(),
        }
    }

    /// The gated baseline's median rate: what every ratio divides by.
    pub(crate) fn baseline_rate(&self) -> Option<f64> {
        self.throughput
            .iter()
            .find(|result| matches!(result.subject, Subject::Baseline { gated: true, .. }))
            .and_then(ThroughputResult::median)
            .map(|run| run.messages_per_sec)
    }

    /// Kafka Streams' median throughput run with `guarantee`.
    pub(crate) fn kafka_streams_run(&self, guarantee: Guarantee) -> Option<&ThroughputRun> {
        self.throughput
            .iter()
            .find(|result| {
                matches!(&result.subject, Subject::KafkaStreams(settings)
                    if settings.guarantee == guarantee && !settings.tuned)
            })
            .and_then(ThroughputResult::median)
    }

    /// Runnel's median throughput run at each batch size, at its defaults
    /// (no diagnostic), at least once or exactly once.
    pub(crate) fn runnel_runs(&self, exactly_once: bool) -> Vec<(usize, &ThroughputRun)> {
        self.throughput
            .iter()
            .filter(|result| !result.subject.is_diagnostic())
            .filter(|result| result.subject.is_exactly_once() == exactly_once)
            .filter_map(|result| Some((result.subject.batch_size()?, result.median()?)))
            .collect()
    }

    /// The latency runs of the first subject `wanted` accepts, one per rate.
    pub(crate) fn latency_runs(&self, wanted: impl Fn(&Subject) -> bool) -> &[LatencyRun] {
        self.latency
            .iter()
            .find(|result| !result.calibration && wanted(&result.subject))
            .map_or(&[], |result| &result.runs)
    }

    /// The Rust row's messages per second per core at `batch_size`.
    pub(crate) fn rust_language_rate(&self, batch_size: usize) -> Option<f64> {
        self.languages
            .iter()
            .find(|run| run.language == Language::Rust)
            .and_then(|run| run.messages_per_sec_at(batch_size))
    }

    pub(crate) fn stage_run(&self, value_bytes: usize, batch_size: usize) -> Option<&StageRun> {
        self.stage.iter().find(|run| {
            !run.fuel_metering && run.value_bytes == value_bytes && run.batch_size == batch_size
        })
    }

    /// The baseline's run at the same rate and producer linger.
    pub(crate) fn latency_baseline(&self, linger_ms: u32, rate: u32) -> Option<&LatencyRun> {
        self.latency_baseline_run(linger_ms, rate, false)
    }

    /// The baseline's second run at the same rate and producer linger.
    pub(crate) fn latency_calibration(&self, linger_ms: u32, rate: u32) -> Option<&LatencyRun> {
        self.latency_baseline_run(linger_ms, rate, true)
    }

    fn latency_baseline_run(
        &self,
        linger_ms: u32,
        rate: u32,
        calibration: bool,
    ) -> Option<&LatencyRun> {
        self.latency
            .iter()
            .filter(|result| matches!(result.subject, Subject::Baseline { .. }))
            .filter(|result| result.calibration == calibration)
            .filter(|result| result.subject.linger_ms() == Some(linger_ms))
            .flat_map(|result| &result.runs)
            .find(|run| run.rate == rate)
    }
}

pub fn markdown(results: &Results) -> String {
    let mut page = String::new();
    let method = &results.method;
    let machine = &results.machine;
    let _ = writeln!(page, "# Runnel benchmark results\n");
    let _ = writeln!(
        page,
        "Produced by `{}` in {:.0} s on commit `{}`.\n",
        method.command,
        results.elapsed.as_secs_f64(),
        machine.commit
    );
    if !method.runnel_overrides.is_empty() {
        let _ = writeln!(
            page,
            "**Not Runnel's defaults:** the measured pipeline ran with `{}`.\n",
            method.runnel_overrides.join("`, `")
        );
    }
    write_machine(&mut page, results);
    write_targets(&mut page, results);
    write_throughput(&mut page, results);
    peer::write_against_kafka_streams(&mut page, results);
    write_stage(&mut page, results);
    languages::write_languages(&mut page, results);
    latency::write_latency(&mut page, results);
    write_footprint(&mut page, results);
    tenants::write_tenants(&mut page, results);
    page
}

fn write_machine(page: &mut String, results: &Results) {
    let machine = &results.machine;
    let _ = writeln!(page, "## Machine\n");
    let _ = writeln!(page, "- CPU: {} ({} cores)", machine.cpu, machine.cores);
    let _ = writeln!(page, "- Memory: {:.1} GiB", machine.memory_gib);
    let _ = writeln!(page, "- Kernel: Linux {}", machine.kernel);
    let _ = writeln!(page, "- Rust: {}", machine.rustc);
    let _ = writeln!(page, "- Broker: {}", results.method.broker);
    let busy = machine
        .busy_cores_before
        .map_or("unknown".into(), |cores| format!("{cores:.1}"));
    let _ = writeln!(
        page,
        "- Other load: {busy} of {} cores busy just before the run; load average \
         {} at its end (this machine is shared: other work moves the numbers)\n",
        machine.cores, results.load_average_at_end
    );
    if !results.throughput.is_empty() {
        let _ = writeln!(
            page,
            "![End-to-end throughput against batch size](throughput.png)\n"
        );
    }
}

fn write_targets(page: &mut String, results: &Results) {
    let _ = writeln!(page, "## Targets\n");
    write_target_rows(page, "target", targets::rows(results));
    let diagnostics = targets::diagnostic_rows(results);
    if !diagnostics.is_empty() {
        let _ = writeln!(
            page,
            "With a setting changed from Runnel's defaults, the same judgement (these rows \
             count for no target):\n"
        );
        write_target_rows(page, "diagnostic", diagnostics);
    }
}

fn write_target_rows(
    page: &mut String,
    first_column: &str,
    rows: impl IntoIterator<Item = TargetRow>,
) {
    let _ = writeln!(
        page,
        "| {first_column} | goal | measured | result | margin |"
    );
    let _ = writeln!(page, "|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            page,
            "| {} | {} | {} | {} | {} |",
            row.target,
            row.goal,
            row.measured,
            row.result.label(),
            row.margin
        );
    }
    let _ = writeln!(page);
}

fn write_throughput(page: &mut String, results: &Results) {
    if results.throughput.is_empty() {
        return;
    }
    let method = &results.method;
    let _ = writeln!(page, "## 1–2. End-to-end throughput\n");
    let _ = writeln!(
        page,
        "Messages (16-byte keys, {} B values, no headers) preloaded into a fresh \
         4-partition topic per run: at least {}, and as many as the subject \
         processed in {} s in its previous run (at most {}), so that no run is timed \
         over a fraction of a second. Timed from the first output visible in the \
         4-partition output topic (high watermarks) until all are, so start-up and \
         the group join are left out and shown apart. Median of {} rounds, taken in \
         turn, after one untimed run that warms the broker up. The baseline and Runnel use \
         Runnel's producer settings (idempotent, linger.ms=5) and \
         store offsets only after outputs are acknowledged; Runnel runs the uppercase \
         plugin with batch_timeout {} ms and otherwise default settings; the \
         diagnostic row alone raises max_in_flight, to show what Runnel's in-flight \
         bound costs (it counts for no target). Runnel exactly once adds \
         `exactly_once = true`; Kafka Streams runs at its defaults (see below). For the \
         subjects with transactions, outputs count once committed, by the inputs their \
         group committed with them (a commit marker takes an offset in every output \
         partition, so watermarks would overcount). Kafka Streams' clock starts only \
         after its first {} outputs, as its JVM compiles its hot paths meanwhile (Runnel \
         compiles its plugin before its first output, which the time to first output \
         leaves out). The broker shares the machine. CPU is \
         user + system time of the process per message while timed; other load is \
         the cores that processes other than the harness, the subject and the broker \
         kept busy meanwhile (above a few tenths, other work disturbed the run).\n",
        crate::kafka::VALUE_BYTES,
        method.messages,
        crate::throughput::TARGET_TIMED_SECONDS,
        crate::throughput::MAX_MESSAGES,
        method.rounds,
        method.throughput_batch_timeout.as_millis(),
        method.jvm_warm_up_messages
    );
    let _ = writeln!(
        page,
        "| subject | messages | messages/s | range | ratio to baseline | time to first output | \
         subject CPU µs/msg | broker CPU µs/msg | subject peak RSS | other load |"
    );
    let _ = writeln!(page, "|---|---|---|---|---|---|---|---|---|---|");
    let baseline = results.baseline_rate();
    for result in &results.throughput {
        let Some(run) = result.median() else { continue };
        let (low, high) = result.range();
        let ratio = baseline.map_or("–".into(), |base| {
            format!("{:.2}×", run.messages_per_sec / base)
        });
        let timed_out = if result.runs.iter().any(|run| run.timed_out) {
            " (timed out)"
        } else if result.runs.iter().any(|run| run.startup_included) {
            " (too few messages: start-up included)"
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "| {}{timed_out} | {} | {} | {}–{} | {ratio} | {:.1} s | {} | {} | {} | {} |",
            result.subject.label(),
            match run.warm_up_messages {
                0 => run.messages.to_string(),
                warm_up => format!("{} after {warm_up}", run.messages),
            },
            rate(run.messages_per_sec),
            rate(low),
            rate(high),
            run.time_to_first_output.as_secs_f64(),
            optional(run.subject_cpu_us_per_message, |us| format!("{us:.1}")),
            optional(run.broker_cpu_us_per_message, |us| format!("{us:.1}")),
            optional(run.subject_peak_rss, |bytes| format!(
                "{:.0} MiB",
                mib(bytes)
            )),
            optional(run.other_load_cores, cores),
        );
    }
    let _ = writeln!(page);
}

fn write_stage(page: &mut String, results: &Results) {
    if results.stage.is_empty() {
        return;
    }
    let _ = writeln!(page, "## 3. WASM stage alone (no Kafka), one core\n");
    let _ = writeln!(
        page,
        "`Plugin::handle` with the uppercase plugin, back to back on a current-thread \
         runtime, the batch built once outside the timing (as in \
         `host/benches/runtime.rs`); 16-byte keys, no headers. Median of {} windows of \
         {:.1} s, taken in turn across all rows so that a burst of other work lands on \
         every row alike; the range is the slowest and fastest window. Per core means per \
         second of the measuring thread's own CPU time (/proc/thread-self/schedstat), \
         which other processes do not dilute (though a busy virtual-machine host still \
         slows it: the range shows how much); the wall-clock rate is shown beside it. \
         Runnel meters fuel only in plugins with a fuel budget (or in all, with \
         `runtime.fuel_metering`): the rows with metering on show what that costs. \
         Guest fuel is what one call used, about one unit per WebAssembly instruction the \
         plugin ran (the SDK's decoding and encoding included), counted by an untimed \
         call on a metered engine.\n",
        wasm_stage::WINDOWS,
        results.method.wasm_window.as_secs_f64()
    );
    let _ = writeln!(
        page,
        "| value | batch | fuel metering | messages/s per core | calls/s per core | range of calls/s per core | ns/call | ns/message | messages/s wall-clock | guest fuel/call | guest fuel/message |"
    );
    let _ = writeln!(page, "|---|---|---|---|---|---|---|---|---|---|---|");
    for run in &results.stage {
        let batch = run.batch_size as f64;
        let _ = writeln!(
            page,
            "| {} B | {} | {} | {} | {} | {}–{} | {:.0} | {:.0} | {} | {} | {} |",
            run.value_bytes,
            run.batch_size,
            if run.fuel_metering { "on" } else { "off" },
            rate(run.messages_per_sec()),
            rate(run.calls_per_sec),
            rate(run.calls_per_sec_range.0),
            rate(run.calls_per_sec_range.1),
            1e9 / run.calls_per_sec,
            1e9 / run.messages_per_sec(),
            rate(run.calls_per_wall_sec * batch),
            optional(run.fuel_per_call, |fuel| fuel.to_string()),
            optional(run.fuel_per_call, |fuel| format!(
                "{:.0}",
                fuel as f64 / batch
            )),
        );
    }
    let _ = writeln!(page);
}

fn write_footprint(page: &mut String, results: &Results) {
    if results.footprint.is_empty() {
        return;
    }
    let _ = writeln!(page, "## 5. Footprint of an idle host\n");
    let _ = writeln!(
        page,
        "`runnel run` with N pipelines, each with its own copy of an example plugin \
         (uppercase, json-router, misbehave in turn, under distinct file names, so each \
         is compiled and instantiated on its own) and its own empty input topic. VmRSS \
         read from /proc after \"runnel started\" and 5 idle seconds; the peak (VmHWM) \
         includes compiling the plugins.\n"
    );
    let _ = writeln!(page, "| plugins | resident (VmRSS) | peak (VmHWM) |");
    let _ = writeln!(page, "|---|---|---|");
    for footprint in &results.footprint {
        let _ = writeln!(
            page,
            "| {} | {:.1} MiB | {:.1} MiB |",
            footprint.plugins,
            mib(footprint.memory.resident),
            mib(footprint.memory.peak_resident)
        );
    }
    let _ = writeln!(page);
}

/// The chart's data: one line per subject and batch size.
pub fn throughput_csv(results: &Results) -> String {
    let mut csv = String::from("subject,batch_size,median,min,max\n");
    for result in &results.throughput {
        let Some(run) = result.median() else { continue };
        let (low, high) = result.range();
        let subject = match &result.subject {
            Subject::Baseline { gated: true, .. } => "baseline",
            Subject::Baseline { gated: false, .. } => "baseline_ungated",
            Subject::Runnel { .. } if result.subject.is_diagnostic() => "runnel_diagnostic",
            Subject::Runnel { .. } if result.subject.is_exactly_once() => "runnel_exactly_once",
            Subject::Runnel { .. } => "runnel",
            Subject::KafkaStreams(settings) => match settings.guarantee {
                Guarantee::AtLeastOnce => "kafka_streams",
                Guarantee::ExactlyOnce => "kafka_streams_exactly_once",
            },
            // Measured for latency only.
            Subject::RunnelRealtime => continue,
        };
        let batch = result.subject.batch_size().unwrap_or(0);
        let _ = writeln!(
            csv,
            "{subject},{batch},{:.0},{low:.0},{high:.0}",
            run.messages_per_sec
        );
    }
    csv
}

/// `1.23 M`, `456 k`, `789`.
pub fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.0} k", per_second / 1e3)
    } else {
        format!("{per_second:.0}")
    }
}

pub(crate) fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Cores kept busy by other work, e.g. `0.3 cores`.
fn cores(cores: f64) -> String {
    format!("{cores:.1} cores")
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub(crate) fn optional<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "–".into(), show)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_at_a_glance() {
        assert_eq!(rate(4_560_000.0), "4.56 M");
        assert_eq!(rate(123_456.0), "123 k");
        assert_eq!(rate(999.0), "999");
        assert_eq!(micros(950), "950 µs");
        assert_eq!(micros(12_345), "12.3 ms");
    }
}
