//! Throws the language's native way on the value `throw` and upper-cases (ASCII) every other
//! value, keeping its key and headers. Every SDK has a `thrower` example that does the same,
//! so that `tests/throwing.rs` can show what a throw costs in each language.
//!
//! In Rust a panic aborts: the instance traps, and the host isolates the message that broke
//! the call.

use runnel_plugin_sdk::{Failure, Handler, Message, Outputs, export_handler};

#[derive(Default)]
struct Thrower;

impl Handler for Thrower {
    fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
        if message.value() == b"throw" {
            panic!("thrower: throw requested");
        }
        out.send(message.value().to_ascii_uppercase())
            .key(message.key())
            .headers(message.headers());
        Ok(())
    }
}

export_handler!(Thrower);
