//! The pieces both directions share: spans, tables of fixed-size records, the data area, the
//! headers of a message or an output, and the buffer a writer fills.

use std::fmt;

use crate::layout::{Field, FieldType, header, preamble, topic};
use crate::text::CheckedBuffer;

/// The offset of a key span that stands for "no key".
pub(crate) const NO_KEY: u32 = u32::MAX;

/// Why a buffer is not a valid batch or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// `length` bytes at `offset` of the data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub offset: u32,
    pub length: u32,
}

impl Span {
    pub const NO_KEY: Span = Span {
        offset: NO_KEY,
        length: 0,
    };

    pub const EMPTY: Span = Span {
        offset: 0,
        length: 0,
    };

    #[inline]
    fn end(self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// One fixed-size record, read field by field.
#[derive(Clone, Copy)]
pub(crate) struct Record<'a>(pub &'a [u8]);

impl Record<'_> {
    pub fn get<T: FieldType>(self, field: Field<T>) -> T {
        field.read(self.0)
    }
}

/// Builds one fixed-size record field by field, to append it with a single copy.
pub(crate) struct RecordWriter<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> RecordWriter<N> {
    pub fn new() -> Self {
        Self { bytes: [0; N] }
    }

    pub fn set<T: FieldType>(&mut self, field: Field<T>, value: T) -> &mut Self {
        field.write(&mut self.bytes, value);
        self
    }

    /// The record; fields not set are zero.
    pub fn finish(&self) -> [u8; N] {
        self.bytes
    }
}

/// `len` records of `size` bytes starting at byte `at` of a buffer, checked to lie inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    // `u32`s, as in the encoding: views and the buffers that hold them copy tables around.
    at: u32,
    len: u32,
    size: u32,
}

impl Table {
    /// A table of no records.
    pub const EMPTY: Table = Table {
        at: 0,
        len: 0,
        size: 0,
    };

    /// A table a writer laid out itself.
    pub fn new(at: u32, len: u32, size: usize) -> Self {
        Self {
            at,
            len,
            size: size as u32,
        }
    }

    pub fn parse(
        buffer: &[u8],
        at: u32,
        len: u32,
        size: usize,
        name: &str,
    ) -> Result<Self, DecodeError> {
        let end = u64::from(at) + u64::from(len) * size as u64;
        if end > buffer.len() as u64 {
            return Err(DecodeError::new(format!(
                "the {name} table ({len} records at byte {at}) runs past the end of the {}-byte buffer",
                buffer.len()
            )));
        }
        Ok(Self::new(at, len, size))
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Record `index`. Panics unless `index` is below `len`: a record past the end of a table
    /// is not one that was checked.
    #[inline]
    pub fn record<'a>(&self, buffer: &'a [u8], index: usize) -> Record<'a> {
        assert!(
            index < self.len(),
            "record {index} of a table of {}",
            self.len
        );
        let size = self.size as usize;
        let start = self.at as usize + index * size;
        Record(&buffer[start..start + size])
    }
}

/// The data area of a buffer: what spans point into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Data<'a>(&'a [u8]);

impl<'a> Data<'a> {
    pub fn new(area: &'a [u8]) -> Self {
        Self(area)
    }

    /// The bytes of a span that [`Data::check`] accepted.
    #[inline]
    pub fn get(self, span: Span) -> &'a [u8] {
        let start = span.offset as usize;
        &self.0[start..start + span.length as usize]
    }

    pub fn check(self, span: Span, what: impl Fn() -> String) -> Result<&'a [u8], DecodeError> {
        if span.end() > self.0.len() as u64 {
            return Err(self.past_the_end(span, what()));
        }
        Ok(self.get(span))
    }

    // Kept out of `check`, so that the check itself is small enough to inline.
    #[cold]
    fn past_the_end(self, span: Span, what: String) -> DecodeError {
        DecodeError::new(format!(
            "{what} ({} bytes at {}) runs past the {}-byte data area",
            span.length,
            span.offset,
            self.0.len()
        ))
    }

    /// A key span: `None` for the "no key" marker.
    pub fn check_key(
        self,
        span: Span,
        what: impl Fn() -> String,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        if span.offset == NO_KEY {
            if span.length != 0 {
                return Err(DecodeError::new(format!(
                    "{} marks no key but has a length",
                    what()
                )));
            }
            return Ok(None);
        }
        self.check(span, what).map(Some)
    }

    #[inline]
    pub fn get_key(self, span: Span) -> Option<&'a [u8]> {
        (span.offset != NO_KEY).then(|| self.get(span))
    }
}

/// Checks that headers `first .. first + count` exist.
pub(crate) fn check_header_range(
    first: u32,
    count: u32,
    headers: usize,
    owner: impl Fn() -> String,
) -> Result<(), DecodeError> {
    if u64::from(first) + u64::from(count) > headers as u64 {
        return Err(DecodeError::new(format!(
            "{} has headers {first}..{} but the header table has {}",
            owner(),
            u64::from(first) + u64::from(count),
            headers
        )));
    }
    Ok(())
}

