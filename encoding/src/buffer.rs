//! The pieces both directions share: spans, tables of fixed-size records, the data area, and
//! the buffer a writer fills.

use std::fmt;

/// Bytes before the first table or the data area in both directions.
pub(crate) const PREAMBLE_LEN: usize = 40;
pub(crate) const SPAN_LEN: usize = 8;
pub(crate) const HEADER_RECORD_LEN: usize = 16;
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

    pub fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
    }

    fn end(self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// One fixed-size record, read field by field.
#[derive(Clone, Copy)]
pub(crate) struct Record<'a>(pub &'a [u8]);

impl<'a> Record<'a> {
    pub fn u32(self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }

    pub fn i32(self, at: usize) -> i32 {
        i32::from_le_bytes(self.bytes(at))
    }

    pub fn i64(self, at: usize) -> i64 {
        i64::from_le_bytes(self.bytes(at))
    }

    pub fn span(self, at: usize) -> Span {
        Span {
            offset: self.u32(at),
            length: self.u32(at + 4),
        }
    }

    fn bytes<const N: usize>(self, at: usize) -> [u8; N] {
        let mut bytes = [0; N];
        bytes.copy_from_slice(&self.0[at..at + N]);
        bytes
    }
}

/// Builds one fixed-size record field by field, to append it with a single copy.
pub(crate) struct RecordWriter<const N: usize> {
    bytes: [u8; N],
    at: usize,
}

impl<const N: usize> RecordWriter<N> {
    pub fn new() -> Self {
        Self {
            bytes: [0; N],
            at: 0,
        }
    }

    fn put<const M: usize>(&mut self, field: [u8; M]) -> &mut Self {
        self.bytes[self.at..self.at + M].copy_from_slice(&field);
        self.at += M;
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    pub fn span(&mut self, span: Span) -> &mut Self {
        self.u32(span.offset).u32(span.length)
    }

    /// The record; fields not written are zero.
    pub fn finish(&self) -> [u8; N] {
        self.bytes
    }
}

/// `len` records of `size` bytes starting at byte `at` of a buffer, checked to lie inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    at: usize,
    len: usize,
    size: usize,
}

impl Table {
    /// A table a writer laid out itself.
    pub fn new(at: u32, len: u32, size: usize) -> Self {
        Self {
            at: at as usize,
            len: len as usize,
            size,
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
        Ok(Self {
            at: at as usize,
            len: len as usize,
            size,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Record `index`; `index` must be below `len`.
    pub fn record<'a>(&self, buffer: &'a [u8], index: usize) -> Record<'a> {
        let start = self.at + index * self.size;
        Record(&buffer[start..start + self.size])
    }
}

/// The data area of a buffer: what spans point into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Data<'a>(&'a [u8]);

impl<'a> Data<'a> {
    pub fn new(area: &'a [u8]) -> Self {
        Self(area)
    }

    pub fn parse(buffer: &'a [u8], data_at: u32) -> Result<Self, DecodeError> {
        buffer
            .get(data_at as usize..)
            .map(Data)
            .ok_or_else(|| DecodeError::new(format!("data_at {data_at} is past the end")))
    }

    /// The bytes of a span that [`Data::check`] accepted.
    pub fn get(self, span: Span) -> &'a [u8] {
        let start = span.offset as usize;
        &self.0[start..start + span.length as usize]
    }

    /// The text of a span that [`Data::check_str`] accepted when the buffer was parsed, or
    /// that this crate's writers wrote from a `&str`.
    ///
    /// Views call this only with spans read from the name tables of a buffer that was
    /// parsed or written that way, and the buffer is borrowed immutably for as long as the
    /// view lives. Checking again would cost more than the work of most handlers:
    /// `str::from_utf8` of a six-byte topic name is about 180 WebAssembly instructions.
    #[allow(unsafe_code)]
    pub fn get_str(self, span: Span) -> &'a str {
        let bytes = self.get(span);
        debug_assert!(
            std::str::from_utf8(bytes).is_ok(),
            "{span:?} was not checked"
        );
        // SAFETY: the bytes were checked to be UTF-8 when the buffer was parsed, or copied
        // from a `&str` when it was written (see above).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    pub fn check(self, span: Span, what: impl Fn() -> String) -> Result<&'a [u8], DecodeError> {
        if span.end() > self.0.len() as u64 {
            return Err(DecodeError::new(format!(
                "{} ({} bytes at {}) runs past the {}-byte data area",
                what(),
                span.length,
                span.offset,
                self.0.len()
            )));
        }
        Ok(self.get(span))
    }

    pub fn check_str(self, span: Span, what: impl Fn() -> String) -> Result<&'a str, DecodeError> {
        let bytes = self.check(span, &what)?;
        // Names are nearly always ASCII, which is a fraction of the cost of a full UTF-8 check.
        if !bytes.is_ascii() {
            std::str::from_utf8(bytes)
                .map_err(|error| DecodeError::new(format!("{} is not UTF-8: {error}", what())))?;
        }
        Ok(self.get_str(span))
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

    pub fn get_key(self, span: Span) -> Option<&'a [u8]> {
        (span.offset != NO_KEY).then(|| self.get(span))
    }
}

/// Checks a header table: every span inside the data area and every name UTF-8.
pub(crate) fn check_headers(
    buffer: &[u8],
    headers: Table,
    data: Data<'_>,
) -> Result<(), DecodeError> {
    for index in 0..headers.len() {
        let record = headers.record(buffer, index);
        data.check_str(record.span(0), || format!("the name of header {index}"))?;
        data.check(record.span(8), || format!("the value of header {index}"))?;
    }
    Ok(())
}

