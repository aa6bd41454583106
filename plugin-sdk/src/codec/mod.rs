//! The encoded form in which batches and answers cross the component boundary (see
//! `wit/ENCODING.md`), decoded into one [`Message`] at a time and encoded from [`Outputs`].

mod message;
mod outputs;

pub use message::{Headers, Message};
pub use outputs::{OutputBuilder, Outputs};

use runnel_encoding::BatchView;

use crate::Handler;
use crate::failure::Failure;

/// Runs `handler` over every message of the encoded `batch` and returns the encoded answer:
/// exactly one outcome per message, in order, written with `outputs`. `handler` is `None` when
/// `init` has not succeeded.
pub(crate) fn handle_batch<H: Handler>(
    handler: Option<&mut H>,
    batch: &[u8],
    outputs: &mut Outputs,
) -> Vec<u8> {
    let view = match BatchView::parse(batch) {
        Ok(view) => view,
        // Retrying the same batch against the same host cannot help, hence permanent.
        Err(malformed) => {
            return fail_every_message(
                outputs,
                claimed_count(batch),
                Failure::permanent(format!(
                    "the plugin received a malformed batch ({malformed}); this is a bug in the \
                     Runnel host or runnel-plugin-sdk"
                )),
            );
        }
    };
    let Some(handler) = handler else {
        return fail_every_message(
            outputs,
            view.len(),
            Failure::permanent(
                "the plugin was not initialized: the host called handle before init succeeded",
            ),
        );
    };

    outputs.begin(view.len(), batch.len());
    let source = view.source();
    for message in view.messages() {
        let outcome = handler.handle(&Message::new(source, message), outputs);
        outputs.finish_message(outcome);
    }
    outputs.finish()
}

/// The message count a batch's header claims, so that even a malformed batch gets one failure
/// per message; 0 if not even that can be read (the host then sees the answer's count differ).
fn claimed_count(batch: &[u8]) -> usize {
    batch
        .get(4..8)
        .map_or(0, |count| {
            u32::from_le_bytes([count[0], count[1], count[2], count[3]]) as usize
        })
        // A corrupt count must not make the plugin allocate without bound.
        .min(batch.len())
}

fn fail_every_message(outputs: &mut Outputs, count: usize, failure: Failure) -> Vec<u8> {
    outputs.begin(count, 0);
    for _ in 0..count {
        outputs.finish_message(Err(failure.clone()));
    }
    outputs.finish()
}

#[cfg(test)]
mod tests;
