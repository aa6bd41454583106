//! Counts the messages seen per key and sends each message on with its running count in a
//! header: an example of a handler configured by `init` that keeps state across messages.
//!
//! Settings:
//! - `header` (optional, default `count`): the name of the header that carries the count.
//!
//! The value is sent unchanged, with its key and headers, to the default topic. A message
//! without a key is counted apart from one with an empty key, as Kafka tells them apart.
//! Counts live in the plugin instance: each instance counts the messages it handled, from
//! zero when it starts.

use std::collections::HashMap;

use runnel_plugin_sdk::{Config, Failure, Handler, Init, Message, Outputs, export_handler};

struct Counter {
    header: String,
    counts: HashMap<Option<Vec<u8>>, u64>,
}

impl Init for Counter {
    fn init(config: &Config) -> Result<Self, String> {
        let header = config.get("header").unwrap_or("count").to_owned();
        if header.is_empty() {
            return Err("setting `header` must not be empty".to_owned());
        }
        if header.starts_with("runnel-") {
            return Err(format!(
                "setting `header` is `{header}`, but header names starting with `runnel-` are set by the host"
            ));
        }
        Ok(Self {
            header,
            counts: HashMap::new(),
        })
    }
}

impl Handler for Counter {
    fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
        let count = self.count(message.key());
        out.send(message.value())
            .key(message.key())
            .headers(message.headers())
            .header(&self.header, count.to_string());
        Ok(())
    }
}

impl Counter {
    fn count(&mut self, key: Option<&[u8]>) -> u64 {
        let count = self.counts.entry(key.map(<[u8]>::to_vec)).or_default();
        *count += 1;
        *count
    }
}

export_handler!(Counter);

#[cfg(test)]
mod tests {
    //! Run natively: `cargo test --target x86_64-unknown-linux-gnu`.
    use super::*;

    fn counter(settings: &[(&str, &str)]) -> Result<Counter, String> {
        Counter::init(&settings.iter().copied().collect())
    }

    #[test]
    fn counts_each_key_apart_and_no_key_apart_from_empty() {
        let mut counter = counter(&[]).unwrap();
        assert_eq!(counter.header, "count");
        assert_eq!(counter.count(Some(b"a")), 1);
        assert_eq!(counter.count(Some(b"b")), 1);
        assert_eq!(counter.count(Some(b"a")), 2);
        assert_eq!(counter.count(None), 1);
        assert_eq!(counter.count(Some(b"")), 1);
        assert_eq!(counter.count(None), 2);
    }

    #[test]
    fn refuses_an_empty_or_host_header_name() {
        assert!(counter(&[("header", "")]).err().unwrap().contains("empty"));
        let error = counter(&[("header", "runnel-count")]).err().unwrap();
        assert!(error.contains("set by the host"), "{error}");
        assert_eq!(counter(&[("header", "seen")]).unwrap().header, "seen");
    }
}
