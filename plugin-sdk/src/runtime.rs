//! What `export_handler!` calls: the handler instance kept between calls, and the two WIT
//! exports.

use std::cell::RefCell;

use crate::bindings::{Batch, Outcomes};
use crate::codec::handle_batch;
use crate::{Config, Handler};

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

/// The `handle` export.
pub fn handle<H: Handler>(instance: &RefCell<Option<H>>, batch: Batch) -> Outcomes {
    handle_batch(instance.borrow_mut().as_mut(), &batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{BytesColumn, HeadersColumn};
    use crate::{Failure, Init, Message, Outputs};

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

    fn one_message(value: &str) -> Batch {
        let one_entry = |entry: &[u8]| BytesColumn {
            data: entry.to_vec(),
            ends: vec![entry.len() as u32],
        };
        let no_entries = || BytesColumn {
            data: Vec::new(),
            ends: Vec::new(),
        };
        Batch {
            count: 1,
            source: "test".into(),
            topics: vec!["in".into()],
            topic_index: vec![0],
            partitions: vec![0],
            offsets: vec![0],
            timestamps: vec![-1],
            keys: one_entry(b""),
            null_keys: vec![0],
            values: one_entry(value.as_bytes()),
            headers: HeadersColumn {
                row_ends: vec![0],
                names: no_entries(),
                values: no_entries(),
            },
        }
    }

    #[test]
    fn init_builds_the_handler_every_batch_uses() {
        let instance = RefCell::new(None);
        init::<Prefixer>(&instance, vec![("prefix".into(), "> ".into())]).unwrap();

        let outcomes = handle(&instance, one_message("hi"));
        assert_eq!(outcomes.values.data, b"> hi");
        assert!(outcomes.failures.is_empty());
    }

    #[test]
    fn failed_init_leaves_no_handler_behind() {
        let instance = RefCell::new(None);
        init::<Prefixer>(&instance, vec![("prefix".into(), "old".into())]).unwrap();

        let error = init::<Prefixer>(&instance, Vec::new()).unwrap_err();
        assert!(error.contains("`prefix`"), "{error}");

        let outcomes = handle(&instance, one_message("hi"));
        assert_eq!(outcomes.output_ends, [0]);
        assert_eq!(outcomes.failures.len(), 1);
        assert!(outcomes.failures[0].message.contains("before init"));
    }
}
