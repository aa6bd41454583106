//! Encoding: the outputs and failures of a batch, written straight into the columns of the WIT
//! `outcomes` record.
//!
//! Every write keeps every column well-formed: an output is appended whole by [`Outputs::send`]
//! (default topic, no key, no headers) and the builder's methods only ever rewrite that last
//! output, so there is no half-written state for a handler to leave behind.

use crate::bindings::{BytesColumn, FailureRecord, FailureRecordKind, HeadersColumn, Outcomes};
use crate::failure::{Failure, FailureKind};

/// Where a handler sends the outputs of the message it is handling.
///
/// Outputs go to the pipeline's default output topic unless [`OutputBuilder::topic`] says
/// otherwise. If the handler then returns an error, the outputs of that message are discarded.
pub struct Outputs {
    /// Outputs sent by each finished message: message `i` produced outputs
    /// `[output_ends[i - 1], output_ends[i])`.
    output_ends: Vec<u32>,
    topics: Vec<String>,
    /// 0 for the default topic, `k + 1` for `topics[k]`.
    topic_index: Vec<u32>,
    keys: ColumnBuilder,
    /// Outputs without a key, ascending.
    null_keys: Vec<u32>,
    values: ColumnBuilder,
    header_row_ends: Vec<u32>,
    header_names: ColumnBuilder,
    header_values: ColumnBuilder,
    failures: Vec<FailureRecord>,
    /// Length of `topics` when the current message started, so a failure can drop topics that
    /// only its discarded outputs used.
    topics_before_message: usize,
}

/// Sets the optional parts of the output that [`Outputs::send`] just appended.
///
/// Each method rewrites that output in place, so the builder can be dropped at any point.
pub struct OutputBuilder<'a> {
    outputs: &'a mut Outputs,
}

impl Outputs {
    /// Sizes the buffers for the common case of one output per message, about as large as its
    /// input, so a typical batch is encoded without growing them.
    pub(crate) fn with_capacity(messages: usize, keys_bytes: usize, values_bytes: usize) -> Self {
        Self {
            output_ends: Vec::with_capacity(messages),
            topics: Vec::new(),
            topic_index: Vec::with_capacity(messages),
            keys: ColumnBuilder::with_capacity(messages, keys_bytes),
            null_keys: Vec::new(),
            values: ColumnBuilder::with_capacity(messages, values_bytes),
            header_row_ends: Vec::with_capacity(messages),
            header_names: ColumnBuilder::default(),
            header_values: ColumnBuilder::default(),
            failures: Vec::new(),
            topics_before_message: 0,
        }
    }

    /// Sends `value` to the default topic, without key or headers; the returned builder changes
    /// that.
    pub fn send(&mut self, value: impl AsRef<[u8]>) -> OutputBuilder<'_> {
        let output = to_u32(self.topic_index.len());
        self.topic_index.push(0);
        self.keys.push(&[]);
        self.null_keys.push(output);
        self.values.push(value.as_ref());
        self.header_row_ends.push(to_u32(self.header_names.len()));
        OutputBuilder { outputs: self }
    }

    /// Records the outcome of the message whose outputs were sent since the previous call: keeps
    /// its outputs, or discards them and records the failure.
    pub(crate) fn finish_message(&mut self, outcome: Result<(), Failure>) {
        if let Err(failure) = outcome {
            self.discard_current_message();
            self.failures.push(FailureRecord {
                index: to_u32(self.output_ends.len()),
                kind: match failure.kind() {
                    FailureKind::Transient => FailureRecordKind::Transient,
                    FailureKind::Permanent => FailureRecordKind::Permanent,
                },
                message: failure.message().to_owned(),
            });
        }
        self.output_ends.push(to_u32(self.topic_index.len()));
        self.topics_before_message = self.topics.len();
    }

    fn discard_current_message(&mut self) {
        let outputs_before = self.output_ends.last().map_or(0, |&end| end as usize);
        self.topics.truncate(self.topics_before_message);
        self.topic_index.truncate(outputs_before);
        self.keys.truncate(outputs_before);
        while self
            .null_keys
            .last()
            .is_some_and(|&output| output as usize >= outputs_before)
        {
            self.null_keys.pop();
        }
        self.values.truncate(outputs_before);
        self.header_row_ends.truncate(outputs_before);
        let headers_before = self.header_row_ends.last().map_or(0, |&end| end as usize);
        self.header_names.truncate(headers_before);
        self.header_values.truncate(headers_before);
    }

    pub(crate) fn into_outcomes(self) -> Outcomes {
        Outcomes {
            output_ends: self.output_ends,
            topics: self.topics,
            topic_index: self.topic_index,
            keys: self.keys.into_column(),
            null_keys: self.null_keys,
            values: self.values.into_column(),
            headers: HeadersColumn {
                row_ends: self.header_row_ends,
                names: self.header_names.into_column(),
                values: self.header_values.into_column(),
            },
            failures: self.failures,
        }
    }

    /// The `topic-index` entry for `topic`, adding it to the table the first time. A handler
    /// routes to a handful of topics, so a scan is cheaper than hashing.
    fn topic_number(&mut self, topic: &str) -> u32 {
        let position = match self.topics.iter().position(|known| known == topic) {
            Some(position) => position,
            None => {
                self.topics.push(topic.to_owned());
                self.topics.len() - 1
            }
        };
        to_u32(position + 1)
    }

    fn last_output(&self) -> u32 {
        to_u32(self.topic_index.len() - 1)
    }
}

