//! Decoding: borrowed views of each message in a columnar batch.
//!
//! The batch is checked once, up front, against every convention of the WIT contract, so that
//! building a [`Message`] afterwards is plain slicing that cannot go out of bounds.

use std::fmt;
use std::ops::Range;

use crate::bindings::{Batch, BytesColumn};

/// One input message, borrowed from the batch: nothing is copied.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    source: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: Headers<'a>,
}

impl<'a> Message<'a> {
    /// The key, or `None` when the message has no key (which Kafka distinguishes from an
    /// empty key).
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The payload.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Every header in the order the producer wrote them; a name may repeat.
    pub fn headers(&self) -> Headers<'a> {
        self.headers.clone()
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
        self.topic
    }

    /// The Kafka partition, or -1 for inputs without partitions.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The Kafka offset, or -1 for inputs without offsets.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Milliseconds since the Unix epoch, when the input knows it.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The name of the pipeline input (Kafka consumer or Dapr binding) the message came from.
    pub fn source(&self) -> &'a str {
        self.source
    }
}

/// An iterator over a message's headers as `(name, value)` pairs.
#[derive(Clone)]
pub struct Headers<'a> {
    names: StrColumn<'a>,
    values: Column<'a>,
    remaining: Range<usize>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.remaining.next()?;
        Some((self.names.get(header), self.values.get(header)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.remaining.size_hint()
    }
}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let header = self.remaining.next_back()?;
        Some((self.names.get(header), self.values.get(header)))
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// Why a batch breaks the WIT contract. Only a bug in the host can cause it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MalformedBatch(String);

impl fmt::Display for MalformedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A batch that has been checked against the contract, ready to hand out messages.
pub(crate) struct DecodedBatch<'a> {
    batch: &'a Batch,
    keys: Column<'a>,
    values: Column<'a>,
    header_names: StrColumn<'a>,
    header_values: Column<'a>,
}

impl<'a> DecodedBatch<'a> {
    pub(crate) fn decode(batch: &'a Batch) -> Result<Self, MalformedBatch> {
        let count = batch.count as usize;
        let per_message_lengths = [
            ("topic-index", batch.topic_index.len()),
            ("partitions", batch.partitions.len()),
            ("offsets", batch.offsets.len()),
            ("timestamps", batch.timestamps.len()),
            ("headers.row-ends", batch.headers.row_ends.len()),
        ];
        for (field, length) in per_message_lengths {
            if length != count {
                return Err(MalformedBatch(format!(
                    "{field} has {length} entries for {count} messages"
                )));
            }
        }
        let keys = Column::decode("keys", &batch.keys, count)?;
        let values = Column::decode("values", &batch.values, count)?;

        if let Some(bad) = batch
            .topic_index
            .iter()
            .find(|&&topic| topic as usize >= batch.topics.len())
        {
            return Err(MalformedBatch(format!(
                "topic-index {bad} is out of range for {} topics",
                batch.topics.len()
            )));
        }

        let mut previous_null_key = None;
        for &message in &batch.null_keys {
            if previous_null_key.is_some_and(|previous| message <= previous) {
                return Err(MalformedBatch(
                    "null-keys are not strictly ascending".into(),
                ));
            }
            if message as usize >= count {
                return Err(MalformedBatch(format!(
                    "null-keys lists message {message} of {count}"
                )));
            }
            if !keys.get(message as usize).is_empty() {
                return Err(MalformedBatch(format!(
                    "message {message} is in null-keys but has a non-empty key"
                )));
            }
            previous_null_key = Some(message);
        }

        let row_ends = &batch.headers.row_ends;
        check_ends("headers.row-ends", row_ends)?;
        let header_count = row_ends.last().map_or(0, |&end| end as usize);
        let header_names = StrColumn::decode("headers.names", &batch.headers.names, header_count)?;
        let header_values = Column::decode("headers.values", &batch.headers.values, header_count)?;

        Ok(Self {
            batch,
            keys,
            values,
            header_names,
            header_values,
        })
    }

