//! One place a pipeline's events are recorded. The stats endpoint's
//! counters and the Prometheus series are two views of the same events, so
//! each event is recorded once here and moves both.

use std::sync::{Arc, Mutex};

use crate::failure::MessageFailureKind;
use crate::metrics::{Metrics, Mode, PipelineSeries, PluginSeries};
use crate::runtime::Invocation;
use crate::sink::policy::Breach;
use crate::stats::PipelineStats;

pub struct PipelineRecorder {
    pipeline: String,
    stats: Arc<PipelineStats>,
    metrics: Metrics,
    /// This pipeline's per-batch series of `metrics`, resolved once.
    series: PipelineSeries,
    /// The series of the plugin the pipeline called last, looked up again
    /// only when a reload brings a plugin of another name.
    plugin_series: Mutex<Option<PluginSeries>>,
}

impl PipelineRecorder {
    pub fn new(pipeline: &str, stats: PipelineStats, metrics: Metrics, mode: Mode) -> Self {
        Self {
            pipeline: pipeline.to_owned(),
            stats: Arc::new(stats),
            series: metrics.pipeline_series(pipeline, mode),
            metrics,
            plugin_series: Mutex::new(None),
        }
    }

    /// The counters the stats endpoint reads.
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// The registry, for the clients of this pipeline to report through.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn set_running(&self, running: bool) {
        self.stats.set_running(running);
    }

    /// A batch of `size` messages goes to the plugin.
    pub fn batch_started(&self, size: usize) {
        self.series.record_batch_size(size);
        self.stats.set_current_batch_size(size);
    }

    /// Every message of the current batch has a verdict.
    pub fn batch_decided(&self) {
        self.stats.set_current_batch_size(0);
    }

    /// Messages whose processing finished: `succeeded` with outputs
    /// (possibly none), `failed` with a failure.
    pub fn processed(&self, succeeded: u64, failed: u64) {
        self.stats.record_processed(succeeded, failed);
        self.series.record_processed(succeeded, failed);
    }

    /// `messages` failed transiently and are tried again.
    pub fn retrying(&self, messages: usize) {
        for _ in 0..messages {
            self.stats.record_retry();
            self.metrics.record_retry(&self.pipeline);
        }
    }

    pub fn dead_lettered(&self) {
        self.stats.record_dead_lettered();
        self.metrics.record_dead_lettered(&self.pipeline);
    }

    /// How long each message, received at the given instants, took until
    /// its outputs were handed on.
    pub fn handled(&self, received: impl IntoIterator<Item = quanta::Instant>) {
        self.series.record_processing(received);
    }

    /// `count` outputs were acknowledged.
    pub fn outputs_delivered(&self, count: u64) {
        self.series.record_outputs(count);
    }

    pub fn partition_rewound(&self) {
        self.metrics.record_partition_rewind(&self.pipeline);
    }

    /// The consumer's lag on one partition it owns.
    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.stats.set_lag(topic, partition, lag);
        self.metrics
            .set_consumer_lag(&self.pipeline, topic, partition, lag);
    }

    /// Forgets the lag of partitions this host no longer owns, in the
    /// stats and in the metrics.
    pub fn retain_lag(&self, keep: impl Fn(&str, i32) -> bool) {
        for (topic, partition) in self.stats.retain_lag(keep) {
            self.metrics
                .forget_consumer_lag(&self.pipeline, &topic, partition);
        }
    }

    /// One plugin call, what it cost and whether it failed as a whole.
    pub fn invocation(&self, plugin: &str, invocation: &Invocation) {
        {
            let mut cached = self.plugin_series.lock().unwrap_or_else(|e| e.into_inner());
            let series = match &mut *cached {
                Some(series) if series.plugin() == plugin => series,
                stale => stale.insert(self.metrics.plugin_series(plugin)),
            };
            series.record_invocation(
                invocation.elapsed.as_secs_f64(),
                invocation.fuel_used,
                invocation.memory_bytes,
            );
        }
        if let Err(error) = &invocation.result {
            self.metrics.record_call_error(plugin, error.kind);
        }
    }

    /// The plugin reported a message as failed.
    /// A message's outputs broke the output policy: it fails as permanent.
    pub fn outputs_refused(&self, breach: Breach) {
        self.metrics
            .record_outputs_refused(&self.pipeline, breach.as_str());
    }

    pub fn message_failed(&self, plugin: &str, kind: MessageFailureKind) {
        self.metrics.record_message_failure(plugin, kind.as_str());
    }
}
