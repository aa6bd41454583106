//! Pipelines on one host as tenants: a healthy pipeline beside one whose
//! plugin loops on every message and one whose plugin blows up its memory
//! gets every output out, while the neighbours' calls give their slots up
//! at epoch ticks and the memory-hungry one is held to its share of the
//! host's plugin memory. How much throughput the neighbours cost is the
//! benchmark's to measure (`tenants` section), not this test's.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::config::{HostConfig, Pipeline};
use support::host::{HostProcess, sample};
use support::kafka::{self, Cluster, TopicReader};
use support::{numbered_value, plugin_path, wait_until};

const PARTITIONS: i32 = 2;
const HEALTHY_MESSAGES: usize = 4_000;
const POISONED_MESSAGES: usize = 6;

struct Tenant {
    name: &'static str,
    input: String,
    output: String,
    dead_letters: String,
}

impl Tenant {
    fn new(name: &'static str) -> Self {
        let tenant = Self {
            name,
            input: kafka::unique_topic(&format!("tenants-{name}-in")),
            output: kafka::unique_topic(&format!("tenants-{name}-out")),
            dead_letters: kafka::unique_topic(&format!("tenants-{name}-dlq")),
        };
        kafka::create_topic(&tenant.input, PARTITIONS);
        kafka::create_topic(&tenant.output, PARTITIONS);
        kafka::create_topic(&tenant.dead_letters, 1);
        tenant
    }

    fn pipeline(&self) -> Pipeline {
        Pipeline::reading(&self.input)
            .output(&self.output)
            .set("dead_letter_topic", self.dead_letters.as_str())
            .plugin(plugin_path("misbehave"))
            .batch(50, "5ms")
    }
}

/// Three pipelines share 96 MiB of plugin memory, 32 MiB each: below the
/// 48 MiB one instance of the hungry plugin may grow to on its own.
fn config(dir: &std::path::Path, healthy: &Tenant, looping: &Tenant, hungry: &Tenant) -> PathBuf {
    HostConfig::new(&kafka::brokers())
        .settings("[runtime]\ncall_slots = 2\nmax_plugin_memory_mib = 96")
        .pipeline("healthy", healthy.pipeline())
        .pipeline(
            "looping",
            looping
                .pipeline()
                .settings("limits = { call_timeout = \"1s\" }"),
        )
        .pipeline(
            "hungry",
            hungry
                .pipeline()
                .settings("limits = { max_memory_mib = 48 }"),
        )
        .write_in(dir)
}

/// Waits until `tenant`'s poisoned messages are all dead-lettered, and
/// checks that the first says `reason`.
fn assert_dead_lettered(tenant: &Tenant, reason: &str) {
    let cluster = Cluster::shared();
    let mut dead_letters = TopicReader::on(&cluster, &tenant.dead_letters, 1, "read_uncommitted");
    assert!(
        dead_letters.read_until(Duration::from_secs(120), |records| {
            records.len() >= POISONED_MESSAGES
        }),
        "{}: {} dead letters",
        tenant.name,
        dead_letters.records.len()
    );
    let error = dead_letters.records[0]
        .headers
        .iter()
        .find(|(name, _)| name == "runnel-error")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    assert!(error.contains(reason), "{}: {error}", tenant.name);
}

/// Whether a call has waited for a slot and the hungry pipeline has been
/// refused memory past its share.
fn contention_counted(text: &str) -> bool {
    let waits: f64 = ["healthy", "looping", "hungry"]
        .iter()
        .map(|pipeline| {
            sample(
                text,
                "runnel_call_slot_waits_total",
                &[("pipeline", pipeline)],
            )
        })
        .sum();
    let refused = sample(
        text,
        "runnel_plugin_memory_refused_total",
        &[("pipeline", "hungry")],
    );
    waits > 0.0 && refused > 0.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_pipeline_is_served_beside_a_looping_and_a_memory_hungry_one() {
    let dir = kafka::scratch_dir();
    let healthy = Tenant::new("healthy");
    let looping = Tenant::new("looping");
    let hungry = Tenant::new("hungry");
    let config = config(dir.path(), &healthy, &looping, &hungry);
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    host.http_address().await;

    let poisoned = |command: &str| {
        (0..POISONED_MESSAGES)
            .map(|i| (format!("poison-{i}"), command.to_owned()))
            .collect::<Vec<_>>()
    };
    kafka::produce(&looping.input, poisoned("loop"));
    kafka::produce(&hungry.input, poisoned("oom"));
    let values: Vec<(String, String)> = (0..HEALTHY_MESSAGES)
        .map(|i| (format!("key-{}", i % 100), numbered_value(i)))
        .collect();
    kafka::produce(&healthy.input, values);

    let cluster = Cluster::shared();
    let mut outputs = TopicReader::on(&cluster, &healthy.output, PARTITIONS, "read_uncommitted");
    assert!(
        outputs.read_until(Duration::from_secs(120), |records| {
            kafka::distinct_values(records) >= HEALTHY_MESSAGES
        }),
        "every healthy output arrives: {} of {HEALTHY_MESSAGES}",
        kafka::distinct_values(&outputs.records)
    );
    // Each poisoned message fails alone and is dead-lettered with why.
    assert_dead_lettered(&looping, "did not finish within 1s");
    assert_dead_lettered(&hungry, "share of the host's plugin memory");

    let text = wait_until(
        "the neighbours' contention to be counted",
        Duration::from_secs(30),
        async || host.http_get("/metrics").await.1,
        |text| contention_counted(text),
    )
    .await;
    for pipeline in ["healthy", "looping", "hungry"] {
        let share = sample(
            &text,
            "runnel_pipeline_plugin_memory_share_bytes",
            &[("pipeline", pipeline)],
        );
        assert_eq!(share, f64::from(32 << 20), "{pipeline}");
        let memory = sample(
            &text,
            "runnel_pipeline_plugin_memory_bytes",
            &[("pipeline", pipeline)],
        );
        assert!(memory <= share, "{pipeline}: {memory} bytes, share {share}");
    }
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}
