//! The dead-letter topic: where a message that failed for good goes,
//! untouched, with headers saying why.

use crate::failure::MessageFailure;
use crate::runtime::MessageView;
use crate::sink::headers;
use crate::sink::{OutputBatch, PendingDelivery, SinkError};

/// A pipeline's dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    topic: String,
}

/// The plugin a message failed in.
pub struct FailedIn<'a> {
    pub plugin: &'a str,
    pub version: &'a str,
}

impl DeadLetters {
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
        }
    }

    /// Hands `message` to `outputs` for the dead-letter topic: its key,
    /// value and headers as they came in, plus the reason and where it was
    /// read from. `runnel-` headers it came in with (it may be a dead letter
    /// replayed) give way to this failure's.
    pub async fn send(
        &self,
        outputs: &OutputBatch<'_>,
        message: &MessageView<'_>,
        failure: &MessageFailure,
        failed_in: FailedIn<'_>,
    ) -> Result<PendingDelivery, SinkError> {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts = failure.attempts.to_string();
        let why = [
            (headers::ERROR, failure.message.as_bytes()),
            (headers::ERROR_KIND, failure.kind.as_str().as_bytes()),
            (headers::PLUGIN, failed_in.plugin.as_bytes()),
            (headers::PLUGIN_VERSION, failed_in.version.as_bytes()),
            (headers::SOURCE_TOPIC, message.topic().as_bytes()),
            (headers::SOURCE_PARTITION, partition.as_bytes()),
            (headers::SOURCE_OFFSET, offset.as_bytes()),
            (headers::ATTEMPTS, attempts.as_bytes()),
        ];
        outputs
            .send(
                &self.topic,
                message.key(),
                message.value(),
                headers::without_host_headers(message.headers()).chain(why),
            )
            .await
    }
}
