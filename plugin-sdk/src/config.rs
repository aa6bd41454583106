//! The plugin's configuration, as the host passes it to `init`.

/// String settings from the pipeline's configuration of this plugin.
///
/// ```
/// # use runnel_plugin_sdk::Config;
/// let config: Config = [("route_field", "type")].into_iter().collect();
/// assert_eq!(config.require("route_field"), Ok("type"));
/// assert_eq!(config.get("drop_field"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    pub(crate) fn new(entries: Vec<(String, String)>) -> Self {
        Self { entries }
    }

    /// The value of setting `name`, if it is set. When a name is repeated the last value wins,
    /// as a later line of a configuration file overrides an earlier one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of setting `name`, or an error for `init` to return that tells the user which
    /// setting to add.
    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| {
            format!("missing required setting `{name}`: add it to this plugin's config")
        })
    }

    /// Every setting in the order the host passed them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// Builds a configuration by hand, for a handler's own unit tests.
impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(entries: I) -> Self {
        Self::new(
            entries
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_repeated_setting_wins() {
        let config: Config = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(config.get("a"), Some("3"));
        assert_eq!(config.get("b"), Some("2"));
        assert_eq!(config.get("c"), None);
    }

    #[test]
    fn missing_required_setting_names_it() {
        let config = Config::default();
        let error = config.require("route_field").unwrap_err();
        assert!(error.contains("`route_field`"), "{error}");
    }
}
