//! Answers: written by plugins, read by the host. The host trusts nothing in an answer until
//! [`EncodedOutcomes::parse`] has checked all of it.

use crate::FailureKind;
use crate::buffer::{
    Buffer, DecodeError, Headers, Record, RecordWriter, Span, Table, check_header_range, intern,
    read_preamble, to_u32, topic_table, write_header,
};
use crate::layout::{answer_header, header, outcome, output, preamble, topic};
use crate::text::{Bytes, CheckedBuffer};

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
        let tables = messages * (outcome::LEN + output::LEN);
        self.buffer = Buffer::with_capacity(data_bytes + tables);
        self.topics.clear();
        self.outcomes.clear();
        self.outcomes.reserve(messages * outcome::LEN);
        self.outputs.clear();
        self.outputs.reserve(messages * output::LEN);
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
        // Default topic, no key, no headers yet.
        let mut record = RecordWriter::<{ output::LEN }>::new();
        record
            .set(output::TOPIC, 0)
            .set(output::KEY, Span::NO_KEY)
            .set(output::VALUE, value)
            .set(output::FIRST_HEADER, self.header_count)
            .set(output::HEADER_COUNT, 0)
            .set(output::RESERVED, 0);
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
        output::KEY.write(self.last_output(), span);
    }

    /// Adds a header to the last output. Panics if the current message has no output yet.
    pub fn add_header(&mut self, name: &str, value: &[u8]) {
        let name = self.buffer.push(name.as_bytes());
        let value = self.buffer.push(value);
        write_header(&mut self.headers, name, value);
        self.header_count += 1;
        let record = self.last_output();
        let count = output::HEADER_COUNT.read(record);
        output::HEADER_COUNT.write(record, count + 1);
    }

    /// The value of the last output, to change in place. Panics if the current message has no
    /// output yet.
    pub fn last_value_mut(&mut self) -> &mut [u8] {
        let value = output::VALUE.read(self.last_output());
        self.buffer.data_mut(value)
    }

    /// Sends the last output to `topic` instead of the default output topic. Panics if the
    /// current message has no output yet.
    pub fn set_topic(&mut self, topic: &str) {
        let number = intern(&mut self.buffer, &mut self.topics, topic) + 1;
        output::TOPIC.write(self.last_output(), number);
    }

    /// Ends the current message: keeps its outputs, or on failure discards them and records
    /// the failure instead.
    pub fn finish_message(&mut self, failure: Option<(FailureKind, &str)>) {
        let (kind, message) = match failure {
            None => (outcome::SUCCEEDED, Span::EMPTY),
            Some((kind, message)) => {
                self.roll_back_message();
                let kind = match kind {
                    FailureKind::Transient => outcome::TRANSIENT,
                    FailureKind::Permanent => outcome::PERMANENT,
                };
                (kind, self.buffer.push(message.as_bytes()))
            }
        };
        let mut record = RecordWriter::<{ outcome::LEN }>::new();
        record
            .set(outcome::OUTPUTS_END, self.output_count)
            .set(outcome::KIND, kind)
            .set(outcome::FAILURE_MESSAGE, message);
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
        let topics_at = buffer.append_table(&topic_table(&self.topics));
        let outcomes_at = buffer.append_table(&self.outcomes);
        let outputs_at = buffer.append_table(&self.outputs);
        let headers_at = buffer.append_table(&self.headers);
        let mut fields = RecordWriter::<{ preamble::LEN }>::new();
        fields
            .set(preamble::MAGIC, answer_header::MAGIC)
            .set(answer_header::COUNT, self.count)
            .set(answer_header::TOPIC_COUNT, topic_count)
            .set(answer_header::OUTPUT_COUNT, self.output_count)
            .set(answer_header::HEADER_COUNT, self.header_count)
            .set(answer_header::TOPICS_AT, topics_at)
            .set(answer_header::OUTCOMES_AT, outcomes_at)
            .set(answer_header::OUTPUTS_AT, outputs_at)
            .set(answer_header::HEADERS_AT, headers_at)
            .set(answer_header::DATA_AT, preamble::LEN as u32);
        buffer.finish(fields.finish())
    }

    fn roll_back_message(&mut self) {
        let mark = self.message_start;
        self.buffer.truncate_data(mark.data_len);
        self.topics.truncate(mark.topics);
        self.outputs
            .truncate(mark.output_count as usize * output::LEN);
        self.output_count = mark.output_count;
        self.headers
            .truncate(mark.header_count as usize * header::LEN);
        self.header_count = mark.header_count;
    }

    fn last_output(&mut self) -> &mut [u8] {
        assert!(
            self.output_count > self.message_start.output_count,
            "the current message has no output to change"
        );
        let start = self.outputs.len() - output::LEN;
        &mut self.outputs[start..]
    }
}

