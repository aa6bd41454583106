//! What librdkafka reports about a Kafka client: its log lines and its
//! errors (a broker down, a connection lost, a coordinator moved).
//! librdkafka recovers from these by itself, so the host only makes them
//! visible: each error is counted in `runnel_kafka_client_errors_total`, and
//! the log gets the first report of a kind at once and then at most one
//! line per kind every [`SUMMARY_INTERVAL`], saying how many were held
//! back. An outage of any length, with any number of pipelines, costs a
//! bounded number of log lines.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use crate::metrics::Metrics;

/// The shortest time between two log lines of one kind. librdkafka repeats
/// a broker-down error about every 100 ms per client during an outage; a
/// line every half minute says it is still happening without burying the
/// rest of the log.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// Decides, per kind of report, whether a line is written now.
pub struct LogLimiter {
    interval: Duration,
    kinds: Mutex<HashMap<String, Seen>>,
}

struct Seen {
    logged_at: Instant,
    held_back: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The limiter every log line of the process goes through: the log is
    /// the process's, so its budget is too.
    pub fn global() -> &'static LogLimiter {
        static GLOBAL: LazyLock<LogLimiter> = LazyLock::new(|| LogLimiter::new(SUMMARY_INTERVAL));
        &GLOBAL
    }

    /// `Some(n)` when a line of `kind` may be written now, `n` being how
    /// many reports of that kind were held back since the last line; `None`
    /// when this report is to be held back.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: &str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        match kinds.get_mut(kind) {
            Some(seen) if now.duration_since(seen.logged_at) < self.interval => {
                seen.held_back += 1;
                None
            }
            Some(seen) => {
                let held_back = std::mem::take(&mut seen.held_back);
                seen.logged_at = now;
                Some(held_back)
            }
            None => {
                kinds.insert(
                    kind.to_owned(),
                    Seen {
                        logged_at: now,
                        held_back: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

/// The librdkafka context of the host's producers, and the part of the
/// consumers' context that reports: logs and errors, rate-limited and
/// counted.
#[derive(Clone)]
pub struct ClientEvents {
    /// `consumer`, `producer` or `transactional_producer`.
    client: &'static str,
    /// The pipeline the client serves; empty for the shared producer.
    pipeline: String,
    metrics: Metrics,
}

impl ClientEvents {
    pub fn new(client: &'static str, pipeline: &str, metrics: Metrics) -> Self {
        Self {
            client,
            pipeline: pipeline.to_owned(),
            metrics,
        }
    }

    pub fn report_log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        let (client, pipeline) = (self.client, self.pipeline.as_str());
        let serious = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => true,
            RDKafkaLogLevel::Warning => false,
            _ => {
                tracing::debug!(client, pipeline, facility, "{text}");
                return;
            }
        };
        let Some(held_back) = LogLimiter::global().admit(&format!("log:{facility}")) else {
            return;
        };
        if serious {
            tracing::error!(client, pipeline, facility, held_back, "{text}");
        } else {
            tracing::warn!(client, pipeline, facility, held_back, "{text}");
        }
    }

    pub fn report_error(&self, error: KafkaError, reason: &str) {
        let code = error
            .rdkafka_error_code()
            .map_or_else(|| "unknown".to_owned(), |code| format!("{code:?}"));
        self.metrics
            .record_kafka_client_error(self.client, &self.pipeline, &code);
        let Some(held_back) = LogLimiter::global().admit(&format!("error:{code}")) else {
            return;
        };
        let (client, pipeline) = (self.client, self.pipeline.as_str());
        tracing::warn!(client, pipeline, %error, reason, held_back, "kafka client error");
    }
}

impl ClientContext for ClientEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        self.report_log(level, facility, text);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.report_error(error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_of_a_kind_passes_then_one_per_interval_with_the_count_held_back() {
        let limiter = LogLimiter::new(Duration::from_secs(30));
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        assert_eq!(limiter.admit_at("down", at(0)), Some(0));
        assert_eq!(limiter.admit_at("down", at(1)), None);
        assert_eq!(limiter.admit_at("down", at(29)), None);
        assert_eq!(
            limiter.admit_at("other", at(29)),
            Some(0),
            "kinds are apart"
        );
        assert_eq!(limiter.admit_at("down", at(30)), Some(2));
        assert_eq!(limiter.admit_at("down", at(31)), None);
        assert_eq!(limiter.admit_at("down", at(90)), Some(1));

        // Ten minutes of a report every 100 ms: one line per interval.
        let limiter = LogLimiter::new(Duration::from_secs(30));
        let lines = (0..6000u64)
            .filter(|tenth| {
                limiter
                    .admit_at("down", start + Duration::from_millis(100 * tenth))
                    .is_some()
            })
            .count();
        assert_eq!(lines, 20);
    }
}
