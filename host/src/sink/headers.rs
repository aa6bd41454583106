//! Names of the headers the host sets on what it writes. All start with
//! `runnel-`; the host sets them itself, replacing any a plugin wrote.

/// The plugin that produced an output, or failed on a dead-lettered message.
pub const PLUGIN: &str = "runnel-plugin";
/// That plugin's version.
pub const PLUGIN_VERSION: &str = "runnel-plugin-version";
/// Why a dead-lettered message failed, in words.
pub const ERROR: &str = "runnel-error";
/// The failure's kind: `transient`, `permanent`, `trap`, `timeout`, ...
pub const ERROR_KIND: &str = "runnel-error-kind";
/// Where a dead-lettered message was read from.
pub const SOURCE_TOPIC: &str = "runnel-source-topic";
pub const SOURCE_PARTITION: &str = "runnel-source-partition";
pub const SOURCE_OFFSET: &str = "runnel-source-offset";
/// Attempts made before the message was given up on, the first included.
pub const ATTEMPTS: &str = "runnel-attempts";

/// An output's headers with the plugin's name and version set by the host,
/// replacing any the plugin copied from its input, so they always say which
/// version really ran.
pub fn tagged<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + 'a,
    plugin: &'a str,
    version: &'a str,
) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
    headers
        .filter(|(name, _)| *name != PLUGIN && *name != PLUGIN_VERSION)
        .chain([
            (PLUGIN, plugin.as_bytes()),
            (PLUGIN_VERSION, version.as_bytes()),
        ])
}
