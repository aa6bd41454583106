//! Where a pipeline's plugin comes from: a component file, or a plugin of
//! the plugin directory named by its name.

use std::path::{Path, PathBuf};

/// Where a pipeline's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A component file, loaded once at start.
    File(PathBuf),
    /// A plugin of the plugin directory, by name: swapped when it changes,
    /// stopped when it is removed.
    Directory(String),
}

impl PluginSource {
    /// A value containing `/` or ending in `.wasm` is a path; a plain name
    /// (letters, digits, `-`, `_`) names a plugin of the plugin directory.
    pub(super) fn parse(plugin: &Path) -> Option<Self> {
        let text = plugin.to_string_lossy();
        if text.ends_with(".wasm") || text.contains('/') {
            return Some(Self::File(plugin.to_owned()));
        }
        is_plugin_name(&text).then(|| Self::Directory(text.into_owned()))
    }
}

/// Whether `name` can name a plugin (and its manifest file).
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Config, MINIMAL};
    use super::*;

    #[test]
    fn plugin_is_a_path_or_the_name_of_a_directory_plugin() {
        let config = Config::parse(
            "[plugins]\ndir = \"plugins\"\n[pipelines.a]\ninputs = [\"in\"]\nplugin = \"orders\"\n\
             [pipelines.b]\ninputs = [\"in\"]\nplugin = \"./build/orders\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.resolve("a").unwrap().plugin,
            PluginSource::Directory("orders".into())
        );
        assert_eq!(
            config.resolve("b").unwrap().plugin,
            PluginSource::File("./build/orders".into())
        );
        let plugins = config.plugins.unwrap();
        assert_eq!(plugins.debounce, Duration::from_millis(250));
        assert_eq!(plugins.rescan_interval, Duration::from_secs(30));

        let error = Config::parse(&MINIMAL.replace("uppercase.wasm", "orders"), &[]).unwrap_err();
        assert!(error.to_string().contains("`[plugins] dir`"), "{error}");
        let error = Config::parse(&MINIMAL.replace("uppercase.wasm", "or ders"), &[]).unwrap_err();
        assert!(error.to_string().contains("not `or ders`"), "{error}");
    }
}
