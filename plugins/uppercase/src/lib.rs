//! Upper-cases every value (ASCII only), keeping key and headers, to the default topic.

use runnel_plugin_sdk::{Failure, Handler, Message, Outputs, export_handler};

#[derive(Default)]
struct Uppercase;

impl Handler for Uppercase {
    fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
        // Sending the value and editing the copy in place saves an allocation per message
        // over `out.send(message.value().to_ascii_uppercase())`.
        out.send(message.value())
            .edit_value(|value| value.make_ascii_uppercase())
            .key(message.key())
            .headers(message.headers());
        Ok(())
    }
}

export_handler!(Uppercase);
