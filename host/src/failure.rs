//! Why a message failed and what a pipeline does about it. Kinds are typed
//! everywhere inside the host and become text only at its edges: metric
//! labels, dead-letter headers, HTTP answers.

use std::fmt;

use crate::config::{OnFailure, RetryConfig};
use crate::runtime::{CallErrorKind, FailureKind};
use crate::sink::{DeadLetters, PendingDelivery};

/// What kind of failure a message met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFailureKind {
    /// A retry may succeed: the handler said so, or the host could not
    /// finish the message for a reason outside it (shutting down, an output
    /// not acknowledged).
    Transient,
    /// Retrying cannot help: the handler said so, or its outputs are
    /// impossible (no topic to send to, refused by the producer).
    Permanent,
    /// The message broke the plugin call on its own (a trap, a timeout, a
    /// memory blow-up, ...).
    Call(CallErrorKind),
}

impl MessageFailureKind {
    /// Stable name for logs, metrics, dead-letter headers and HTTP answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => FailureKind::Transient.as_str(),
            Self::Permanent => FailureKind::Permanent.as_str(),
            Self::Call(kind) => kind.as_str(),
        }
    }

    /// Whether a later attempt may succeed where this one failed: the
    /// handler's transient failures, and calls that ran out of time.
    pub fn may_pass_later(self) -> bool {
        matches!(self, Self::Transient | Self::Call(CallErrorKind::Timeout))
    }
}

impl From<FailureKind> for MessageFailureKind {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Transient => Self::Transient,
            FailureKind::Permanent => Self::Permanent,
        }
    }
}

impl fmt::Display for MessageFailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one message could not be processed.
#[derive(Debug, Clone)]
pub struct MessageFailure {
    pub kind: MessageFailureKind,
    pub message: String,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl MessageFailure {
    /// A failure on the first attempt.
    pub fn new(kind: MessageFailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            attempts: 1,
        }
    }
}

/// The result of processing one input message.
#[derive(Default)]
pub struct MessageResult {
    /// Outputs (or the dead letter) handed to the producer, to be confirmed
    /// before the input counts as done.
    pub deliveries: Vec<PendingDelivery>,
    pub failure: Option<MessageFailure>,
    /// The failed message went to the dead-letter topic: it is handled.
    pub dead_lettered: bool,
    /// The pipeline must stop at this message (`on_failure = "stop"`):
    /// nothing from here on may be committed.
    pub stop: bool,
}

impl MessageResult {
    /// How many of the deliveries are outputs: all but the dead letter of
    /// a dead-lettered message, which is counted apart.
    pub fn outputs(&self) -> u64 {
        (self.deliveries.len() - usize::from(self.dead_lettered)) as u64
    }
}

/// How a pipeline treats messages that fail.
#[derive(Debug, Clone, Default)]
pub struct FailurePolicy {
    pub retry: RetryConfig,
    /// Where messages that failed for good go; without it they are skipped
    /// or stop the pipeline, as `on_failure` says.
    pub dead_letters: Option<DeadLetters>,
    pub on_failure: OnFailure,
}
