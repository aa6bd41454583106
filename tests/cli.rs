//! The command line as a user meets it: what each command prints, in which
//! log format, and the exit code it ends with. Every test runs the real
//! `runnel` binary.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::runnel;
use support::config::{HostConfig, Pipeline, plugin_manifest};
use support::{kafka, plugin_path};

fn text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Writes `bytes` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing a test file");
    path
}

/// Copies an example plugin's component to `dir/name`.
fn copy_plugin(plugin: &str, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(plugin_path(plugin), &path).expect("copying a plugin");
    path
}

/// Files that are not binary components, each with what the host must say
/// of it.
fn not_components(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let core_module = wat::parse_str("(module)").expect("valid text");
    vec![
        (
            write(
                dir,
                "noise.wasm",
                [0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x13],
            ),
            "is not a WebAssembly binary",
        ),
        (
            write(dir, "notes.wasm", "remember to build the plugin\n"),
            "is not a WebAssembly binary",
        ),
        (
            write(dir, "text.wasm", "(component)\n"),
            "is not a WebAssembly binary: it holds WebAssembly text",
        ),
        (
            write(dir, "module.wasm", core_module),
            "is a core WebAssembly module, not a component",
        ),
    ]
}

#[test]
fn a_file_that_is_not_a_component_is_named_and_said_to_be_so_by_every_command() {
    let dir = kafka::scratch_dir();
    for (file, expected) in not_components(dir.path()) {
        let said = format!("component file {} {expected}", file.display());

        let validated = runnel(&["plugin", "validate", text(&file)], &[]);
        assert_eq!(validated.code, 1, "{validated:?}");
        assert_eq!(validated.errors().len(), 1, "{validated:?}");
        assert!(
            validated.errors()[0].starts_with(&format!("error: {said}")),
            "{validated:?}"
        );

        let config = HostConfig::new(&kafka::brokers())
            .pipeline("p", Pipeline::reading("in").plugin(&file))
            .write_in(dir.path());
        let ran = runnel(&["run", "--config", text(&config)], &[]);
        assert_eq!(ran.code, 3, "{ran:?}");
        assert_eq!(ran.errors().len(), 1, "{ran:?}");
        assert!(
            ran.errors()[0].starts_with(&format!("error: pipeline p: {said}")),
            "{ran:?}"
        );
    }
}

#[test]
fn a_plugin_directory_names_a_file_that_is_not_a_component() {
    let dir = kafka::scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    write(&plugins, "odd.wasm", "(component)\n");
    write(
        &plugins,
        "odd.toml",
        plugin_manifest("odd", "1", None, None),
    );
    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins)
        .write_in(dir.path());
    let checked = runnel(&["check", "--config", text(&config)], &[]);
    assert_eq!(checked.code, 1, "{checked:?}");
    let component = plugins.join("odd.wasm");
    assert_eq!(
        checked.errors(),
        [format!(
            "error: plugin odd version 1 in {}: component file {} is not a WebAssembly binary: it \
             holds WebAssembly text, which plugins cannot be loaded from; assemble it into a \
             binary component (`wasm-tools parse`)",
            plugins.display(),
            component.display()
        )],
        "{checked:?}"
    );
}

#[test]
fn plugin_validate_reports_only_the_real_error_of_a_manifest_pipeline() {
    let dir = kafka::scratch_dir();
    copy_plugin("json-router", dir.path(), "router.wasm");
    // The pipeline is invalid; its configuration is what the plugin needs.
    let pipeline = Pipeline::reading("in")
        .set("batch_size", 0)
        .settings("[config]\nroute_field = \"kind\"");
    let manifest = write(
        dir.path(),
        "router.toml",
        plugin_manifest("router", "1", None, Some(&pipeline)),
    );
    let validated = runnel(&["plugin", "validate", text(&manifest)], &[]);
    assert_eq!(validated.code, 1, "{validated:?}");
    assert_eq!(
        validated.errors(),
        ["error: pipeline router: `batch_size` must be at least 1"],
        "{validated:?}"
    );
}

