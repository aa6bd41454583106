//! Why a handler could not process one message.

use std::fmt;

/// The failure of one message, returned from [`Handler::handle`](crate::Handler::handle).
///
/// The kind tells the host what to do next: retry a transient failure, dead-letter or skip a
/// permanent one. Any output the message had already sent is discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    message: String,
}

pub use runnel_encoding::FailureKind;

impl Failure {
    /// A failure that retrying the same message cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            message: message.into(),
        }
    }

    /// A failure that a later retry of the same message may not hit.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failure: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}
