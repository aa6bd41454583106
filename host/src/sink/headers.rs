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

/// Whether a header name is one the host sets: `runnel-`, in any case, so
/// that a consumer matching names without regard to case is not fooled
/// either.
pub fn is_host_header(name: &str) -> bool {
    name.get(..PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX))
}

const PREFIX: &str = "runnel-";

/// `headers` without any the host sets: what a plugin or an upstream
/// producer wrote under those names cannot pass for the host's word.
pub fn without_host_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + 'a,
) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
    headers.filter(|(name, _)| !is_host_header(name))
}

/// An output's headers with the plugin's name and version set by the host,
/// and every other `runnel-` header a plugin wrote (or copied from its
/// input) dropped, so the host's headers always say what really happened.
pub fn tagged<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + 'a,
    plugin: &'a str,
    version: &'a str,
) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
    without_host_headers(headers).chain([
        (PLUGIN, plugin.as_bytes()),
        (PLUGIN_VERSION, version.as_bytes()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runnel_header_a_plugin_writes_is_replaced_or_dropped() {
        let written: [(&str, &[u8]); 5] = [
            ("trace-id", b"t1"),
            ("runnel-plugin-version", b"9.9.9"),
            ("Runnel-Error", b"forged"),
            ("RUNNEL-SOURCE-OFFSET", b"0"),
            ("runnelish", b"kept"),
        ];
        let tagged: Vec<_> = tagged(written.into_iter(), "orders", "1.2.0").collect();
        let expected: [(&str, &[u8]); 4] = [
            ("trace-id", b"t1"),
            ("runnelish", b"kept"),
            (PLUGIN, b"orders"),
            (PLUGIN_VERSION, b"1.2.0"),
        ];
        assert_eq!(tagged, expected);
    }

    #[test]
    fn a_short_or_multibyte_name_is_not_a_host_header() {
        assert!(!is_host_header("runnel"));
        assert!(!is_host_header("rünnel-x"));
        assert!(!is_host_header(""));
        assert!(is_host_header("runnel-"));
    }
}
