//! A real Prometheus server on 127.0.0.1: Debian's build, fetched into the
//! cache by tests/prometheus/fetch.sh, and the parts of its HTTP API the
//! topology test asks.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{repo_root, wait_until};

/// The folder holding `prometheus` and `promtool`, fetched once.
fn fetched_tools() -> PathBuf {
    let output = Command::new(repo_root().join("tests/prometheus/fetch.sh"))
        .output()
        .expect("running tests/prometheus/fetch.sh");
    assert!(
        output.status.success(),
        "fetching Prometheus failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One sample of a query's answer: its labels and its value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The server, killed when dropped.
pub struct PrometheusServer {
    child: Child,
    base: String,
    log: PathBuf,
    client: reqwest::Client,
}

impl PrometheusServer {
    /// Starts Prometheus with `config`, its data and log in `dir`, its HTTP
    /// API on a free port of 127.0.0.1, and waits until it is ready.
    pub async fn start(config: &Path, dir: &Path) -> Self {
        let binary = fetched_tools().join("prometheus");
        let address = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("the Prometheus log"))
            .spawn()
            .expect("starting prometheus");
        let mut server = Self {
            child,
            base: format!("http://{address}"),
            log,
            client: reqwest::Client::new(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let ready = format!("{}/-/ready", self.base);
        let client = self.client.clone();
        let (exited, _) = wait_until(
            "Prometheus to be ready",
            Duration::from_secs(30),
            async || {
                let exited = self.child.try_wait().expect("waiting for prometheus");
                let response = client.get(&ready).send().await;
                (exited, response.map(|response| response.status()).ok())
            },
            |(exited, status)| exited.is_some() || status.is_some_and(|s| s.is_success()),
        )
        .await;
        assert!(exited.is_none(), "Prometheus exited:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/PATH` with `params`: the `data` of a successful answer,
    /// or the error Prometheus gave.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Json, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|error| format!("Prometheus did not answer: {error}"))?;
        let body: Json = response
            .json()
            .await
            .map_err(|error| format!("Prometheus answered no JSON: {error}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// An instant query at the present: its samples (a vector's, or a
    /// scalar's one), or the error Prometheus gave.
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        let samples = match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({ "metric": {}, "value": data["result"] })],
            other => return Err(format!("a {other:?} answer to an instant query")),
        };
        Ok(samples.iter().map(sample).collect())
    }

    /// `/api/v1/rules`: the rule groups as Prometheus loaded them.
    pub async fn rule_groups(&self) -> Vec<Json> {
        let data = self.api("rules", &[]).await.expect("the rules API answers");
        data["groups"].as_array().cloned().unwrap_or_default()
    }

    /// The values of `label` on the series of `metric`, as a Grafana
    /// variable's `label_values(METRIC, LABEL)` asks for them.
    pub async fn label_values(&self, metric: &str, label: &str) -> Vec<String> {
        let path = format!("label/{label}/values");
        let data = self.api(&path, &[("match[]", metric)]).await;
        let values = data.expect("the label values API answers");
        let values = values.as_array().cloned().unwrap_or_default();
        values
            .iter()
            .filter_map(|value| value.as_str().map(str::to_owned))
            .collect()
    }
}

fn sample(entry: &Json) -> Sample {
    let labels = entry["metric"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
        .collect();
    // Prometheus writes a value as a string: "1", "0.25", "NaN", "+Inf".
    let value = entry["value"][1]
        .as_str()
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN);
    Sample { labels, value }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