    /// The messages in batch order.
    pub(crate) fn messages(&self) -> impl Iterator<Item = Message<'a>> + '_ {
        let mut null_keys = self.batch.null_keys.iter().peekable();
        (0..self.batch.count as usize).map(move |index| {
            let has_no_key = null_keys.next_if(|&&message| message as usize == index);
            self.message(index, has_no_key.is_none())
        })
    }

    fn message(&self, index: usize, has_key: bool) -> Message<'a> {
        let batch = self.batch;
        let headers_start = index
            .checked_sub(1)
            .map_or(0, |previous| batch.headers.row_ends[previous] as usize);
        let headers_end = batch.headers.row_ends[index] as usize;
        Message {
            source: &batch.source,
            topic: &batch.topics[batch.topic_index[index] as usize],
            partition: batch.partitions[index],
            offset: batch.offsets[index],
            timestamp: Some(batch.timestamps[index]).filter(|&millis| millis != -1),
            key: has_key.then(|| self.keys.get(index)),
            value: self.values.get(index),
            headers: Headers {
                names: self.header_names,
                values: self.header_values,
                remaining: headers_start..headers_end,
            },
        }
    }
}

/// Checks the `ends` convention shared by every offset table: non-decreasing.
fn check_ends(field: &str, ends: &[u32]) -> Result<(), MalformedBatch> {
    if ends.windows(2).any(|pair| pair[0] > pair[1]) {
        return Err(MalformedBatch(format!("{field} is not non-decreasing")));
    }
    Ok(())
}

/// A checked `bytes-column`: every entry is in bounds.
#[derive(Clone, Copy)]
struct Column<'a> {
    data: &'a [u8],
    ends: &'a [u32],
}

impl<'a> Column<'a> {
    fn decode(field: &str, column: &'a BytesColumn, rows: usize) -> Result<Self, MalformedBatch> {
        if column.ends.len() != rows {
            return Err(MalformedBatch(format!(
                "{field}.ends has {} entries, expected {rows}",
                column.ends.len()
            )));
        }
        check_ends(&format!("{field}.ends"), &column.ends)?;
        let data_end = column.ends.last().map_or(0, |&end| end as usize);
        if data_end != column.data.len() {
            return Err(MalformedBatch(format!(
                "{field} ends at {data_end} but has {} bytes of data",
                column.data.len()
            )));
        }
        Ok(Self {
            data: &column.data,
            ends: &column.ends,
        })
    }

    fn get(&self, row: usize) -> &'a [u8] {
        &self.data[entry_range(self.ends, row)]
    }
}

/// A checked `bytes-column` of UTF-8 entries: the whole buffer is valid UTF-8 and every end
/// falls on a character boundary, so each entry is a `&str` without a second check.
#[derive(Clone, Copy)]
struct StrColumn<'a> {
    data: &'a str,
    ends: &'a [u32],
}

impl<'a> StrColumn<'a> {
    fn decode(field: &str, column: &'a BytesColumn, rows: usize) -> Result<Self, MalformedBatch> {
        let bytes = Column::decode(field, column, rows)?;
        let data = std::str::from_utf8(bytes.data)
            .map_err(|error| MalformedBatch(format!("{field} is not UTF-8: {error}")))?;
        if let Some(row) = (0..rows).find(|&row| !data.is_char_boundary(bytes.ends[row] as usize)) {
            return Err(MalformedBatch(format!("{field} entry {row} is not UTF-8")));
        }
        Ok(Self {
            data,
            ends: bytes.ends,
        })
    }

    fn get(&self, row: usize) -> &'a str {
        &self.data[entry_range(self.ends, row)]
    }
}

/// Entry `row` of a column is `data[start(row)..ends[row]]`, where `start(0) = 0` and
/// `start(row) = ends[row - 1]`.
fn entry_range(ends: &[u32], row: usize) -> Range<usize> {
    let start = row
        .checked_sub(1)
        .map_or(0, |previous| ends[previous] as usize);
    start..ends[row] as usize
}
