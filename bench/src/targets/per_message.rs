//! The per-message latency targets: Runnel's p99 against the baseline's, inside the process
//! (judged from histogram buckets) and end to end (judged against how far the baseline moves
//! between two runs of its own).

use super::{TargetRow, Verdict};
use crate::histogram::BucketRange;
use crate::latency::LatencyRun;
use crate::processor::Diagnostic;
use crate::report::Results;

/// The target: what per-message mode may add to the p99.
const MAX_P99_OVERHEAD_US: i64 = 100;

/// Per-message Runnel's latency runs at `linger_ms`, one per rate: at its
/// defaults, or with the `diagnostic` setting changed.
fn per_message_runs(
    results: &Results,
    linger_ms: u32,
    diagnostic: Option<Diagnostic>,
) -> impl Iterator<Item = &LatencyRun> {
    results
        .latency
        .iter()
        .filter(|result| result.subject.batch_size() == Some(1))
        .filter(move |result| result.subject.linger_ms() == Some(linger_ms))
        .filter(move |result| result.subject.diagnostic() == diagnostic)
        .flat_map(|result| &result.runs)
}

/// What per-message mode adds inside the process: the p99 of the time from
/// receipt to the output's hand-over to the producer, Runnel's against the
/// baseline's (both of its runs pooled), at each rate.
pub(super) fn in_process_target(results: &Results, linger_ms: u32) -> TargetRow {
    in_process_row(results, linger_ms, None)
}

/// The per-message latency judgement again for each setting the latency
/// runs changed from the defaults: what the setting would buy, counted for
/// no target.
pub fn diagnostic_rows(results: &Results) -> Vec<TargetRow> {
    let mut diagnostics: Vec<(u32, Diagnostic)> = results
        .latency
        .iter()
        .filter(|result| result.subject.batch_size() == Some(1))
        .filter_map(|result| Some((result.subject.linger_ms()?, result.subject.diagnostic()?)))
        .collect();
    diagnostics.dedup();
    diagnostics
        .into_iter()
        .map(|(linger_ms, diagnostic)| in_process_row(results, linger_ms, Some(diagnostic)))
        .collect()
}

fn in_process_row(results: &Results, linger_ms: u32, diagnostic: Option<Diagnostic>) -> TargetRow {
    let setting = diagnostic.map_or(String::new(), |diagnostic| {
        format!(", Runnel with {} (not a default)", diagnostic.label())
    });
    let row = TargetRow::unmeasured(
        format!(
            "Per-message p99 in the process (receipt → output handed to the producer) over \
             the baseline's, both at linger.ms={linger_ms}{setting}"
        ),
        format!("≤ +{MAX_P99_OVERHEAD_US} µs"),
    );
    let comparisons: Vec<InProcessComparison> = per_message_runs(results, linger_ms, diagnostic)
        .filter_map(|run| {
            let mut baseline = results
                .latency_baseline(linger_ms, run.rate)?
                .in_host
                .clone();
            if let Some(again) = results.latency_calibration(linger_ms, run.rate) {
                baseline.add(&again.in_host);
            }
            Some(InProcessComparison {
                rate: run.rate,
                runnel: run.in_host.percentile(0.99)?,
                baseline: baseline.percentile(0.99)?,
            })
        })
        .collect();
    judge_in_process(row, &comparisons)
}

/// The p99 buckets of Runnel and the baseline at one rate.
struct InProcessComparison {
    rate: u32,
    runnel: BucketRange,
    baseline: BucketRange,
}

impl InProcessComparison {
    /// The least and the most Runnel's p99 can exceed the baseline's by,
    /// given the buckets both fall in; `None` for no upper limit.
    fn overhead_us(&self) -> (i64, Option<i64>) {
        let micros = |duration: std::time::Duration| duration.as_micros() as i64;
        let least = self
            .baseline
            .upper
            .map_or(i64::MIN, |upper| micros(self.runnel.lower) - micros(upper));
        let most = self
            .runnel
            .upper
            .map(|upper| micros(upper) - micros(self.baseline.lower));
        (least, most)
    }
}

