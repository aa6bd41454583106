//! The targets against Kafka Streams, measured in the same run on the same
//! broker: throughput and CPU per message at least once, throughput exactly
//! once (against the peer and against Runnel's own at-least-once figure),
//! and per-message latency of the `realtime` profile in every round at the
//! issue's rate.

use super::{TARGET_MIN_BATCH, TargetRow, Verdict, ratios_by_batch};
use crate::kafka_streams::Guarantee;
use crate::latency::LatencyRun;
use crate::processor::Subject;
use crate::report::{Results, micros, rate};

/// The targets against the peer.
const MIN_RATIO_AT_LEAST_ONCE: f64 = 1.2;
const MAX_CPU_RATIO: f64 = 0.7;
const MIN_RATIO_EXACTLY_ONCE: f64 = 1.0;
const MIN_EXACTLY_ONCE_TO_AT_LEAST_ONCE: f64 = 0.8;
const MAX_REALTIME_P99_US: u64 = 10_000;
/// The rate the realtime targets are set at; the latency runs at other
/// rates are shown in their table, not judged here.
const REALTIME_TARGET_RATE: u32 = 1000;

/// Runnel's median rate over Kafka Streams' at one guarantee, batch ≥ 100.
pub(super) fn throughput_target(results: &Results, guarantee: Guarantee) -> TargetRow {
    let goal = match guarantee {
        Guarantee::AtLeastOnce => MIN_RATIO_AT_LEAST_ONCE,
        Guarantee::ExactlyOnce => MIN_RATIO_EXACTLY_ONCE,
    };
    let mut row = TargetRow::unmeasured(
        format!(
            "{}, batch ≥ {TARGET_MIN_BATCH}: messages/s against Kafka Streams {}",
            capitalised(guarantee.label()),
            guarantee.label()
        ),
        format!("≥ {goal:.1}×"),
    );
    let Some(streams) = results.kafka_streams_run(guarantee) else {
        return row;
    };
    let ratios: Vec<(usize, f64, f64)> = results
        .runnel_runs(guarantee == Guarantee::ExactlyOnce)
        .into_iter()
        .filter(|(batch, _)| *batch >= TARGET_MIN_BATCH)
        .map(|(batch, run)| {
            let ratio = run.messages_per_sec / streams.messages_per_sec;
            (batch, ratio, run.messages_per_sec)
        })
        .collect();
    let Some(worst) = ratios.iter().map(|(_, ratio, _)| *ratio).reduce(f64::min) else {
        return row;
    };
    let measured: Vec<String> = ratios
        .iter()
        .map(|(batch, ratio, runnel)| format!("{ratio:.2}× (batch {batch}, {})", rate(*runnel)))
        .collect();
    row.measured = format!(
        "{} against {}",
        measured.join(", "),
        rate(streams.messages_per_sec)
    );
    row.judge_ratio_at_least(worst, goal);
    row
}

/// Runnel's CPU per message over Kafka Streams', at least once, batch ≥ 100.
pub(super) fn cpu_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!(
            "At least once, batch ≥ {TARGET_MIN_BATCH}: CPU per message against Kafka Streams'"
        ),
        format!("≤ {MAX_CPU_RATIO:.1}×"),
    );
    let Some(streams) = results.kafka_streams_run(Guarantee::AtLeastOnce) else {
        return row;
    };
    let Some(streams_cpu) = streams.subject_cpu_us_per_message else {
        return row;
    };
    let ratios: Vec<(usize, f64, f64)> = results
        .runnel_runs(false)
        .into_iter()
        .filter(|(batch, _)| *batch >= TARGET_MIN_BATCH)
        .filter_map(|(batch, run)| {
            let cpu = run.subject_cpu_us_per_message?;
            Some((batch, cpu / streams_cpu, cpu))
        })
        .collect();
    let Some(worst) = ratios.iter().map(|(_, ratio, _)| *ratio).reduce(f64::max) else {
        return row;
    };
    let measured: Vec<String> = ratios
        .iter()
        .map(|(batch, ratio, cpu)| format!("{ratio:.2}× (batch {batch}, {cpu:.1} µs)"))
        .collect();
    row.measured = format!("{} against {streams_cpu:.1} µs", measured.join(", "));
    row.judge_ratio_at_most(worst, MAX_CPU_RATIO);
    row
}