/// Checks that headers `first .. first + count` exist.
pub(crate) fn check_header_range(
    first: u32,
    count: u32,
    headers: Table,
    owner: impl Fn() -> String,
) -> Result<(), DecodeError> {
    if u64::from(first) + u64::from(count) > headers.len() as u64 {
        return Err(DecodeError::new(format!(
            "{} has headers {first}..{} but the header table has {}",
            owner(),
            u64::from(first) + u64::from(count),
            headers.len()
        )));
    }
    Ok(())
}

/// The `(name, value)` headers of one message or output, in order.
#[derive(Clone)]
pub struct Headers<'a> {
    buffer: &'a [u8],
    table: Table,
    data: Data<'a>,
    remaining: std::ops::Range<usize>,
}

impl<'a> Headers<'a> {
    pub(crate) fn new(
        buffer: &'a [u8],
        table: Table,
        data: Data<'a>,
        first: u32,
        count: u32,
    ) -> Self {
        let first = first as usize;
        Self {
            buffer,
            table,
            data,
            remaining: first..first + count as usize,
        }
    }

    fn header(&self, index: usize) -> (&'a str, &'a [u8]) {
        let record = self.table.record(self.buffer, index);
        (
            self.data.get_str(record.span(0)),
            self.data.get(record.span(8)),
        )
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.remaining.next()?;
        Some(self.header(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.remaining.size_hint()
    }
}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let index = self.remaining.next_back()?;
        Some(self.header(index))
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
        let mut bytes = Vec::with_capacity(PREAMBLE_LEN + data_bytes);
        bytes.resize(PREAMBLE_LEN, 0);
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
        &self.bytes[PREAMBLE_LEN..]
    }

    /// The bytes of a span this buffer handed out.
    pub fn data_mut(&mut self, span: Span) -> &mut [u8] {
        let start = PREAMBLE_LEN + span.offset as usize;
        &mut self.bytes[start..start + span.length as usize]
    }

    pub fn data_len(&self) -> usize {
        self.bytes.len() - PREAMBLE_LEN
    }

    /// Forgets data written after the first `len` bytes; tables are not written yet.
    pub fn truncate_data(&mut self, len: usize) {
        self.bytes.truncate(PREAMBLE_LEN + len);
    }

    /// Appends a table after the data area and returns where it starts.
    pub fn append_table(&mut self, records: &[u8]) -> u32 {
        let at = to_u32(self.bytes.len());
        self.bytes.extend_from_slice(records);
        at
    }

    /// Fills in the preamble: `magic` followed by nine `u32` fields.
    pub fn finish(mut self, magic: [u8; 4], fields: [u32; 9]) -> Vec<u8> {
        self.bytes[..4].copy_from_slice(&magic);
        for (index, field) in fields.into_iter().enumerate() {
            let at = 4 + index * 4;
            self.bytes[at..at + 4].copy_from_slice(&field.to_le_bytes());
        }
        self.bytes
    }
}

/// The index of `name` in `table`, a table of spans into `buffer`'s data area, adding it if
/// it is new. Batches and answers usually hold one or a few topics, so a scan from the most
/// recent one is the fastest lookup.
pub(crate) fn intern(buffer: &mut Buffer, table: &mut Vec<Span>, name: &str) -> u32 {
    let data = buffer.data();
    let known = table.iter().rposition(|&span| {
        let start = span.offset as usize;
        &data[start..start + span.length as usize] == name.as_bytes()
    });
    let index = known.unwrap_or_else(|| {
        let span = buffer.push(name.as_bytes());
        table.push(span);
        table.len() - 1
    });
    to_u32(index)
}

/// Writes a table of spans.
pub(crate) fn span_table(spans: &[Span]) -> Vec<u8> {
    let mut table = Vec::with_capacity(spans.len() * SPAN_LEN);
    for span in spans {
        span.write(&mut table);
    }
    table
}

/// Appends a header record.
pub(crate) fn write_header(out: &mut Vec<u8>, name: Span, value: Span) {
    let mut record = RecordWriter::<HEADER_RECORD_LEN>::new();
    record.span(name).span(value);
    out.extend_from_slice(&record.finish());
}

/// Lengths and offsets in the encoding are `u32`: a buffer cannot exceed 4 GiB. A WebAssembly
/// plugin's memory is below that, and the host bounds its batches far below it.
pub(crate) fn to_u32(length: usize) -> u32 {
    u32::try_from(length).expect("a Runnel batch or answer cannot exceed 4 GiB")
}

/// Reads the preamble's magic and nine `u32` fields.
pub(crate) fn read_preamble(
    buffer: &[u8],
    magic: [u8; 4],
    what: &str,
) -> Result<[u32; 9], DecodeError> {
    if buffer.len() < PREAMBLE_LEN {
        return Err(DecodeError::new(format!(
            "{what} is {} bytes, shorter than its {PREAMBLE_LEN}-byte header",
            buffer.len()
        )));
    }
    if buffer[..4] != magic {
        return Err(DecodeError::new(format!(
            "{what} does not start with {:?}: it is not encoding version 1",
            String::from_utf8_lossy(&magic)
        )));
    }
    let record = Record(&buffer[4..PREAMBLE_LEN]);
    Ok(std::array::from_fn(|index| record.u32(index * 4)))
}
