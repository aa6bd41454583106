//! Batches: written by the host, read by plugins (and by the host again when it retries part
//! of a batch or dead-letters a message).

use crate::buffer::{
    Buffer, DecodeError, Record, RecordWriter, Span, Table, check_header_range, intern,
    read_preamble, to_u32, topic_table, write_header,
};
use crate::layout::{batch_header, header, message, preamble, topic};
use crate::text::{Bytes, CheckedBuffer};

pub use crate::buffer::Headers;

/// The fields of a message to append to a batch.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub topic: &'a str,
    /// -1 for inputs without partitions.
    pub partition: i32,
    /// -1 for inputs without offsets.
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Encodes messages into a batch, one at a time.
pub struct BatchWriter {
    buffer: Buffer,
    source: Span,
    topics: Vec<Span>,
    messages: Vec<u8>,
    headers: Vec<u8>,
    count: u32,
    header_count: u32,
}

impl BatchWriter {
    pub fn new(source: &str) -> Self {
        Self::with_capacity(source, 0, 0)
    }

    /// A writer sized for `messages` messages with `data_bytes` bytes of keys, values and
    /// headers in all.
    pub fn with_capacity(source: &str, messages: usize, data_bytes: usize) -> Self {
        // Room for the message table too, which is appended after the data
        // when the batch is done.
        let mut buffer = Buffer::with_capacity(source.len() + data_bytes + messages * message::LEN);
        let source = buffer.push(source.as_bytes());
        Self {
            buffer,
            source,
            topics: Vec::new(),
            messages: Vec::with_capacity(messages * message::LEN),
            headers: Vec::new(),
            count: 0,
            header_count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends one message with its headers.
    pub fn push<'h>(
        &mut self,
        message: &NewMessage<'_>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let topic = intern(&mut self.buffer, &mut self.topics, message.topic);
        let key = match message.key {
            Some(key) => self.buffer.push(key),
            None => Span::NO_KEY,
        };
        let value = self.buffer.push(message.value);
        let first_header = self.header_count;
        for (name, value) in headers {
            let name = self.buffer.push(name.as_bytes());
            let value = self.buffer.push(value);
            write_header(&mut self.headers, name, value);
            self.header_count += 1;
        }
        let mut record = RecordWriter::<{ message::LEN }>::new();
        record
            .set(message::OFFSET, message.offset)
            .set(message::TIMESTAMP, message.timestamp.unwrap_or(-1))
            .set(message::PARTITION, message.partition)
            .set(message::TOPIC, topic)
            .set(message::KEY, key)
            .set(message::VALUE, value)
            .set(message::FIRST_HEADER, first_header)
            .set(message::HEADER_COUNT, self.header_count - first_header);
        self.messages.extend_from_slice(&record.finish());
        self.count += 1;
    }

    /// The encoded batch.
    pub fn finish(mut self) -> EncodedBatch {
        let topic_count = to_u32(self.topics.len());
        let topics_at = self.buffer.append_table(&topic_table(&self.topics));
        let messages_at = self.buffer.append_table(&self.messages);
        let headers_at = self.buffer.append_table(&self.headers);
        let mut fields = RecordWriter::<{ preamble::LEN }>::new();
        fields
            .set(preamble::MAGIC, batch_header::MAGIC)
            .set(batch_header::COUNT, self.count)
            .set(batch_header::TOPIC_COUNT, topic_count)
            .set(batch_header::HEADER_COUNT, self.header_count)
            .set(batch_header::TOPICS_AT, topics_at)
            .set(batch_header::MESSAGES_AT, messages_at)
            .set(batch_header::HEADERS_AT, headers_at)
            .set(batch_header::DATA_AT, preamble::LEN as u32)
            .set(batch_header::SOURCE, self.source);
        let parts = Parts {
            source: self.source,
            data_at: preamble::LEN as u32,
            topics: Table::new(topics_at, topic_count, topic::LEN),
            messages: Table::new(messages_at, self.count, message::LEN),
            headers: Table::new(headers_at, self.header_count, header::LEN),
        };
        let buffer = parts
            .check_text(self.buffer.finish(fields.finish()))
            .expect("a batch written from `&str` names holds only text");
        EncodedBatch {
            buffer,
            messages: parts.messages,
        }
    }
}

/// Where the parts of a batch are, as its header says.
struct Parts {
    source: Span,
    data_at: u32,
    topics: Table,
    messages: Table,
    headers: Table,
}

impl Parts {
    /// Reads the header of `buffer` and checks that every table lies inside it.
    fn read(buffer: &[u8]) -> Result<Self, DecodeError> {
        let fields = read_preamble(buffer, batch_header::MAGIC, "the batch")?;
        let count = fields.get(batch_header::COUNT);
        let topic_count = fields.get(batch_header::TOPIC_COUNT);
        let header_count = fields.get(batch_header::HEADER_COUNT);
        let topics_at = fields.get(batch_header::TOPICS_AT);
        let messages_at = fields.get(batch_header::MESSAGES_AT);
        let headers_at = fields.get(batch_header::HEADERS_AT);
        Ok(Self {
            source: fields.get(batch_header::SOURCE),
            data_at: fields.get(batch_header::DATA_AT),
            topics: Table::parse(buffer, topics_at, topic_count, topic::LEN, "topics")?,
            messages: Table::parse(buffer, messages_at, count, message::LEN, "messages")?,
            headers: Table::parse(buffer, headers_at, header_count, header::LEN, "headers")?,
        })
    }

