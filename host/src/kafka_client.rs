//! The one place every Kafka client of the host starts from: the pipelines'
//! consumers and producers, the transactional producers, the admin client,
//! the plugin store's reader and writer, and the commands that reach Kafka.
//! Each gets, in this order, the bootstrap servers, the defaults of its
//! kind, `[kafka.client]`, and the secrets read from files or the
//! environment; its caller then adds the options of its kind
//! (`[kafka.consumer]`, a pipeline's) and those the host owns.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientConfig, bindings};

use crate::config::KafkaConfig;

impl KafkaConfig {
    /// A client configuration for the cluster: the bootstrap servers,
    /// `defaults`, the options of `[kafka.client]`, and the secrets.
    pub fn client_config<'a>(
        &self,
        defaults: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(key, value);
        }
        for (key, value) in &self.client {
            config.set(key, value);
        }
        for (key, value) in self.secrets.options() {
            config.set(key, value);
        }
        config
    }
}

/// Blocks until the brokers have answered every record handed to the
/// producer behind `client` and its delivery callbacks have run, for at
/// most `timeout`; an error if some were still unanswered then.
///
/// rust-rdkafka's `flush` first polls the producer's event queue until 100
/// ms have passed (or the timeout, if shorter), however early the answers
/// come: every caller waited that long with anything outstanding.
/// librdkafka's own flush waits on a condition, sends what lingers at once,
/// and serves the delivery callbacks itself alongside a `ThreadedProducer`'s
/// polling thread (a record is counted outstanding until its callback has
/// returned).
pub fn flush<C: ClientContext>(client: &Client<C>, timeout: Duration) -> KafkaResult<()> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `client` is a live producer handle, which outlives the call,
    // and librdkafka allows a flush from any thread.
    #[allow(unsafe_code)]
    let answer = unsafe { bindings::rd_kafka_flush(client.native_ptr(), timeout_ms) };
    match answer {
        bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
        other => Err(KafkaError::Flush(RDKafkaErrorCode::from(other))),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, KafkaSecrets};

    #[test]
    fn client_options_come_over_the_defaults_and_the_secrets_over_both() {
        let mut config = Config::parse(
            r#"
            [kafka]
            brokers = "b:9093"
            [kafka.client]
            "security.protocol" = "SASL_SSL"
            "sasl.mechanism" = "SCRAM-SHA-512"
            "sasl.username" = "runnel"
            "sasl.password" = "in-the-file"
            "reconnect.backoff.max.ms" = "500"
            "#,
            &[],
        )
        .unwrap();
        config.kafka.sasl_password_file = Some("unused".into());
        config.kafka.secrets =
            KafkaSecrets::read(&config.kafka, |_| Some("from-env".into())).unwrap();
        let client = config
            .kafka
            .client_config([("reconnect.backoff.max.ms", "1000"), ("linger.ms", "5")]);
        assert_eq!(client.get("bootstrap.servers"), Some("b:9093"));
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("reconnect.backoff.max.ms"), Some("500"));
        assert_eq!(client.get("linger.ms"), Some("5"));
        assert_eq!(client.get("sasl.password"), Some("from-env"));
    }

    #[test]
    fn options_the_host_owns_are_refused_in_the_client_table() {
        let error = Config::parse("[kafka.client]\n\"enable.idempotence\" = \"false\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("kafka.client"), "{error}");
    }
}