/// Where the parts of an answer are, as its header says.
struct Parts {
    data_at: u32,
    topics: Table,
    outcomes: Table,
    outputs: Table,
    headers: Table,
}

impl Parts {
    /// Reads the header of `buffer`, the answer to a batch of `expected_count` messages, and
    /// checks that every table lies inside it.
    fn read(buffer: &[u8], expected_count: usize) -> Result<Self, DecodeError> {
        let fields = read_preamble(buffer, answer_header::MAGIC, "the answer")?;
        let count = fields.get(answer_header::COUNT);
        if count as usize != expected_count {
            return Err(DecodeError::new(format!(
                "the answer has {count} outcomes for a batch of {expected_count} messages"
            )));
        }
        let topic_count = fields.get(answer_header::TOPIC_COUNT);
        let output_count = fields.get(answer_header::OUTPUT_COUNT);
        let header_count = fields.get(answer_header::HEADER_COUNT);
        let topics_at = fields.get(answer_header::TOPICS_AT);
        let outcomes_at = fields.get(answer_header::OUTCOMES_AT);
        let outputs_at = fields.get(answer_header::OUTPUTS_AT);
        let headers_at = fields.get(answer_header::HEADERS_AT);
        Ok(Self {
            data_at: fields.get(answer_header::DATA_AT),
            topics: Table::parse(buffer, topics_at, topic_count, topic::LEN, "topics")?,
            outcomes: Table::parse(buffer, outcomes_at, count, outcome::LEN, "outcomes")?,
            outputs: Table::parse(buffer, outputs_at, output_count, output::LEN, "outputs")?,
            headers: Table::parse(buffer, headers_at, header_count, header::LEN, "headers")?,
        })
    }

    /// Checks the topic names and the headers of `bytes`, which these parts describe.
    fn check_text<B: Bytes>(&self, bytes: B) -> Result<CheckedBuffer<B>, DecodeError> {
        let mut buffer = CheckedBuffer::new(bytes, self.data_at)?;
        buffer.check_topics(self.topics, |index| format!("output topic {index}"))?;
        buffer.check_headers(self.headers)?;
        Ok(buffer)
    }

    /// Checks that every output names a topic and headers that exist, and a key and a value
    /// inside the data area.
    fn check_outputs(&self, buffer: CheckedBuffer<&[u8]>) -> Result<(), DecodeError> {
        let data = buffer.data();
        for index in 0..self.outputs.len() {
            let record = self.outputs.record(buffer.bytes(), index);
            let topic = record.get(output::TOPIC);
            if topic as usize > self.topics.len() {
                return Err(DecodeError::new(format!(
                    "output {index} names topic {topic} but the answer lists {} topics",
                    self.topics.len()
                )));
            }
            data.check_key(record.get(output::KEY), || {
                format!("the key of output {index}")
            })?;
            data.check(record.get(output::VALUE), || {
                format!("the value of output {index}")
            })?;
            check_header_range(
                record.get(output::FIRST_HEADER),
                record.get(output::HEADER_COUNT),
                self.headers.len(),
                || format!("output {index}"),
            )?;
        }
        Ok(())
    }

