//! The WebAssembly stage alone, no Kafka: `Plugin::handle` on one thread,
//! as a pipeline worker calls it, with the `uppercase` example plugin.
//! Rates are per second of the thread's own CPU time, so "per core" holds
//! on a machine that other work shares; wall-clock rates are kept beside.
//!
//! Like `host/benches/runtime.rs`: the batch is built once, outside the
//! timing, and the idle instance is reused; the time covers copying the
//! batch into the guest, the guest's work, copying the outcomes back and
//! checking them, and dropping them. Messages are those of the end-to-end
//! runs: a 16-byte key, no headers, and a value of the given size. The
//! engine has Runnel's defaults (no fuel budget, so no fuel metering); the
//! metered rows tell what a plugin with a fuel budget pays for counting it.
//! Guest fuel is counted for every row, by an untimed call on a metered
//! engine.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runnel::runtime::{EncodedBatch, EngineSettings, Outcome, Plugin, PluginEngine, PluginLimits};
use runnel_encoding::fixture::BatchFixture;
use tokio::runtime::Runtime;

use crate::kafka::{message_key, message_value};
use crate::procfs::thread_cpu_ns;

pub const VALUE_SIZES: [usize; 2] = [100, 1024];
pub const WARM_UP: Duration = Duration::from_millis(300);
/// Timed windows per point, taken in turn across all points so that a burst
/// of other work on a shared machine (which inflates even a thread's own CPU
/// time, on a virtual machine whose host is busy) lands on every point alike;
/// the median is reported, with the range beside it.
pub const WINDOWS: usize = 7;

/// One point: a value size and a batch size.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub value_bytes: usize,
    pub batch_size: usize,
    pub fuel_metering: bool,
    /// Calls per second of the thread's own CPU time: per core, whatever
    /// else the machine was doing.
    pub calls_per_sec: f64,
    /// Calls per second of wall-clock time, which other processes on the
    /// machine can lower.
    pub calls_per_wall_sec: f64,
    /// The slowest and the fastest window, in calls per CPU second.
    pub calls_per_sec_range: (f64, f64),
    /// Fuel one call used (about one unit per WebAssembly instruction the
    /// guest ran), counted on a metered engine whichever engine was timed:
    /// how much of a call is the guest's work.
    pub fuel_per_call: Option<u64>,
}

impl StageRun {
    pub fn messages_per_sec(&self) -> f64 {
        self.calls_per_sec * self.batch_size as f64
    }
}

/// Measures every value size at every batch size as Runnel runs a plugin by
/// default (without fuel metering), and with fuel metering at the smallest
/// and largest batch with the smallest values (enough to see what metering
/// costs per call and per message).
pub fn measure(
    wasm: &[u8],
    batch_sizes: &[usize],
    window: Duration,
) -> anyhow::Result<Vec<StageRun>> {
    // A current-thread runtime: one core, the scheduling a pipeline
    // worker's task sees.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let smallest = batch_sizes.iter().copied().min();
    let largest = batch_sizes.iter().copied().max();
    let mut metered_sizes: Vec<usize> = smallest.into_iter().chain(largest).collect();
    metered_sizes.dedup();
    let plain = load(wasm, false)?;
    let metered = load(wasm, true)?;
    let mut points = Vec::new();
    for fuel_metering in [false, true] {
        let (plugin, value_sizes, batch_sizes): (&Plugin, &[usize], &[usize]) = if fuel_metering {
            (&metered, &VALUE_SIZES[..1], &metered_sizes)
        } else {
            (&plain, &VALUE_SIZES, batch_sizes)
        };
        for &value_bytes in value_sizes {
            for &batch_size in batch_sizes {
                let batch = batch(batch_size, value_bytes);
                let fuel_per_call = check_uppercase(&runtime, &metered, &batch)?;
                if !fuel_metering {
                    check_uppercase(&runtime, plugin, &batch)?;
                }
                runtime.block_on(call_for(plugin, &batch, WARM_UP))?;
                points.push(Point {
                    plugin,
                    batch,
                    run: StageRun {
                        value_bytes,
                        batch_size,
                        fuel_metering,
                        calls_per_sec: 0.0,
                        calls_per_wall_sec: 0.0,
                        calls_per_sec_range: (0.0, 0.0),
                        fuel_per_call,
                    },
                    per_cpu: Vec::with_capacity(WINDOWS),
                    per_wall: Vec::with_capacity(WINDOWS),
                });
            }
        }
    }
    for _ in 0..WINDOWS {
        for point in &mut points {
            let (per_cpu, per_wall) =
                runtime.block_on(one_window(point.plugin, &point.batch, window))?;
            point.per_cpu.push(per_cpu);
            point.per_wall.push(per_wall);
        }
    }
    Ok(points
        .into_iter()
        .map(|mut point| {
            point.per_cpu.sort_by(f64::total_cmp);
            point.per_wall.sort_by(f64::total_cmp);
            let run = &mut point.run;
            run.calls_per_sec = median(&point.per_cpu);
            run.calls_per_wall_sec = median(&point.per_wall);
            run.calls_per_sec_range = (point.per_cpu[0], point.per_cpu[point.per_cpu.len() - 1]);
            point.run
        })
        .collect())
}

