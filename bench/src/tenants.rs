//! Tenants: what a neighbour whose plugin loops, or blows up its memory on
//! every message, costs a healthy pipeline on the same host. The healthy
//! pipeline is the throughput section's Runnel subject (uppercase, batch
//! 100 / 5 ms, at least once), timed the same way; each neighbour is a
//! pipeline of the same host reading a topic of its own, preloaded with
//! more poisoned messages than it gets through in a run, so it misbehaves
//! from the healthy pipeline's first output to its last. Alone and each
//! neighbourhood are run in turn, round after round, and each one's median
//! is compared with the median alone.

use std::time::Duration;

use crate::processor::{Diagnostic, Harness, Neighbours, RUNNEL_LINGER_MS, Subject};
use crate::throughput::{self, ThroughputRun};

/// The neighbourhoods measured, alone first.
pub const NEIGHBOURHOODS: [Neighbours; 4] = [
    Neighbours {
        looping: false,
        hungry: false,
    },
    Neighbours {
        looping: true,
        hungry: false,
    },
    Neighbours {
        looping: false,
        hungry: true,
    },
    Neighbours {
        looping: true,
        hungry: true,
    },
];

/// The healthy pipeline's rate in one neighbourhood, over the rounds.
#[derive(Debug, Clone)]
pub struct TenantsRun {
    pub neighbours: Neighbours,
    /// Messages per second of the healthy pipeline, one per round.
    pub rates: Vec<f64>,
}

impl TenantsRun {
    pub fn median(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    }

    pub fn is_alone(&self) -> bool {
        !self.neighbours.looping && !self.neighbours.hungry
    }
}

fn subject(neighbours: Neighbours) -> Subject {
    let diagnostic =
        (neighbours.looping || neighbours.hungry).then_some(Diagnostic::Beside(neighbours));
    Subject::Runnel {
        batch_size: 100,
        batch_timeout: Duration::from_millis(5),
        linger_ms: RUNNEL_LINGER_MS,
        exactly_once: false,
        diagnostic,
    }
}

/// Runs every neighbourhood `rounds` times, `messages` each, in turn.
pub fn measure(
    harness: &Harness,
    rounds: usize,
    messages: usize,
    say: impl Fn(&str),
) -> anyhow::Result<Vec<TenantsRun>> {
    let mut runs: Vec<TenantsRun> = NEIGHBOURHOODS
        .iter()
        .map(|&neighbours| TenantsRun {
            neighbours,
            rates: Vec::new(),
        })
        .collect();
    for round in 1..=rounds {
        for run in &mut runs {
            let measured: ThroughputRun =
                throughput::measure(harness, &subject(run.neighbours), messages, 0)?;
            say(&format!(
                "tenants round {round}: healthy pipeline {}: {:.0} msg/s",
                run.neighbours.label(),
                measured.messages_per_sec
            ));
            run.rates.push(measured.messages_per_sec);
        }
    }
    Ok(runs)
}
