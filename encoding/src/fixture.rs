//! Batches for tests and benchmarks, built one way everywhere: messages that differ only in key
//! and value. Behind the `fixture` feature, so that plugins do not carry it.

use crate::{BatchWriter, EncodedBatch, NewMessage};

/// The timestamp of a fixture's first message, in milliseconds since the Unix epoch (November
/// 2023); each next message is one millisecond later.
pub const FIRST_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// Messages on one topic and partition 0, with offsets counting from 0 and timestamps from
/// [`FIRST_TIMESTAMP_MS`], each with the same headers.
#[derive(Debug, Clone, Copy)]
pub struct BatchFixture<'a> {
    /// The pipeline input the batch came from.
    pub source: &'a str,
    pub topic: &'a str,
    /// The headers of every message, in this order.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl BatchFixture<'_> {
    /// A batch of one message per `(key, value)`, in order; a `None` key is no key at all.
    pub fn build<K, V>(&self, messages: impl IntoIterator<Item = (Option<K>, V)>) -> EncodedBatch
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut writer = BatchWriter::new(self.source);
        for (index, (key, value)) in messages.into_iter().enumerate() {
            let message = NewMessage {
                topic: self.topic,
                partition: 0,
                offset: index as i64,
                timestamp: Some(FIRST_TIMESTAMP_MS + index as i64),
                key: key.as_ref().map(AsRef::as_ref),
                value: value.as_ref(),
            };
            writer.push(&message, self.headers.iter().copied());
        }
        writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_batch_holds_what_it_describes() {
        let fixture = BatchFixture {
            source: "src",
            topic: "in",
            headers: &[("trace", b"abc")],
        };
        let batch = fixture.build([(Some("k0"), "first"), (None, "second")]);
        let view = batch.view();
        assert_eq!((view.source(), view.len()), ("src", 2));
        for (index, message) in view.messages().enumerate() {
            assert_eq!(message.topic(), "in");
            assert_eq!(message.partition(), 0);
            assert_eq!(message.offset(), index as i64);
            assert_eq!(message.timestamp(), Some(FIRST_TIMESTAMP_MS + index as i64));
            assert_eq!(
                message.headers().collect::<Vec<_>>(),
                [("trace", &b"abc"[..])]
            );
        }
        let second = view.message(1);
        assert_eq!((second.key(), second.value()), (None, &b"second"[..]));
        assert_eq!(view.message(0).key(), Some(&b"k0"[..]));
    }
}