    /// Checks that the outcomes share the outputs out in order, each message its own, and
    /// that every outcome is of a known kind, a failure without outputs.
    fn check_outcomes(&self, buffer: CheckedBuffer<&[u8]>) -> Result<(), DecodeError> {
        let output_count = to_u32(self.outputs.len());
        let mut previous_end = 0;
        for index in 0..self.outcomes.len() {
            let record = self.outcomes.record(buffer.bytes(), index);
            let end = record.get(outcome::OUTPUTS_END);
            if end < previous_end || end > output_count {
                return Err(DecodeError::new(format!(
                    "message {index} ends its outputs at {end}, after {previous_end}, of {output_count}"
                )));
            }
            match record.get(outcome::KIND) {
                outcome::SUCCEEDED => {}
                outcome::TRANSIENT | outcome::PERMANENT => {
                    if end != previous_end {
                        return Err(DecodeError::new(format!(
                            "message {index} failed but also has outputs"
                        )));
                    }
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
        Ok(())
    }
}

/// Checks `bytes` as the answer to a batch of `message_count` messages: every table, span and
/// string, once. Returns them with the tables of outcomes and of outputs.
fn parse<B: Bytes>(
    bytes: B,
    message_count: usize,
) -> Result<(CheckedBuffer<B>, Table, Table), DecodeError> {
    let parts = Parts::read(&bytes, message_count)?;
    let mut buffer = parts.check_text(bytes)?;
    parts.check_outputs(buffer.borrow())?;
    parts.check_outcomes(buffer.borrow())?;
    buffer.check_failure_messages(parts.outcomes)?;
    Ok((buffer, parts.outcomes, parts.outputs))
}

/// A plugin's answer that owns its bytes, checked against the encoding and the batch it
/// answers.
pub struct EncodedOutcomes {
    buffer: CheckedBuffer<Vec<u8>>,
    outcomes: Table,
    outputs: Table,
}

impl EncodedOutcomes {
    /// Checks `bytes` as the answer to a batch of `message_count` messages.
    pub fn parse(bytes: Vec<u8>, message_count: usize) -> Result<Self, DecodeError> {
        let (buffer, outcomes, outputs) = parse(bytes, message_count)?;
        Ok(Self {
            buffer,
            outcomes,
            outputs,
        })
    }

    pub fn view(&self) -> OutcomesView<'_> {
        OutcomesView {
            buffer: self.buffer.borrow(),
            outcomes: self.outcomes,
            outputs: self.outputs,
        }
    }

    /// Messages answered: the batch's size.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Outputs over all messages.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// The outcome of message `index`, which must be below [`EncodedOutcomes::len`].
    pub fn outcome(&self, index: usize) -> Outcome<'_> {
        self.view().outcome(index)
    }
}

impl std::fmt::Debug for EncodedOutcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedOutcomes")
            .field("messages", &self.len())
            .field("outputs", &self.output_count())
            .finish_non_exhaustive()
    }
}

/// A checked answer: reading it cannot fail or go out of bounds.
#[derive(Clone, Copy)]
pub struct OutcomesView<'a> {
    buffer: CheckedBuffer<&'a [u8]>,
    outcomes: Table,
    outputs: Table,
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
        let (buffer, outcomes, outputs) = parse(buffer, message_count)?;
        Ok(Self {
            buffer,
            outcomes,
            outputs,
        })
    }

    /// Messages answered: the batch's size.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Outputs over all messages.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// The outcome of message `index`, which must be below [`OutcomesView::len`].
    pub fn outcome(&self, index: usize) -> Outcome<'a> {
        if let Some((kind, message)) = self.buffer.failure(index) {
            return Outcome::Failed { kind, message };
        }
        let end = |index| self.outcome_record(index).get(outcome::OUTPUTS_END) as usize;
        let start = index.checked_sub(1).map_or(0, end);
        Outcome::Outputs(Outputs {
            view: *self,
            remaining: start..end(index),
        })
    }

    fn outcome_record(&self, index: usize) -> Record<'a> {
        self.outcomes.record(self.buffer.bytes(), index)
    }

    fn output(&self, index: usize) -> OutputView<'a> {
        let data = self.buffer.data();
        let record = self.outputs.record(self.buffer.bytes(), index);
        let topic = match record.get(output::TOPIC) {
            0 => None,
            number => Some(self.buffer.topic(number as usize - 1)),
        };
        OutputView {
            topic,
            key: data.get_key(record.get(output::KEY)),
            value: data.get(record.get(output::VALUE)),
            headers: Headers::new(
                self.buffer,
                record.get(output::FIRST_HEADER),
                record.get(output::HEADER_COUNT),
            ),
        }
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