/// One plugin and batch to time, and its windows so far.
struct Point<'a> {
    plugin: &'a Plugin,
    batch: EncodedBatch,
    run: StageRun,
    per_cpu: Vec<f64>,
    per_wall: Vec<f64>,
}

/// See [`call_for`]: small enough that a window overshoots by microseconds.
const CALLS_PER_CLOCK_READ: u64 = 16;

fn load(wasm: &[u8], fuel_metering: bool) -> anyhow::Result<Plugin> {
    let engine = PluginEngine::new(EngineSettings {
        fuel_metering,
        ..EngineSettings::default()
    })?;
    Ok(engine.load("uppercase", wasm, Vec::new(), PluginLimits::default())?)
}

/// The messages of the end-to-end runs, without headers.
pub fn batch(size: usize, value_bytes: usize) -> EncodedBatch {
    let fixture = BatchFixture {
        source: "bench",
        topic: "orders",
        headers: &[],
    };
    fixture.build((0..size).map(|i| (Some(message_key(i)), message_value(i, value_bytes))))
}

/// Two untimed calls proving the plugin does what is measured: one output
/// per message, upper-cased. Returns the fuel the second call used: the
/// first also pays for the guest's lazy set-up (its heap's first growth).
pub fn check_uppercase(
    runtime: &Runtime,
    plugin: &Plugin,
    batch: &EncodedBatch,
) -> anyhow::Result<Option<u64>> {
    runtime.block_on(plugin.handle(batch)).result?;
    let invocation = runtime.block_on(plugin.handle(batch));
    let handled = invocation.result?;
    ensure!(
        handled.output_count() == batch.len(),
        "uppercase returned {} outputs for {} messages",
        handled.output_count(),
        batch.len()
    );
    let Outcome::Outputs(mut outputs) = handled.outcome(0) else {
        bail!("uppercase failed the first message");
    };
    let first = outputs.next().context("no output for the first message")?;
    let expected = message_value(0, first.value.len()).to_ascii_uppercase();
    ensure!(first.value == expected, "uppercase did not upper-case");
    Ok(invocation.fuel_used)
}

/// One timed window: calls per second of the thread's CPU time, and of
/// wall-clock time.
pub async fn one_window(
    plugin: &Plugin,
    batch: &EncodedBatch,
    window: Duration,
) -> anyhow::Result<(f64, f64)> {
    let cpu_before = thread_cpu_ns().context("reading the thread's CPU time")?;
    let started = Instant::now();
    let calls = call_for(plugin, batch, window).await? as f64;
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = thread_cpu_ns().context("reading the thread's CPU time")?;
    let cpu = cpu_after.saturating_sub(cpu_before).max(1) as f64 / 1e9;
    Ok((calls / cpu, calls / wall))
}

/// The middle of sorted `values`.
fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

/// Calls `handle` back to back until `window` has passed; returns how many
/// calls were made. The clock is read once every [`CALLS_PER_CLOCK_READ`]
/// calls, so that reading it (tens of nanoseconds) stays out of the figures.
pub async fn call_for(
    plugin: &Plugin,
    batch: &EncodedBatch,
    window: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + window;
    let mut calls = 0;
    while Instant::now() < deadline {
        for _ in 0..CALLS_PER_CLOCK_READ {
            let invocation = plugin.handle(batch).await;
            invocation
                .result
                .with_context(|| format!("uppercase failed a batch of {}", batch.len()))?;
        }
        calls += CALLS_PER_CLOCK_READ;
    }
    Ok(calls)
}
