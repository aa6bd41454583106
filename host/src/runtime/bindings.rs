//! The one place the WIT contract becomes Rust code; every other module
//! imports the generated bindings from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

pub use self::runnel::plugin::log::Level as LogLevel;
