//! Answers: written by plugins, read by the host. The host trusts nothing in an answer until
//! [`EncodedOutcomes::parse`] has checked all of it.

use crate::FailureKind;
use crate::buffer::{
    Buffer, Data, DecodeError, HEADER_RECORD_LEN, PREAMBLE_LEN, Record, RecordWriter, SPAN_LEN,
    Span, Table, check_header_range, check_headers, intern, read_preamble, span_table, to_u32,
    write_header,
};

use crate::buffer::Headers;

const MAGIC: [u8; 4] = *b"RNO1";
const OUTCOME_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

const SUCCEEDED: u32 = 0;
const TRANSIENT: u32 = 1;
const PERMANENT: u32 = 2;

/// Encodes the outcome of each message of a batch, in order: its outputs, or its failure.
///
/// Outputs are appended whole by [`OutcomesWriter::send`] (default topic, no key, no headers);
/// the `set_*` and `add_header` methods only change the last output, so the answer is
/// well-formed at every step.
pub struct OutcomesWriter {
    buffer: Buffer,
    topics: Vec<Span>,
    outcomes: Vec<u8>,
    outputs: Vec<u8>,
    headers: Vec<u8>,
    count: u32,
    output_count: u32,
    header_count: u32,
    /// What the writer held when the current message started, to roll back to on failure.
    message_start: Mark,
}

#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    data_len: usize,
    topics: usize,
    output_count: u32,
    header_count: u32,
}

impl OutcomesWriter {
    /// A writer sized for `messages` messages with about `data_bytes` bytes of output keys,
    /// values and headers.
    pub fn with_capacity(messages: usize, data_bytes: usize) -> Self {
        let mut writer = Self {
            buffer: Buffer::empty(),
            topics: Vec::new(),
            outcomes: Vec::new(),
            outputs: Vec::new(),
            headers: Vec::new(),
            count: 0,
            output_count: 0,
            header_count: 0,
            message_start: Mark::default(),
        };
        writer.begin(messages, data_bytes);
        writer
    }

    /// Starts a new answer after [`OutcomesWriter::finish`], keeping the memory of the tables:
    /// a plugin keeps one writer for all its batches.
    pub fn begin(&mut self, messages: usize, data_bytes: usize) {
        // Room for the tables too, which are appended after the data when the answer is done.
        let tables = messages * (OUTCOME_LEN + OUTPUT_LEN);
        self.buffer = Buffer::with_capacity(data_bytes + tables);
        self.topics.clear();
        self.outcomes.clear();
        self.outcomes.reserve(messages * OUTCOME_LEN);
        self.outputs.clear();
        self.outputs.reserve(messages * OUTPUT_LEN);
        self.headers.clear();
        self.count = 0;
        self.output_count = 0;
        self.header_count = 0;
        self.message_start = Mark::default();
    }

    /// Messages whose outcome is written.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends an output of the current message: `value`, to the default topic, without key
    /// or headers.
    pub fn send(&mut self, value: &[u8]) {
        let value = self.buffer.push(value);
        let mut record = RecordWriter::<OUTPUT_LEN>::new();
        // Default topic, no key, no headers yet; the last field is reserved.
        record
            .u32(0)
            .span(Span::NO_KEY)
            .span(value)
            .u32(self.header_count)
            .u32(0);
        self.outputs.extend_from_slice(&record.finish());
        self.output_count += 1;
    }

    /// Sets the key of the last output; `None` means no key. Panics if the current message has
    /// no output yet.
    pub fn set_key(&mut self, key: Option<&[u8]>) {
        let span = match key {
            Some(key) => self.buffer.push(key),
            None => Span::NO_KEY,
        };
        let record = self.last_output();
        record[4..12].copy_from_slice(&RecordWriter::<SPAN_LEN>::new().span(span).finish());
    }

    /// Adds a header to the last output. Panics if the current message has no output yet.
    pub fn add_header(&mut self, name: &str, value: &[u8]) {
        let name = self.buffer.push(name.as_bytes());
        let value = self.buffer.push(value);
        write_header(&mut self.headers, name, value);
        self.header_count += 1;
        let record = self.last_output();
        let count = u32::from_le_bytes([record[24], record[25], record[26], record[27]]);
        record[24..28].copy_from_slice(&(count + 1).to_le_bytes());
    }

    /// The value of the last output, to change in place. Panics if the current message has no
    /// output yet.
    pub fn last_value_mut(&mut self) -> &mut [u8] {
        let record = self.last_output();
        let value = Record(record).span(12);
        self.buffer.data_mut(value)
    }

    /// Sends the last output to `topic` instead of the default output topic. Panics if the
    /// current message has no output yet.
    pub fn set_topic(&mut self, topic: &str) {
        let number = intern(&mut self.buffer, &mut self.topics, topic) + 1;
        self.last_output()[0..4].copy_from_slice(&number.to_le_bytes());
    }

