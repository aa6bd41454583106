//! `runnel topics`: the cluster's topics listed, one created, one described
//! with its partitions, their watermarks and its configuration.

use std::fmt::Write as _;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::AdminError;
use super::clients::{self, CommandContext, cluster_metadata, find_topic};
use crate::config::KafkaConfig;

/// A topic as `topics list` shows it.
#[derive(Debug, Serialize)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: usize,
    /// Replicas of its partitions (the most any partition has).
    pub replication_factor: usize,
}

/// Every topic of the cluster, by name.
pub fn list(kafka: &KafkaConfig, timeout: Duration) -> Result<Vec<TopicSummary>, AdminError> {
    let client = clients::metadata_client(kafka)?;
    let metadata = cluster_metadata(&client, kafka, timeout)?;
    let mut topics: Vec<TopicSummary> = metadata
        .topics()
        .iter()
        .map(|topic| TopicSummary {
            name: topic.name().to_owned(),
            partitions: topic.partitions().len(),
            replication_factor: (topic.partitions().iter())
                .map(|partition| partition.replicas().len())
                .max()
                .unwrap_or(0),
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// `topics list` as text: a header line, then a topic per line.
pub fn list_text(topics: &[TopicSummary]) -> String {
    let rows = topics.iter().map(|topic| {
        vec![
            topic.name.clone(),
            topic.partitions.to_string(),
            topic.replication_factor.to_string(),
        ]
    });
    table(&["NAME", "PARTITIONS", "REPLICATION"], rows)
}

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| cell.to_string()).collect()];
    lines.extend(rows);
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = (line.iter().zip(&widths))
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        text += cells.join("  ").trim_end();
        text.push('\n');
    }
    text
}

/// What `topics create` is asked for.
#[derive(Debug, Clone)]
pub struct NewTopicRequest {
    pub name: String,
    /// The broker's `num.partitions` when `None`.
    pub partitions: Option<i32>,
    /// The broker's `default.replication.factor` when `None`.
    pub replication_factor: Option<i32>,
    pub configs: Vec<(String, String)>,
    /// A topic of that name already there is no error (and is left as it is).
    pub if_not_exists: bool,
}

/// What `topics create` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Created,
    /// `if_not_exists` and the topic was there already.
    AlreadyThere,
}

/// Creates a topic, waiting at most `timeout` for the brokers to answer.
pub fn create(
    kafka: &KafkaConfig,
    request: &NewTopicRequest,
    timeout: Duration,
) -> Result<Created, AdminError> {
    // Reaching the brokers first tells an outage from a refusal.
    cluster_metadata(&clients::metadata_client(kafka)?, kafka, timeout)?;
    let admin = clients::admin(kafka)?;
    let mut topic = NewTopic::new(
        &request.name,
        request.partitions.unwrap_or(-1),
        TopicReplication::Fixed(request.replication_factor.unwrap_or(-1)),
    );
    for (key, value) in &request.configs {
        topic = topic.set(key, value);
    }
    let options = admin_options(timeout);
    let results = futures::executor::block_on(admin.create_topics([&topic], &options))
        .map_err(|error| refused("create the topic", error))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(Created::Created),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if request.if_not_exists => {
            Ok(Created::AlreadyThere)
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Err(AdminError::TopicExists {
            topic: request.name.clone(),
            brokers: kafka.brokers.clone(),
        }),
        Some(Err((_, code))) => Err(refused(&format!("create topic {}", request.name), code)),
        None => Err(refused("create the topic", "no answer for it")),
    }
}

/// A topic as `topics describe` shows it.
#[derive(Debug, Serialize)]
pub struct TopicDescription {
    pub name: String,
    pub partitions: Vec<PartitionDescription>,
    pub configs: Vec<TopicConfig>,
}

#[derive(Debug, Serialize)]
pub struct PartitionDescription {
    pub partition: i32,
    /// The broker leading it; -1 while it has none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Its first offset still held.
    pub low: i64,
    /// The offset its next record gets.
    pub high: i64,
}

/// One setting of the topic.
#[derive(Debug, Serialize)]
pub struct TopicConfig {
    pub name: String,
    /// `None` for a sensitive setting, which brokers do not tell.
    pub value: Option<String>,
    /// Where the value comes from: `topic`, `broker`, `cluster`,
    /// `broker file`, `default` or `unknown`.
    pub source: &'static str,
}