#[test]
fn plugin_validate_hands_init_the_settings_given_over_the_manifests() {
    let dir = kafka::scratch_dir();
    let component = copy_plugin("json-router", dir.path(), "router.wasm");
    let component = text(&component);

    let validated = runnel(&["plugin", "validate", component], &[]);
    assert_eq!(validated.code, 1, "{validated:?}");
    assert!(
        validated
            .stderr
            .contains("missing required setting `route_field`")
    );
    let validated = runnel(
        &[
            "plugin",
            "validate",
            component,
            "--config",
            "route_field=kind",
        ],
        &[],
    );
    assert_eq!(validated.code, 0, "{validated:?}");
    assert_eq!(validated.stdout, "ok: router unversioned\n");

    let pipeline = Pipeline::reading("in").settings("[config]\nroute_field = \"kind\"");
    let manifest = write(
        dir.path(),
        "router.toml",
        plugin_manifest("router", "1", None, Some(&pipeline)),
    );
    let manifest = text(&manifest);
    // Merged over the manifest's: its `route_field` stays.
    let validated = runnel(
        &["plugin", "validate", manifest, "--config", "drop_field=env"],
        &[],
    );
    assert_eq!(validated.code, 1, "{validated:?}");
    assert!(
        validated.stderr.contains("set both or neither"),
        "{validated:?}"
    );
    let validated = runnel(
        &[
            "plugin",
            "validate",
            manifest,
            "--config",
            "drop_field=env",
            "--config",
            "drop_value=test",
        ],
        &[],
    );
    assert_eq!(validated.code, 0, "{validated:?}");
    assert_eq!(validated.stdout, "ok: router 1\n");

    let refused = runnel(
        &["plugin", "validate", manifest, "--config", "novalue"],
        &[],
    );
    assert_eq!(refused.code, 2, "a usage error: {refused:?}");
}

