//! The librdkafka options Runnel's delivery promises rest on. The host sets
//! them itself, after the user's raw options; a user's raw options
//! (`[kafka.producer]`, `[kafka.consumer]`, a pipeline's `consumer`) that
//! name one are a configuration error, so that no option can quietly break
//! at-least-once or exactly-once delivery.

use std::collections::BTreeMap;

use thiserror::Error;

/// A librdkafka option that the host sets and a user may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOwnedOption {
    /// librdkafka's name for it.
    pub name: &'static str,
    /// The value the host sets; `None` where each client gets a value of
    /// its own (the transactional id: one per exactly-once consumer).
    pub value: Option<&'static str>,
    /// Set, and refused, only in pipelines with `exactly_once = true`.
    pub exactly_once_only: bool,
    /// Why the host owns it, as the error a user sees says it.
    pub reason: &'static str,
}

/// The producer's. `[kafka.producer]` feeds every producer of the host, the
/// shared one and the transactional ones of exactly-once pipelines, so
/// every one of these is refused there.
pub const HOST_OWNED_PRODUCER_OPTIONS: &[HostOwnedOption] = &[
    HostOwnedOption {
        name: "enable.idempotence",
        value: Some("true"),
        exactly_once_only: false,
        reason: "outputs are retried without duplicates or reordering",
    },
    HostOwnedOption {
        name: "acks",
        value: Some("all"),
        exactly_once_only: false,
        reason: "idempotent outputs need every in-sync replica's acknowledgement",
    },
    HostOwnedOption {
        name: "request.required.acks",
        value: Some("all"),
        exactly_once_only: false,
        reason: "librdkafka's other name for `acks`, which idempotent outputs need at `all`",
    },
    HostOwnedOption {
        name: "transactional.id",
        value: None,
        exactly_once_only: false,
        reason: "each exactly-once pipeline's consumer gets its own (stable across restarts \
                 when the consumer sets `group.instance.id`); the shared producer has none",
    },
];

/// The consumer's, set after the user's options.
pub const HOST_OWNED_CONSUMER_OPTIONS: &[HostOwnedOption] = &[
    HostOwnedOption {
        name: "enable.auto.offset.store",
        value: Some("false"),
        exactly_once_only: false,
        reason: "an input's offset is stored only once its outputs are acknowledged, which is \
                 what makes delivery at least once",
    },
    HostOwnedOption {
        name: "enable.auto.commit",
        value: Some("false"),
        exactly_once_only: true,
        reason: "an exactly-once pipeline commits offsets inside its output transactions, never \
                 on their own",
    },
    HostOwnedOption {
        name: "isolation.level",
        value: Some("read_committed"),
        exactly_once_only: true,
        reason: "an exactly-once pipeline reads inputs written in transactions only once they \
                 are committed",
    },
];

/// A user's raw option names one the host owns.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{section} option `{option}` is set by Runnel ({reason}); remove it")]
pub struct OwnedOptionError {
    /// Where the option was found: `kafka.producer`, `kafka.consumer`, or a
    /// pipeline's `consumer`.
    pub section: String,
    pub option: &'static str,
    pub reason: &'static str,
}

impl HostOwnedOption {
    /// The options of `owned` that apply to a client, with the value the
    /// host gives each; the clients set these after the user's options.
    pub fn values(
        owned: &'static [HostOwnedOption],
        exactly_once: bool,
    ) -> impl Iterator<Item = (&'static str, &'static str)> {
        owned
            .iter()
            .filter(move |option| exactly_once || !option.exactly_once_only)
            .filter_map(|option| Some((option.name, option.value?)))
    }
}

/// Refuses the first of `options` that `owned` lists, counting the
/// exactly-once-only ones when `exactly_once`.
pub(super) fn refuse_owned(
    section: &str,
    options: &BTreeMap<String, String>,
    owned: &[HostOwnedOption],
    exactly_once: bool,
) -> Result<(), OwnedOptionError> {
    let refused = owned
        .iter()
        .filter(|option| exactly_once || !option.exactly_once_only)
        .find(|option| options.contains_key(option.name));
    match refused {
        Some(option) => Err(OwnedOptionError {
            section: section.to_owned(),
            option: option.name,
            reason: option.reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, MINIMAL};
    use super::*;

    /// `MINIMAL` with one raw option set in `table`, and `extra` lines in
    /// the pipeline.
    fn with_option(table: &str, option: &str, extra: &str) -> String {
        let pipeline = format!("{MINIMAL}{extra}\n");
        if table.starts_with("pipelines.") {
            format!("{pipeline}[{table}]\n\"{option}\" = \"x\"\n")
        } else {
            format!("[{table}]\n\"{option}\" = \"x\"\n{pipeline}")
        }
    }

    #[test]
    fn every_host_owned_producer_option_is_refused_by_name() {
        for owned in HOST_OWNED_PRODUCER_OPTIONS {
            let text = with_option("kafka.producer", owned.name, "");
            let error = Config::parse(&text, &[]).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "kafka.producer option `{}` is set by Runnel ({}); remove it",
                    owned.name, owned.reason
                )
            );
        }
        let error = Config::parse(
            &with_option("kafka.producer", "enable.idempotence", ""),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "kafka.producer option `enable.idempotence` is set by Runnel (outputs are retried \
             without duplicates or reordering); remove it"
        );
    }

    #[test]
    fn every_host_owned_consumer_option_is_refused_where_the_host_sets_it() {
        for owned in HOST_OWNED_CONSUMER_OPTIONS {
            for table in ["kafka.consumer", "pipelines.upper.consumer"] {
                let text = with_option(table, owned.name, "\nexactly_once = true");
                let error = Config::parse(&text, &[]).unwrap_err().to_string();
                let section = table.strip_prefix("pipelines.upper.").unwrap_or(table);
                assert!(
                    error.contains(&format!("{section} option `{}`", owned.name)),
                    "{error}"
                );
                assert!(error.contains(owned.reason), "{error}");
            }
        }
        let error = Config::parse(
            &with_option("pipelines.upper.consumer", "enable.auto.offset.store", ""),
            &[],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("pipeline upper: consumer option `enable.auto.offset.store`"),
            "{error}"
        );
    }

    #[test]
    fn exactly_once_options_are_the_users_in_other_pipelines() {
        for owned in HOST_OWNED_CONSUMER_OPTIONS
            .iter()
            .filter(|o| o.exactly_once_only)
        {
            for table in ["kafka.consumer", "pipelines.upper.consumer"] {
                let text = with_option(table, owned.name, "");
                let pipeline = Config::parse(&text, &[]).unwrap().resolve("upper").unwrap();
                assert_eq!(pipeline.consumer[owned.name], "x");
            }
        }
    }

    #[test]
    fn unrelated_options_pass_through() {
        let text = format!(
            "[kafka.producer]\n\"compression.type\" = \"lz4\"\n\"linger.ms\" = \"20\"\n\
             [kafka.consumer]\n\"client.rack\" = \"a\"\n{MINIMAL}exactly_once = true\n\
             [pipelines.upper.consumer]\n\"fetch.wait.max.ms\" = \"7\"\n"
        );
        let config = Config::parse(&text, &[]).unwrap();
        assert_eq!(config.kafka.producer["compression.type"], "lz4");
        assert_eq!(config.kafka.producer["linger.ms"], "20");
        let pipeline = config.resolve("upper").unwrap();
        assert_eq!(pipeline.consumer["client.rack"], "a");
        assert_eq!(pipeline.consumer["fetch.wait.max.ms"], "7");
    }
}
