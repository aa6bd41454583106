//! The sandboxed runtime alone, no Kafka: what it costs to bring a plugin up
//! and how many messages per second go through the `uppercase` example.
//!
//! Run with `cargo bench -p runnel --bench runtime` (about a minute on two
//! cores). The example plugins are built first if they are missing, exactly as
//! the runtime tests build them.
//!
//! What each number measures:
//!
//! - `instantiate/compile`: `PluginEngine::load` of `uppercase.wasm` from bytes
//!   already in memory: Cranelift compiles the component and links it against
//!   the host's imports. Paid once per plugin per host start.
//! - `instantiate/instance`: `Plugin::validate` on an already loaded plugin.
//!   Every call builds a fresh store and instance from the pooling allocator
//!   and runs the plugin's `init`, which is what `handle` pays whenever no idle
//!   instance is free (the first call, overlapping calls, the call after one
//!   that failed). `validate` keeps at most 8 idle instances and drops the
//!   rest, so in steady state this also includes dropping one instance and
//!   handing its memory slot back to the pool.
//! - `uppercase/fuel_on/N` and `uppercase/fuel_off/N`: one `Plugin::handle`
//!   call on a batch of N messages (N = 1, 10, 100, 1000; fuel on only at 1
//!   and 1000), reusing the idle instance as the pipeline does. Each message has
//!   a 16-byte key, a 100-byte ASCII text value and one header. The batch is
//!   built once, outside the timing; the time covers copying it into the guest,
//!   the guest's work, copying the answer back and checking it
//!   (`EncodedOutcomes::parse`), and dropping it. Throughput is in messages, so at
//!   N = 1 "elements per second" reads as calls per second. `fuel_off` is the
//!   default engine (a plugin without a fuel budget is not metered); `fuel_on`
//!   an engine with `fuel_metering: true`, as a plugin with a fuel budget
//!   runs, which tells what metering costs.
//!
//! The async calls run on a current-thread Tokio runtime through criterion's
//! `to_async`, which enters the runtime once per sample and awaits the
//! routine in a plain loop inside it: cheaper than a `block_on` per
//! iteration, and the same single-task scheduling a pipeline worker sees.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use runnel::runtime::{EncodedBatch, EngineSettings, Outcome, Plugin, PluginEngine, PluginLimits};
use runnel_encoding::fixture::BatchFixture;
use tokio::runtime::Runtime;

const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
const FUEL_ON_BATCH_SIZES: [usize; 2] = [1, 1000];
const VALUE_BYTES: usize = 100;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

fn engine(fuel_metering: bool) -> PluginEngine {
    PluginEngine::new(EngineSettings {
        fuel_metering,
        ..EngineSettings::default()
    })
    .expect("engine starts")
}

fn load(engine: &PluginEngine, wasm: &[u8]) -> Plugin {
    engine
        .load("uppercase", wasm, Vec::new(), PluginLimits::default())
        .expect("uppercase loads")
}

/// A 100-byte, mostly lower-case line of text that differs per message.
fn value(i: usize) -> Vec<u8> {
    let mut text = format!(
        "order {i:08} shipped from the north warehouse to customer desk seven, \
         two parcels, signed on delivery, thank you"
    );
    text.truncate(VALUE_BYTES);
    assert_eq!(text.len(), VALUE_BYTES, "value text is too short");
    text.into_bytes()
}

/// `size` messages on one topic and partition, keyed `customer-0000042`
/// (16 bytes), each with one `trace-id` header.
fn batch(size: usize) -> EncodedBatch {
    let fixture = BatchFixture {
        source: "bench",
        topic: "orders",
        headers: &[("trace-id", b"4bf92f3577b34da6")],
    };
    fixture.build((0..size).map(|i| (Some(format!("customer-{i:07}")), value(i))))
}

/// One untimed call to prove the plugin does what is being measured: every
/// message comes back once, upper-cased.
fn check_uppercase(rt: &Runtime, plugin: &Plugin, batch: &EncodedBatch) {
    let handled = rt
        .block_on(plugin.handle(batch))
        .result
        .expect("uppercase handles the batch");
    assert_eq!(handled.output_count(), batch.len());
    let Outcome::Outputs(mut outputs) = handled.outcome(0) else {
        panic!("uppercase failed the first message");
    };
    let first = outputs.next().expect("one output");
    assert_eq!(first.value, value(0).to_ascii_uppercase());
}

fn instantiate(c: &mut Criterion) {
    let rt = runtime();
    let wasm = support::plugin_bytes("uppercase");
    let engine = engine(true);

    let mut group = c.benchmark_group("instantiate");
    group.warm_up_time(Duration::from_secs(1));

    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("compile", |b| b.iter(|| load(&engine, black_box(&wasm))));

    let plugin = load(&engine, &wasm);
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("instance", |b| {
        b.to_async(&rt).iter(|| async {
            plugin.validate().await.expect("uppercase starts");
        })
    });
    group.finish();
}

fn uppercase(c: &mut Criterion) {
    let rt = runtime();
    let wasm = support::plugin_bytes("uppercase");
    let variants = [
        ("fuel_off", false, &BATCH_SIZES[..]),
        ("fuel_on", true, &FUEL_ON_BATCH_SIZES[..]),
    ];

    let mut group = c.benchmark_group("uppercase");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(50);
    for (name, fuel_metering, sizes) in variants {
        let engine = engine(fuel_metering);
        let plugin = load(&engine, &wasm);
        for &size in sizes {
            let batch = batch(size);
            check_uppercase(&rt, &plugin, &batch);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &batch, |b, batch| {
                b.to_async(&rt).iter(|| async {
                    let invocation = plugin.handle(batch).await;
                    if let Err(error) = &invocation.result {
                        panic!("uppercase failed a batch of {size}: {error}");
                    }
                    invocation
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, instantiate, uppercase);
criterion_main!(benches);
