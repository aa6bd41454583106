//! Live counters of one pipeline, read by the stats endpoint.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug)]
pub struct PipelineStats {
    batch_size_threshold: usize,
    batch_timeout: Duration,
    running: AtomicBool,
    current_batch_size: AtomicUsize,
    total_processed: AtomicU64,
    total_errors: AtomicU64,
    total_retries: AtomicU64,
    total_dead_lettered: AtomicU64,
    last_processed: Mutex<Option<Instant>>,
    /// (topic, partition) → messages not yet consumed past the committed
    /// position, refreshed periodically.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
}

/// The JSON the stats endpoint returns for one pipeline or binding. The
/// first eight fields are those of the seed message processor.
#[derive(Debug, Serialize)]
pub struct StatsSnapshot {
    pub is_running: bool,
    pub current_batch_size: usize,
    pub batch_size_threshold: usize,
    /// Seconds.
    pub batch_timeout: f64,
    pub is_batch_mode: bool,
    pub total_processed: u64,
    pub total_errors: u64,
    /// Seconds since the last message finished processing; null before the
    /// first.
    pub time_since_last_process: Option<f64>,
    pub total_retries: u64,
    pub total_dead_lettered: u64,
    /// Consumer lag per input partition (Kafka inputs only).
    pub consumer_lag: Vec<PartitionLag>,
}

#[derive(Debug, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

impl PipelineStats {
    pub fn new(batch_size_threshold: usize, batch_timeout: Duration) -> Self {
        Self {
            batch_size_threshold,
            batch_timeout,
            running: AtomicBool::new(false),
            current_batch_size: AtomicUsize::new(0),
            total_processed: AtomicU64::new(0),
            total_errors: AtomicU64::new(0),
            total_retries: AtomicU64::new(0),
            total_dead_lettered: AtomicU64::new(0),
            last_processed: Mutex::new(None),
            lag: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    pub fn set_current_batch_size(&self, size: usize) {
        self.current_batch_size.store(size, Ordering::Relaxed);
    }

    /// Counts messages whose processing finished: `succeeded` with outputs
    /// (possibly none), `failed` with a failure.
    pub fn record_processed(&self, succeeded: u64, failed: u64) {
        self.total_processed
            .fetch_add(succeeded + failed, Ordering::Relaxed);
        self.total_errors.fetch_add(failed, Ordering::Relaxed);
        *self
            .last_processed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    pub fn record_retry(&self) {
        self.total_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_dead_lettered(&self) {
        self.total_dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((topic.to_owned(), partition), lag);
    }

    /// Forgets the lag of partitions this host no longer owns; returns
    /// those forgotten.
    pub fn retain_lag(&self, keep: impl Fn(&str, i32) -> bool) -> Vec<(String, i32)> {
        let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<(String, i32)> = lag
            .keys()
            .filter(|(topic, partition)| !keep(topic, *partition))
            .cloned()
            .collect();
        for key in &gone {
            lag.remove(key);
        }
        gone
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let last = *self
            .last_processed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let consumer_lag = self
            .lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((topic, partition), lag)| PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                lag: *lag,
            })
            .collect();
        StatsSnapshot {
            is_running: self.running.load(Ordering::Relaxed),
            current_batch_size: self.current_batch_size.load(Ordering::Relaxed),
            batch_size_threshold: self.batch_size_threshold,
            batch_timeout: self.batch_timeout.as_secs_f64(),
            is_batch_mode: self.batch_size_threshold > 1,
            total_processed: self.total_processed.load(Ordering::Relaxed),
            total_errors: self.total_errors.load(Ordering::Relaxed),
            time_since_last_process: last.map(|at| at.elapsed().as_secs_f64()),
            total_retries: self.total_retries.load(Ordering::Relaxed),
            total_dead_lettered: self.total_dead_lettered.load(Ordering::Relaxed),
            consumer_lag,
        }
    }
}
