//! The text of a batch or an answer (its source, topic names, header names and failure
//! messages), checked once and then read without checking again: the crate's one `unsafe`, and
//! the type that makes it sound.
//!
//! Reading text with `str::from_utf8` would cost more than the work of most handlers: it ran
//! the `uppercase` plugin about 390 more WebAssembly instructions for each 8-byte header name,
//! 28% more per message with one header, and 450 more per batch for its source. So a
//! [`CheckedBuffer`] checks every piece of text when a buffer is parsed or written, and keeps the
//! bytes it checked together with where their text is. Its fields are private, so only its
//! `check_` methods can say where text is, and its bytes cannot change: the text it reads is
//! always text it checked.

use std::ops::Deref;

use crate::FailureKind;
use crate::buffer::{Data, DecodeError, Record, Span, Table};
use crate::layout::{header, outcome, topic};

/// Bytes that stay as they are while a [`CheckedBuffer`] holds them: a buffer the crate owns or
/// one it borrows.
pub(crate) trait Bytes: Deref<Target = [u8]> + sealed::Sealed {}

impl Bytes for Vec<u8> {}
impl Bytes for &[u8] {}

mod sealed {
    /// Keeps every other type out of [`super::Bytes`]: bytes that could change under a shared
    /// reference would undo the checks.
    pub trait Sealed {}

    impl Sealed for Vec<u8> {}
    impl Sealed for &[u8] {}
}

/// A batch or an answer whose text is checked: every span of text it knows of lies inside the
/// data area and holds UTF-8. `B` is `Vec<u8>` for a buffer it owns, `&[u8]` for one it
/// borrows; text is read from the borrowed form.
#[derive(Clone, Copy)]
pub(crate) struct CheckedBuffer<B> {
    bytes: B,
    data_at: usize,
    /// A batch's source; `None` in an answer.
    source: Option<Span>,
    topics: Table,
    headers: Table,
    /// An answer's outcomes, whose failure messages are text; `None` in a batch.
    outcomes: Option<Table>,
}

impl<B: Bytes> CheckedBuffer<B> {
    /// `bytes`, whose data area starts at `data_at`, with no text checked yet.
    pub fn new(bytes: B, data_at: u32) -> Result<Self, DecodeError> {
        if data_at as usize > bytes.len() {
            return Err(DecodeError::new(format!(
                "data_at {data_at} is past the end"
            )));
        }
        Ok(Self {
            bytes,
            data_at: data_at as usize,
            source: None,
            topics: Table::EMPTY,
            headers: Table::EMPTY,
            outcomes: None,
        })
    }

    pub fn borrow(&self) -> CheckedBuffer<&[u8]> {
        CheckedBuffer {
            bytes: &self.bytes,
            data_at: self.data_at,
            source: self.source,
            topics: self.topics,
            headers: self.headers,
            outcomes: self.outcomes,
        }
    }

    /// Checks a batch's source.
    pub fn check_source(&mut self, span: Span) -> Result<(), DecodeError> {
        check_text(self.borrow().data(), span, || "the source".into())?;
        self.source = Some(span);
        Ok(())
    }

    /// Checks the name of every topic of `table`; `what` names topic `index` in an error.
    pub fn check_topics(
        &mut self,
        table: Table,
        what: impl Fn(usize) -> String,
    ) -> Result<(), DecodeError> {
        let buffer = self.borrow();
        for index in 0..table.len() {
            let name = table.record(buffer.bytes, index).get(topic::NAME);
            check_text(buffer.data(), name, || what(index))?;
        }
        self.topics = table;
        Ok(())
    }

    /// Checks a header table: every name is text, every value lies inside the data area.
    pub fn check_headers(&mut self, table: Table) -> Result<(), DecodeError> {
        let buffer = self.borrow();
        let data = buffer.data();
        for index in 0..table.len() {
            let record = table.record(buffer.bytes, index);
            check_text(data, record.get(header::NAME), || {
                format!("the name of header {index}")
            })?;
            data.check(record.get(header::VALUE), || {
                format!("the value of header {index}")
            })?;
        }
        self.headers = table;
        Ok(())
    }

    /// Checks the failure message of every failed outcome of `table`.
    pub fn check_failure_messages(&mut self, table: Table) -> Result<(), DecodeError> {
        let buffer = self.borrow();
        for index in 0..table.len() {
            let record = table.record(buffer.bytes, index);
            if failure_kind(record).is_some() {
                check_text(buffer.data(), record.get(outcome::FAILURE_MESSAGE), || {
                    format!("the failure message of message {index}")
                })?;
            }
        }
        self.outcomes = Some(table);
        Ok(())
    }
}

impl<'a> CheckedBuffer<&'a [u8]> {
    pub fn bytes(self) -> &'a [u8] {
        self.bytes
    }

    pub fn data(self) -> Data<'a> {
        Data::new(&self.bytes[self.data_at..])
    }

    /// A batch's source; empty in an answer.
    pub fn source(self) -> &'a str {
        self.source.map_or("", |span| self.text(span))
    }

    /// The name of topic `index`, which must be below the length of the topics table.
    pub fn topic(self, index: usize) -> &'a str {
        self.text(self.topics.record(self.bytes, index).get(topic::NAME))
    }

    /// The name and value of header `index`, which must be below the length of the header
    /// table.
    pub fn header(self, index: usize) -> (&'a str, &'a [u8]) {
        let record = self.headers.record(self.bytes, index);
        (
            self.text(record.get(header::NAME)),
            self.data().get(record.get(header::VALUE)),
        )
    }

    /// How outcome `index` failed, or `None` if it succeeded (or this is a batch).
    pub fn failure(self, index: usize) -> Option<(FailureKind, &'a str)> {
        let record = self.outcomes?.record(self.bytes, index);
        let kind = failure_kind(record)?;
        Some((kind, self.text(record.get(outcome::FAILURE_MESSAGE))))
    }

    /// The text of `span`, which must be one that a `check_` method found to be text in these
    /// bytes.
    #[allow(unsafe_code)]
    fn text(self, span: Span) -> &'a str {
        let bytes = self.data().get(span);
        debug_assert!(std::str::from_utf8(bytes).is_ok(), "{span:?} is not text");
        // SAFETY: every caller above reads `span` from a place a `check_` method checked: the
        // source, the name of a record of the topics or the header table (`Table::record`
        // refuses indices past the table), or the message of a failed outcome (by the same
        // test of its kind). Those methods found these very bytes to be UTF-8: `bytes` is
        // private, and neither `Vec<u8>` nor `&[u8]`, the only `Bytes`, can change behind the
        // shared reference this reads through.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

/// The kind of a failed outcome, or `None` for a message that succeeded (or an outcome of an
/// unknown kind, which no checked answer holds).
fn failure_kind(record: Record<'_>) -> Option<FailureKind> {
    match record.get(outcome::KIND) {
        outcome::TRANSIENT => Some(FailureKind::Transient),
        outcome::PERMANENT => Some(FailureKind::Permanent),
        _ => None,
    }
}

/// Checks that `span` lies inside `data` and holds UTF-8.
fn check_text(data: Data<'_>, span: Span, what: impl Fn() -> String) -> Result<(), DecodeError> {
    let bytes = data.check(span, &what)?;
    // Names are nearly always ASCII, which is a fraction of the cost of a full UTF-8 check.
    if !bytes.is_ascii() {
        std::str::from_utf8(bytes)
            .map_err(|error| DecodeError::new(format!("{} is not UTF-8: {error}", what())))?;
    }
    Ok(())
}
