//! `runnel plugin new` and `runnel plugin build`: a plugin project in any
//! language the SDKs serve. Each SDK folder (`sdk/<language>/`) holds the
//! starting files of a new plugin (`template/`) and the one script that
//! builds a plugin folder into a component (`build.sh`), which installs
//! that language's toolchain when it is missing. This module only picks
//! the SDK and runs it, so every recipe lives in one place.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::ValueEnum;

use super::exit::{self, FAILED};
use super::logging::ErrorReport;

/// The languages a plugin may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Rust,
    #[value(alias = "javascript")]
    Js,
    #[value(alias = "typescript")]
    Ts,
    Python,
    Go,
    C,
}

impl Language {
    /// The SDK folder under `sdk/`: TypeScript shares JavaScript's.
    fn sdk_folder(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Js | Language::Ts => "js",
            Language::Python => "python",
            Language::Go => "go",
            Language::C => "c",
        }
    }

    /// The starting files in the SDK folder.
    fn template(self) -> &'static str {
        match self {
            Language::Ts => "template-ts",
            _ => "template",
        }
    }

    /// The language of an existing plugin folder, by the build file its
    /// language uses.
    fn of_folder(dir: &Path) -> Option<Self> {
        let has = |name: &str| dir.join(name).exists();
        let has_extension = |extension: &str| {
            fs::read_dir(dir).is_ok_and(|entries| {
                entries.flatten().any(|entry| {
                    entry
                        .path()
                        .extension()
                        .is_some_and(|found| found == extension)
                })
            })
        };
        if has("Cargo.toml") {
            Some(Language::Rust)
        } else if has("tsconfig.json") {
            Some(Language::Ts)
        } else if has("package.json") {
            Some(Language::Js)
        } else if has("go.mod") {
            Some(Language::Go)
        } else if has("pyproject.toml") || has_extension("py") {
            Some(Language::Python)
        } else if has_extension("c") {
            Some(Language::C)
        } else {
            None
        }
    }
}

/// Where the SDKs are: `--sdk`, `RUNNEL_SDK_DIR`, or the `sdk/` folder of
/// the checkout this binary was built from.
fn sdk_root(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let root = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("RUNNEL_SDK_DIR").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"));
    if root.join("rust").is_dir() {
        Ok(root.canonicalize().unwrap_or(root))
    } else {
        Err(format!(
            "the plugin SDKs are not at {}: pass --sdk DIR or set RUNNEL_SDK_DIR to the `sdk` \
             folder of a Runnel checkout",
            root.display()
        ))
    }
}

/// A plugin name as a file name: what the build names the component.
fn component_name(name: &str) -> String {
    name.replace('-', "_")
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "plugin name `{name}` must start with a lowercase letter and hold only lowercase \
             letters, digits, `-` and `_`"
        ))
    }
}

/// `runnel plugin new NAME --lang LANGUAGE`: copies the language's template
/// into a new folder, with the plugin's name filled in.
pub fn new(
    name: &str,
    language: Language,
    dir: Option<&Path>,
    sdk: Option<&Path>,
    errors: ErrorReport,
) -> ExitCode {
    let created = check_name(name).and_then(|()| {
        let root = sdk_root(sdk)?;
        let target = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
        if target.exists() {
            return Err(format!("{} already exists", target.display()));
        }
        let template = root.join(language.sdk_folder()).join(language.template());
        let values = Placeholders {
            name: name.to_owned(),
            // A Rust plugin depends on the Rust SDK by path.
            plugin_sdk: root.join("../plugin-sdk").canonicalize().ok(),
        };
        let sdk_folder = root.join(language.sdk_folder());
        copy_template(&template, &target, &values)
            .and_then(|()| copy_sdk_files(&sdk_folder, &target))
            .map_err(|error| format!("cannot create {}: {error}", target.display()))?;
        Ok(target)
    });
    match created {
        Ok(target) => {
            println!(
                "created {} ({language:?} plugin `{name}`); build it with `runnel plugin build {}`",
                target.display(),
                target.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            errors.error(&error);
            exit::code(FAILED)
        }
    }
}

struct Placeholders {
    name: String,
    plugin_sdk: Option<PathBuf>,
}

impl Placeholders {
    fn fill(&self, text: &str) -> String {
        let mut filled = text.replace("{{name}}", &self.name);
        if let Some(sdk) = &self.plugin_sdk {
            filled = filled.replace("{{plugin_sdk}}", &sdk.to_string_lossy());
        }
        filled
    }
}

/// Copies `from` into `to`, filling the placeholders in file names and in
/// every file that is text.
fn copy_template(from: &Path, to: &Path, values: &Placeholders) -> std::io::Result<()> {
    if !from.is_dir() {
        return Err(std::io::Error::other(format!(
            "no template at {}",
            from.display()
        )));
    }
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = values.fill(&entry.file_name().to_string_lossy());
        let target = to.join(name);
        if entry.file_type()?.is_dir() {
            copy_template(&entry.path(), &target, values)?;
        } else {
            let bytes = fs::read(entry.path())?;
            match String::from_utf8(bytes) {
                Ok(text) => fs::write(&target, values.fill(&text))?,
                Err(binary) => fs::write(&target, binary.into_bytes())?,
            }
        }
    }
    Ok(())
}

