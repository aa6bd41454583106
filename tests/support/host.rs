//! Runs the real `runnel` binary as a child process.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::wait_until;

pub struct HostProcess {
    child: Child,
    log_path: PathBuf,
}

impl HostProcess {
    /// Starts `runnel run --config <config>`, logging JSON to `log_path`.
    pub fn start(config: &Path, log_path: &Path) -> Self {
        Self::start_with_env(config, log_path, &[])
    }

    /// [`HostProcess::start`] with `env` added to the host's environment.
    /// The tokens the host reads from its environment are never inherited
    /// from the test's: a test that wants one passes it here.
    pub fn start_with_env(config: &Path, log_path: &Path, env: &[(&str, &str)]) -> Self {
        let log = File::create(log_path).expect("host log file");
        let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["run", "--config"])
            .arg(config)
            .env_remove("RUNNEL_ADMIN_TOKEN")
            .env_remove("APP_API_TOKEN")
            .env_remove("RUNNEL_KAFKA_SASL_PASSWORD")
            .env_remove("RUNNEL_KAFKA_SSL_KEY_PASSWORD")
            .envs(env.iter().copied())
            .env("RUNNEL_LOG_FORMAT", "json")
            // RUNNEL_TEST_HOST_LOG=debug (say) to see more of a failing test.
            .env(
                "RUNNEL_LOG",
                std::env::var("RUNNEL_TEST_HOST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting runnel");
        Self {
            child,
            log_path: log_path.to_owned(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaping the host");
    }

    /// SIGTERM, then waits up to `timeout` for the exit (panics past it).
    /// Returns the exit status and how long the exit took.
    pub async fn terminate(mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("sending SIGTERM");
        assert!(status.success());
        let started = Instant::now();
        let exit = wait_until(
            "the host to exit after SIGTERM",
            timeout,
            async || self.child.try_wait().expect("waiting for the host"),
            Option::is_some,
        )
        .await;
        (exit.expect("exited"), started.elapsed())
    }

    /// Asserts that the host is still running (nothing made it exit or
    /// restart), then stops it with SIGTERM and asserts a clean exit.
    pub async fn assert_running_then_stop(mut self, drain: Duration) {
        assert!(self.is_running(), "the host exited by itself");
        let (status, _) = self.terminate(drain).await;
        assert!(status.success(), "clean exit: {status}");
    }

    /// The host's JSON log lines, parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        read_log(&self.log_path)
    }

    /// Waits until the host logs a line whose message is `message`, and
    /// returns that line.
    pub async fn wait_for_log(&self, message: &str, timeout: Duration) -> serde_json::Value {
        self.wait_for_log_line(&format!("\"{message}\""), timeout, |line| {
            line["fields"]["message"] == message
        })
        .await
    }

    /// Waits until pipeline `pipeline` logs that it stopped cleanly (its
    /// drain finished and no commit failed), and returns that line.
    pub async fn wait_for_clean_stop(
        &self,
        pipeline: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        self.wait_for_log_line(&format!("pipeline {pipeline} to stop"), timeout, |line| {
            line["level"] == "INFO"
                && line["fields"]["pipeline"] == pipeline
                && line["fields"]["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("stopped; "))
        })
        .await
    }

    /// Waits until the host logs a line that `wanted` accepts, and returns
    /// that line; `what` describes it for the timeout's panic.
    pub async fn wait_for_log_line(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let lines = wait_until(
            &format!("the host to log {what}"),
            timeout,
            async || self.log_lines(),
            |lines| lines.iter().any(&wanted),
        )
        .await;
        lines
            .into_iter()
            .find(|line| wanted(line))
            .expect("the line waited for")
    }

    /// The address the host's HTTP server listens on, from its log.
    pub async fn http_address(&self) -> String {
        let line = self
            .wait_for_log("http listening", Duration::from_secs(60))
            .await;
        line["fields"]["address"]
            .as_str()
            .expect("address is a string")
            .to_owned()
    }

    /// `GET path` on the host's HTTP server: the status and the body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.http_address().await);
        let response = reqwest::get(&url).await.expect("the host answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// The value of one series on the host's `/metrics`, found by its name
    /// and labels; 0 if the host has not exported it.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (_, text) = self.http_get("/metrics").await;
        sample(&text, name, labels)
    }
}

/// The value of one Prometheus sample in `metrics`, found by its name and
/// labels (those it has besides do not matter); 0 if there is none.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read_log(path: &Path) -> Vec<serde_json::Value> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}
