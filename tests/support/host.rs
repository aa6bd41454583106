//! Runs the real `runnel` binary as a child process.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct HostProcess {
    child: Child,
    log_path: PathBuf,
}

impl HostProcess {
    /// Starts `runnel run --config <config>`, logging JSON to `log_path`.
    pub fn start(config: &Path, log_path: &Path) -> Self {
        let log = File::create(log_path).expect("host log file");
        let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["run", "--config"])
            .arg(config)
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

    /// SIGTERM, then waits up to `timeout` for the exit. Returns the exit
    /// status and how long the exit took, or None if it did not exit.
    pub fn terminate(mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("sending SIGTERM");
        assert!(status.success());
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(exit) = self.child.try_wait().expect("waiting for the host") {
                return Some((exit, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Asserts that the host is still running (nothing made it exit or
    /// restart), then stops it with SIGTERM and asserts a clean exit.
    pub fn assert_running_then_stop(mut self, drain: Duration) {
        assert!(self.is_running(), "the host exited by itself");
        let (status, _) = self.terminate(drain).expect("exits on SIGTERM");
        assert!(status.success(), "clean exit: {status}");
    }

    /// The host's JSON log lines, parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        read_log(&self.log_path)
    }

    /// Waits until a log line's message equals `message`.
    pub fn wait_for_log(&self, message: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self
                .log_lines()
                .iter()
                .any(|line| line["fields"]["message"] == message)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl HostProcess {
    /// The address the host's HTTP server listens on, from its log.
    pub fn http_address(&self, timeout: Duration) -> String {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(line) = self
                .log_lines()
                .into_iter()
                .find(|line| line["fields"]["message"] == "http listening")
            {
                return line["fields"]["address"]
                    .as_str()
                    .expect("address is a string")
                    .to_owned();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the host never listened: {:?}", self.log_lines());
    }
}

impl HostProcess {
    /// `GET path` on the host's HTTP server: the status and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let url = format!(
            "http://{}{path}",
            self.http_address(Duration::from_secs(30))
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for one request");
        runtime.block_on(async {
            let response = reqwest::get(&url).await.expect("the host answers");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    }
}

impl HostProcess {
    /// The value of one series on the host's `/metrics` (its name with
    /// labels, as Prometheus prints it); 0 if the host has not exported it.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.http_get("/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
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
