//! Every Prometheus metric the host exports, created once and registered in
//! one registry. Names follow the seed message processor where it had one
//! (`kafka_*`), and Prometheus conventions elsewhere. Labels stay
//! low-cardinality: pipeline, plugin, binding, topic, partition, status,
//! kind; never a key or an offset.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::runtime::CallErrorKind;

/// Whether a message was processed one at a time or in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    PerMessage,
    Batch,
}

impl Mode {
    pub fn for_batch_size(batch_size: usize) -> Self {
        if batch_size <= 1 {
            Mode::PerMessage
        } else {
            Mode::Batch
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::PerMessage => "per_message",
            Mode::Batch => "batch",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    messages_processed: IntCounterVec,
    binding_requests: IntCounterVec,
    binding_duration: HistogramVec,
    batch_size: HistogramVec,
    processing_duration: HistogramVec,
    invocation_duration: HistogramVec,
    plugin_errors: IntCounterVec,
    message_failures: IntCounterVec,
    fuel_used: IntCounterVec,
    plugin_memory: IntGaugeVec,
    outputs_produced: IntCounterVec,
    consumer_lag: IntGaugeVec,
    dead_lettered: IntCounterVec,
    outputs_refused: IntCounterVec,
    retries: IntCounterVec,
    plugin_reloads: IntCounterVec,
    kafka_client_errors: IntCounterVec,
    partition_rewinds: IntCounterVec,
    transactions: IntCounterVec,
    transaction_commit_duration: HistogramVec,
    transaction_messages: HistogramVec,
    call_slots_in_use: IntGaugeVec,
    call_slot_waits: IntCounterVec,
    pipeline_plugin_memory: IntGaugeVec,
    pipeline_memory_share: IntGaugeVec,
    plugin_memory_refused: IntCounterVec,
    plugin_memory_limit: IntGaugeVec,
}

/// What a pipeline holds of the host's call slots and plugin memory, as
/// [`crate::runtime::Tenant`] counts it.
#[derive(Debug, Clone, Copy)]
pub struct TenantSample {
    pub running_calls: usize,
    pub slot_waits: u64,
    pub memory_bytes: usize,
    /// Its share of the host's plugin memory, by its weight.
    pub memory_share: usize,
    pub memory_refused: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    // A declarative table: one entry per metric, nothing to split.
    #[allow(clippy::too_many_lines)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let opts = HistogramOpts::new(name, help).buckets(buckets);
            let metric = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let seconds = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ];
        // Fine below a millisecond, where per-message mode spends its time
        // and where its overhead is judged.
        let processing_seconds = vec![
            0.00001, 0.00002, 0.00003, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004,
            0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            5.0, 10.0, 30.0,
        ];
        let sizes = vec![
            1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
        ];
        // Up to past the default `transaction_max_messages` (100 000).
        let transaction_sizes = vec![
            1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 20000.0, 50000.0, 100000.0,
            250000.0,
        ];
        Self {
            messages_processed: counter(
                "kafka_messages_processed_total",
                "Messages processed, by outcome and processing mode.",
                &["status", "mode"],
            ),
            binding_requests: counter(
                "kafka_binding_requests_total",
                "Dapr input binding requests, by outcome and binding.",
                &["status", "binding"],
            ),
            binding_duration: histogram(
                "kafka_binding_duration_seconds",
                "Time from a Dapr binding request to its response.",
                &["binding"],
                seconds.clone(),
            ),
            batch_size: histogram(
                "kafka_batch_size",
                "Messages per plugin call.",
                &["pipeline"],
                sizes,
            ),
            processing_duration: histogram(
                "runnel_message_processing_seconds",
                "Time from a message's receipt to its outputs being handed to the producer \
                 (batching wait and plugin call included; with exactly-once, until its \
                 transaction commits).",
                &["pipeline"],
                processing_seconds,
            ),
            invocation_duration: histogram(
                "runnel_plugin_invocation_duration_seconds",
                "Duration of one plugin call.",
                &["plugin"],
                seconds.clone(),
            ),
            plugin_errors: counter(
                "runnel_plugin_errors_total",
                "Plugin calls that failed as a whole, by kind.",
                &["plugin", "kind"],
            ),
            message_failures: counter(
                "runnel_message_failures_total",
                "Messages a plugin reported as failed, by kind (transient or permanent).",
                &["plugin", "kind"],
            ),
            fuel_used: counter(
                "runnel_plugin_fuel_used_total",
                "Fuel consumed by plugin calls.",
                &["plugin"],
            ),
            call_slots_in_use: gauge(
                "runnel_call_slots_in_use",
                "Plugin calls of the pipeline running now, on the host's call slots.",
                &["pipeline"],
            ),
            call_slot_waits: counter(
                "runnel_call_slot_waits_total",
                "Plugin calls that waited for a call slot while other pipelines held theirs, \
                 at their start or after giving one up at an epoch tick.",
                &["pipeline"],
            ),
            pipeline_plugin_memory: gauge(
                "runnel_pipeline_plugin_memory_bytes",
                "Linear memory of all the pipeline's plugin instances.",
                &["pipeline"],
            ),
            plugin_memory_refused: counter(
                "runnel_plugin_memory_refused_total",
                "Memory growths refused because the pipeline's plugin instances had reached \
                 their share of the host's plugin memory.",
                &["pipeline"],
            ),
            pipeline_memory_share: gauge(
                "runnel_pipeline_plugin_memory_share_bytes",
                "The pipeline's share of the host's plugin memory, by its weight: what its \
                 plugin instances together may hold.",
                &["pipeline"],
            ),
            plugin_memory_limit: gauge(
                "runnel_plugin_memory_limit_bytes",
                "The host's limit on the linear memory of all plugin instances \
                 (`runtime.max_plugin_memory_mib`).",
                &["scope"],
            ),
            plugin_memory: gauge(
                "runnel_plugin_memory_bytes",
                "Linear memory of the plugin's most recent instance.",
                &["plugin"],
            ),
            outputs_produced: counter(
                "runnel_outputs_produced_total",
                "Outputs acknowledged by Kafka or by a Dapr output binding (dead letters \
                 are counted apart).",
                &["pipeline"],
            ),
            consumer_lag: gauge(
                "runnel_consumer_lag",
                "Messages between the committed position and the end of the partition.",
                &["pipeline", "topic", "partition"],
            ),
            dead_lettered: counter(
                "runnel_dead_lettered_total",
                "Messages sent to a dead-letter topic.",
                &["pipeline"],
            ),
            outputs_refused: counter(
                "runnel_outputs_refused_total",
                "Messages whose outputs broke the pipeline's output policy (a topic it may not \
                 write to, too many outputs, too many bytes), by the rule broken; each fails as \
                 permanent with none of its outputs sent.",
                &["pipeline", "reason"],
            ),
            retries: counter(
                "runnel_retries_total",
                "Messages retried after a transient failure.",
                &["pipeline"],
            ),
            plugin_reloads: counter(
                "runnel_plugin_reloads_total",
                "Plugin loads and reloads, by result.",
                &["plugin", "result"],
            ),
            kafka_client_errors: counter(
                "runnel_kafka_client_errors_total",
                "Errors a Kafka client reported (broker down, connection lost, ...), by \
                 client and librdkafka error code; the client recovers from most by itself.",
                &["client", "pipeline", "code"],
            ),
            partition_rewinds: counter(
                "runnel_partition_rewinds_total",
                "Times a partition was processed again from its first message whose \
                 outputs were not acknowledged (a delivery timeout, a failed output binding).",
                &["pipeline"],
            ),
            transactions: counter(
                "runnel_transactions_total",
                "Kafka transactions of exactly-once pipelines, by outcome (committed, or \
                 aborted and processed again).",
                &["pipeline", "outcome"],
            ),
            transaction_commit_duration: histogram(
                "runnel_transaction_commit_seconds",
                "Time to commit a transaction: its outputs flushed, its offsets sent and \
                 the commit acknowledged (or the abort, when it failed).",
                &["pipeline"],
                seconds.clone(),
            ),
            transaction_messages: histogram(
                "runnel_transaction_messages",
                "Input messages per transaction.",
                &["pipeline"],
                transaction_sizes,
            ),
            registry,
        }
    }