impl OutputBuilder<'_> {
    /// Sets the key; `None` (the default) sends the output without a key, which Kafka
    /// distinguishes from an empty key.
    pub fn key(self, key: Option<&[u8]>) -> Self {
        let outputs = &mut *self.outputs;
        let output = outputs.last_output();
        // Null keys are listed in output order, so this output's entry, if any, is the last.
        if outputs.null_keys.last() == Some(&output) {
            outputs.null_keys.pop();
        }
        outputs.keys.replace_last(key.unwrap_or_default());
        if key.is_none() {
            outputs.null_keys.push(output);
        }
        self
    }

    /// Adds a header; names may repeat.
    pub fn header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let outputs = &mut *self.outputs;
        outputs.header_names.push(name.as_bytes());
        outputs.header_values.push(value.as_ref());
        let row_end = outputs
            .header_row_ends
            .last_mut()
            .expect("send appended this output's header row");
        *row_end = to_u32(outputs.header_names.len());
        self
    }

    /// Adds every header of `headers`, for example a message's own:
    /// `.headers(message.headers())`.
    pub fn headers<N, V>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        for (name, value) in headers {
            self = self.header(name.as_ref(), value);
        }
        self
    }

    /// Sends the output to `topic` instead of the pipeline's default output topic.
    pub fn topic(self, topic: &str) -> Self {
        let outputs = &mut *self.outputs;
        let topic_number = outputs.topic_number(topic);
        *outputs
            .topic_index
            .last_mut()
            .expect("send appended this output's topic") = topic_number;
        self
    }
}

/// A `bytes-column` under construction.
#[derive(Default)]
struct ColumnBuilder {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl ColumnBuilder {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, entry: &[u8]) {
        self.data.extend_from_slice(entry);
        self.ends.push(to_u32(self.data.len()));
    }

    fn replace_last(&mut self, entry: &[u8]) {
        let rows = self.len();
        self.truncate(rows - 1);
        self.push(entry);
    }

    /// Keeps the first `rows` entries.
    fn truncate(&mut self, rows: usize) {
        self.ends.truncate(rows);
        self.data
            .truncate(self.ends.last().map_or(0, |&end| end as usize));
    }

    fn into_column(self) -> BytesColumn {
        BytesColumn {
            data: self.data,
            ends: self.ends,
        }
    }
}

/// Offsets and indices cross the boundary as `u32`. A wasm32 guest cannot hold 4 GiB in one
/// buffer, so this only fails in a native test that tries.
fn to_u32(length: usize) -> u32 {
    u32::try_from(length).expect("a column cannot cross the component boundary past 4 GiB")
}
