//! A real daprd sidecar, run by tests/dapr/daprd.sh: started with the
//! arguments a test gives, stopped when dropped (and by the script's
//! watcher, should the test process die first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::repo_root;

/// Builds (or finds in the cache) the pinned daprd, once per process.
pub fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(script())
            .arg("build")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("running tests/dapr/daprd.sh build");
        assert!(status.success(), "building daprd failed");
    });
}

pub struct Sidecar {
    dir: PathBuf,
    /// The app API token daprd sends its app, if any.
    token: Option<String>,
}

impl Sidecar {
    /// `daprd.sh start --dir DIR ARGUMENTS...`, sending `token` as the app
    /// API token, or none.
    pub fn start(dir: &Path, token: Option<&str>, arguments: &[&str]) -> Self {
        let sidecar = Self {
            dir: dir.to_owned(),
            token: token.map(str::to_owned),
        };
        let output = sidecar
            .command("start")
            .args(arguments)
            .output()
            .expect("running tests/dapr/daprd.sh start");
        assert!(
            output.status.success(),
            "daprd did not start:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        sidecar
    }

    /// The port of daprd's HTTP API.
    pub fn http_port(&self) -> u16 {
        std::fs::read_to_string(self.dir.join("http_port"))
            .expect("daprd wrote its port")
            .trim()
            .parse()
            .expect("a port number")
    }

    /// Stops daprd (SIGTERM) for `away`, then starts it again with the same
    /// ports and components: a sidecar restart.
    pub fn restart_after(&self, away: Duration) {
        let stopped = self.stop().status().expect("stopping daprd");
        assert!(stopped.success());
        std::thread::sleep(away);
        let resumed = self.command("resume").output().expect("resuming daprd");
        assert!(
            resumed.status.success(),
            "daprd did not come back:\n{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daprd.log")).unwrap_or_default()
    }

    /// The script run for `verb` on this sidecar's folder, watched by this
    /// process.
    fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(script());
        command
            .args([verb, "--dir"])
            .arg(&self.dir)
            .args(["--watch-pid", &std::process::id().to_string()]);
        match &self.token {
            Some(token) => command.env("APP_API_TOKEN", token),
            None => command.env_remove("APP_API_TOKEN"),
        };
        command
    }

    fn stop(&self) -> Command {
        let mut command = Command::new(script());
        command.args(["stop", "--dir"]).arg(&self.dir);
        command
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.stop().output();
    }
}

fn script() -> PathBuf {
    repo_root().join("tests/dapr/daprd.sh")
}
