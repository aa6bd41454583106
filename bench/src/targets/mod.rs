//! The targets, each checked against the results: PASS or MISS,
//! with the measured margin. The benchmark reports them; tests never time
//! anything.

mod languages;
mod peer;
mod per_message;

use crate::kafka_streams::Guarantee;
use crate::processor::RUNNEL_LINGER_MS;
use crate::report::{Results, mib, rate};
use crate::wasm_stage::StageRun;
use per_message::{in_process_target, latency_target};

pub use per_message::diagnostic_rows;

/// The targets.
const MIN_RATIO_TO_BASELINE: f64 = 0.9;
const MIN_STAGE_MESSAGES_PER_SEC: f64 = 5e6;
const MIN_STAGE_CALLS_PER_SEC: f64 = 1e6;
const MAX_IDLE_RSS_MIB: f64 = 100.0;
/// Batch sizes from which the end-to-end and WASM-stage throughput targets
/// apply.
const TARGET_MIN_BATCH: usize = 100;
/// Plugins in the idle host the footprint target is about.
const TARGET_IDLE_PLUGINS: usize = 10;
/// Value size of the WASM-stage targets.
const TARGET_VALUE_BYTES: usize = 100;

/// One row of the targets table.
pub struct TargetRow {
    pub target: String,
    pub goal: String,
    pub measured: String,
    pub result: Verdict,
    pub margin: String,
}

impl TargetRow {
    /// A row whose section has not been run, until something measures it.
    fn unmeasured(target: String, goal: String) -> Self {
        Self {
            target,
            goal,
            measured: "–".into(),
            result: Verdict::NotMeasured,
            margin: "–".into(),
        }
    }

    /// Judges a ratio that must reach `floor`, by the worst of those measured.
    fn judge_ratio_at_least(&mut self, worst: f64, floor: f64) {
        self.result = Verdict::of(worst >= floor);
        self.margin = format!("{:+.2}× at the worst", worst - floor);
    }

    /// Judges a ratio that must stay under `ceiling`, by the worst measured.
    fn judge_ratio_at_most(&mut self, worst: f64, ceiling: f64) {
        self.result = Verdict::of(worst <= ceiling);
        self.margin = format!("{:+.2}× at the worst", ceiling - worst);
    }
}

/// Ratios by batch size, as a row's measured column shows them.
fn ratios_by_batch(ratios: &[(usize, f64)]) -> String {
    ratios
        .iter()
        .map(|(batch, ratio)| format!("{ratio:.2}× (batch {batch})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a target's row concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its section was not run.
    NotMeasured,
    /// Measured, but the measurements cannot decide it (see the row).
    NotJudged,
    Pass,
    Miss,
}

impl Verdict {
    fn of(met: bool) -> Self {
        if met { Self::Pass } else { Self::Miss }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::NotMeasured => "not measured",
            Self::NotJudged => "not judged",
            Self::Pass => "PASS",
            Self::Miss => "MISS",
        }
    }
}

/// Every target, in the order of the issues that set them.
pub fn rows(results: &Results) -> [TargetRow; 18] {
    [
        end_to_end_target(results),
        peer::throughput_target(results, Guarantee::AtLeastOnce),
        peer::cpu_target(results),
        peer::throughput_target(results, Guarantee::ExactlyOnce),
        peer::exactly_once_cost_target(results),
        stage_messages_target(results),
        stage_calls_target(results),
        in_process_target(results, RUNNEL_LINGER_MS),
        in_process_target(results, 0),
        latency_target(results, RUNNEL_LINGER_MS),
        latency_target(results, 0),
        peer::realtime_p99_target(results),
        peer::realtime_against_streams_target(results),
        footprint_target(results),
        languages::compiled_languages_target(results),
        languages::interpreted_languages_target(results),
        languages::instantiate_target(results),
        tenants_target(results),
    ]
}

/// What a misbehaving neighbour may cost a healthy pipeline on its host:
/// the bound `README.md` states for tenants.
const MIN_RATIO_BESIDE_NEIGHBOURS: f64 = 0.5;

fn tenants_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        "Healthy pipeline beside a looping or memory-hungry one, against alone".into(),
        format!("≥ {MIN_RATIO_BESIDE_NEIGHBOURS:.2}×"),
    );
    let Some(alone) = results.tenants_alone_rate() else {
        return row;
    };
    let beside = results.tenants.iter().filter(|run| !run.is_alone());
    let ratios: Vec<(String, f64)> = beside
        .map(|run| (run.neighbours.label(), run.median() / alone))
        .collect();
    let Some(worst) = ratios.iter().map(|(_, ratio)| *ratio).reduce(f64::min) else {
        return row;
    };
    row.measured = ratios
        .iter()
        .map(|(label, ratio)| format!("{label} {ratio:.2}×"))
        .collect::<Vec<_>>()
        .join(", ");
    row.judge_ratio_at_least(worst, MIN_RATIO_BESIDE_NEIGHBOURS);
    row
}

