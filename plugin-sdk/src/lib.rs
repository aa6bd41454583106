//! Write Runnel message handlers in Rust.
//!
//! A handler sees one message at a time and sends zero or more outputs for it. The SDK turns
//! that into the batch-at-a-time WIT contract and its encoding of `runnel:plugin`, so neither
//! wit-bindgen nor the encoding ever shows up in a plugin. A complete plugin:
//!
//! ```
//! use runnel_plugin_sdk::{export_handler, Failure, Handler, Message, Outputs};
//!
//! #[derive(Default)]
//! struct Uppercase;
//!
//! impl Handler for Uppercase {
//!     fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
//!         let upper = message.value().to_ascii_uppercase();
//!         out.send(upper).key(message.key()).headers(message.headers());
//!         Ok(())
//!     }
//! }
//! export_handler!(Uppercase);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2`; the `.wasm` file is the component the host loads.
//! Building with WebAssembly SIMD (`-C target-feature=+simd128`), which the host's engine always
//! supports, lets the compiler vectorise byte loops.
//!
//! To transform a message, the cheapest way is to send the input and edit the copy in place with
//! [`OutputBuilder::edit_value`]; `send` of a new `Vec` costs an allocation per message.
//!
//! # Configuration
//!
//! A `Default` handler ignores its configuration. A handler that reads it implements [`Init`]
//! instead of deriving `Default`; `init` runs once per instance, before any message, and its
//! error refuses the plugin:
//!
//! ```
//! # use runnel_plugin_sdk::{Config, Init};
//! struct Router {
//!     route_field: String,
//! }
//!
//! impl Init for Router {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         let route_field = config.require("route_field")?.to_owned();
//!         Ok(Router { route_field })
//!     }
//! }
//! ```
//!
//! The handler value then lives as long as the instance, so it can keep state across messages
//! and batches.
//!
//! # Failures
//!
//! Returning [`Failure::transient`] asks the host to retry the message later;
//! [`Failure::permanent`] says retrying cannot help, and the host dead-letters or skips it.
//! Either way the outputs that message already sent are discarded: a failed message produces
//! no outputs. The other messages of the batch are unaffected.
//!
//! # Panics
//!
//! A panic (including running out of memory) aborts the WebAssembly instance, failing the
//! whole call: the host runs the batch again in halves on fresh instances until the message
//! that panics is alone, fails that message (kind `trap`) and keeps its neighbours' outputs.
//! Handler state is lost with the instance, and every retry costs a fresh instance: return a
//! [`Failure`] for anything a message can cause.
//!
//! # Logging
//!
//! [`log`] writes into the host's log, tagged with the plugin's name, with a function per level
//! and `format!`-style macros: `runnel_plugin_sdk::info!("routed {count} records")`.

mod bindings;
mod codec;
mod config;
mod failure;
pub mod log;
mod runtime;

pub use codec::{Headers, Message, OutputBuilder, Outputs};
pub use config::Config;
pub use failure::{Failure, FailureKind};

/// A message handler: sends the outputs of one message at a time.
///
/// Export it with [`export_handler!`]. The host calls it for each message of a batch in order;
/// the same value handles every batch of the instance.
pub trait Handler: Init + 'static {
    /// Sends the outputs of `message` to `out` (zero or more), or fails the message. After a
    /// failure, the outputs this call sent are discarded.
    fn handle(&mut self, message: &Message<'_>, out: &mut Outputs) -> Result<(), Failure>;
}

/// Builds a handler from the plugin's configuration when the instance starts.
///
/// Every `Default` type gets an implementation that ignores the configuration, so implement
/// this only for a handler that does not derive `Default` (the two would conflict).
pub trait Init: Sized {
    /// Reads the configuration; an error refuses the plugin with that message, which should say
    /// which setting is wrong and how to fix it.
    fn init(config: &Config) -> Result<Self, String>;
}

impl<T: Default> Init for T {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(T::default())
    }
}

/// Exports a [`Handler`] type as this component's `runnel:plugin/handler`.
///
/// Use it once per plugin crate, at the top level: `export_handler!(MyHandler);`.
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        const _: () = {
            ::std::thread_local! {
                // WebAssembly instances are single-threaded: this is the one handler.
                static HANDLER: ::std::cell::RefCell<::std::option::Option<$handler>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct RunnelHandlerExports;

            impl $crate::__private::Guest for RunnelHandlerExports {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    HANDLER.with(|handler| $crate::__private::init(handler, config))
                }

                fn handle(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
                    HANDLER.with(|handler| $crate::__private::handle(handler, batch))
                }
            }

            $crate::__private::bindings::export_plugin_world!(
                RunnelHandlerExports with_types_in $crate::__private::bindings
            );
        };
    };
}

/// What [`export_handler!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::runnel::plugin::handler::Guest;
    pub use crate::runtime::{handle, init};

    pub mod bindings {
        pub use crate::bindings::*;
    }
}