    /// Checks the source, the topic names and the headers of `bytes`, which these parts
    /// describe.
    fn check_text<B: Bytes>(&self, bytes: B) -> Result<CheckedBuffer<B>, DecodeError> {
        let mut buffer = CheckedBuffer::new(bytes, self.data_at)?;
        buffer.check_source(self.source)?;
        buffer.check_topics(self.topics, |index| format!("topic {index}"))?;
        buffer.check_headers(self.headers)?;
        Ok(buffer)
    }
}

/// Checks `bytes` as a batch: every table, span and string, once. Returns them with the
/// table of messages.
fn parse<B: Bytes>(bytes: B) -> Result<(CheckedBuffer<B>, Table), DecodeError> {
    let parts = Parts::read(&bytes)?;
    let buffer = parts.check_text(bytes)?;
    check_messages(
        buffer.borrow(),
        parts.messages,
        parts.topics.len(),
        parts.headers.len(),
    )?;
    Ok((buffer, parts.messages))
}

/// Checks that every message names a topic and headers that exist, and a key and a value
/// inside the data area.
fn check_messages(
    buffer: CheckedBuffer<&[u8]>,
    messages: Table,
    topic_count: usize,
    header_count: usize,
) -> Result<(), DecodeError> {
    let data = buffer.data();
    for index in 0..messages.len() {
        let record = messages.record(buffer.bytes(), index);
        let topic = record.get(message::TOPIC);
        if topic as usize >= topic_count {
            return Err(DecodeError::new(format!(
                "message {index} names topic {topic} of {topic_count}"
            )));
        }
        data.check_key(record.get(message::KEY), || {
            format!("the key of message {index}")
        })?;
        data.check(record.get(message::VALUE), || {
            format!("the value of message {index}")
        })?;
        check_header_range(
            record.get(message::FIRST_HEADER),
            record.get(message::HEADER_COUNT),
            header_count,
            || format!("message {index}"),
        )?;
    }
    Ok(())
}

/// An encoded batch that owns its bytes: what the host sends to plugins.
#[derive(Clone)]
pub struct EncodedBatch {
    buffer: CheckedBuffer<Vec<u8>>,
    messages: Table,
}

impl EncodedBatch {
    /// Checks `bytes` against the encoding.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        let (buffer, messages) = parse(bytes)?;
        Ok(Self { buffer, messages })
    }

    pub fn bytes(&self) -> &[u8] {
        self.buffer.borrow().bytes()
    }

    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            buffer: self.buffer.borrow(),
            messages: self.messages,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for EncodedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

/// A batch checked against the encoding: reading it cannot fail or go out of bounds.
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    buffer: CheckedBuffer<&'a [u8]>,
    messages: Table,
}

impl std::fmt::Debug for BatchView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchView")
            .field("source", &self.source())
            .field("messages", &self.len())
            .finish_non_exhaustive()
    }
}

/// One message of a batch, borrowed from it. Fields are read when asked for, so a handler
/// pays only for what it looks at.
#[derive(Clone, Copy)]
pub struct MessageView<'a> {
    buffer: CheckedBuffer<&'a [u8]>,
    record: Record<'a>,
}

impl<'a> MessageView<'a> {
    pub fn topic(&self) -> &'a str {
        self.buffer.topic(self.record.get(message::TOPIC) as usize)
    }

    /// -1 for inputs without partitions.
    pub fn partition(&self) -> i32 {
        self.record.get(message::PARTITION)
    }

    /// -1 for inputs without offsets.
    pub fn offset(&self) -> i64 {
        self.record.get(message::OFFSET)
    }

    /// Milliseconds since the Unix epoch, when known.
    pub fn timestamp(&self) -> Option<i64> {
        Some(self.record.get(message::TIMESTAMP)).filter(|&millis| millis != -1)
    }

    /// `None` when the message has no key, which differs from an empty key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.buffer.data().get_key(self.record.get(message::KEY))
    }

    pub fn value(&self) -> &'a [u8] {
        self.buffer.data().get(self.record.get(message::VALUE))
    }

    /// The headers in the order the producer wrote them; a name may repeat.
    pub fn headers(&self) -> Headers<'a> {
        Headers::new(
            self.buffer,
            self.record.get(message::FIRST_HEADER),
            self.record.get(message::HEADER_COUNT),
        )
    }
}

impl std::fmt::Debug for MessageView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("timestamp", &self.timestamp())
            .field("key", &self.key())
            .field("value", &self.value())
            .field("headers", &self.headers())
            .finish()
    }
}

impl<'a> BatchView<'a> {
    /// Checks every table, span and string of `buffer` once.
    pub fn parse(buffer: &'a [u8]) -> Result<Self, DecodeError> {
        let (buffer, messages) = parse(buffer)?;
        Ok(Self { buffer, messages })
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name of the pipeline input the batch came from.
    pub fn source(&self) -> &'a str {
        self.buffer.source()
    }

    /// Message `index`, which must be below [`BatchView::len`].
    pub fn message(&self, index: usize) -> MessageView<'a> {
        MessageView {
            buffer: self.buffer,
            record: self.messages.record(self.buffer.bytes(), index),
        }
    }

    /// Every message, in batch order.
    pub fn messages(&self) -> impl ExactSizeIterator<Item = MessageView<'a>> + '_ {
        (0..self.len()).map(|index| self.message(index))
    }

    /// A new batch of the messages at `indices`, in that order, from the same source.
    pub fn select(&self, indices: &[usize]) -> EncodedBatch {
        let mut writer = BatchWriter::with_capacity(self.source(), indices.len(), 0);
        for &index in indices {
            let message = self.message(index);
            writer.push(
                &NewMessage {
                    topic: message.topic(),
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp: message.timestamp(),
                    key: message.key(),
                    value: message.value(),
                },
                message.headers(),
            );
        }
        writer.finish()
    }
}
