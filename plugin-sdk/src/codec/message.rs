//! Decoding: borrowed views of each message of an encoded batch.

use runnel_encoding::MessageView;

pub use runnel_encoding::Headers;

/// One input message, borrowed from the batch: nothing is copied.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    source: &'a str,
    view: MessageView<'a>,
}

impl<'a> Message<'a> {
    pub(crate) fn new(source: &'a str, view: MessageView<'a>) -> Self {
        Self { source, view }
    }

    /// The key, or `None` when the message has no key (which Kafka distinguishes from an
    /// empty key).
    pub fn key(&self) -> Option<&'a [u8]> {
        self.view.key()
    }

    /// The payload.
    pub fn value(&self) -> &'a [u8] {
        self.view.value()
    }

    /// Every header in the order the producer wrote them; a name may repeat.
    pub fn headers(&self) -> Headers<'a> {
        self.view.headers()
    }

    /// The value of the last header called `name` (names are case-sensitive), like Kafka's
    /// `lastHeader`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .rev()
            .find(|(header_name, _)| *header_name == name)
            .map(|(_, value)| value)
    }

    /// The topic the message was read from.
    pub fn topic(&self) -> &'a str {
        self.view.topic()
    }

    /// The Kafka partition, or -1 for inputs without partitions.
    pub fn partition(&self) -> i32 {
        self.view.partition()
    }

    /// The Kafka offset, or -1 for inputs without offsets.
    pub fn offset(&self) -> i64 {
        self.view.offset()
    }

    /// Milliseconds since the Unix epoch, when the input knows it.
    pub fn timestamp(&self) -> Option<i64> {
        self.view.timestamp()
    }

    /// The name of the pipeline input (Kafka consumer or Dapr binding) the message came from.
    pub fn source(&self) -> &'a str {
        self.source
    }
}
