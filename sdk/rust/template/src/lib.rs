//! `{{name}}`: upper-cases every value (ASCII only), keeping its key and headers.

use runnel_plugin_sdk::{Failure, Handler, Message, Outputs, export_handler};

#[derive(Default)]
struct Plugin;

impl Handler for Plugin {
    fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
        // Sending the value and editing the copy in place saves an allocation per message.
        out.send(message.value())
            .edit_value(transform)
            .key(message.key())
            .headers(message.headers());
        Ok(())
    }
}

/// What this plugin does to a value: kept apart so that it can be tested natively.
fn transform(value: &mut [u8]) {
    value.make_ascii_uppercase();
}

export_handler!(Plugin);

#[cfg(test)]
mod tests {
    //! Run natively: `cargo test --target x86_64-unknown-linux-gnu` (or your machine's target).
    use super::transform;

    #[test]
    fn upper_cases_ascii_only() {
        let mut value = "héllo".as_bytes().to_vec();
        transform(&mut value);
        assert_eq!(value, "HéLLO".as_bytes());
    }
}
