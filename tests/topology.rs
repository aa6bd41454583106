//! The example cluster of docker-compose.yml, run as processes on 127.0.0.1
//! from the shipped files, checked as a whole:
//! - the test broker, with the topics the compose file's `kafka-topics`
//!   service creates;
//! - three `runnel` hosts from deploy/runnel.toml and deploy/plugins/,
//!   rewritten only where a container's path or address must become one of
//!   this machine (tests/topology/deploy_files.rs);
//! - a real Prometheus with deploy/prometheus/ (Debian's build, fetched by
//!   tests/prometheus/fetch.sh), scraping the three hosts;
//! - a real daprd with deploy/dapr/payments-binding.yaml, feeding the
//!   `payments` binding of runnel-1 as the compose file's sidecar does.
//!
//! Grafana is the one part of the compose file not run: no package registry
//! this project reaches serves it. In its place Prometheus answers every
//! query of deploy/grafana/dashboards/runnel.json, as Grafana would send it
//! with every variable on "All".

mod support;

#[path = "topology/deploy_files.rs"]
mod deploy_files;
#[path = "topology/prometheus.rs"]
mod prometheus;
#[path = "topology/sidecar.rs"]
mod sidecar;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use deploy_files::HostPaths;
use prometheus::PrometheusServer;
use support::daprd::Sidecar;
use support::host::HostProcess;
use support::kafka::{self, Cluster, TopicReader};
use support::wait_until;

/// The hosts of docker-compose.yml, by their service names: the names
/// deploy/prometheus/prometheus.yml's targets use.
const HOSTS: [&str; 3] = ["runnel-1", "runnel-2", "runnel-3"];

/// The one whose sidecar daprd is (`network_mode: "service:runnel-1"`).
const SIDECAR_HOST: usize = 0;

/// Orders of one wave: keyed apart so that every partition of `orders`,
/// and so every host, gets some.
const ORDERS: usize = 60;
/// Every this many orders, one has `"kind": "refund"` and is routed to the
/// topic `refund`; the others have no kind and go to `orders-routed`.
const REFUND_EVERY: usize = 6;
const PAYMENTS: usize = 10;
const EVENTS: usize = 10;

/// Each part's start, and each wave's way through the cluster, take
/// seconds; these bound them well above that.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const FLOW_TIMEOUT: Duration = Duration::from_secs(45);

struct Host {
    name: &'static str,
    process: HostProcess,
    address: String,
}

/// The running cluster. Dropping it stops every process it started.
struct Topology {
    // Dropped in this order: the sidecar before its app, Prometheus before
    // its targets; the files last.
    sidecar: Sidecar,
    prometheus: PrometheusServer,
    hosts: Vec<Host>,
    admin_token: String,
    /// Tells this run's records from those of earlier runs on a shared
    /// broker (the topics and groups have the compose file's fixed names).
    run: String,
    partitions: i32,
    /// The hosts', Prometheus's and daprd's files, removed when dropped.
    _files: tempfile::TempDir,
}

impl Topology {
    async fn start() -> Self {
        let dir = kafka::scratch_dir();
        let partitions = create_compose_topics();
        let admin_token = format!("admin-{}", kafka::unique_topic("token"));
        let hosts = start_hosts(dir.path(), &admin_token).await;
        let targets: BTreeMap<String, String> = hosts
            .iter()
            .map(|host| (host.name.to_owned(), host.address.clone()))
            .collect();
        let prometheus_dir = subdir(dir.path(), "prometheus");
        let config = deploy_files::prometheus_config(&targets, &prometheus_dir);
        let prometheus = PrometheusServer::start(&config, &prometheus_dir).await;
        let sidecar_dir = subdir(dir.path(), "daprd");
        let sidecar = sidecar::start(&sidecar_dir, &hosts[SIDECAR_HOST].address);
        Self {
            sidecar,
            prometheus,
            hosts,
            admin_token,
            run: kafka::unique_topic("run"),
            partitions,
            _files: dir,
        }
    }
}

