//! What a plugin file must hold: a WebAssembly component in the binary
//! format. Its first eight bytes say whether it does, so a wrong file (a
//! text file, a core module, random bytes) gets a sentence naming what it
//! is, rather than the parser's complaint about its first byte.
//!
//! The WebAssembly text format is not accepted: a plugin ships as the binary
//! its toolchain built.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Every WebAssembly binary, module or component, starts with these.
const MAGIC: &[u8; 4] = b"\0asm";

/// The two bytes after the version that say a binary holds a core module
/// (a component's say `[1, 0]`).
const CORE_MODULE_LAYER: [u8; 2] = [0, 0];

/// Why some bytes cannot be a component, worded to follow the name of what
/// holds them ("component file x.wasm is empty").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NotAComponent {
    #[error("is empty")]
    Empty,
    #[error(
        "is not a WebAssembly binary: it holds WebAssembly text, which plugins cannot be loaded \
         from; assemble it into a binary component (`wasm-tools parse`)"
    )]
    TextFormat,
    #[error("is not a WebAssembly binary (it does not start with the `\\0asm` header)")]
    NotWasm,
    #[error(
        "is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2, or \
         turn the module into a component with `wasm-tools component new`"
    )]
    CoreModule,
}

impl NotAComponent {
    /// What is wrong with `bytes` as a component, judged by their header;
    /// `None` when the header is a component's (whose body may still be
    /// invalid: compiling it tells).
    pub fn of(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return Some(Self::Empty);
        }
        if !bytes.starts_with(MAGIC) {
            let text = bytes.trim_ascii_start();
            return Some(if text.starts_with(b"(") {
                Self::TextFormat
            } else {
                Self::NotWasm
            });
        }
        // Anything else is a component, or a file cut short or of a layer
        // this host does not know: compiling it says which.
        (bytes.get(6..8) == Some(&CORE_MODULE_LAYER[..])).then_some(Self::CoreModule)
    }
}

/// Why a component file cannot be loaded before it is even compiled.
#[derive(Debug, Error)]
pub enum ComponentFileError {
    #[error("cannot read component {path}: {reason}")]
    Read {
        path: PathBuf,
        /// Not a `source`: the message already says it.
        reason: std::io::Error,
    },
    #[error("component file {path} {problem}")]
    NotAComponent {
        path: PathBuf,
        problem: NotAComponent,
    },
}

/// Reads a plugin's component file, refusing one that does not hold a
/// binary component with a sentence naming the file.
pub async fn read_component(path: &Path) -> Result<Vec<u8>, ComponentFileError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|reason| ComponentFileError::Read {
            path: path.to_owned(),
            reason,
        })?;
    match NotAComponent::of(&bytes) {
        Some(problem) => Err(ComponentFileError::NotAComponent {
            path: path.to_owned(),
            problem,
        }),
        None => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_tells_a_component_from_other_files() {
        let component = b"\0asm\x0d\x00\x01\x00";
        assert_eq!(NotAComponent::of(component), None);
        assert_eq!(NotAComponent::of(b""), Some(NotAComponent::Empty));
        assert_eq!(
            NotAComponent::of(b"\0asm\x01\x00\x00\x00"),
            Some(NotAComponent::CoreModule)
        );
        assert_eq!(
            NotAComponent::of(b"  \n(component)"),
            Some(NotAComponent::TextFormat)
        );
        assert_eq!(
            NotAComponent::of(b"hello world\n"),
            Some(NotAComponent::NotWasm)
        );
        assert_eq!(
            NotAComponent::of(&[0xff, 0xfe, 0x00, 0x13]),
            Some(NotAComponent::NotWasm)
        );
    }
}
