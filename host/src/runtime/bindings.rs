//! The one place the WIT contract becomes Rust types; every other module
//! imports the generated types from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

pub use self::runnel::plugin::log::Level as LogLevel;
pub use self::runnel::plugin::types::{
    Batch, BytesColumn, Failure, FailureKind, HeadersColumn, Outcomes,
};
