//! The columnar form in which batches and outcomes cross the component boundary (see
//! `wit/runnel.wit`), decoded into one [`Message`] at a time and encoded from [`Outputs`].

mod message;
mod outputs;

pub use message::{Headers, Message};
pub use outputs::{OutputBuilder, Outputs};

use crate::Handler;
use crate::bindings::{Batch, Outcomes};
use crate::failure::Failure;
use message::DecodedBatch;

/// Runs `handler` over every message of `batch` and returns exactly one outcome per message,
/// in order. `handler` is `None` when `init` has not succeeded.
pub(crate) fn handle_batch<H: Handler>(handler: Option<&mut H>, batch: &Batch) -> Outcomes {
    let decoded = match DecodedBatch::decode(batch) {
        Ok(decoded) => decoded,
        // Retrying the same batch against the same host cannot help, hence permanent.
        Err(malformed) => {
            return fail_every_message(
                batch.count,
                Failure::permanent(format!(
                    "the plugin received a malformed batch ({malformed}); this is a bug in the \
                     Runnel host or runnel-plugin-sdk"
                )),
            );
        }
    };
    let Some(handler) = handler else {
        return fail_every_message(
            batch.count,
            Failure::permanent(
                "the plugin was not initialized: the host called handle before init succeeded",
            ),
        );
    };

    let mut outputs = Outputs::with_capacity(
        batch.count as usize,
        batch.keys.data.len(),
        batch.values.data.len(),
    );
    for message in decoded.messages() {
        let outcome = handler.handle(&message, &mut outputs);
        outputs.finish_message(outcome);
    }
    outputs.into_outcomes()
}

fn fail_every_message(count: u32, failure: Failure) -> Outcomes {
    let mut outputs = Outputs::with_capacity(count as usize, 0, 0);
    for _ in 0..count {
        outputs.finish_message(Err(failure.clone()));
    }
    outputs.into_outcomes()
}

#[cfg(test)]
mod tests;