/// The `(name, value)` headers of one message or output, in order.
#[derive(Clone)]
pub struct Headers<'a> {
    buffer: CheckedBuffer<&'a [u8]>,
    remaining: std::ops::Range<usize>,
}

impl<'a> Headers<'a> {
    /// Headers `first .. first + count` of `buffer`'s header table, which must exist.
    pub(crate) fn new(buffer: CheckedBuffer<&'a [u8]>, first: u32, count: u32) -> Self {
        let first = first as usize;
        Self {
            buffer,
            remaining: first..first + count as usize,
        }
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.remaining.next()?;
        Some(self.buffer.header(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.remaining.size_hint()
    }
}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let index = self.remaining.next_back()?;
        Some(self.buffer.header(index))
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The buffer a writer fills: the preamble, left zero until the writer finishes, then the data
/// area, then the tables.
pub(crate) struct Buffer {
    bytes: Vec<u8>,
}

impl Buffer {
    /// A buffer that holds nothing yet, not even the preamble; it allocates nothing.
    pub fn empty() -> Self {
        Self { bytes: Vec::new() }
    }

    pub fn with_capacity(data_bytes: usize) -> Self {
        let mut bytes = Vec::with_capacity(preamble::LEN + data_bytes);
        bytes.resize(preamble::LEN, 0);
        Self { bytes }
    }

    /// Appends `bytes` to the data area.
    pub fn push(&mut self, bytes: &[u8]) -> Span {
        let offset = to_u32(self.data_len());
        self.bytes.extend_from_slice(bytes);
        Span {
            offset,
            length: to_u32(bytes.len()),
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[preamble::LEN..]
    }

    /// The bytes of a span this buffer handed out.
    pub fn data_mut(&mut self, span: Span) -> &mut [u8] {
        let start = preamble::LEN + span.offset as usize;
        &mut self.bytes[start..start + span.length as usize]
    }

    pub fn data_len(&self) -> usize {
        self.bytes.len() - preamble::LEN
    }

    /// Forgets data written after the first `len` bytes; tables are not written yet.
    pub fn truncate_data(&mut self, len: usize) {
        self.bytes.truncate(preamble::LEN + len);
    }

    /// Appends a table after the data area and returns where it starts.
    pub fn append_table(&mut self, records: &[u8]) -> u32 {
        let at = to_u32(self.bytes.len());
        self.bytes.extend_from_slice(records);
        at
    }

    /// Fills in the preamble.
    pub fn finish(mut self, header: [u8; preamble::LEN]) -> Vec<u8> {
        self.bytes[..preamble::LEN].copy_from_slice(&header);
        self.bytes
    }
}

/// The index of `name` in `table`, a table of spans into `buffer`'s data area, adding it if
/// it is new. Batches and answers usually hold one or a few topics, so a scan from the most
/// recent one is the fastest lookup.
pub(crate) fn intern(buffer: &mut Buffer, table: &mut Vec<Span>, name: &str) -> u32 {
    let data = Data::new(buffer.data());
    let known = table
        .iter()
        .rposition(|&span| data.get(span) == name.as_bytes());
    let index = known.unwrap_or_else(|| {
        let span = buffer.push(name.as_bytes());
        table.push(span);
        table.len() - 1
    });
    to_u32(index)
}

/// Writes a topics table.
pub(crate) fn topic_table(names: &[Span]) -> Vec<u8> {
    let mut table = Vec::with_capacity(names.len() * topic::LEN);
    for &name in names {
        let mut record = RecordWriter::<{ topic::LEN }>::new();
        record.set(topic::NAME, name);
        table.extend_from_slice(&record.finish());
    }
    table
}

/// Appends a header record.
pub(crate) fn write_header(out: &mut Vec<u8>, name: Span, value: Span) {
    let mut record = RecordWriter::<{ header::LEN }>::new();
    record.set(header::NAME, name).set(header::VALUE, value);
    out.extend_from_slice(&record.finish());
}

/// Lengths and offsets in the encoding are `u32`: a buffer cannot exceed 4 GiB. A WebAssembly
/// plugin's memory is below that, and the host bounds its batches far below it.
pub(crate) fn to_u32(length: usize) -> u32 {
    u32::try_from(length).expect("a Runnel batch or answer cannot exceed 4 GiB")
}

/// The header of `buffer`, once it is known to be long enough and to start with `magic`.
pub(crate) fn read_preamble<'a>(
    buffer: &'a [u8],
    magic: [u8; 4],
    what: &str,
) -> Result<Record<'a>, DecodeError> {
    if buffer.len() < preamble::LEN {
        return Err(DecodeError::new(format!(
            "{what} is {} bytes, shorter than its {}-byte header",
            buffer.len(),
            preamble::LEN
        )));
    }
    let header = Record(&buffer[..preamble::LEN]);
    if header.get(preamble::MAGIC) != magic {
        return Err(DecodeError::new(format!(
            "{what} does not start with {:?}: it is not encoding version 1",
            String::from_utf8_lossy(&magic)
        )));
    }
    Ok(header)
}
