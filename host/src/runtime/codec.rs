//! Host side of the columnar batch encoding described in `wit/runnel.wit`:
//! messages are packed into a [`Batch`] on the way in, and the plugin's
//! [`Outcomes`] are checked once and then read without copying on the way out.

use thiserror::Error;

use super::bindings::{Batch, BytesColumn, Failure, HeadersColumn, Outcomes};

/// One input message, borrowed from wherever it was received.
#[derive(Debug, Clone, Copy)]
pub struct InputMessage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Packs messages into the columnar [`Batch`] a plugin receives.
pub struct BatchBuilder {
    batch: Batch,
}

impl BatchBuilder {
    pub fn new(source: &str) -> Self {
        Self {
            batch: Batch {
                count: 0,
                source: source.to_owned(),
                topics: Vec::new(),
                topic_index: Vec::new(),
                partitions: Vec::new(),
                offsets: Vec::new(),
                timestamps: Vec::new(),
                keys: empty_column(),
                null_keys: Vec::new(),
                values: empty_column(),
                headers: empty_headers(),
            },
        }
    }

    pub fn len(&self) -> usize {
        self.batch.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.batch.count == 0
    }

    /// Appends one message with its headers.
    pub fn push<'h>(
        &mut self,
        message: &InputMessage<'_>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let batch = &mut self.batch;
        let index = batch.count;
        let topic_index = match batch.topics.iter().position(|t| t == message.topic) {
            Some(found) => found,
            None => {
                batch.topics.push(message.topic.to_owned());
                batch.topics.len() - 1
            }
        };
        batch.topic_index.push(topic_index as u32);
        batch.partitions.push(message.partition);
        batch.offsets.push(message.offset);
        batch.timestamps.push(message.timestamp.unwrap_or(-1));
        match message.key {
            Some(key) => push_entry(&mut batch.keys, key),
            None => {
                push_entry(&mut batch.keys, &[]);
                batch.null_keys.push(index);
            }
        }
        push_entry(&mut batch.values, message.value);
        for (name, value) in headers {
            push_entry(&mut batch.headers.names, name.as_bytes());
            push_entry(&mut batch.headers.values, value);
        }
        let header_count = batch.headers.names.ends.len() as u32;
        batch.headers.row_ends.push(header_count);
        batch.count += 1;
    }

    pub fn finish(self) -> Batch {
        self.batch
    }
}

/// Message `index` of `batch` and its headers, borrowed.
pub fn message_at(
    batch: &Batch,
    index: usize,
) -> (InputMessage<'_>, impl Iterator<Item = (&str, &[u8])> + '_) {
    let key = if batch.null_keys.binary_search(&(index as u32)).is_ok() {
        None
    } else {
        Some(entry(&batch.keys, index))
    };
    let message = InputMessage {
        topic: &batch.topics[batch.topic_index[index] as usize],
        partition: batch.partitions[index],
        offset: batch.offsets[index],
        timestamp: (batch.timestamps[index] >= 0).then_some(batch.timestamps[index]),
        key,
        value: entry(&batch.values, index),
    };
    let headers = header_range(&batch.headers, index).map(|h| {
        // The host built this batch from UTF-8 names.
        let name = std::str::from_utf8(entry(&batch.headers.names, h)).unwrap_or_default();
        (name, entry(&batch.headers.values, h))
    });
    (message, headers)
}

/// Rebuilds a batch holding only the messages at `indices` of `batch`, in
/// that order. Used to retry part of a batch.
pub fn select(batch: &Batch, indices: &[usize]) -> Batch {
    let mut builder = BatchBuilder::new(&batch.source);
    for &index in indices {
        let (message, headers) = message_at(batch, index);
        builder.push(&message, headers);
    }
    builder.finish()
}

