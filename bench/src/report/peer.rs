//! Runnel against the Kafka Streams peer, from the throughput runs: the
//! table the peer's targets are read from, one row per guarantee and
//! Runnel batch size.

use std::fmt::Write as _;

use super::{Results, mib, optional, rate};
use crate::kafka_streams::{Guarantee, STREAM_THREADS};
use crate::throughput::ThroughputRun;

pub(super) fn write_against_kafka_streams(page: &mut String, results: &Results) {
    let guarantees = [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce];
    if guarantees
        .iter()
        .all(|&guarantee| results.kafka_streams_run(guarantee).is_none())
    {
        return;
    }
    let _ = writeln!(page, "### Against Kafka Streams\n");
    let _ = writeln!(
        page,
        "The same runs, Runnel beside the Kafka Streams program of `bench/kafka-streams/` \
         (Kafka Streams 4.1.2, a `mapValues` that upper-cases string values, {STREAM_THREADS} \
         stream threads, every other setting at its default, the JVM's too). At least once, \
         Kafka Streams commits every 30 s and its producer lingers 100 ms; exactly once \
         (`exactly_once_v2`), each stream thread runs one transaction over all its \
         partitions and commits it every 100 ms. Runnel exactly once is `exactly_once = \
         true` at batch {} / 5 ms. Ratios are Runnel's over Kafka Streams' at the same \
         guarantee; CPU is the process's, per message, while timed.\n",
        crate::suite::EXACTLY_ONCE_BATCH
    );
    let _ = writeln!(
        page,
        "| guarantee | Runnel | Runnel msg/s | Kafka Streams msg/s | ratio | Runnel CPU µs/msg | \
         Kafka Streams CPU µs/msg | CPU ratio | Runnel peak RSS | Kafka Streams peak RSS |"
    );
    let _ = writeln!(page, "|---|---|---|---|---|---|---|---|---|---|");
    for guarantee in guarantees {
        let Some(streams) = results.kafka_streams_run(guarantee) else {
            continue;
        };
        let exactly_once = guarantee == Guarantee::ExactlyOnce;
        for (batch, runnel) in results.runnel_runs(exactly_once) {
            let _ = writeln!(
                page,
                "| {} | batch {batch} | {} | {} | {:.2}× | {} | {} | {} | {} | {} |",
                guarantee.label(),
                rate(runnel.messages_per_sec),
                rate(streams.messages_per_sec),
                runnel.messages_per_sec / streams.messages_per_sec,
                cpu(runnel),
                cpu(streams),
                optional(cpu_ratio(runnel, streams), |ratio| format!("{ratio:.2}×")),
                peak_rss(runnel),
                peak_rss(streams),
            );
        }
    }
    let _ = writeln!(page);
}

/// Runnel's CPU per message over Kafka Streams'.
pub(crate) fn cpu_ratio(runnel: &ThroughputRun, streams: &ThroughputRun) -> Option<f64> {
    Some(runnel.subject_cpu_us_per_message? / streams.subject_cpu_us_per_message?)
}

fn cpu(run: &ThroughputRun) -> String {
    optional(run.subject_cpu_us_per_message, |us| format!("{us:.1}"))
}

fn peak_rss(run: &ThroughputRun) -> String {
    optional(run.subject_peak_rss, |bytes| {
        format!("{:.0} MiB", mib(bytes))
    })
}
