//! `runnel plugin sign` and `runnel plugin keygen`: signatures a host
//! configured with `[runtime] trusted_plugin_keys` wants on every plugin.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use runnel::plugin_dir::manifest::Manifest;
use runnel::signing::{self, signature_path};

use super::exit::{self, FAILED};
use super::logging::ErrorReport;

#[derive(Subcommand)]
pub enum SigningCommand {
    /// Sign a plugin with a private key: its component's digest and its
    /// manifest's settings. Writes `NAME.sig` beside the manifest (or
    /// `FILE.wasm.sig` beside a component without one), which the plugin
    /// directory and `plugin deploy` carry along.
    Sign {
        /// The manifest (`.toml`), or the component (`.wasm`).
        file: PathBuf,
        /// The plugin's manifest, when `file` is its component.
        #[arg(long, short)]
        manifest: Option<PathBuf>,
        /// The ed25519 private key, PEM (`plugin keygen`, or
        /// `openssl genpkey -algorithm ed25519`).
        #[arg(long, short)]
        key: PathBuf,
    },
    /// Make an ed25519 key pair: `PREFIX.key` (private, readable by its
    /// owner only) and `PREFIX.pub` (for hosts' `trusted_plugin_keys`).
    Keygen {
        /// The path of both files without their extension.
        prefix: PathBuf,
    },
}

pub fn run(command: &SigningCommand, errors: ErrorReport) -> ExitCode {
    let done = match command {
        SigningCommand::Sign {
            file,
            manifest,
            key,
        } => sign(file, manifest.as_deref(), key),
        SigningCommand::Keygen { prefix } => keygen(prefix),
    };
    match done {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            errors.error(&format!("{error:#}"));
            exit::code(FAILED)
        }
    }
}

fn sign(file: &Path, manifest: Option<&Path>, key: &Path) -> anyhow::Result<String> {
    let manifest = match manifest {
        Some(manifest) => Some(manifest),
        None if file.extension().is_some_and(|e| e == "toml") => Some(file),
        None => None,
    };
    let (text, component) = match manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let parsed = Manifest::parse(&text, path)?;
            let component = if file == path {
                parsed.component
            } else {
                file.to_owned()
            };
            (Some(text), component)
        }
        None => (None, file.to_owned()),
    };
    let wasm = std::fs::read(&component)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", component.display()))?;
    let signature = signing::sign(key, text.as_deref(), &wasm)?;
    let path = signature_path(manifest.unwrap_or(file));
    std::fs::write(&path, format!("{signature}\n"))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(format!(
        "signed {} as {}",
        component.display(),
        path.display()
    ))
}

fn keygen(prefix: &Path) -> anyhow::Result<String> {
    let (private, public) = signing::generate()?;
    let with = |extension: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(extension);
        PathBuf::from(path)
    };
    let (private_path, public_path) = (with(".key"), with(".pub"));
    write_private(&private_path, &private)?;
    std::fs::write(&public_path, public)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", public_path.display()))?;
    Ok(format!(
        "wrote {} (private) and {} (public)",
        private_path.display(),
        public_path.display()
    ))
}

/// Creates `path` readable and writable by its owner only, and refuses to
/// overwrite a key.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
