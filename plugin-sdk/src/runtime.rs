//! What `export_handler!` calls: the handler instance kept between calls, and the two WIT
//! exports.

use std::cell::RefCell;

use crate::codec::handle_batch;
use crate::{Config, Handler, Outputs};

/// The `init` export: builds the handler that every later batch uses.
pub fn init<H: Handler>(
    instance: &RefCell<Option<H>>,
    config: Vec<(String, String)>,
) -> Result<(), String> {
    // A failed init leaves no handler behind, so batches fail with a clear message instead of
    // running on an older configuration.
    let mut instance = instance.borrow_mut();
    *instance = None;
    *instance = Some(H::init(&Config::new(config))?);
    Ok(())
}

thread_local! {
    // One writer for every batch of the instance, so that its tables are allocated once.
    static OUTPUTS: RefCell<Outputs> = RefCell::new(Outputs::new());
}

/// The `handle` export: an encoded batch in, the encoded answer out.
pub fn handle<H: Handler>(instance: &RefCell<Option<H>>, batch: Vec<u8>) -> Vec<u8> {
    OUTPUTS.with_borrow_mut(|outputs| handle_batch(instance.borrow_mut().as_mut(), &batch, outputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Failure, Init, Message, Outputs};
    use runnel_encoding::{BatchWriter, NewMessage, Outcome, OutcomesView};

    /// Prefixes every value with its configured `prefix`.
    struct Prefixer {
        prefix: String,
    }

    impl Init for Prefixer {
        fn init(config: &Config) -> Result<Self, String> {
            let prefix = config.require("prefix")?.to_owned();
            Ok(Self { prefix })
        }
    }

    impl Handler for Prefixer {
        fn handle(&mut self, message: &Message<'_>, out: &mut Outputs) -> Result<(), Failure> {
            out.send([self.prefix.as_bytes(), message.value()].concat());
            Ok(())
        }
    }

    fn one_message(value: &str) -> Vec<u8> {
        let mut writer = BatchWriter::new("test");
        let message = NewMessage {
            topic: "in",
            partition: 0,
            offset: 0,
            timestamp: None,
            key: None,
            value: value.as_bytes(),
        };
        writer.push(&message, []);
        writer.finish().bytes().to_vec()
    }

    fn only_outcome(answer: &[u8]) -> Outcome<'_> {
        OutcomesView::parse(answer, 1).unwrap().outcome(0)
    }

    #[test]
    fn init_builds_the_handler_every_batch_uses() {
        let instance = RefCell::new(None);
        init::<Prefixer>(&instance, vec![("prefix".into(), "> ".into())]).unwrap();

        let answer = handle(&instance, one_message("hi"));
        let Outcome::Outputs(mut outputs) = only_outcome(&answer) else {
            panic!("the message succeeded")
        };
        assert_eq!(outputs.next().unwrap().value, b"> hi");
    }

    #[test]
    fn failed_init_leaves_no_handler_behind() {
        let instance = RefCell::new(None);
        init::<Prefixer>(&instance, vec![("prefix".into(), "old".into())]).unwrap();

        let error = init::<Prefixer>(&instance, Vec::new()).unwrap_err();
        assert!(error.contains("`prefix`"), "{error}");

        let answer = handle(&instance, one_message("hi"));
        let Outcome::Failed { message, .. } = only_outcome(&answer) else {
            panic!("the message failed")
        };
        assert!(message.contains("before init"), "{message}");
    }
}
