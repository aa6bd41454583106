//! Encoding: the outputs and failures of a batch, written straight into the encoded answer.

use runnel_encoding::OutcomesWriter;

use crate::failure::Failure;

/// Where a handler sends the outputs of the message it is handling.
///
/// Outputs go to the pipeline's default output topic unless [`OutputBuilder::topic`] says
/// otherwise. If the handler then returns an error, the outputs of that message are discarded.
pub struct Outputs {
    writer: OutcomesWriter,
}

/// Sets the optional parts of the output that [`Outputs::send`] just appended.
///
/// Each method rewrites that output in place, so the builder can be dropped at any point.
pub struct OutputBuilder<'a> {
    writer: &'a mut OutcomesWriter,
}

impl Outputs {
    pub(crate) fn new() -> Self {
        Self {
            writer: OutcomesWriter::with_capacity(0, 0),
        }
    }

    /// Starts the answer to a batch, sized for the common case of one output per message about
    /// as large as its input, so a typical batch is encoded without growing it. The tables'
    /// memory is reused from the previous batch.
    pub(crate) fn begin(&mut self, messages: usize, data_bytes: usize) {
        self.writer.begin(messages, data_bytes);
    }

    /// Sends `value` to the default topic, without key or headers; the returned builder changes
    /// that.
    pub fn send(&mut self, value: impl AsRef<[u8]>) -> OutputBuilder<'_> {
        self.writer.send(value.as_ref());
        OutputBuilder {
            writer: &mut self.writer,
        }
    }

    /// Records the outcome of the message whose outputs were sent since the previous call: keeps
    /// its outputs, or discards them and records the failure.
    pub(crate) fn finish_message(&mut self, outcome: Result<(), Failure>) {
        match outcome {
            Ok(()) => self.writer.finish_message(None),
            Err(failure) => self
                .writer
                .finish_message(Some((failure.kind(), failure.message()))),
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.writer.finish()
    }
}

impl OutputBuilder<'_> {
    /// Sets the key; `None` (the default) sends the output without a key, which Kafka
    /// distinguishes from an empty key.
    pub fn key(self, key: Option<&[u8]>) -> Self {
        self.writer.set_key(key);
        self
    }

    /// Changes the value in place, without another copy: sending a copy of the input and editing
    /// it is the cheapest way to transform a message.
    ///
    /// ```
    /// # use runnel_plugin_sdk::{Message, Outputs};
    /// # fn handle(message: &Message, out: &mut Outputs) {
    /// out.send(message.value())
    ///     .edit_value(|value| value.make_ascii_uppercase())
    ///     .key(message.key());
    /// # }
    /// ```
    pub fn edit_value(self, edit: impl FnOnce(&mut [u8])) -> Self {
        edit(self.writer.last_value_mut());
        self
    }

    /// Adds a header; names may repeat.
    pub fn header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.writer.add_header(name, value.as_ref());
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
        self.writer.set_topic(topic);
        self
    }
}
