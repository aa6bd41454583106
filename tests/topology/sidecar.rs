//! The Dapr sidecar of the compose file, a real daprd run by
//! tests/dapr/daprd.sh with deploy/dapr/payments-binding.yaml.

use std::path::PathBuf;
use std::process::Command;

use crate::deploy_files;
use crate::support::{kafka, repo_root};

/// daprd, run by tests/dapr/daprd.sh with the shipped component; stopped
/// when dropped (and by its watcher should this process die first).
pub struct Sidecar {
    dir: PathBuf,
}

impl Sidecar {
    /// The compose file's sidecar: app id `runnel-payments`, its app the
    /// host at `app_address`, its files in `dir`.
    pub fn start(dir: PathBuf, app_address: &str) -> Self {
        let (binding, component) = deploy_files::dapr_component(&kafka::brokers(), &dir);
        let app_port = app_address
            .rsplit(':')
            .next()
            .expect("an address with a port");
        let output = Command::new(repo_root().join("tests/dapr/daprd.sh"))
            .args(["start", "--dir"])
            .arg(&dir)
            .args(["--app-port", app_port, "--app-id", "runnel-payments"])
            .args(["--binding", &binding, "--component"])
            .arg(&component)
            .args(["--watch-pid", &std::process::id().to_string()])
            // The compose file's default: no app API token.
            .env_remove("APP_API_TOKEN")
            .output()
            .expect("running tests/dapr/daprd.sh");
        assert!(
            output.status.success(),
            "daprd did not start:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daprd.log")).unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("tests/dapr/daprd.sh"))
            .args(["stop", "--dir"])
            .arg(&self.dir)
            .output();
    }
}