/// Describes a topic: partitions, replicas, watermarks, and its settings
/// that are not Kafka's defaults (all of them with `all_configs`).
pub fn describe(
    kafka: &KafkaConfig,
    name: &str,
    all_configs: bool,
    timeout: Duration,
) -> Result<TopicDescription, AdminError> {
    let client = clients::metadata_client(kafka)?;
    let metadata = cluster_metadata(&client, kafka, timeout)?;
    let topic = find_topic(&metadata, name, kafka)?;
    let mut partitions = Vec::new();
    for partition in topic.partitions() {
        let (low, high) = client
            .client()
            .fetch_watermarks(name, partition.id(), timeout)
            .map_err(|error| clients::unreachable(&client, kafka, timeout, error))?;
        partitions.push(PartitionDescription {
            partition: partition.id(),
            leader: partition.leader(),
            replicas: partition.replicas().to_vec(),
            isr: partition.isr().to_vec(),
            low,
            high,
        });
    }
    partitions.sort_by_key(|partition| partition.partition);
    Ok(TopicDescription {
        name: name.to_owned(),
        partitions,
        configs: topic_configs(&clients::admin(kafka)?, name, all_configs, timeout)?,
    })
}

fn topic_configs(
    admin: &AdminClient<CommandContext>,
    name: &str,
    all_configs: bool,
    timeout: Duration,
) -> Result<Vec<TopicConfig>, AdminError> {
    let resource = ResourceSpecifier::Topic(name);
    let options = admin_options(timeout);
    let results = futures::executor::block_on(admin.describe_configs([&resource], &options))
        .map_err(|error| refused("describe the topic's configuration", error))?;
    let resource = match results.into_iter().next() {
        Some(Ok(resource)) => resource,
        Some(Err(code)) => return Err(refused("describe the topic's configuration", code)),
        None => return Err(refused("describe the topic's configuration", "no answer")),
    };
    let mut configs: Vec<TopicConfig> = resource
        .entries
        .into_iter()
        .filter(|entry| all_configs || entry.source != ConfigSource::Default)
        .map(|entry| TopicConfig {
            source: source_name(&entry.source),
            name: entry.name,
            value: entry.value,
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(configs)
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "broker",
        ConfigSource::DynamicDefaultBroker => "cluster",
        ConfigSource::StaticBroker => "broker file",
        ConfigSource::Default => "default",
        ConfigSource::Unknown => "unknown",
    }
}

impl TopicDescription {
    /// `topics describe` as text: a line for the topic, a table of its
    /// partitions, and its settings with where each comes from.
    pub fn to_text(&self) -> String {
        let replication = (self.partitions.iter())
            .map(|partition| partition.replicas.len())
            .max()
            .unwrap_or(0);
        let partitions = match self.partitions.len() {
            1 => "1 partition".to_owned(),
            n => format!("{n} partitions"),
        };
        let mut text = format!(
            "topic {}: {partitions}, replication factor {replication}\n",
            self.name
        );
        let ids = |ids: &[i32]| {
            let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
            ids.join(",")
        };
        let rows = self.partitions.iter().map(|partition| {
            vec![
                partition.partition.to_string(),
                partition.leader.to_string(),
                ids(&partition.replicas),
                ids(&partition.isr),
                partition.low.to_string(),
                partition.high.to_string(),
            ]
        });
        text += &table(
            &["PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH"],
            rows,
        );
        if self.configs.is_empty() {
            text += "configs: all at Kafka's defaults\n";
        } else {
            text += "configs:\n";
        }
        for config in &self.configs {
            let value = config.value.as_deref().unwrap_or("(not shown)");
            let _ = writeln!(text, "  {} = {value} ({})", config.name, config.source);
        }
        text
    }
}

fn admin_options(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout))
}

fn refused(action: &str, reason: impl std::fmt::Display) -> AdminError {
    AdminError::Refused {
        action: action.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_listed_in_columns_as_wide_as_their_widest_cell() {
        let topics = [
            TopicSummary {
                name: "orders".into(),
                partitions: 12,
                replication_factor: 3,
            },
            TopicSummary {
                name: "a".into(),
                partitions: 1,
                replication_factor: 1,
            },
        ];
        assert_eq!(
            list_text(&topics),
            "NAME    PARTITIONS  REPLICATION\n\
             orders  12          3\n\
             a       1           1\n"
        );
    }

    #[test]
    fn a_description_shows_partitions_then_the_settings_and_their_sources() {
        let description = TopicDescription {
            name: "orders".into(),
            partitions: vec![PartitionDescription {
                partition: 0,
                leader: 2,
                replicas: vec![2, 3],
                isr: vec![2],
                low: 5,
                high: 40,
            }],
            configs: vec![
                TopicConfig {
                    name: "cleanup.policy".into(),
                    value: Some("compact".into()),
                    source: "topic",
                },
                TopicConfig {
                    name: "sasl.jaas.config".into(),
                    value: None,
                    source: "broker",
                },
            ],
        };
        assert_eq!(
            description.to_text(),
            "topic orders: 1 partition, replication factor 2\n\
             PARTITION  LEADER  REPLICAS  ISR  LOW  HIGH\n\
             0          2       2,3       2    5    40\n\
             configs:\n  \
             cleanup.policy = compact (topic)\n  \
             sasl.jaas.config = (not shown) (broker)\n"
        );
    }
}