    /// Ends the current message: keeps its outputs, or on failure discards them and records
    /// the failure instead.
    pub fn finish_message(&mut self, failure: Option<(FailureKind, &str)>) {
        let (kind, message) = match failure {
            None => (
                SUCCEEDED,
                Span {
                    offset: 0,
                    length: 0,
                },
            ),
            Some((kind, message)) => {
                self.roll_back_message();
                let kind = match kind {
                    FailureKind::Transient => TRANSIENT,
                    FailureKind::Permanent => PERMANENT,
                };
                (kind, self.buffer.push(message.as_bytes()))
            }
        };
        let mut record = RecordWriter::<OUTCOME_LEN>::new();
        record.u32(self.output_count).u32(kind).span(message);
        self.outcomes.extend_from_slice(&record.finish());
        self.count += 1;
        self.message_start = Mark {
            data_len: self.buffer.data_len(),
            topics: self.topics.len(),
            output_count: self.output_count,
            header_count: self.header_count,
        };
    }

    /// The encoded answer. A message still in progress is not part of it. Call
    /// [`OutcomesWriter::begin`] before writing the next answer.
    pub fn finish(&mut self) -> Vec<u8> {
        self.roll_back_message();
        let mut buffer = std::mem::replace(&mut self.buffer, Buffer::empty());
        let topic_count = to_u32(self.topics.len());
        let topics_at = buffer.append_table(&span_table(&self.topics));
        let outcomes_at = buffer.append_table(&self.outcomes);
        let outputs_at = buffer.append_table(&self.outputs);
        let headers_at = buffer.append_table(&self.headers);
        buffer.finish(
            MAGIC,
            [
                self.count,
                topic_count,
                self.output_count,
                self.header_count,
                topics_at,
                outcomes_at,
                outputs_at,
                headers_at,
                PREAMBLE_LEN as u32,
            ],
        )
    }

    fn roll_back_message(&mut self) {
        let mark = self.message_start;
        self.buffer.truncate_data(mark.data_len);
        self.topics.truncate(mark.topics);
        self.outputs
            .truncate(mark.output_count as usize * OUTPUT_LEN);
        self.output_count = mark.output_count;
        self.headers
            .truncate(mark.header_count as usize * HEADER_RECORD_LEN);
        self.header_count = mark.header_count;
    }

    fn last_output(&mut self) -> &mut [u8] {
        assert!(
            self.output_count > self.message_start.output_count,
            "the current message has no output to change"
        );
        let start = self.outputs.len() - OUTPUT_LEN;
        &mut self.outputs[start..]
    }
}

/// Where the parts of a checked answer are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    topics: Table,
    outcomes: Table,
    outputs: Table,
    headers: Table,
    data_at: usize,
}

impl Layout {
    fn parse(buffer: &[u8], expected_count: usize) -> Result<Self, DecodeError> {
        let [
            count,
            topic_count,
            output_count,
            header_count,
            topics_at,
            outcomes_at,
            outputs_at,
            headers_at,
            data_at,
        ] = read_preamble(buffer, MAGIC, "the answer")?;
        if count as usize != expected_count {
            return Err(DecodeError::new(format!(
                "the answer has {count} outcomes for a batch of {expected_count} messages"
            )));
        }
        let topics = Table::parse(buffer, topics_at, topic_count, SPAN_LEN, "topics")?;
        let outcomes = Table::parse(buffer, outcomes_at, count, OUTCOME_LEN, "outcomes")?;
        let outputs = Table::parse(buffer, outputs_at, output_count, OUTPUT_LEN, "outputs")?;
        let headers = Table::parse(
            buffer,
            headers_at,
            header_count,
            HEADER_RECORD_LEN,
            "headers",
        )?;
        let data = Data::parse(buffer, data_at)?;
        for index in 0..topics.len() {
            let span = topics.record(buffer, index).span(0);
            data.check_str(span, || format!("output topic {index}"))?;
        }
        check_headers(buffer, headers, data)?;
        for index in 0..outputs.len() {
            let record = outputs.record(buffer, index);
            let topic = record.u32(0);
            if topic as usize > topics.len() {
                return Err(DecodeError::new(format!(
                    "output {index} names topic {topic} but the answer lists {} topics",
                    topics.len()
                )));
            }
            data.check_key(record.span(4), || format!("the key of output {index}"))?;
            data.check(record.span(12), || format!("the value of output {index}"))?;
            check_header_range(record.u32(20), record.u32(24), headers, || {
                format!("output {index}")
            })?;
        }
        let mut previous_end = 0;
        for index in 0..outcomes.len() {
            let record = outcomes.record(buffer, index);
            let end = record.u32(0);
            if end < previous_end || end > output_count {
                return Err(DecodeError::new(format!(
                    "message {index} ends its outputs at {end}, after {previous_end}, of {output_count}"
                )));
            }
            match record.u32(4) {
                SUCCEEDED => {}
                TRANSIENT | PERMANENT => {
                    if end != previous_end {
                        return Err(DecodeError::new(format!(
                            "message {index} failed but also has outputs"
                        )));
                    }
                    data.check_str(record.span(8), || {
                        format!("the failure message of message {index}")
                    })?;
                }
                other => {
                    return Err(DecodeError::new(format!(
                        "message {index} has outcome kind {other}, not 0, 1 or 2"
                    )));
                }
            }
            previous_end = end;
        }
        if previous_end != output_count {
            return Err(DecodeError::new(format!(
                "the messages' outputs end at {previous_end} but the answer has {output_count} outputs"
            )));
        }
        Ok(Self {
            topics,
            outcomes,
            outputs,
            headers,
            data_at: data_at as usize,
        })
    }
}

