//! The batch encoding of `runnel:plugin@0.2.0`, specified in `wit/ENCODING.md`: one byte
//! buffer per batch and one per answer, each a fixed header, tables of fixed-size records and a
//! data area that the records point into.
//!
//! Both sides use this crate: the host writes batches ([`BatchWriter`]) and reads answers
//! ([`OutcomesView`]); the Rust plugin SDK reads batches ([`BatchView`]) and writes answers
//! ([`OutcomesWriter`]). A view checks the whole buffer once when it is parsed, so reading it
//! afterwards is plain slicing that cannot go out of bounds or panic.

mod batch;
mod buffer;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
mod layout;
mod outcomes;
mod text;

pub use batch::{BatchView, BatchWriter, EncodedBatch, Headers, MessageView, NewMessage};
pub use buffer::DecodeError;
pub use outcomes::{EncodedOutcomes, Outcome, OutcomesView, OutcomesWriter, OutputView, Outputs};

/// Whether retrying a failed message could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A temporary condition (a dependency was down, a rate limit): the host retries the message
    /// according to the pipeline's policy.
    Transient,
    /// The message itself is bad (it does not parse, it breaks a rule): retrying cannot help, so
    /// the host dead-letters or skips it.
    Permanent,
}

impl FailureKind {
    /// Stable name for logs, metrics and dead-letter headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

#[cfg(test)]
mod tests;