/// Met if even the most the buckets allow is within the goal at every
/// rate, missed if even the least exceeds it at one; the buckets cannot
/// tell in between.
fn judge_in_process(mut row: TargetRow, comparisons: &[InProcessComparison]) -> TargetRow {
    if comparisons.is_empty() {
        return row;
    }
    let mut measured = Vec::new();
    let mut worst_most = Some(i64::MIN);
    let mut worst_least = i64::MIN;
    for comparison in comparisons {
        let (least, most) = comparison.overhead_us();
        let overhead = match most {
            Some(most) => format!("{least:+}…{most:+} µs"),
            None => format!("over {least:+} µs"),
        };
        measured.push(format!(
            "{} against {} at {}/s: {overhead}",
            comparison.runnel.label(),
            comparison.baseline.label(),
            comparison.rate
        ));
        worst_least = worst_least.max(least);
        worst_most = worst_most.zip(most).map(|(a, b)| a.max(b));
    }
    row.measured = measured.join("; ");
    row.result = match worst_most {
        _ if worst_least > MAX_P99_OVERHEAD_US => Verdict::Miss,
        Some(most) if most <= MAX_P99_OVERHEAD_US => Verdict::Pass,
        _ => Verdict::NotJudged,
    };
    row.margin = match (row.result, worst_most) {
        (Verdict::Pass, Some(most)) => format!("at least {:+} µs", MAX_P99_OVERHEAD_US - most),
        (Verdict::Miss, _) => format!("{:+} µs or worse", MAX_P99_OVERHEAD_US - worst_least),
        _ => "the buckets straddle the goal".into(),
    };
    row
}

pub(super) fn latency_target(results: &Results, linger_ms: u32) -> TargetRow {
    let row = TargetRow::unmeasured(
        format!("Per-message p99 end to end over the baseline's, both at linger.ms={linger_ms}"),
        format!("≤ +{MAX_P99_OVERHEAD_US} µs"),
    );
    let comparisons: Vec<LatencyComparison> = per_message_runs(results, linger_ms, None)
        .filter_map(|run| {
            Some(LatencyComparison {
                runnel: run,
                baseline: results.latency_baseline(linger_ms, run.rate)?,
                baseline_again: results.latency_calibration(linger_ms, run.rate),
            })
        })
        .collect();
    judge_latency(row, &comparisons)
}

/// Runnel and the baseline at one rate, with the baseline's second run
/// when there is one.
struct LatencyComparison<'a> {
    runnel: &'a LatencyRun,
    baseline: &'a LatencyRun,
    baseline_again: Option<&'a LatencyRun>,
}

impl LatencyComparison<'_> {
    fn overhead_us(&self) -> i64 {
        p99_difference_us(self.runnel, self.baseline)
    }

    /// How far the baseline's p99 moved between its two runs: differences
    /// no larger than this are the machine's, not the subjects'.
    fn resolution_us(&self) -> Option<i64> {
        self.baseline_again
            .map(|again| p99_difference_us(again, self.baseline).abs())
    }
}

fn p99_difference_us(run: &LatencyRun, reference: &LatencyRun) -> i64 {
    run.p99_us as i64 - reference.p99_us as i64
}

