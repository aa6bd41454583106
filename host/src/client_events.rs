//! What librdkafka reports about a Kafka client: its log lines and its
//! errors (a broker down, a connection lost, a coordinator moved).
//! librdkafka recovers from these by itself, so the host only makes them
//! visible: each error is counted in `runnel_kafka_client_errors_total`, and
//! the log gets the first report of a kind at once and then at most one
//! line per kind every [`SUMMARY_INTERVAL`], saying how many were held
//! back. An outage of any length, with any number of pipelines, costs a
//! bounded number of log lines. A failure that retrying cannot mend (the
//! brokers refused the credentials, their certificate is not trusted) is
//! logged as an error that names its cause and the settings to check, and
//! is kept for readiness to report ([`last_failure`]).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::metrics::Metrics;

/// A cause kept for readiness is stale after this long without a repeat:
/// librdkafka reports a refused connection again at every retry (well
/// under a second apart with the host's `reconnect.backoff.max.ms`).
const CAUSE_FRESH_FOR: Duration = Duration::from_secs(30);

/// A failure that configuration, not time, has to mend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionFailure {
    /// The brokers refused the SASL credentials.
    AuthenticationFailed,
    /// The brokers' TLS certificate was not signed by a trusted CA.
    CertificateNotTrusted,
    /// The TLS handshake failed for another reason.
    TlsFailed,
}

impl ConnectionFailure {
    /// The kind of `error`, whose librdkafka text is `reason`, if it is one.
    pub fn of(error: &KafkaError, reason: &str) -> Option<Self> {
        match error.rdkafka_error_code()? {
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
                Some(Self::AuthenticationFailed)
            }
            RDKafkaErrorCode::SSL if reason.contains("certificate verify failed") => {
                Some(Self::CertificateNotTrusted)
            }
            RDKafkaErrorCode::SSL => Some(Self::TlsFailed),
            _ => None,
        }
    }

    /// What happened and what to check, in one sentence.
    pub fn message(self) -> &'static str {
        match self {
            Self::AuthenticationFailed => {
                "kafka authentication failed: the brokers refused the SASL credentials; check \
                 sasl.mechanism, sasl.username and the password (kafka.sasl_password_file or \
                 RUNNEL_KAFKA_SASL_PASSWORD)"
            }
            Self::CertificateNotTrusted => {
                "kafka broker certificate not trusted: it is not signed by a CA the host \
                 trusts; check ssl.ca.location"
            }
            Self::TlsFailed => {
                "kafka TLS handshake failed; check security.protocol and the ssl.* options"
            }
        }
    }
}

/// The connection failure reported last, if it is recent: readiness says
/// it rather than only that no broker answers.
pub fn last_failure() -> Option<ConnectionFailure> {
    let last = lock_last_failure();
    last.filter(|(_, at)| at.elapsed() < CAUSE_FRESH_FOR)
        .map(|(failure, _)| failure)
}

/// Forgets the last connection failure: a broker answered.
pub fn clear_last_failure() {
    *lock_last_failure() = None;
}

static LAST_FAILURE: Mutex<Option<(ConnectionFailure, Instant)>> = Mutex::new(None);

fn lock_last_failure() -> std::sync::MutexGuard<'static, Option<(ConnectionFailure, Instant)>> {
    LAST_FAILURE.lock().unwrap_or_else(|e| e.into_inner())
}

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
        // A broker connection's failure (`FAIL`) reaches the error callback
        // too, which logs it, with its cause when it has one.
        if facility == "FAIL" {
            tracing::debug!(client, pipeline, facility, "{text}");
            return;
        }
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
        let failure = ConnectionFailure::of(&error, reason);
        if let Some(failure) = failure {
            *lock_last_failure() = Some((failure, Instant::now()));
        }
        // Every broker refusing the host is the failure already said, not
        // news of its own.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
            && last_failure().is_some()
        {
            tracing::debug!(client = self.client, pipeline = %self.pipeline, %error, reason, "kafka client error");
            return;
        }
        let Some(held_back) = LogLimiter::global().admit(&format!("error:{code}")) else {
            return;
        };
        let (client, pipeline) = (self.client, self.pipeline.as_str());
        match failure {
            Some(failure) => {
                tracing::error!(client, pipeline, %error, reason, held_back, "{}", failure.message());
            }
            None => {
                tracing::warn!(client, pipeline, %error, reason, held_back, "kafka client error")
            }
        }
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
    fn refused_credentials_and_untrusted_certificates_are_named() {
        let failure = |code, reason| ConnectionFailure::of(&KafkaError::Global(code), reason);
        assert_eq!(
            failure(
                RDKafkaErrorCode::Authentication,
                "SASL authentication error: Authentication failed during authentication due to invalid credentials"
            ),
            Some(ConnectionFailure::AuthenticationFailed)
        );
        assert_eq!(
            failure(
                RDKafkaErrorCode::SSL,
                "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
            ),
            Some(ConnectionFailure::CertificateNotTrusted)
        );
        assert_eq!(
            failure(
                RDKafkaErrorCode::SSL,
                "SSL handshake failed: wrong version number"
            ),
            Some(ConnectionFailure::TlsFailed)
        );
        assert_eq!(
            failure(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down"),
            None
        );
        assert!(
            ConnectionFailure::AuthenticationFailed
                .message()
                .starts_with("kafka authentication failed")
        );
        assert!(
            ConnectionFailure::CertificateNotTrusted
                .message()
                .starts_with("kafka broker certificate not trusted")
        );
    }

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