/// A plugin's answer that owns its bytes, checked against the encoding and the batch it
/// answers.
pub struct EncodedOutcomes {
    bytes: Vec<u8>,
    layout: Layout,
}

impl EncodedOutcomes {
    /// Checks `bytes` as the answer to a batch of `message_count` messages.
    pub fn parse(bytes: Vec<u8>, message_count: usize) -> Result<Self, DecodeError> {
        let layout = Layout::parse(&bytes, message_count)?;
        Ok(Self { bytes, layout })
    }

    pub fn view(&self) -> OutcomesView<'_> {
        OutcomesView {
            buffer: &self.bytes,
            layout: self.layout,
        }
    }

    /// Messages answered: the batch's size.
    pub fn len(&self) -> usize {
        self.view().len()
    }

    pub fn is_empty(&self) -> bool {
        self.view().is_empty()
    }

    /// Outputs over all messages.
    pub fn output_count(&self) -> usize {
        self.view().output_count()
    }

    /// The outcome of message `index`, which must be below [`EncodedOutcomes::len`].
    pub fn outcome(&self, index: usize) -> Outcome<'_> {
        self.view().outcome(index)
    }
}

impl std::fmt::Debug for EncodedOutcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedOutcomes")
            .field("messages", &self.layout.outcomes.len())
            .field("outputs", &self.layout.outputs.len())
            .finish_non_exhaustive()
    }
}

/// A checked answer: reading it cannot fail or go out of bounds.
#[derive(Clone, Copy)]
pub struct OutcomesView<'a> {
    buffer: &'a [u8],
    layout: Layout,
}

/// What became of one message.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// It succeeded with these outputs (possibly none).
    Outputs(Outputs<'a>),
    Failed {
        kind: FailureKind,
        message: &'a str,
    },
}

/// The outputs of one message, in the order the plugin sent them.
#[derive(Clone)]
pub struct Outputs<'a> {
    view: OutcomesView<'a>,
    remaining: std::ops::Range<usize>,
}

/// One output, borrowed from the answer.
#[derive(Debug, Clone)]
pub struct OutputView<'a> {
    /// `None` for the pipeline's default output topic.
    pub topic: Option<&'a str>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Headers<'a>,
}

impl<'a> OutcomesView<'a> {
    /// Checks `buffer` as the answer to a batch of `message_count` messages.
    pub fn parse(buffer: &'a [u8], message_count: usize) -> Result<Self, DecodeError> {
        let layout = Layout::parse(buffer, message_count)?;
        Ok(Self { buffer, layout })
    }

    /// Messages answered: the batch's size.
    pub fn len(&self) -> usize {
        self.layout.outcomes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Outputs over all messages.
    pub fn output_count(&self) -> usize {
        self.layout.outputs.len()
    }

    /// The outcome of message `index`, which must be below [`OutcomesView::len`].
    pub fn outcome(&self, index: usize) -> Outcome<'a> {
        let outcomes = &self.layout.outcomes;
        let record = outcomes.record(self.buffer, index);
        let start = match index.checked_sub(1) {
            Some(previous) => outcomes.record(self.buffer, previous).u32(0) as usize,
            None => 0,
        };
        let kind = match record.u32(4) {
            TRANSIENT => FailureKind::Transient,
            PERMANENT => FailureKind::Permanent,
            _ => {
                return Outcome::Outputs(Outputs {
                    view: *self,
                    remaining: start..record.u32(0) as usize,
                });
            }
        };
        Outcome::Failed {
            kind,
            message: self.data().get_str(record.span(8)),
        }
    }

    fn output(&self, index: usize) -> OutputView<'a> {
        let layout = &self.layout;
        let data = self.data();
        let record = layout.outputs.record(self.buffer, index);
        let topic = match record.u32(0) {
            0 => None,
            number => {
                let span = layout
                    .topics
                    .record(self.buffer, number as usize - 1)
                    .span(0);
                Some(data.get_str(span))
            }
        };
        OutputView {
            topic,
            key: data.get_key(record.span(4)),
            value: data.get(record.span(12)),
            headers: Headers::new(
                self.buffer,
                layout.headers,
                data,
                record.u32(20),
                record.u32(24),
            ),
        }
    }

    fn data(&self) -> Data<'a> {
        Data::new(&self.buffer[self.layout.data_at..])
    }
}

impl std::fmt::Debug for OutcomesView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomesView")
            .field("messages", &self.len())
            .field("outputs", &self.output_count())
            .finish_non_exhaustive()
    }
}

impl<'a> Iterator for Outputs<'a> {
    type Item = OutputView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.remaining.next()?;
        Some(self.view.output(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.remaining.size_hint()
    }
}

impl ExactSizeIterator for Outputs<'_> {}

impl std::fmt::Debug for Outputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}