/// Judges Runnel's per-message p99 against the baseline's at each rate. At
/// a rate whose baseline ran twice, the target is met only if it is met
/// even when the overhead is as large as measured plus the resolution, and
/// missed only if it is missed even when the overhead is that much smaller;
/// in between, the machine cannot tell.
fn judge_latency(mut row: TargetRow, comparisons: &[LatencyComparison]) -> TargetRow {
    let mut behind = Vec::new();
    let mut verdicts = Vec::new();
    let mut measured = Vec::new();
    let mut margins = Vec::new();
    for comparison in comparisons {
        // A side that fell behind the rate measured its backlog, not its latency: the
        // difference of the two p99s would mean nothing, in either direction.
        let sides = [
            ("baseline", Some(comparison.baseline)),
            ("Runnel", Some(comparison.runnel)),
            ("the baseline's second run", comparison.baseline_again),
        ];
        for (side, run) in sides {
            if let Some(run) = run.filter(|run| !run.kept_up()) {
                behind.push(format!(
                    "{side} fell behind at {}/s (p50 {} µs, {}/{} received)",
                    run.rate, run.p50_us, run.received, run.sent
                ));
            }
        }
        let rate = comparison.runnel.rate;
        let overhead = comparison.overhead_us();
        let resolution = comparison.resolution_us();
        measured.push(match resolution {
            Some(resolution) => format!("{overhead:+} ± {resolution} µs at {rate}/s"),
            None => format!("{overhead:+} µs at {rate}/s"),
        });
        let resolution = resolution.unwrap_or(0);
        margins.push(MAX_P99_OVERHEAD_US - overhead);
        verdicts.push(if overhead + resolution <= MAX_P99_OVERHEAD_US {
            Verdict::Pass
        } else if overhead - resolution > MAX_P99_OVERHEAD_US {
            Verdict::Miss
        } else {
            Verdict::NotJudged
        });
    }
    if comparisons.is_empty() {
        return row;
    }
    row.measured = measured.join(", ");
    if !behind.is_empty() {
        row.measured = format!("{}; {}", row.measured, behind.join("; "));
        row.result = Verdict::NotJudged;
        return row;
    }
    row.result = if verdicts.contains(&Verdict::Miss) {
        Verdict::Miss
    } else if verdicts.contains(&Verdict::NotJudged) {
        Verdict::NotJudged
    } else {
        Verdict::Pass
    };
    let worst = margins.iter().copied().min().unwrap_or(0);
    row.margin = format!("{worst:+} µs at the worst");
    if row.result == Verdict::NotJudged {
        row.margin = format!(
            "{}; the baseline against itself differs by more than the goal allows",
            row.margin
        );
    }
    row
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram::Buckets;
    use crate::processor::{RUNNEL_LINGER_MS, Subject};
    use crate::report::LatencyResult;

    fn latency(rate: u32, p50_us: u64, p99_us: u64, received: usize) -> LatencyRun {
        LatencyRun {
            rate,
            sent: 1000,
            received,
            p50_us,
            p90_us: p99_us,
            p99_us,
            max_us: p99_us,
            p99_by_round_us: vec![p99_us],
            other_load_cores: None,
            machine_busy_cores: None,
            in_host: Buckets::default(),
        }
    }

    fn latency_row() -> TargetRow {
        TargetRow::unmeasured("latency".into(), "≤ +100 µs".into())
    }

    fn compared<'a>(
        runnel: &'a LatencyRun,
        baseline: &'a LatencyRun,
        baseline_again: Option<&'a LatencyRun>,
    ) -> LatencyComparison<'a> {
        LatencyComparison {
            runnel,
            baseline,
            baseline_again,
        }
    }

    #[test]
    fn the_worst_rate_decides_the_latency_target() {
        let (quiet, busy) = (
            latency(500, 700, 2000, 1000),
            latency(2000, 900, 9000, 1000),
        );
        let runnel_quiet = latency(500, 690, 2050, 1000);
        let runnel_busy = latency(2000, 950, 9150, 1000);
        let row = judge_latency(
            latency_row(),
            &[
                compared(&runnel_quiet, &quiet, None),
                compared(&runnel_busy, &busy, None),
            ],
        );
        assert_eq!(row.result, Verdict::Miss);
        assert_eq!(row.measured, "+50 µs at 500/s, +150 µs at 2000/s");
        assert_eq!(row.margin, "-50 µs at the worst");

        let row = judge_latency(latency_row(), &[compared(&runnel_quiet, &quiet, None)]);
        assert_eq!(row.result, Verdict::Pass);
    }

    #[test]
    fn a_difference_within_the_baselines_own_spread_is_not_judged() {
        let baseline = latency(500, 700, 2000, 1000);
        // The baseline's second run lands 300 µs from its first.
        let again = latency(500, 700, 2300, 1000);

        let close = latency(500, 700, 2050, 1000);
        let row = judge_latency(latency_row(), &[compared(&close, &baseline, Some(&again))]);
        assert_eq!(row.result, Verdict::NotJudged);
        assert_eq!(row.measured, "+50 ± 300 µs at 500/s");
        assert!(row.margin.contains("differs by more"), "{}", row.margin);

        let far_below = latency(500, 700, 1600, 1000);
        let row = judge_latency(
            latency_row(),
            &[compared(&far_below, &baseline, Some(&again))],
        );
        assert_eq!(row.result, Verdict::Pass, "-400 + 300 µs still meets +100");

        let far_above = latency(500, 700, 2500, 1000);
        let row = judge_latency(
            latency_row(),
            &[compared(&far_above, &baseline, Some(&again))],
        );
        assert_eq!(row.result, Verdict::Miss, "+500 - 300 µs still misses +100");

        // A tight baseline decides a small overhead either way.
        let tight = latency(500, 700, 2020, 1000);
        let row = judge_latency(latency_row(), &[compared(&close, &baseline, Some(&tight))]);
        assert_eq!(row.result, Verdict::Pass);
    }

    #[test]
    fn a_side_that_fell_behind_leaves_the_latency_target_unjudged() {
        // A cold broker: the baseline's outputs queued for seconds, which made Runnel look
        // seconds faster.
        let backlogged = latency(2000, 2_995_000, 3_398_000, 1000);
        let runnel = latency(2000, 8_000, 160_000, 1000);
        let row = judge_latency(latency_row(), &[compared(&runnel, &backlogged, None)]);
        assert_eq!(row.result, Verdict::NotJudged);
        assert!(
            row.measured.contains("baseline fell behind at 2000/s"),
            "{}",
            row.measured
        );

        let lost = latency(2000, 900, 9000, 990);
        let baseline = latency(2000, 900, 9000, 1000);
        let row = judge_latency(latency_row(), &[compared(&lost, &baseline, None)]);
        assert_eq!(row.result, Verdict::NotJudged);
        assert!(
            row.measured.contains("Runnel fell behind"),
            "{}",
            row.measured
        );

        let row = judge_latency(
            latency_row(),
            &[compared(&baseline, &baseline, Some(&lost))],
        );
        assert_eq!(row.result, Verdict::NotJudged);
        assert!(
            row.measured.contains("second run fell behind"),
            "{}",
            row.measured
        );
    }

    fn bucket(lower_us: u64, upper_us: Option<u64>) -> BucketRange {
        BucketRange {
            lower: Duration::from_micros(lower_us),
            upper: upper_us.map(Duration::from_micros),
        }
    }

    fn in_process(rate: u32, runnel: BucketRange, baseline: BucketRange) -> InProcessComparison {
        InProcessComparison {
            rate,
            runnel,
            baseline,
        }
    }

    #[test]
    fn the_in_process_target_needs_the_whole_bucket_range_on_one_side() {
        let within = in_process(500, bucket(100, Some(150)), bucket(75, Some(100)));
        let row = judge_in_process(latency_row(), &[within]);
        assert_eq!(row.result, Verdict::Pass, "{}", row.measured);
        assert_eq!(row.margin, "at least +25 µs");
        assert!(row.measured.contains("+0…+75 µs"), "{}", row.measured);

        let straddling = in_process(500, bucket(200, Some(300)), bucket(100, Some(150)));
        let row = judge_in_process(latency_row(), &[straddling]);
        assert_eq!(row.result, Verdict::NotJudged, "{}", row.measured);

        let beyond = in_process(500, bucket(300, Some(400)), bucket(100, Some(150)));
        let row = judge_in_process(latency_row(), &[beyond]);
        assert_eq!(row.result, Verdict::Miss, "{}", row.measured);
        assert_eq!(row.margin, "-50 µs or worse");
    }

    #[test]
    fn the_worst_rate_decides_the_in_process_target() {
        let quiet = in_process(500, bucket(20, Some(30)), bucket(10, Some(20)));
        let off_the_scale = in_process(2000, bucket(30_000_000, None), bucket(10, Some(20)));
        let row = judge_in_process(latency_row(), &[quiet, off_the_scale]);
        assert_eq!(row.result, Verdict::Miss, "{}", row.measured);
        let unbounded = in_process(2000, bucket(50, None), bucket(10, Some(20)));
        let quiet = in_process(500, bucket(20, Some(30)), bucket(10, Some(20)));
        let row = judge_in_process(latency_row(), &[quiet, unbounded]);
        assert_eq!(row.result, Verdict::NotJudged, "{}", row.measured);
        assert!(judge_in_process(latency_row(), &[]).result == Verdict::NotMeasured);
    }

    /// 100 observations, all between `lower_us` and `upper_us`.
    fn all_between(lower_us: u64, upper_us: u64) -> Buckets {
        let metric = crate::histogram::PROCESSING_METRIC;
        let seconds = |us: u64| us as f64 / 1e6;
        let exposition = format!(
            "{metric}_bucket{{le=\"{}\"}} 0\n{metric}_bucket{{le=\"{}\"}} 100\n\
             {metric}_bucket{{le=\"+Inf\"}} 100\n",
            seconds(lower_us),
            seconds(upper_us)
        );
        Buckets::parse(&exposition, metric).unwrap()
    }

    fn latency_result(subject: Subject, calibration: bool, in_host: Buckets) -> LatencyResult {
        let mut run = latency(2000, 5000, 9000, 1000);
        run.in_host = in_host;
        LatencyResult {
            subject,
            calibration,
            runs: vec![run],
        }
    }

    #[test]
    fn a_diagnostic_run_is_judged_apart_and_counts_for_no_target() {
        let per_message = |diagnostic| Subject::Runnel {
            batch_size: 1,
            batch_timeout: Duration::from_millis(100),
            linger_ms: RUNNEL_LINGER_MS,
            exactly_once: false,
            diagnostic,
        };
        let baseline = Subject::Baseline {
            gated: true,
            linger_ms: RUNNEL_LINGER_MS,
        };
        let results = Results {
            latency: vec![
                latency_result(baseline.clone(), false, all_between(50, 75)),
                latency_result(per_message(None), false, all_between(200, 300)),
                latency_result(
                    per_message(Some(Diagnostic::WorkerThreads(1))),
                    false,
                    all_between(100, 150),
                ),
                latency_result(baseline, true, all_between(50, 75)),
            ],
            ..Results::empty()
        };
        let target = in_process_target(&results, RUNNEL_LINGER_MS);
        assert_eq!(target.result, Verdict::Miss, "{}", target.measured);
        assert!(
            target.measured.contains("200–300 µs"),
            "{}",
            target.measured
        );
        let diagnostics = diagnostic_rows(&results);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(
            diagnostics[0].result,
            Verdict::Pass,
            "{}",
            diagnostics[0].measured
        );
        assert!(diagnostics[0].target.contains("worker_threads 1"));
    }
}
