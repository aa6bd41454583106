//! The one `generate!` call for the Runnel WIT world. Everything else in the SDK imports the
//! generated code from here; plugin authors never see it.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    // `export_handler!` expands in the plugin's crate, so the generated export macro must be
    // reachable from there; it is hidden behind `__private` and never named by authors.
    pub_export_macro: true,
    export_macro_name: "export_plugin_world",
    default_bindings_module: "runnel_plugin_sdk::__private::bindings",
});
