//! The tenants table: a healthy pipeline's throughput alone and beside
//! pipelines whose plugins misbehave on the same host.

use std::fmt::Write as _;

use super::{Results, rate};

pub(super) fn write_tenants(page: &mut String, results: &Results) {
    let Some(alone) = results.tenants_alone_rate() else {
        return;
    };
    let _ = writeln!(
        page,
        "## 6. Tenants: a healthy pipeline beside misbehaving ones\n"
    );
    let _ = writeln!(
        page,
        "The throughput section's Runnel subject (uppercase, batch 100 / 5 ms, at least \
         once), timed the same way, alone on its host and beside pipelines of the same host \
         that misbehave on every message of their own preloaded topic: one whose plugin \
         spins until its call times out (5 s), one whose plugin grows its memory until it \
         is refused (64 MiB). Call slots and plugin memory at their defaults. Median of the \
         rounds, each neighbourhood run in turn.\n"
    );
    let _ = writeln!(
        page,
        "| healthy pipeline | msg/s, median | rounds | against alone |"
    );
    let _ = writeln!(page, "|---|---|---|---|");
    for run in &results.tenants {
        let rounds: Vec<String> = run.rates.iter().map(|&r| rate(r)).collect();
        let _ = writeln!(
            page,
            "| {} | {} | {} | {:.2}× |",
            run.neighbours.label(),
            rate(run.median()),
            rounds.join(", "),
            run.median() / alone
        );
    }
    let _ = writeln!(page);
}