fn subdir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("a scratch folder");
    path
}

/// Creates the topics of the compose file's `kafka-topics` service, as it
/// does (`--if-not-exists`); returns their partition count.
fn create_compose_topics() -> i32 {
    let (topics, partitions) = deploy_files::compose_topics();
    let cluster = Cluster::shared();
    for topic in &topics {
        cluster.create_topic_if_missing(topic, partitions);
    }
    partitions
}

/// Starts the three hosts with one plugin directory and one admin token
/// file between them, as the compose file mounts them, and waits until
/// each is ready (`/readyz`, the compose file's health check).
async fn start_hosts(dir: &Path, admin_token: &str) -> Vec<Host> {
    let plugin_dir = subdir(dir, "plugins");
    deploy_files::copy_plugin_dir(&plugin_dir);
    let admin_token_file = dir.join("admin-token");
    std::fs::write(&admin_token_file, admin_token).expect("writing the admin token");
    let paths = HostPaths {
        plugin_dir: &plugin_dir,
        admin_token_file: &admin_token_file,
    };
    let config = deploy_files::host_config(&kafka::brokers(), &paths);
    let mut hosts = Vec::new();
    for name in HOSTS {
        let host_dir = subdir(dir, name);
        let config_path = host_dir.join("runnel.toml");
        std::fs::write(&config_path, &config).expect("writing a host config");
        let process = HostProcess::start(&config_path, &host_dir.join("host.log"));
        let address = process.http_address().await;
        hosts.push(Host {
            name,
            process,
            address,
        });
    }
    for host in &hosts {
        wait_until(
            &format!("{} to be ready", host.name),
            START_TIMEOUT,
            async || host.process.http_get("/readyz").await,
            |(status, _)| *status == 200,
        )
        .await;
    }
    hosts
}

/// How long a host may take to exit after SIGTERM: deploy/runnel.toml's
/// drain_timeout (30 s) and the 15 s more docs/operations.md allows.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);

impl Topology {
    /// Stops the cluster as `docker compose down` does: SIGTERM to each
    /// process. The hosts, still running, drain, leave their consumer
    /// groups and exit cleanly, so a next run on the same broker need not
    /// wait for the group to time their members out.
    async fn stop(self) {
        let Self {
            sidecar,
            prometheus,
            hosts,
            ..
        } = self;
        drop(sidecar);
        drop(prometheus);
        let stops = hosts
            .into_iter()
            .map(|host| host.process.assert_running_then_stop(STOP_TIMEOUT));
        futures::future::join_all(stops).await;
    }
}

