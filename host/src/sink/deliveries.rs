//! The broker's answers to the outputs the producer sends, counted per
//! group of outputs (a batch's, a Dapr request's) rather than awaited one
//! by one: a group costs one allocation and one wake-up however many
//! outputs it holds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use tokio::sync::Notify;

use super::SinkError;
use crate::client_events::ClientEvents;

/// Outputs handed to the producer together, whose acknowledgements are
/// awaited together.
#[derive(Default)]
pub struct DeliveryGroup {
    /// Outputs handed to the producer and not yet answered.
    outstanding: AtomicUsize,
    /// The first output the producer gave up on: its topic and why.
    undelivered: Mutex<Option<(String, KafkaError)>>,
    settled: Notify,
}

impl DeliveryGroup {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Counts an output about to be handed to the producer. Counted before
    /// the hand-over, so that its answer cannot arrive first.
    pub(super) fn expect(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// An output that was counted, and then answered or never sent.
    pub(super) fn answer(&self, undelivered: Option<(String, KafkaError)>) {
        if let Some(undelivered) = undelivered {
            let mut first = self.undelivered.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(undelivered);
        }
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Waits until every output of the group counted so far is answered;
    /// an error names the first one the producer gave up on.
    pub async fn settled(&self) -> Result<(), SinkError> {
        loop {
            // Registered before the count is read: an answer between the
            // two still wakes this waiter.
            let answered = self.settled.notified();
            if self.outstanding.load(Ordering::Acquire) == 0 {
                break;
            }
            answered.await;
        }
        let undelivered = self.undelivered.lock().unwrap_or_else(|e| e.into_inner());
        match &*undelivered {
            None => Ok(()),
            Some((topic, source)) => Err(SinkError::Undelivered {
                topic: topic.clone(),
                source: source.clone(),
            }),
        }
    }
}

/// The output producer's context: the events every Kafka client of the
/// host reports, and each output's answer settled into its group, on the
/// producer's polling thread.
#[derive(Clone)]
pub struct OutputEvents(pub ClientEvents);

impl ClientContext for OutputEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        self.0.log(level, facility, text);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason);
    }
}

impl ProducerContext for OutputEvents {
    type DeliveryOpaque = Arc<DeliveryGroup>;

    fn delivery(&self, result: &DeliveryResult<'_>, group: Arc<DeliveryGroup>) {
        let undelivered = match result {
            Ok(_) => None,
            Err((error, message)) => Some((message.topic().to_owned(), error.clone())),
        };
        group.answer(undelivered);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    #[tokio::test]
    async fn a_group_settles_once_every_output_is_answered() {
        let group = DeliveryGroup::new();
        assert!(group.settled().await.is_ok(), "an empty group is settled");
        group.expect();
        group.expect();
        let waiting = tokio::spawn({
            let group = group.clone();
            async move { group.settled().await }
        });
        group.answer(None);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one output is still unanswered");
        group.answer(None);
        let settled = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(settled.expect("settles").expect("joins").is_ok());
    }

    #[tokio::test]
    async fn a_group_names_the_first_output_given_up_on() {
        let group = DeliveryGroup::new();
        for _ in 0..3 {
            group.expect();
        }
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let purged = KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue);
        group.answer(Some(("first".into(), timed_out)));
        group.answer(None);
        group.answer(Some(("second".into(), purged)));
        let error = group
            .settled()
            .await
            .expect_err("an output was given up on");
        assert!(
            matches!(&error, SinkError::Undelivered { topic, .. } if topic == "first"),
            "{error}"
        );
        // Asked again, it answers the same.
        assert!(group.settled().await.is_err());
    }
}