#[test]
fn usage_configuration_and_runtime_failures_exit_with_their_own_codes() {
    let dir = kafka::scratch_dir();
    let usage = runnel(&["run", "--no-such-flag"], &[]);
    assert_eq!(usage.code, 2, "{usage:?}");

    let missing = dir.path().join("missing.toml");
    let config_error = runnel(&["run", "--config", text(&missing)], &[]);
    assert_eq!(config_error.code, 3, "{config_error:?}");

    let router = copy_plugin("json-router", dir.path(), "router.wasm");
    let refused = HostConfig::new(&kafka::brokers())
        .pipeline("routed", Pipeline::reading("in").plugin(&router))
        .write_in(dir.path());
    let plugin_error = runnel(&["run", "--config", text(&refused)], &[]);
    assert_eq!(plugin_error.code, 3, "{plugin_error:?}");
    assert!(plugin_error.stderr.contains("refused its configuration"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = taken.local_addr().unwrap().to_string();
    let config = HostConfig::new(&kafka::brokers())
        .listen(&address)
        .write_in(dir.path());
    let runtime_error = runnel(&["run", "--config", text(&config)], &[]);
    assert_eq!(runtime_error.code, 4, "{runtime_error:?}");
    assert_eq!(
        runtime_error.errors().len(),
        1,
        "reported once: {runtime_error:?}"
    );
    assert!(
        runtime_error.errors()[0].starts_with(&format!("error: cannot listen on {address}")),
        "{runtime_error:?}"
    );
}

#[test]
fn a_fatal_error_is_one_event_in_the_log_format_chosen() {
    let dir = kafka::scratch_dir();
    // A TOML error spans lines: it shows the line it is about.
    let config = write(
        dir.path(),
        "runnel.toml",
        "[pipelines.p]\ninputs = [\"in\"\nplugin = \"p.wasm\"\n",
    );
    let json = runnel(
        &["run", "--config", text(&config)],
        &[("RUNNEL_LOG_FORMAT", "json")],
    );
    assert_eq!(json.code, 3, "{json:?}");
    let lines: Vec<&str> = json.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object: {json:?}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(event["level"], "ERROR");
    let message = event["fields"]["message"].as_str().expect("a message");
    assert!(
        message.starts_with(&format!("config file {} is not valid", config.display())),
        "{message}"
    );
    assert!(message.contains('\n'), "the TOML error whole: {message}");

    let plain = runnel(&["run", "--config", text(&config)], &[]);
    assert_eq!(plain.code, 3, "{plain:?}");
    assert!(plain.stderr.starts_with("error: config file"), "{plain:?}");
    assert_eq!(
        plain.stderr.matches("is not valid").count(),
        1,
        "once: {plain:?}"
    );
}

/// Runs `runnel check` on a configuration that loads a plugin (which logs
/// a line) with stderr on a terminal, as `script` gives it one.
fn check_on_a_terminal(config: &Path, env: &[(&str, &str)]) -> String {
    let command = format!(
        "{} check --config {}",
        env!("CARGO_BIN_EXE_runnel"),
        config.display()
    );
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("running script (util-linux)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn text_logs_are_coloured_on_a_terminal_only_and_never_with_no_color() {
    let dir = kafka::scratch_dir();
    let config = HostConfig::new(&kafka::brokers())
        .pipeline(
            "upper",
            Pipeline::reading("in").plugin(plugin_path("uppercase")),
        )
        .write_in(dir.path());
    let piped = runnel(&["check", "--config", text(&config)], &[]);
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(piped.stderr.contains("plugin loaded"), "{piped:?}");
    assert!(!piped.stderr.contains('\x1b'), "{piped:?}");

    let terminal = check_on_a_terminal(&config, &[]);
    assert!(terminal.contains("plugin loaded"), "{terminal}");
    assert!(terminal.contains("\x1b["), "coloured: {terminal}");
    let terminal = check_on_a_terminal(&config, &[("NO_COLOR", "1")]);
    assert!(terminal.contains("plugin loaded"), "{terminal}");
    assert!(!terminal.contains('\x1b'), "NO_COLOR: {terminal}");
}

#[test]
fn check_passes_what_would_start_and_says_what_is_ready() {
    let dir = kafka::scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    copy_plugin("misbehave", &plugins, "echo.wasm");
    let own = Pipeline::reading("echo-in");
    write(
        &plugins,
        "echo.toml",
        plugin_manifest("echo", "1", None, Some(&own)),
    );
    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins)
        .pipeline(
            "upper",
            Pipeline::reading("in").plugin(plugin_path("uppercase")),
        )
        .pipeline("echoed", Pipeline::reading("in").plugin("echo"))
        .settings("[runtime]\ncall_slots = 4\nmax_plugin_memory_mib = 600\n")
        .write_in(dir.path());
    let checked = runnel(&["check", "--config", text(&config)], &[]);
    assert_eq!(checked.code, 0, "{checked:?}");
    assert_eq!(
        checked.stdout,
        "ok: 3 pipelines ready, 1 plugin loaded from the plugin directory; 4 slots for \
         plugin calls, 1 each while all 3 pipelines want them; 600 MiB of plugin memory, \
         200 MiB each\n"
    );
    let args = [
        "check",
        "--config",
        text(&config),
        "--set",
        "pipelines.upper.weight=2",
    ];
    let weighted = runnel(&args, &[]);
    assert_eq!(weighted.code, 0, "{weighted:?}");
    assert!(
        weighted.stdout.ends_with(
            "; 4 slots for plugin calls and 600 MiB of plugin memory, shared by weight while \
             all 3 pipelines want them: echo (weight 1) 1 slot, 150 MiB; echoed (weight 1) 1 \
             slot, 150 MiB; upper (weight 2) 2 slots, 300 MiB\n"
        ),
        "{weighted:?}"
    );
}

#[test]
fn check_reports_every_problem_it_finds() {
    let dir = kafka::scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    copy_plugin("misbehave", &plugins, "echo.wasm");
    let fails = Pipeline::reading("echo-in").settings("[config]\ninit_fail = \"yes\"");
    write(
        &plugins,
        "echo.toml",
        plugin_manifest("echo", "1", None, Some(&fails)),
    );
    let missing = dir.path().join("missing.wasm");
    let router = copy_plugin("json-router", dir.path(), "router.wasm");
    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins)
        .pipeline("absent", Pipeline::reading("in").plugin(&missing))
        .pipeline("routed", Pipeline::reading("in").plugin(&router))
        .pipeline("unknown", Pipeline::reading("in").plugin("nowhere"))
        .producer("compression.type", "zip")
        .write_in(dir.path());
    let checked = runnel(&["check", "--config", text(&config)], &[]);
    assert_eq!(checked.code, 1, "{checked:?}");
    assert_eq!(checked.stdout, "");
    let errors = checked.errors();
    let expected = [
        "compression.type",
        &format!(
            "pipeline absent: cannot read component {}",
            missing.display()
        ),
        "pipeline routed: plugin router refused its configuration: missing required setting \
         `route_field`",
        "pipeline echo: plugin echo refused its configuration: misbehave configured to fail init",
        &format!(
            "pipeline unknown: plugin `nowhere` cannot serve: no nowhere.toml in {}",
            plugins.display()
        ),
    ];
    assert_eq!(errors.len(), expected.len(), "{checked:?}");
    for expected in expected {
        assert!(
            errors.iter().any(|error| error.contains(expected)),
            "{expected} among {errors:#?}"
        );
    }

    let broken = write(dir.path(), "broken.toml", "[kafka\n");
    let checked = runnel(&["check", "--config", text(&broken)], &[]);
    assert_eq!(checked.code, 1, "{checked:?}");
    assert!(
        checked.stderr.starts_with("error: config file"),
        "{checked:?}"
    );
}

#[test]
fn check_connect_finds_the_topics_that_do_not_exist() {
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("check-in");
    let output = kafka::unique_topic("check-out");
    kafka::create_topic(&input, 1);
    let pipeline = Pipeline::reading(&input)
        .output(&output)
        .plugin(plugin_path("uppercase"));
    let config = HostConfig::new(&kafka::brokers())
        .pipeline("upper", pipeline)
        .write_in(dir.path());
    let args = ["check", "--config", text(&config), "--connect"];
    let checked = runnel(&args, &[]);
    assert_eq!(checked.code, 1, "{checked:?}");
    assert_eq!(
        checked.errors(),
        [format!(
            "error: pipeline upper: output topic {output} does not exist on {}",
            kafka::brokers()
        )],
        "{checked:?}"
    );

    kafka::create_topic(&output, 1);
    let checked = runnel(&args, &[]);
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(
        (checked.stdout).starts_with("ok: 1 pipeline ready, brokers reached, 2 topics present; "),
        "{checked:?}"
    );
}

#[test]
fn check_connect_gives_up_on_brokers_that_do_not_answer() {
    let dir = kafka::scratch_dir();
    let config = HostConfig::new("127.0.0.1:1")
        .pipeline(
            "upper",
            Pipeline::reading("in").plugin(plugin_path("uppercase")),
        )
        .write_in(dir.path());
    let started = Instant::now();
    let checked = runnel(
        &[
            "check",
            "--config",
            text(&config),
            "--connect",
            "--connect-timeout",
            "2s",
        ],
        &[],
    );
    assert_eq!(checked.code, 1, "{checked:?}");
    assert_eq!(checked.errors().len(), 1, "{checked:?}");
    assert!(
        checked.errors()[0].starts_with("error: cannot reach the Kafka brokers 127.0.0.1:1"),
        "{checked:?}"
    );
    // Bounded, not timed: a check that hung would be killed by the runner
    // long after this.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn version_says_what_the_host_was_built_with() {
    let ran = runnel(&["version"], &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], format!("runnel {}", env!("CARGO_PKG_VERSION")));
    for fact in [
        "plugin contract: runnel:plugin@",
        "wasmtime ",
        "librdkafka ",
    ] {
        let line = lines
            .iter()
            .find(|line| line.starts_with(fact))
            .unwrap_or_else(|| panic!("{fact} in {lines:?}"));
        let version = &line[fact.len()..];
        assert!(version.starts_with(|c: char| c.is_ascii_digit()), "{line}");
    }
}

#[test]
fn completions_are_written_for_each_shell() {
    let cases = [
        ("bash", "complete -F _runnel"),
        ("zsh", "#compdef runnel"),
        ("fish", "complete -c runnel"),
    ];
    for (shell, expected) in cases {
        let ran = runnel(&["completions", shell], &[]);
        assert_eq!(ran.code, 0, "{ran:?}");
        assert!(ran.stdout.contains(expected), "{shell}: {}", ran.stdout);
        assert!(ran.stdout.contains("check"), "every command: {shell}");
    }
}