fn end_to_end_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!("End to end, batch ≥ {TARGET_MIN_BATCH}, against the baseline"),
        format!("≥ {MIN_RATIO_TO_BASELINE:.2}×"),
    );
    let Some(baseline) = results.baseline_rate() else {
        return row;
    };
    let ratios: Vec<(usize, f64)> = results
        .throughput
        .iter()
        .filter_map(|result| {
            // The baseline is at least once.
            if result.subject.is_diagnostic() || result.subject.is_exactly_once() {
                return None;
            }
            let batch = result.subject.batch_size()?;
            let run = result.median()?;
            (batch >= TARGET_MIN_BATCH).then_some((batch, run.messages_per_sec / baseline))
        })
        .collect();
    let Some(worst) = ratios.iter().map(|(_, ratio)| *ratio).reduce(f64::min) else {
        return row;
    };
    row.measured = ratios_by_batch(&ratios);
    row.judge_ratio_at_least(worst, MIN_RATIO_TO_BASELINE);
    row
}

fn stage_messages_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!("WASM stage, {TARGET_VALUE_BYTES} B values, batch ≥ {TARGET_MIN_BATCH}, one core"),
        format!("≥ {} msg/s", rate(MIN_STAGE_MESSAGES_PER_SEC)),
    );
    let runs: Vec<&StageRun> = results
        .stage
        .iter()
        .filter(|run| {
            !run.fuel_metering
                && run.value_bytes == TARGET_VALUE_BYTES
                && run.batch_size >= TARGET_MIN_BATCH
        })
        .collect();
    let Some(worst) = runs
        .iter()
        .map(|run| run.messages_per_sec())
        .reduce(f64::min)
    else {
        return row;
    };
    row.measured = runs
        .iter()
        .map(|run| {
            format!(
                "{} (batch {})",
                rate(run.messages_per_sec()),
                run.batch_size
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    row.result = Verdict::of(worst >= MIN_STAGE_MESSAGES_PER_SEC);
    row.margin = percent_margin(worst, MIN_STAGE_MESSAGES_PER_SEC);
    row
}

fn stage_calls_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!("WASM stage, batch 1 ({TARGET_VALUE_BYTES} B), one core"),
        format!("≥ {} calls/s", rate(MIN_STAGE_CALLS_PER_SEC)),
    );
    if let Some(run) = results.stage_run(TARGET_VALUE_BYTES, 1) {
        row.measured = format!("{} calls/s", rate(run.calls_per_sec));
        row.result = Verdict::of(run.calls_per_sec >= MIN_STAGE_CALLS_PER_SEC);
        row.margin = percent_margin(run.calls_per_sec, MIN_STAGE_CALLS_PER_SEC);
    }
    row
}

fn footprint_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!("Idle host with {TARGET_IDLE_PLUGINS} plugins, resident memory"),
        format!("≤ {MAX_IDLE_RSS_MIB:.0} MiB"),
    );
    let idle = results
        .footprint
        .iter()
        .find(|footprint| footprint.plugins == TARGET_IDLE_PLUGINS);
    if let Some(idle) = idle {
        let resident = mib(idle.memory.resident);
        row.measured = format!("{resident:.1} MiB");
        row.result = Verdict::of(resident <= MAX_IDLE_RSS_MIB);
        row.margin = format!("{:+.1} MiB", MAX_IDLE_RSS_MIB - resident);
    }
    row
}

fn percent_margin(measured: f64, goal: f64) -> String {
    format!("{:+.0}%", (measured / goal - 1.0) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_are_signed_percentages_of_the_goal() {
        assert_eq!(percent_margin(0.45e6, 1e6), "-55%");
        assert_eq!(percent_margin(5.5e6, 5e6), "+10%");
    }
}
