//! The latency section of the results page: end to end, then inside the
//! process.

use std::fmt::Write as _;

use super::{Results, cores, linger_label, micros, optional};
use crate::processor::Subject;

pub(super) fn write_latency(page: &mut String, results: &Results) {
    if results.latency.is_empty() {
        return;
    }
    let _ = writeln!(page, "## 4. End-to-end latency\n");
    let _ = writeln!(
        page,
        "A producer (linger.ms=0) sends {} B messages at a fixed rate for {} s per \
         rate, each stamped with its send time; a consumer on the output topic takes \
         the difference on receipt (one process, one clock). The baseline first runs untimed \
         at the highest rate to warm the broker up, and each subject's warm-up until outputs \
         flow is dropped. Every subject runs once per round, in turn, for {} rounds, \
         and its rounds are pooled: a stall of the shared machine (tens of ms, now and \
         then) lands on every subject alike instead of setting one subject's p99. \
         The p99 of each round alone is shown beside. The baseline runs twice in every \
         round, before and after per-message Runnel: how far its second run's p99 lands \
         from its first is the smallest difference of p99s this machine can resolve, and \
         a latency target counts as met or missed only by more than that. The subject's \
         own producer runs \
         at the linger.ms shown; Runnel's default is 5, the `realtime` profile's row \
         leaves it to the profile, and Kafka Streams' default is 100. Kafka Streams runs \
         at least once with {} stream threads, at its defaults and tuned for latency, and \
         first runs {} s at the highest rate, untimed, for its JVM to compile its hot \
         paths; it \
         has no histogram of its own time per message, so it is absent from the table \
         inside the process. Machine busy is the cores the \
         whole machine kept busy (subject, broker and harness included) and other load \
         the part of it no measured process used, the most of any round: as busy nears \
         the core count, work waits for a CPU and the tail shows the machine's queueing \
         more than the subject. A rate at which either side fell behind (a median over \
         100 ms, or outputs missing) leaves the latency target there unjudged.\n",
        crate::kafka::VALUE_BYTES,
        results.method.latency_seconds,
        results.method.latency_rounds,
        crate::kafka_streams::STREAM_THREADS,
        crate::latency::JVM_WARM_UP.as_secs()
    );
    let _ = writeln!(
        page,
        "| subject | linger.ms | rate/s | p50 | p90 | p99 | p99 by round | max | p99 − baseline p99 | received | machine busy | other load |"
    );
    let _ = writeln!(page, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for result in &results.latency {
        let linger_ms = result.subject.linger_ms();
        for run in &result.runs {
            let compared = result.calibration || matches!(result.subject, Subject::Runnel { .. });
            let baseline =
                linger_ms.and_then(|linger_ms| results.latency_baseline(linger_ms, run.rate));
            let overhead = match baseline {
                Some(baseline) if compared => {
                    format!("{:+} µs", run.p99_us as i64 - baseline.p99_us as i64)
                }
                _ => "–".into(),
            };
            let _ = writeln!(
                page,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {overhead} | {}/{} | {} | {} |",
                result.label(),
                linger_label(&result.subject),
                run.rate,
                micros(run.p50_us),
                micros(run.p90_us),
                micros(run.p99_us),
                run.p99_by_round_us
                    .iter()
                    .map(|&p99| micros(p99))
                    .collect::<Vec<_>>()
                    .join(" / "),
                micros(run.max_us),
                run.received,
                run.sent,
                optional(run.machine_busy_cores, cores),
                optional(run.other_load_cores, cores),
            );
        }
    }
    let _ = writeln!(page);
    write_in_process(page, results);
}

/// The same runs seen from inside each process.
fn write_in_process(page: &mut String, results: &Results) {
    let _ = writeln!(
        page,
        "### Time inside the process\n\n\
         The same runs, measured inside each process: from the moment the \
         consumer hands a message over to the moment its output is handed to the \
         producer. Runnel records it in `runnel_message_processing_seconds` on its \
         `/metrics`; the baseline records the same series with the same code and \
         serves it too, and the harness reads both before and after each rate. This \
         leaves out the broker, the network and the producer's linger, which \
         both sides pay alike and which make the end-to-end tail too coarse for \
         microseconds, and keeps what Runnel adds: the hand-over to the \
         partition's worker, encoding, the plugin call and the bookkeeping. A \
         histogram places a percentile within a bucket, so each is given as its \
         bucket's bounds; the per-message target is met only if Runnel's p99 \
         is within 100 µs of the baseline's (its two runs pooled) wherever in \
         their buckets both lie.\n"
    );
    let _ = writeln!(
        page,
        "| subject | linger.ms | rate/s | messages | p50 | p90 | p99 | ≤ 100 µs |"
    );
    let _ = writeln!(page, "|---|---|---|---|---|---|---|---|");
    let recorded = results
        .latency
        .iter()
        .filter(|result| result.subject.records_processing_time());
    for result in recorded {
        for run in &result.runs {
            let in_host = &run.in_host;
            let bucket = |fraction| {
                in_host
                    .percentile(fraction)
                    .map_or("–".into(), |range| range.label())
            };
            let within = in_host
                .share_within(std::time::Duration::from_micros(100))
                .map_or("–".into(), |share| format!("{:.1}%", share * 100.0));
            let _ = writeln!(
                page,
                "| {} | {} | {} | {} | {} | {} | {} | {within} |",
                result.label(),
                linger_label(&result.subject),
                run.rate,
                in_host.total(),
                bucket(0.5),
                bucket(0.9),
                bucket(0.99),
            );
        }
    }
    let _ = writeln!(page);
}