/// The topics the cluster writes to, each with what a wave must put there.
type Expected = Vec<(&'static str, BTreeSet<String>)>;

impl Topology {
    /// A value of this run: `what` number `index` of wave `wave`.
    fn value(&self, what: &str, wave: usize, index: usize) -> String {
        format!("{what} {} wave {wave} #{index}", self.run)
    }

    fn order(&self, wave: usize, index: usize) -> String {
        let id = self.value("order", wave, index);
        let order = if index.is_multiple_of(REFUND_EVERY) {
            serde_json::json!({ "id": id, "kind": "refund" })
        } else {
            serde_json::json!({ "id": id, "amount": index })
        };
        order.to_string()
    }

    /// A value that is no JSON object: the router fails it permanently.
    fn bad_order(&self, wave: usize) -> String {
        format!("not json: {}", self.value("order", wave, ORDERS))
    }

    /// Produces one wave to the compose file's input topics: orders,
    /// payments (for daprd), events (for the plugin directory's pipeline).
    fn send_wave(&self, wave: usize) {
        let mut orders: Vec<(String, String)> = (0..ORDERS)
            .map(|index| (format!("order-{index}"), self.order(wave, index)))
            .collect();
        orders.push(("order-bad".into(), self.bad_order(wave)));
        kafka::produce("orders", orders);
        kafka::produce(
            "payments",
            (0..PAYMENTS).map(|i| {
                (
                    format!("customer-{}", i % 3),
                    self.value("payment", wave, i),
                )
            }),
        );
        kafka::produce(
            "events",
            (0..EVENTS).map(|i| (format!("event-{i}"), self.value("event", wave, i))),
        );
    }

    /// Where each record of wave `wave` must come out.
    fn expected(&self, wave: usize) -> Expected {
        let orders = |refunds: bool| {
            (0..ORDERS)
                .filter(|index| index.is_multiple_of(REFUND_EVERY) == refunds)
                .map(|index| self.order(wave, index))
                .collect()
        };
        let values = |what: &str, count: usize| {
            (0..count)
                .map(|index| self.value(what, wave, index))
                .collect::<BTreeSet<_>>()
        };
        let upper = values("event", EVENTS)
            .iter()
            .map(|value| value.to_uppercase())
            .collect();
        vec![
            ("orders-routed", orders(false)),
            ("refund", orders(true)),
            ("orders-dlq", BTreeSet::from([self.bad_order(wave)])),
            ("payments-counted", values("payment", PAYMENTS)),
            ("events-upper", upper),
        ]
    }
}

/// Readers of the output topics, from their beginning, kept across waves.
#[derive(Default)]
struct Outputs {
    readers: BTreeMap<&'static str, TopicReader>,
}

impl Outputs {
    /// Waits until every value `expected` names has come out in its topic.
    async fn wait_for(&mut self, expected: &Expected, topology: &Topology) {
        for (topic, values) in expected {
            let partitions = wait_until(
                &format!("topic {topic} to exist"),
                FLOW_TIMEOUT,
                async || Cluster::shared().partition_count(topic),
                Option::is_some,
            )
            .await
            .expect("a partition count");
            let reader = self
                .readers
                .entry(topic)
                .or_insert_with(|| TopicReader::new(topic, partitions, "read_uncommitted"));
            let arrived = reader.read_until(FLOW_TIMEOUT, |records| {
                let read: BTreeSet<&str> = records.iter().map(|r| r.value.as_str()).collect();
                values.iter().all(|value| read.contains(value.as_str()))
            });
            let read: BTreeSet<&str> = reader.records.iter().map(|r| r.value.as_str()).collect();
            let missing: Vec<&String> = values
                .iter()
                .filter(|v| !read.contains(v.as_str()))
                .collect();
            assert!(
                arrived,
                "{} of {} records missing in {topic}, first {:?}; daprd's log:\n{}",
                missing.len(),
                values.len(),
                missing.first(),
                topology.sidecar.log()
            );
        }
    }

    /// Asserts what the plugins and the host added on the way: the counter's
    /// header on payments, the reason on dead letters.
    fn assert_headers(&self, run: &str) {
        for (topic, header) in [
            ("payments-counted", "count"),
            ("orders-dlq", "runnel-error"),
        ] {
            let records = &self.readers[topic].records;
            let ours = records.iter().filter(|record| record.value.contains(run));
            for record in ours {
                assert!(
                    !record.header_values(header).is_empty(),
                    "a record of {topic} has no {header} header: {record:?}"
                );
            }
        }
    }
}

/// The partitions of pipeline `pipeline` a host holds by its own log:
/// every one assigned, less every one revoked.
fn owned_partitions(host: &HostProcess, pipeline: &str) -> i32 {
    let mut owned = 0;
    for line in host.log_lines() {
        if line["fields"]["pipeline"] != pipeline {
            continue;
        }
        let count = line["fields"]["partitions"].as_i64().unwrap_or(0) as i32;
        match line["fields"]["message"].as_str() {
            Some("partitions assigned") => owned += count,
            Some(message) if message.starts_with("partitions revoked") => owned -= count,
            _ => {}
        }
    }
    owned
}

impl Topology {
    /// Waits until the `orders` group has given every host some of the
    /// partitions of `orders`, and all of them between the hosts.
    async fn wait_for_orders_spread(&self) {
        wait_until(
            "the orders group to spread its partitions over the three hosts",
            START_TIMEOUT,
            async || {
                let hosts = self.hosts.iter();
                hosts
                    .map(|host| owned_partitions(&host.process, "orders"))
                    .collect::<Vec<_>>()
            },
            |owned| owned.iter().sum::<i32>() == self.partitions && owned.iter().all(|&n| n > 0),
        )
        .await;
    }

    /// `total_processed` of pipeline or binding `name` on each host, from
    /// its stats endpoint.
    async fn processed(&self, name: &str) -> Vec<u64> {
        let mut processed = Vec::new();
        for host in &self.hosts {
            let path = format!("/messages/v1/stats/{name}");
            let (status, body) = host.process.http_get(&path).await;
            assert_eq!(status, 200, "{} {path}: {body}", host.name);
            let stats: serde_json::Value = serde_json::from_str(&body).expect("stats are JSON");
            processed.push(stats["total_processed"].as_u64().expect("a count"));
        }
        processed
    }

    /// Every host consumed orders; the payments came to the sidecar's host.
    async fn assert_work_shared(&self, waves: usize) {
        let orders = self.processed("orders").await;
        assert!(
            orders.iter().all(|&count| count > 0),
            "a host consumed no orders (orders processed per host: {orders:?})"
        );
        let payments = self.processed("payments").await;
        assert!(
            payments[SIDECAR_HOST] >= (waves * PAYMENTS) as u64,
            "the payments did not all reach {} through daprd (per host: {payments:?})",
            HOSTS[SIDECAR_HOST]
        );
    }

    /// The admin endpoints want the token of the shared token file.
    async fn assert_admin_token_required(&self) {
        let url = format!("http://{}/plugins", self.hosts[0].address);
        let client = reqwest::Client::new();
        let send = async |token: Option<&str>| {
            let mut request = client.get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("the host answers");
            response.status().as_u16()
        };
        assert_eq!(send(None).await, 401, "GET /plugins without the token");
        assert_eq!(send(Some(&self.admin_token)).await, 200, "with the token");
    }
}

/// The dashboard's panels that show throughput and latency: with traffic
/// through the cluster, each query of theirs must return a number.
const PANELS_WITH_DATA: [&str; 8] = [
    "Messages processed by outcome",
    "Messages processed per host",
    "Messages into the plugin per pipeline",
    "Outputs acknowledged per pipeline",
    "Plugin call duration per plugin",
    "Message processing time per pipeline",
    "Batch size per pipeline",
    "Dapr input binding requests",
];

impl Topology {
    /// Prometheus scrapes the three hosts: `up` is 1 for each.
    async fn assert_hosts_up(&self) {
        let addresses: BTreeSet<&str> = self.hosts.iter().map(|h| h.address.as_str()).collect();
        let up = wait_until(
            "Prometheus to scrape the three hosts",
            START_TIMEOUT,
            async || self.prometheus.query(r#"up{job="runnel"}"#).await,
            |up| {
                up.as_ref()
                    .is_ok_and(|up| up.len() == 3 && up.iter().all(|s| s.value == 1.0))
            },
        )
        .await
        .expect("an answer");
        let instances: BTreeSet<&str> = up.iter().map(|s| s.labels["instance"].as_str()).collect();
        assert_eq!(instances, addresses, "the scraped instances");
    }

    /// Waits until Prometheus has scraped `expr` at `at_least` or more.
    async fn wait_for_scraped(&self, expr: &str, at_least: f64) {
        wait_until(
            &format!("Prometheus to see {expr} >= {at_least}"),
            FLOW_TIMEOUT,
            async || self.prometheus.query(expr).await.unwrap_or_default(),
            |samples| samples.iter().any(|sample| sample.value >= at_least),
        )
        .await;
    }

    /// Every rule group of alerts.yml is loaded and every rule evaluates
    /// without an error.
    async fn assert_rules_healthy(&self) {
        let rules = |groups: &[serde_json::Value]| -> Vec<serde_json::Value> {
            let rules = groups.iter().filter_map(|group| group["rules"].as_array());
            rules.flatten().cloned().collect()
        };
        let groups = wait_until(
            "Prometheus to evaluate every alert rule",
            START_TIMEOUT,
            async || self.prometheus.rule_groups().await,
            |groups| rules(groups).iter().all(|rule| rule["health"] != "unknown"),
        )
        .await;
        let loaded: Vec<(String, usize)> = groups
            .iter()
            .map(|group| {
                let rules = group["rules"].as_array().map_or(0, Vec::len);
                (group["name"].as_str().unwrap_or_default().to_owned(), rules)
            })
            .collect();
        assert_eq!(loaded, deploy_files::alert_groups(), "rule groups loaded");
        for rule in rules(&groups) {
            assert_eq!(
                rule["health"], "ok",
                "alert {} fails: {}",
                rule["name"], rule["lastError"]
            );
        }
    }

    /// Every query of the dashboard is valid PromQL on the hosts' metrics,
    /// and those of [`PANELS_WITH_DATA`] return numbers.
    async fn assert_dashboard_answers(&self) {
        for variable in deploy_files::variables() {
            let values = self
                .prometheus
                .label_values(&variable.metric, &variable.label)
                .await;
            assert!(
                !values.is_empty(),
                "variable {} has no values",
                variable.name
            );
        }
        let queries = deploy_files::dashboard_queries();
        for panel in PANELS_WITH_DATA {
            assert!(
                queries.iter().any(|query| query.panel == panel),
                "the dashboard has no panel {panel}"
            );
        }
        for query in &queries {
            let answer = self.prometheus.query(&query.expr).await;
            if let Err(error) = answer {
                panic!(
                    "panel {}: Prometheus refuses {}: {error}",
                    query.panel, query.expr
                );
            }
            if !PANELS_WITH_DATA.contains(&query.panel.as_str()) {
                continue;
            }
            wait_until(
                &format!(
                    "panel {}'s query {} to return a number",
                    query.panel, query.expr
                ),
                FLOW_TIMEOUT,
                async || self.prometheus.query(&query.expr).await.unwrap_or_default(),
                |samples| samples.iter().any(|sample| sample.value.is_finite()),
            )
            .await;
        }
    }
}

/// The whole example cluster on loopback: two waves of orders, payments
/// and events come out where the shipped configuration sends them, every
/// host takes a share, and Prometheus with the shipped configuration,
/// alerts and dashboard queries sees it all.
#[tokio::test(flavor = "multi_thread")]
async fn the_compose_topology_works_as_a_whole_on_loopback() {
    let topology = Topology::start().await;
    topology.assert_hosts_up().await;
    topology.wait_for_orders_spread().await;
    let mut outputs = Outputs::default();

    topology.send_wave(1);
    outputs.wait_for(&topology.expected(1), &topology).await;
    // Series a host creates at their first event (a binding's requests, a
    // pipeline's dead letters) need a second sample to have a rate: wave 2
    // is sent once Prometheus holds the first.
    let payments = PAYMENTS as f64;
    topology
        .wait_for_scraped("sum(kafka_binding_requests_total)", payments)
        .await;
    topology
        .wait_for_scraped("sum(runnel_dead_lettered_total)", 1.0)
        .await;
    topology.send_wave(2);
    outputs.wait_for(&topology.expected(2), &topology).await;
    outputs.assert_headers(&topology.run);

    topology.assert_work_shared(2).await;
    topology.assert_admin_token_required().await;
    topology.assert_rules_healthy().await;
    topology.assert_dashboard_answers().await;
    topology.stop().await;
}