    pub fn record_binding_request(&self, binding: &str, success: bool, seconds: f64) {
        let status = if success { "success" } else { "error" };
        self.binding_requests
            .with_label_values(&[status, binding])
            .inc();
        self.binding_duration
            .with_label_values(&[binding])
            .observe(seconds);
    }

    /// The series `pipeline` updates on every batch. Looking a labelled
    /// series up hashes its labels under a lock; a pipeline does it once
    /// here rather than several times per batch, which in per-message mode
    /// is several times per message.
    pub fn pipeline_series(&self, pipeline: &str, mode: Mode) -> PipelineSeries {
        PipelineSeries {
            batch_size: self.batch_size.with_label_values(&[pipeline]),
            processing_duration: self.processing_duration.with_label_values(&[pipeline]),
            succeeded: self
                .messages_processed
                .with_label_values(&["success", mode.as_str()]),
            failed: self
                .messages_processed
                .with_label_values(&["error", mode.as_str()]),
            outputs: self.outputs_produced.with_label_values(&[pipeline]),
        }
    }

    /// The series `plugin` updates on every call; see [`Self::pipeline_series`].
    pub fn plugin_series(&self, plugin: &str) -> PluginSeries {
        PluginSeries {
            plugin: plugin.to_owned(),
            invocation_duration: self.invocation_duration.with_label_values(&[plugin]),
            fuel_used: self.fuel_used.with_label_values(&[plugin]),
            memory: self.plugin_memory.with_label_values(&[plugin]),
        }
    }

