//! The Dapr sidecar of the compose file, a real daprd run by
//! tests/dapr/daprd.sh with deploy/dapr/payments-binding.yaml.

use std::path::Path;

use crate::deploy_files;
use crate::support::daprd::Sidecar;
use crate::support::kafka;

/// The compose file's sidecar: app id `runnel-payments`, its app the host
/// at `app_address`, its files in `dir`, and no app API token (the compose
/// file's default).
pub fn start(dir: &Path, app_address: &str) -> Sidecar {
    let (binding, component) = deploy_files::dapr_component(&kafka::brokers(), dir);
    let app_port = app_address
        .rsplit(':')
        .next()
        .expect("an address with a port");
    let component = component.to_str().expect("a UTF-8 path");
    let arguments = [
        "--app-port",
        app_port,
        "--app-id",
        "runnel-payments",
        "--binding",
        &binding,
        "--component",
        component,
    ];
    Sidecar::start(dir, None, &arguments)
}