/// Runnel exactly once over Runnel at least once, at the same batch size.
pub(super) fn exactly_once_cost_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!(
            "Exactly once, batch ≥ {TARGET_MIN_BATCH}: messages/s against Runnel at least once"
        ),
        format!("≥ {MIN_EXACTLY_ONCE_TO_AT_LEAST_ONCE:.1}×"),
    );
    let at_least_once = results.runnel_runs(false);
    let ratios: Vec<(usize, f64)> = results
        .runnel_runs(true)
        .into_iter()
        .filter(|(batch, _)| *batch >= TARGET_MIN_BATCH)
        .filter_map(|(batch, run)| {
            let (_, reference) = at_least_once.iter().find(|(size, _)| *size == batch)?;
            Some((batch, run.messages_per_sec / reference.messages_per_sec))
        })
        .collect();
    let Some(worst) = ratios.iter().map(|(_, ratio)| *ratio).reduce(f64::min) else {
        return row;
    };
    row.measured = ratios_by_batch(&ratios);
    row.judge_ratio_at_least(worst, MIN_EXACTLY_ONCE_TO_AT_LEAST_ONCE);
    row
}

fn realtime_runs(results: &Results) -> Vec<&LatencyRun> {
    at_target_rate(results.latency_runs(|subject| matches!(subject, Subject::RunnelRealtime)))
}

fn tuned_streams_runs(results: &Results) -> Vec<&LatencyRun> {
    at_target_rate(results.latency_runs(
        |subject| matches!(subject, Subject::KafkaStreams(settings) if settings.tuned),
    ))
}

fn at_target_rate(runs: &[LatencyRun]) -> Vec<&LatencyRun> {
    runs.iter()
        .filter(|run| run.rate == REALTIME_TARGET_RATE)
        .collect()
}

/// The `realtime` profile's p99 end to end at the target's rate, in every
/// round.
pub(super) fn realtime_p99_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!(
            "Per-message p99 end to end at {REALTIME_TARGET_RATE}/s, `realtime` profile as \
             shipped, every round"
        ),
        format!("≤ {} ms", MAX_REALTIME_P99_US / 1000),
    );
    let runs = realtime_runs(results);
    if runs.is_empty() {
        return row;
    }
    row.measured = runs
        .iter()
        .map(|run| format!("{} at {}/s", rounds_label(&run.p99_by_round_us), run.rate))
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(behind) = fell_behind(runs.iter().map(|run| ("Runnel", *run))) {
        row.measured = format!("{}; {behind}", row.measured);
        row.result = Verdict::NotJudged;
        return row;
    }
    let worst = runs
        .iter()
        .flat_map(|run| run.p99_by_round_us.iter().copied())
        .max()
        .unwrap_or(0);
    row.result = Verdict::of(worst <= MAX_REALTIME_P99_US);
    row.margin = format!(
        "{:+.1} ms at the worst round",
        (MAX_REALTIME_P99_US as f64 - worst as f64) / 1000.0
    );
    row
}

