//! The latency section: which subjects it measures, in what order, and
//! how their rounds are pooled.

use std::time::Duration;

use anyhow::Context;

use super::{Progress, RunOptions};
use crate::kafka_streams::{Guarantee, StreamsSettings};
use crate::latency;
use crate::processor::{Diagnostic, Harness, RUNNEL_LINGER_MS, Subject};
use crate::report::{self, LatencyResult};

/// How long the broker is warmed up before the latency rounds.
const LATENCY_WARM_UP: Duration = Duration::from_secs(20);

/// Batch mode in the latency runs: full batches at high rates, and at most
/// this long a wait at low ones.
const LATENCY_BATCH: (usize, Duration) = (100, Duration::from_millis(5));

/// The baseline and per-message Runnel at Runnel's default linger.ms and
/// at 0 (which shows the pipeline's own overhead without the producer's
/// batching wait), batch mode at the default, per-message Runnel as the
/// `realtime` profile ships it, and Kafka Streams at its defaults and tuned.
pub(super) fn measure(
    harness: &Harness,
    options: &RunOptions,
    clock: &Progress,
) -> anyhow::Result<Vec<LatencyResult>> {
    let subjects = latency_subjects(harness.kafka_streams.is_some());
    warm_up_for_latency(harness, options, clock, &subjects[0].0)?;
    // samples[subject][round][rate]
    let mut samples = vec![Vec::new(); subjects.len()];
    for round in 1..=options.latency_rounds {
        for ((subject, calibration), rounds) in subjects.iter().zip(&mut samples) {
            let label = report::latency_label(subject, *calibration);
            clock.say(&format!(
                "latency round {round}/{}: {label}, linger.ms={}",
                options.latency_rounds,
                report::linger_label(subject)
            ));
            let by_rate =
                latency::measure(harness, subject, &options.rates, options.latency_seconds)
                    .with_context(|| format!("latency of {label}"))?;
            for rate in &by_rate {
                let in_host = if subject.records_processing_time() {
                    format!(", in the process {}", rate.in_host.percentiles_label())
                } else {
                    String::new()
                };
                clock.say(&format!(
                    "  {}/s: p99 {} µs ({}/{} received){in_host}, machine busy {:.2} cores",
                    rate.rate,
                    rate.p99_us(),
                    rate.latencies_us.len(),
                    rate.sent,
                    rate.machine_busy_cores.unwrap_or(f64::NAN)
                ));
            }
            rounds.push(by_rate);
        }
    }
    Ok(pool_latency_rounds(subjects, samples, &options.rates))
}

/// What the latency section measures, in the order of each round; `true`
/// marks the baseline's second run. The peer is there when it is built.
fn latency_subjects(with_kafka_streams: bool) -> Vec<(Subject, bool)> {
    let (batch_size, batch_timeout) = LATENCY_BATCH;
    let runnel = |batch_size, linger_ms, diagnostic| Subject::Runnel {
        batch_size,
        batch_timeout,
        linger_ms,
        exactly_once: false,
        diagnostic,
    };
    let per_message = |linger_ms, diagnostic| runnel(1, linger_ms, diagnostic);
    // Per-message mode on one runtime thread: with two, each worker woken
    // for a message first wakes the other, which finds nothing to do.
    let one_thread = Some(Diagnostic::WorkerThreads(1));
    let baseline = |linger_ms| Subject::Baseline {
        gated: true,
        linger_ms,
    };
    // The baseline's second run (the `true`) brackets per-message Runnel
    // with the first, so that drift over the round moves both comparisons.
    let mut subjects = vec![
        (baseline(RUNNEL_LINGER_MS), false),
        (per_message(RUNNEL_LINGER_MS, None), false),
        (per_message(RUNNEL_LINGER_MS, one_thread), false),
        (baseline(RUNNEL_LINGER_MS), true),
        (runnel(batch_size, RUNNEL_LINGER_MS, None), false),
        (baseline(0), false),
        (per_message(0, None), false),
        (per_message(0, one_thread), false),
        (baseline(0), true),
        // Beside the tuned peer it is judged against.
        (Subject::RunnelRealtime, false),
    ];
    if with_kafka_streams {
        let streams = |tuned| {
            Subject::KafkaStreams(StreamsSettings {
                guarantee: Guarantee::AtLeastOnce,
                tuned,
            })
        };
        subjects.push((streams(true), false));
        subjects.push((streams(false), false));
    }
    subjects
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
    subjects: Vec<(Subject, bool)>,
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