/// A way in which a plugin's answer breaks the contract. The whole call is
/// then treated as failed: nothing of it can be trusted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ContractViolation {
    #[error("plugin returned {got} outcomes for a batch of {expected} messages")]
    OutcomeCount { expected: usize, got: usize },
    #[error("plugin returned a malformed {column} column: {reason}")]
    MalformedColumn {
        column: &'static str,
        reason: &'static str,
    },
    #[error("plugin named output topic {index} but listed only {topics} topics")]
    UnknownTopic { index: u32, topics: usize },
    #[error("plugin returned a header name that is not UTF-8")]
    HeaderNameNotUtf8,
    #[error("plugin reported failures out of order or for message {index} outside the batch")]
    FailureIndex { index: u32 },
    #[error("plugin reported message {index} as failed but also returned outputs for it")]
    FailedWithOutputs { index: u32 },
}

/// A plugin's answer to a batch, checked against the contract.
#[derive(Debug)]
pub struct HandledBatch {
    outcomes: Outcomes,
}

/// What became of one input message.
#[derive(Debug)]
pub enum MessageOutcome<'a> {
    /// Zero or more outputs.
    Outputs(OutputIter<'a>),
    Failed(&'a Failure),
}

/// One output, borrowed from the plugin's answer.
#[derive(Debug, Clone, Copy)]
pub struct OutputRef<'a> {
    outcomes: &'a Outcomes,
    index: usize,
}

impl HandledBatch {
    /// Checks every column once so that reading the outcomes afterwards
    /// cannot go out of bounds.
    pub fn new(outcomes: Outcomes, message_count: usize) -> Result<Self, ContractViolation> {
        if outcomes.output_ends.len() != message_count {
            return Err(ContractViolation::OutcomeCount {
                expected: message_count,
                got: outcomes.output_ends.len(),
            });
        }
        let output_count = outcomes.values.ends.len();
        check_column(&outcomes.values, "values")?;
        check_column(&outcomes.keys, "keys")?;
        check_ends(&outcomes.output_ends, output_count, "output-ends")?;
        if outcomes.keys.ends.len() != output_count {
            return Err(malformed(
                "keys",
                "length differs from the number of outputs",
            ));
        }
        if outcomes.topic_index.len() != output_count {
            return Err(malformed(
                "topic-index",
                "length differs from the number of outputs",
            ));
        }
        if let Some(&index) = outcomes
            .topic_index
            .iter()
            .find(|&&t| t as usize > outcomes.topics.len())
        {
            return Err(ContractViolation::UnknownTopic {
                index,
                topics: outcomes.topics.len(),
            });
        }
        check_ascending_below(&outcomes.null_keys, output_count, "null-keys")?;
        let headers = &outcomes.headers;
        check_column(&headers.names, "header names")?;
        check_column(&headers.values, "header values")?;
        if headers.names.ends.len() != headers.values.ends.len() {
            return Err(malformed("headers", "names and values differ in length"));
        }
        if headers.row_ends.len() != output_count {
            return Err(malformed(
                "headers",
                "row count differs from the number of outputs",
            ));
        }
        check_ends(&headers.row_ends, headers.names.ends.len(), "header rows")?;
        for h in 0..headers.names.ends.len() {
            if std::str::from_utf8(entry(&headers.names, h)).is_err() {
                return Err(ContractViolation::HeaderNameNotUtf8);
            }
        }
        let mut previous: Option<u32> = None;
        for failure in &outcomes.failures {
            let index = failure.index;
            if index as usize >= message_count || previous.is_some_and(|p| p >= index) {
                return Err(ContractViolation::FailureIndex { index });
            }
            if !output_range(&outcomes.output_ends, index as usize).is_empty() {
                return Err(ContractViolation::FailedWithOutputs { index });
            }
            previous = Some(index);
        }
        Ok(Self { outcomes })
    }

    pub fn len(&self) -> usize {
        self.outcomes.output_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outcomes.output_ends.is_empty()
    }

    /// Total outputs over all messages.
    pub fn output_count(&self) -> usize {
        self.outcomes.values.ends.len()
    }