/// The `realtime` profile's p99 against tuned Kafka Streams' in the same
/// round (they run one after the other), at the target's rate.
pub(super) fn realtime_against_streams_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!(
            "Per-message p99 end to end at {REALTIME_TARGET_RATE}/s, `realtime` profile, \
             against tuned Kafka Streams' in the same round"
        ),
        "below".into(),
    );
    let streams_runs = tuned_streams_runs(results);
    let pairs: Vec<(&LatencyRun, &LatencyRun)> = realtime_runs(results)
        .into_iter()
        .filter_map(|runnel| {
            let streams = streams_runs
                .iter()
                .find(|streams| streams.rate == runnel.rate)?;
            Some((runnel, *streams))
        })
        .collect();
    if pairs.is_empty() {
        return row;
    }
    row.measured = pairs
        .iter()
        .map(|(runnel, streams)| {
            format!(
                "{} against {} at {}/s",
                rounds_label(&runnel.p99_by_round_us),
                rounds_label(&streams.p99_by_round_us),
                runnel.rate
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let sides = pairs
        .iter()
        .flat_map(|(runnel, streams)| [("Runnel", *runnel), ("Kafka Streams", *streams)]);
    if let Some(behind) = fell_behind(sides) {
        row.measured = format!("{}; {behind}", row.measured);
        row.result = Verdict::NotJudged;
        return row;
    }
    // Kafka Streams' p99 less Runnel's, round by round: positive is ahead.
    let worst_lead_us = pairs
        .iter()
        .flat_map(|(runnel, streams)| {
            runnel
                .p99_by_round_us
                .iter()
                .zip(&streams.p99_by_round_us)
                .map(|(&runnel, &streams)| streams as i64 - runnel as i64)
        })
        .min()
        .unwrap_or(0);
    row.result = Verdict::of(worst_lead_us > 0);
    row.margin = format!(
        "{:+.1} ms at the worst round",
        worst_lead_us as f64 / 1000.0
    );
    row
}

/// Says which side fell behind a rate, if one did: its latency then
/// measures a backlog.
fn fell_behind<'a>(sides: impl Iterator<Item = (&'a str, &'a LatencyRun)>) -> Option<String> {
    let behind: Vec<String> = sides
        .filter(|(_, run)| !run.kept_up())
        .map(|(side, run)| {
            format!(
                "{side} fell behind at {}/s (p50 {}, {}/{} received)",
                run.rate,
                micros(run.p50_us),
                run.received,
                run.sent
            )
        })
        .collect();
    (!behind.is_empty()).then(|| behind.join("; "))
}

/// `2.1 / 12.4 / 3.0 ms`: milliseconds, the unit of the goal.
fn rounds_label(p99_by_round_us: &[u64]) -> String {
    let rounds: Vec<String> = p99_by_round_us
        .iter()
        .map(|&p99| format!("{:.1}", p99 as f64 / 1000.0))
        .collect();
    format!("{} ms", rounds.join(" / "))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram::Buckets;
    use crate::kafka_streams::StreamsSettings;
    use crate::report::{LatencyResult, ThroughputResult};
    use crate::throughput::ThroughputRun;

    fn throughput(subject: Subject, messages_per_sec: f64, cpu_us: f64) -> ThroughputResult {
        ThroughputResult {
            subject,
            runs: vec![ThroughputRun {
                messages: 1000,
                warm_up_messages: 0,
                messages_per_sec,
                time_to_first_output: Duration::from_secs(1),
                subject_cpu_us_per_message: Some(cpu_us),
                broker_cpu_us_per_message: None,
                subject_peak_rss: None,
                timed_out: false,
                startup_included: false,
                other_load_cores: None,
            }],
        }
    }

    fn runnel(batch_size: usize, exactly_once: bool) -> Subject {
        Subject::Runnel {
            batch_size,
            batch_timeout: Duration::from_millis(5),
            linger_ms: 5,
            exactly_once,
            diagnostic: None,
        }
    }

    fn streams(guarantee: Guarantee, tuned: bool) -> Subject {
        Subject::KafkaStreams(StreamsSettings { guarantee, tuned })
    }

    #[test]
    fn throughput_targets_take_the_worst_batch_of_at_least_100() {
        let results = Results {
            throughput: vec![
                // Below the target batch: shown, not judged.
                throughput(runnel(10, false), 50_000.0, 20.0),
                throughput(runnel(100, false), 130_000.0, 6.0),
                throughput(runnel(1000, false), 110_000.0, 8.0),
                throughput(runnel(100, true), 90_000.0, 9.0),
                throughput(streams(Guarantee::AtLeastOnce, false), 100_000.0, 10.0),
                throughput(streams(Guarantee::ExactlyOnce, false), 80_000.0, 12.0),
            ],
            ..Results::empty()
        };
        let at_least_once = throughput_target(&results, Guarantee::AtLeastOnce);
        assert_eq!(
            at_least_once.result,
            Verdict::Miss,
            "{}",
            at_least_once.measured
        );
        assert_eq!(at_least_once.margin, "-0.10× at the worst");
        assert!(at_least_once.measured.contains("1.30× (batch 100, 130 k)"));

        let cpu = cpu_target(&results);
        assert_eq!(cpu.result, Verdict::Miss, "{}", cpu.measured);
        assert_eq!(cpu.margin, "-0.10× at the worst");

        let exactly_once = throughput_target(&results, Guarantee::ExactlyOnce);
        assert_eq!(
            exactly_once.result,
            Verdict::Pass,
            "{}",
            exactly_once.measured
        );
        assert_eq!(exactly_once.margin, "+0.12× at the worst");

        let cost = exactly_once_cost_target(&results);
        assert_eq!(cost.result, Verdict::Miss, "{}", cost.measured);
        assert_eq!(cost.measured, "0.69× (batch 100)");
    }

    #[test]
    fn without_the_peer_its_targets_are_not_measured() {
        let results = Results {
            throughput: vec![throughput(runnel(100, false), 130_000.0, 6.0)],
            ..Results::empty()
        };
        let row = throughput_target(&results, Guarantee::AtLeastOnce);
        assert_eq!(row.result, Verdict::NotMeasured);
        assert_eq!(cpu_target(&results).result, Verdict::NotMeasured);
        assert_eq!(
            realtime_against_streams_target(&results).result,
            Verdict::NotMeasured
        );
    }

    fn latency(subject: Subject, p99_by_round_us: Vec<u64>, p50_us: u64) -> LatencyResult {
        LatencyResult {
            subject,
            calibration: false,
            runs: vec![LatencyRun {
                rate: 1000,
                sent: 3000,
                received: 3000,
                p50_us,
                p90_us: 0,
                p99_us: p99_by_round_us.iter().copied().max().unwrap_or(0),
                max_us: 0,
                p99_by_round_us,
                other_load_cores: None,
                machine_busy_cores: None,
                in_host: Buckets::default(),
            }],
        }
    }

    #[test]
    fn realtime_latency_is_judged_round_by_round() {
        let results = Results {
            latency: vec![
                latency(Subject::RunnelRealtime, vec![4_000, 9_500, 5_000], 600),
                latency(
                    streams(Guarantee::AtLeastOnce, true),
                    vec![6_000, 15_000, 5_500],
                    900,
                ),
                // The untuned peer is not what the target compares with.
                latency(
                    streams(Guarantee::AtLeastOnce, false),
                    vec![1_000, 1_000, 1_000],
                    900,
                ),
            ],
            ..Results::empty()
        };
        let bound = realtime_p99_target(&results);
        assert_eq!(bound.result, Verdict::Pass, "{}", bound.measured);
        assert_eq!(bound.measured, "4.0 / 9.5 / 5.0 ms at 1000/s");
        assert_eq!(bound.margin, "+0.5 ms at the worst round");

        let against = realtime_against_streams_target(&results);
        assert_eq!(against.result, Verdict::Pass, "{}", against.measured);
        assert_eq!(against.margin, "+0.5 ms at the worst round");

        // One round behind the peer's decides, though the pooled p99 is lower.
        let results = Results {
            latency: vec![
                latency(Subject::RunnelRealtime, vec![4_000, 9_500, 6_000], 600),
                latency(
                    streams(Guarantee::AtLeastOnce, true),
                    vec![6_000, 15_000, 5_500],
                    900,
                ),
            ],
            ..Results::empty()
        };
        let against = realtime_against_streams_target(&results);
        assert_eq!(against.result, Verdict::Miss, "{}", against.measured);
        assert_eq!(against.margin, "-0.5 ms at the worst round");
    }

    #[test]
    fn the_realtime_targets_are_judged_at_their_rate_alone() {
        let mut realtime = latency(Subject::RunnelRealtime, vec![4_000, 5_000, 6_000], 600);
        let mut overloaded = realtime.runs[0].clone();
        overloaded.rate = 2000;
        overloaded.p99_by_round_us = vec![700_000, 9_000, 9_000];
        realtime.runs.push(overloaded);
        let results = Results {
            latency: vec![realtime],
            ..Results::empty()
        };
        let bound = realtime_p99_target(&results);
        assert_eq!(bound.result, Verdict::Pass, "{}", bound.measured);
        assert_eq!(bound.measured, "4.0 / 5.0 / 6.0 ms at 1000/s");

        // Measured at other rates only: not measured at the target's.
        let mut elsewhere = latency(Subject::RunnelRealtime, vec![4_000], 600);
        elsewhere.runs[0].rate = 500;
        let results = Results {
            latency: vec![elsewhere],
            ..Results::empty()
        };
        assert_eq!(realtime_p99_target(&results).result, Verdict::NotMeasured);
    }

    #[test]
    fn a_side_that_fell_behind_leaves_the_realtime_targets_unjudged() {
        let results = Results {
            latency: vec![
                latency(Subject::RunnelRealtime, vec![4_000], 600),
                latency(
                    streams(Guarantee::AtLeastOnce, true),
                    vec![3_000_000],
                    2_500_000,
                ),
            ],
            ..Results::empty()
        };
        let against = realtime_against_streams_target(&results);
        assert_eq!(against.result, Verdict::NotJudged);
        assert!(
            against
                .measured
                .contains("Kafka Streams fell behind at 1000/s"),
            "{}",
            against.measured
        );
        assert_eq!(realtime_p99_target(&results).result, Verdict::Pass);
    }
}
