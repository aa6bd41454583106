//! Batches: written by the host, read by plugins (and by the host again when it retries part
//! of a batch or dead-letters a message).

use crate::buffer::{
    Buffer, Data, DecodeError, HEADER_RECORD_LEN, PREAMBLE_LEN, Record, RecordWriter, SPAN_LEN,
    Span, Table, check_header_range, check_headers, intern, read_preamble, span_table, to_u32,
    write_header,
};

pub use crate::buffer::Headers;

const MAGIC: [u8; 4] = *b"RNB1";
const MESSAGE_LEN: usize = 48;

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
        let mut buffer = Buffer::with_capacity(source.len() + data_bytes + messages * MESSAGE_LEN);
        let source = buffer.push(source.as_bytes());
        Self {
            buffer,
            source,
            topics: Vec::new(),
            messages: Vec::with_capacity(messages * MESSAGE_LEN),
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
        let mut record = RecordWriter::<MESSAGE_LEN>::new();
        record
            .i64(message.offset)
            .i64(message.timestamp.unwrap_or(-1))
            .i32(message.partition)
            .u32(topic)
            .span(key)
            .span(value)
            .u32(first_header)
            .u32(self.header_count - first_header);
        self.messages.extend_from_slice(&record.finish());
        self.count += 1;
    }

    /// The encoded batch.
    pub fn finish(mut self) -> EncodedBatch {
        let topic_count = to_u32(self.topics.len());
        let topics_at = self.buffer.append_table(&span_table(&self.topics));
        let messages_at = self.buffer.append_table(&self.messages);
        let headers_at = self.buffer.append_table(&self.headers);
        let layout = Layout {
            source: self.source,
            topics: Table::new(topics_at, topic_count, SPAN_LEN),
            messages: Table::new(messages_at, self.count, MESSAGE_LEN),
            headers: Table::new(headers_at, self.header_count, HEADER_RECORD_LEN),
            data_at: PREAMBLE_LEN,
        };
        let bytes = self.buffer.finish(
            MAGIC,
            [
                self.count,
                topic_count,
                self.header_count,
                topics_at,
                messages_at,
                headers_at,
                PREAMBLE_LEN as u32,
                self.source.offset,
                self.source.length,
            ],
        );
        EncodedBatch { bytes, layout }
    }
}

/// Where the parts of a checked batch are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    source: Span,
    topics: Table,
    messages: Table,
    headers: Table,
    data_at: usize,
}

impl Layout {
    /// Checks every table, span and string of `buffer` once.
    fn parse(buffer: &[u8]) -> Result<Self, DecodeError> {
        let [
            count,
            topic_count,
            header_count,
            topics_at,
            messages_at,
            headers_at,
            data_at,
            source_offset,
            source_length,
        ] = read_preamble(buffer, MAGIC, "the batch")?;
        let topics = Table::parse(buffer, topics_at, topic_count, SPAN_LEN, "topics")?;
        let messages = Table::parse(buffer, messages_at, count, MESSAGE_LEN, "messages")?;
        let headers = Table::parse(
            buffer,
            headers_at,
            header_count,
            HEADER_RECORD_LEN,
            "headers",
        )?;
        let data = Data::parse(buffer, data_at)?;
        let source = Span {
            offset: source_offset,
            length: source_length,
        };
        data.check_str(source, || "the source".into())?;
        for index in 0..topics.len() {
            let span = topics.record(buffer, index).span(0);
            data.check_str(span, || format!("topic {index}"))?;
        }
        check_headers(buffer, headers, data)?;
        for index in 0..messages.len() {
            let record = messages.record(buffer, index);
            let topic = record.u32(20);
            if topic as usize >= topics.len() {
                return Err(DecodeError::new(format!(
                    "message {index} names topic {topic} of {}",
                    topics.len()
                )));
            }
            data.check_key(record.span(24), || format!("the key of message {index}"))?;
            data.check(record.span(32), || format!("the value of message {index}"))?;
            check_header_range(record.u32(40), record.u32(44), headers, || {
                format!("message {index}")
            })?;
        }
        Ok(Self {
            source,
            topics,
            messages,
            headers,
            data_at: data_at as usize,
        })
    }
}

/// An encoded batch that owns its bytes: what the host sends to plugins.
#[derive(Clone)]
pub struct EncodedBatch {
    bytes: Vec<u8>,
    layout: Layout,
}

impl EncodedBatch {
    /// Checks `bytes` against the encoding.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        let layout = Layout::parse(&bytes)?;
        Ok(Self { bytes, layout })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            buffer: &self.bytes,
            layout: self.layout,
        }
    }

    pub fn len(&self) -> usize {
        self.view().len()
    }

    pub fn is_empty(&self) -> bool {
        self.view().is_empty()
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
    buffer: &'a [u8],
    layout: Layout,
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
    batch: BatchView<'a>,
    record: Record<'a>,
}

impl<'a> MessageView<'a> {
    pub fn topic(&self) -> &'a str {
        let index = self.record.u32(20) as usize;
        let span = self
            .batch
            .layout
            .topics
            .record(self.batch.buffer, index)
            .span(0);
        self.batch.data().get_str(span)
    }

    /// -1 for inputs without partitions.
    pub fn partition(&self) -> i32 {
        self.record.i32(16)
    }

    /// -1 for inputs without offsets.
    pub fn offset(&self) -> i64 {
        self.record.i64(0)
    }

    /// Milliseconds since the Unix epoch, when known.
    pub fn timestamp(&self) -> Option<i64> {
        Some(self.record.i64(8)).filter(|&millis| millis != -1)
    }

    /// `None` when the message has no key, which differs from an empty key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.batch.data().get_key(self.record.span(24))
    }

    pub fn value(&self) -> &'a [u8] {
        self.batch.data().get(self.record.span(32))
    }

    /// The headers in the order the producer wrote them; a name may repeat.
    pub fn headers(&self) -> Headers<'a> {
        let batch = &self.batch;
        Headers::new(
            batch.buffer,
            batch.layout.headers,
            batch.data(),
            self.record.u32(40),
            self.record.u32(44),
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
        let layout = Layout::parse(buffer)?;
        Ok(Self { buffer, layout })
    }

    pub fn len(&self) -> usize {
        self.layout.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name of the pipeline input the batch came from.
    pub fn source(&self) -> &'a str {
        self.data().get_str(self.layout.source)
    }

    /// Message `index`, which must be below [`BatchView::len`].
    pub fn message(&self, index: usize) -> MessageView<'a> {
        MessageView {
            batch: *self,
            record: self.layout.messages.record(self.buffer, index),
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

    fn data(&self) -> Data<'a> {
        Data::new(&self.buffer[self.layout.data_at..])
    }
}