    pub fn failures(&self) -> &[Failure] {
        &self.outcomes.failures
    }

    pub fn outcome(&self, message: usize) -> MessageOutcome<'_> {
        let failures = &self.outcomes.failures;
        if let Ok(found) = failures.binary_search_by_key(&(message as u32), |f| f.index) {
            return MessageOutcome::Failed(&failures[found]);
        }
        MessageOutcome::Outputs(OutputIter {
            outcomes: &self.outcomes,
            range: output_range(&self.outcomes.output_ends, message),
        })
    }
}

#[derive(Debug)]
pub struct OutputIter<'a> {
    outcomes: &'a Outcomes,
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for OutputIter<'a> {
    type Item = OutputRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.range.next()?;
        Some(OutputRef {
            outcomes: self.outcomes,
            index,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl ExactSizeIterator for OutputIter<'_> {}

impl<'a> OutputRef<'a> {
    /// The target topic, or `None` for the pipeline's default output topic.
    pub fn topic(&self) -> Option<&'a str> {
        match self.outcomes.topic_index[self.index] {
            0 => None,
            k => Some(&self.outcomes.topics[k as usize - 1]),
        }
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        if self
            .outcomes
            .null_keys
            .binary_search(&(self.index as u32))
            .is_ok()
        {
            None
        } else {
            Some(entry(&self.outcomes.keys, self.index))
        }
    }

    pub fn value(&self) -> &'a [u8] {
        entry(&self.outcomes.values, self.index)
    }

    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let headers = &self.outcomes.headers;
        header_range(headers, self.index).map(move |h| {
            // Checked to be UTF-8 when the batch was accepted.
            let name = std::str::from_utf8(entry(&headers.names, h)).unwrap_or_default();
            (name, entry(&headers.values, h))
        })
    }
}

fn empty_column() -> BytesColumn {
    BytesColumn {
        data: Vec::new(),
        ends: Vec::new(),
    }
}

fn empty_headers() -> HeadersColumn {
    HeadersColumn {
        row_ends: Vec::new(),
        names: empty_column(),
        values: empty_column(),
    }
}

fn push_entry(column: &mut BytesColumn, bytes: &[u8]) {
    column.data.extend_from_slice(bytes);
    column.ends.push(column.data.len() as u32);
}

fn output_range(ends: &[u32], row: usize) -> std::ops::Range<usize> {
    let start = if row == 0 { 0 } else { ends[row - 1] as usize };
    start..ends[row] as usize
}

fn header_range(headers: &HeadersColumn, row: usize) -> std::ops::Range<usize> {
    output_range(&headers.row_ends, row)
}

fn entry(column: &BytesColumn, row: usize) -> &[u8] {
    &column.data[output_range(&column.ends, row)]
}

fn malformed(column: &'static str, reason: &'static str) -> ContractViolation {
    ContractViolation::MalformedColumn { column, reason }
}

fn check_column(column: &BytesColumn, name: &'static str) -> Result<(), ContractViolation> {
    check_ends(&column.ends, column.data.len(), name)
}

/// `ends` must be non-decreasing and finish exactly at `total`.
fn check_ends(ends: &[u32], total: usize, name: &'static str) -> Result<(), ContractViolation> {
    if ends.windows(2).any(|pair| pair[0] > pair[1]) {
        return Err(malformed(name, "end offsets decrease"));
    }
    let last = ends.last().map_or(0, |&end| end as usize);
    if last != total {
        return Err(malformed(name, "end offsets do not cover the data exactly"));
    }
    Ok(())
}

fn check_ascending_below(
    indices: &[u32],
    bound: usize,
    name: &'static str,
) -> Result<(), ContractViolation> {
    if indices.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(malformed(name, "indices are not strictly ascending"));
    }
    if indices.last().is_some_and(|&i| i as usize >= bound) {
        return Err(malformed(name, "index out of range"));
    }
    Ok(())
}