/// Copies the SDK files that `template.files` in the SDK folder lists into
/// the new plugin, at the same relative paths, so that it builds on its own.
/// A line names a file (`runnel.h`) or the files of a folder ending in a
/// suffix (`runnel/*.go`); `!*SUFFIX` leaves out files ending in SUFFIX.
fn copy_sdk_files(sdk_folder: &Path, target: &Path) -> std::io::Result<()> {
    let Ok(list) = fs::read_to_string(sdk_folder.join("template.files")) else {
        return Ok(());
    };
    let lines: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let excluded: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("!*"))
        .collect();
    let mut files = Vec::new();
    for line in lines.iter().filter(|line| !line.starts_with('!')) {
        match line.split_once("/*") {
            Some((folder, suffix)) => {
                for entry in fs::read_dir(sdk_folder.join(folder))? {
                    let name = entry?.file_name().to_string_lossy().into_owned();
                    if name.ends_with(suffix) {
                        files.push(format!("{folder}/{name}"));
                    }
                }
            }
            None => files.push((*line).to_owned()),
        }
    }
    for file in files
        .iter()
        .filter(|file| !excluded.iter().any(|suffix| file.ends_with(suffix)))
    {
        let destination = target.join(file);
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(sdk_folder.join(file), destination)?;
    }
    Ok(())
}

/// `runnel plugin build [DIR]`: builds a plugin folder into a component
/// with its language's SDK, by default into `DIR/build/NAME.wasm`.
pub fn build(
    dir: &Path,
    language: Option<Language>,
    out: Option<&Path>,
    sdk: Option<&Path>,
    errors: ErrorReport,
) -> ExitCode {
    let built = (|| {
        let dir = dir
            .canonicalize()
            .map_err(|error| format!("plugin folder {}: {error}", dir.display()))?;
        let language = language
            .or_else(|| Language::of_folder(&dir))
            .ok_or_else(|| {
                format!(
                    "cannot tell the language of {}: no Cargo.toml, package.json, go.mod, \
                 pyproject.toml, .py or .c file; pass --lang",
                    dir.display()
                )
            })?;
        let root = sdk_root(sdk)?;
        let name = dir
            .file_name()
            .map(|name| component_name(&name.to_string_lossy()))
            .unwrap_or_else(|| "plugin".to_owned());
        let out = out.map_or_else(
            || dir.join("build").join(format!("{name}.wasm")),
            Path::to_path_buf,
        );
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        let script = root.join(language.sdk_folder()).join("build.sh");
        eprintln!(
            "building {} ({language:?}) with {}",
            dir.display(),
            script.display()
        );
        // The toolchain's output goes to stderr with the host's own
        // progress: stdout is for the result, `built PATH`.
        let status = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .arg(&out)
            .stdout(std::io::stderr())
            .status()
            .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
        if status.success() && out.exists() {
            Ok(out)
        } else {
            Err(format!("building {} failed ({status})", dir.display()))
        }
    })();
    match built {
        Ok(out) => {
            println!("built {}", out.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            errors.error(&error);
            exit::code(FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("orders-router").is_ok());
        assert!(check_name("a1_b").is_ok());
        for bad in ["", "Orders", "1st", "a b", "../x", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_fill_names_and_paths() {
        let values = Placeholders {
            name: "orders".into(),
            plugin_sdk: Some(PathBuf::from("/sdk")),
        };
        assert_eq!(
            values.fill("name = \"{{name}}\" path = \"{{plugin_sdk}}\""),
            "name = \"orders\" path = \"/sdk\""
        );
    }
}