    pub fn record_call_error(&self, plugin: &str, kind: CallErrorKind) {
        self.plugin_errors
            .with_label_values(&[plugin, kind.as_str()])
            .inc();
    }

    pub fn record_message_failure(&self, plugin: &str, kind: &str) {
        self.message_failures
            .with_label_values(&[plugin, kind])
            .inc();
        self.plugin_errors
            .with_label_values(&[plugin, "plugin_error"])
            .inc();
    }

    pub fn set_consumer_lag(&self, pipeline: &str, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[pipeline, topic, &partition.to_string()])
            .set(lag);
    }

    /// Drops the lag of a partition this host no longer owns: its new
    /// owner reports it, and a stale value here would add to it in sums.
    pub fn forget_consumer_lag(&self, pipeline: &str, topic: &str, partition: i32) {
        let _ = self
            .consumer_lag
            .remove_label_values(&[pipeline, topic, &partition.to_string()]);
    }

    pub fn record_dead_lettered(&self, pipeline: &str) {
        self.dead_lettered.with_label_values(&[pipeline]).inc();
    }

    pub fn record_outputs_refused(&self, pipeline: &str, reason: &str) {
        self.outputs_refused
            .with_label_values(&[pipeline, reason])
            .inc();
    }

    pub fn record_retry(&self, pipeline: &str) {
        self.retries.with_label_values(&[pipeline]).inc();
    }

    pub fn record_plugin_load(&self, plugin: &str, success: bool) {
        let result = if success { "success" } else { "error" };
        self.plugin_reloads
            .with_label_values(&[plugin, result])
            .inc();
    }

    pub fn record_kafka_client_error(&self, client: &str, pipeline: &str, code: &str) {
        self.kafka_client_errors
            .with_label_values(&[client, pipeline, code])
            .inc();
    }

    pub fn record_partition_rewind(&self, pipeline: &str) {
        self.partition_rewinds.with_label_values(&[pipeline]).inc();
    }

    /// One settled transaction: how it ended, how long its commit took and
    /// how many input messages it held.
    pub fn record_transaction(
        &self,
        pipeline: &str,
        committed: bool,
        commit_seconds: f64,
        messages: usize,
    ) {
        let outcome = if committed { "committed" } else { "aborted" };
        self.transactions
            .with_label_values(&[pipeline, outcome])
            .inc();
        self.transaction_commit_duration
            .with_label_values(&[pipeline])
            .observe(commit_seconds);
        self.transaction_messages
            .with_label_values(&[pipeline])
            .observe(messages as f64);
    }

    /// Takes a pipeline's claim on the host's call slots and plugin memory
    /// (sampled when metrics are read), and the host's memory limit with
    /// each pipeline's share of it.
    pub fn record_tenant(&self, pipeline: &str, sample: TenantSample) {
        self.call_slots_in_use
            .with_label_values(&[pipeline])
            .set(sample.running_calls as i64);
        self.pipeline_plugin_memory
            .with_label_values(&[pipeline])
            .set(sample.memory_bytes as i64);
        self.pipeline_memory_share
            .with_label_values(&[pipeline])
            .set(sample.memory_share as i64);
        let counters = [
            (&self.call_slot_waits, sample.slot_waits),
            (&self.plugin_memory_refused, sample.memory_refused),
        ];
        for (counter, total) in counters {
            let counter = counter.with_label_values(&[pipeline]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Drops a stopped pipeline's call-slot and memory gauges.
    pub fn forget_tenant(&self, pipeline: &str) {
        let gauges = [
            &self.call_slots_in_use,
            &self.pipeline_plugin_memory,
            &self.pipeline_memory_share,
        ];
        for gauge in gauges {
            // An error only says the series was never set.
            let _ = gauge.remove_label_values(&[pipeline]);
        }
    }

    /// The host's plugin memory limit; each pipeline's share is in
    /// [`Self::record_tenant`]'s sample.
    pub fn record_plugin_memory_limit(&self, host: usize) {
        let limit = &self.plugin_memory_limit;
        limit.with_label_values(&["host"]).set(host as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// A pipeline's per-batch series, resolved once by [`Metrics::pipeline_series`].
#[derive(Clone)]
pub struct PipelineSeries {
    batch_size: Histogram,
    processing_duration: Histogram,
    succeeded: IntCounter,
    failed: IntCounter,
    outputs: IntCounter,
}

impl PipelineSeries {
    pub fn record_batch_size(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    /// Records how long each message, received at the given instants, took
    /// until its outputs were handed on.
    pub fn record_processing(&self, received: impl IntoIterator<Item = quanta::Instant>) {
        let now = quanta::Instant::now();
        for at in received {
            self.processing_duration
                .observe(now.saturating_duration_since(at).as_secs_f64());
        }
    }

    pub fn record_processed(&self, succeeded: u64, failed: u64) {
        if succeeded > 0 {
            self.succeeded.inc_by(succeeded);
        }
        if failed > 0 {
            self.failed.inc_by(failed);
        }
    }

    pub fn record_outputs(&self, count: u64) {
        self.outputs.inc_by(count);
    }
}

/// A plugin's per-call series, resolved once by [`Metrics::plugin_series`].
#[derive(Clone)]
pub struct PluginSeries {
    plugin: String,
    invocation_duration: Histogram,
    fuel_used: IntCounter,
    memory: IntGauge,
}

impl PluginSeries {
    /// The plugin whose series these are.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn record_invocation(&self, seconds: f64, fuel_used: Option<u64>, memory_bytes: usize) {
        self.invocation_duration.observe(seconds);
        if let Some(fuel) = fuel_used {
            self.fuel_used.inc_by(fuel);
        }
        if memory_bytes > 0 {
            self.memory.set(memory_bytes as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn resolved_series_are_exported_under_their_labels() {
        let metrics = Metrics::new();
        let pipeline = metrics.pipeline_series("orders", Mode::PerMessage);
        pipeline.record_batch_size(1);
        pipeline.record_processed(3, 1);
        pipeline.record_outputs(2);
        let now = quanta::Instant::now();
        pipeline.record_processing([now, now - Duration::from_secs(2)]);
        let plugin = metrics.plugin_series("upper");
        plugin.record_invocation(0.001, Some(500), 65536);
        plugin.record_invocation(0.001, Some(250), 0);

        let text = metrics.render();
        for line in [
            r#"kafka_messages_processed_total{mode="per_message",status="success"} 3"#,
            r#"kafka_messages_processed_total{mode="per_message",status="error"} 1"#,
            r#"kafka_batch_size_count{pipeline="orders"} 1"#,
            r#"runnel_outputs_produced_total{pipeline="orders"} 2"#,
            r#"runnel_message_processing_seconds_bucket{pipeline="orders",le="1"} 1"#,
            r#"runnel_message_processing_seconds_bucket{pipeline="orders",le="2.5"} 2"#,
            r#"runnel_plugin_invocation_duration_seconds_count{plugin="upper"} 2"#,
            r#"runnel_plugin_fuel_used_total{plugin="upper"} 750"#,
            r#"runnel_plugin_memory_bytes{plugin="upper"} 65536"#,
        ] {
            assert!(
                text.lines().any(|exported| exported == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
