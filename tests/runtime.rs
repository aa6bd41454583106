//! The sandboxed runtime against real compiled plugins: batches in, one
//! outcome per message out, and every way a plugin can misbehave contained.

mod support;

use std::time::{Duration, Instant};

use runnel::runtime::{
    CallErrorKind, EncodedBatch, EncodedOutcomes, EngineSettings, FailureKind, LoadError, Outcome,
    Plugin, PluginEngine, PluginLimits,
};
use runnel_encoding::fixture::BatchFixture;
use support::plugin_bytes;

fn engine() -> PluginEngine {
    PluginEngine::new(EngineSettings::default()).expect("engine starts")
}

fn limits(timeout_ms: u64) -> PluginLimits {
    PluginLimits {
        max_memory_bytes: 32 << 20,
        call_timeout: Duration::from_millis(timeout_ms),
        fuel_per_call: None,
    }
}

fn load(engine: &PluginEngine, name: &str, config: &[(&str, &str)]) -> Plugin {
    let config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    engine
        .load(name, &plugin_bytes(name), config, limits(1000))
        .expect("plugin loads")
}

/// A batch of values on topic `in`, partition 0, offsets from 0, keyed
/// `k<i>`, each with one header.
fn batch_of(values: &[&str]) -> EncodedBatch {
    let fixture = BatchFixture {
        source: "test-source",
        topic: "in",
        headers: &[("trace", b"abc")],
    };
    fixture.build(
        values
            .iter()
            .enumerate()
            .map(|(i, value)| (Some(format!("k{i}")), value)),
    )
}

/// The values a message produced, or the failure it reported.
fn outputs_of(
    handled: &EncodedOutcomes,
    message: usize,
) -> Result<Vec<String>, (FailureKind, String)> {
    match handled.outcome(message) {
        Outcome::Outputs(outputs) => Ok(outputs
            .map(|o| String::from_utf8_lossy(o.value).into_owned())
            .collect()),
        Outcome::Failed { kind, message } => Err((kind, message.to_owned())),
    }
}

#[tokio::test]
async fn uppercase_returns_one_outcome_per_message_keeping_key_and_headers() {
    let engine = engine();
    let plugin = load(&engine, "uppercase", &[]);
    let fixture = BatchFixture {
        source: "src",
        topic: "in",
        headers: &[("h1", b"v1"), ("h2", b"")],
    };
    let values = ["hello", "", "MiXeD 123"];
    // The second message has no key at all, which is not an empty key.
    let keys = [Some("key"), None, Some("key")];
    let invocation = plugin
        .handle(&fixture.build(keys.into_iter().zip(values)))
        .await;
    let handled = invocation.result.expect("call succeeds");
    assert_eq!(handled.len(), 3);
    let expected = ["HELLO", "", "MIXED 123"];
    for (i, want) in expected.iter().enumerate() {
        let Outcome::Outputs(outputs) = handled.outcome(i) else {
            panic!("message {i} failed");
        };
        let outputs: Vec<_> = outputs.collect();
        assert_eq!(outputs.len(), 1);
        let output = &outputs[0];
        assert_eq!(output.value, want.as_bytes());
        assert_eq!(output.topic, None, "default topic");
        let expected_key = (i != 1).then_some(b"key".as_slice());
        assert_eq!(output.key, expected_key);
        let headers: Vec<_> = output.headers.clone().collect();
        assert_eq!(
            headers,
            vec![("h1", b"v1".as_slice()), ("h2", b"".as_slice())]
        );
    }
}

#[tokio::test]
async fn a_batch_of_a_thousand_comes_back_whole_and_in_order() {
    let engine = engine();
    let plugin = load(&engine, "uppercase", &[]);
    let values: Vec<String> = (0..1000).map(|i| format!("message-{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let handled = plugin
        .handle(&batch_of(&refs))
        .await
        .result
        .expect("call succeeds");
    assert_eq!(handled.output_count(), 1000);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(outputs_of(&handled, i), Ok(vec![value.to_uppercase()]));
    }
}

#[tokio::test]
async fn json_router_routes_drops_and_rejects_invalid_json_per_message() {
    let engine = engine();
    let plugin = load(
        &engine,
        "json-router",
        &[
            ("route_field", "kind"),
            ("drop_field", "test"),
            ("drop_value", "true"),
        ],
    );
    let batch = batch_of(&[
        r#"{"kind":"orders","id":1}"#,
        r#"{"id":2}"#,
        r#"{"kind":"orders","test":true}"#,
        "not json",
        r#"{"kind":"refunds"}"#,
    ]);
    let handled = plugin.handle(&batch).await.result.expect("call succeeds");
    assert_eq!(handled.len(), 5);
    let topics = |i| match handled.outcome(i) {
        Outcome::Outputs(outputs) => outputs
            .map(|o| o.topic.map(str::to_owned))
            .collect::<Vec<_>>(),
        Outcome::Failed { message, .. } => panic!("message {i} failed: {message}"),
    };
    assert_eq!(topics(0), vec![Some("orders".to_owned())]);
    assert_eq!(topics(1), vec![None], "no route field: the default topic");
    assert_eq!(topics(2), Vec::<Option<String>>::new(), "filtered out");
    match outputs_of(&handled, 3) {
        Err((FailureKind::Permanent, message)) => {
            assert!(message.to_lowercase().contains("json"), "{message}")
        }
        other => panic!("invalid JSON should fail permanently, got {other:?}"),
    }
    assert_eq!(
        topics(4),
        vec![Some("refunds".to_owned())],
        "one bad message does not fail its neighbours"
    );
}

#[tokio::test]
async fn plugin_reported_failures_keep_their_kind() {
    let engine = engine();
    let plugin = load(&engine, "misbehave", &[]);
    let handled = plugin
        .handle(&batch_of(&["transient", "fine", "permanent"]))
        .await
        .result
        .expect("call succeeds");
    assert!(matches!(
        outputs_of(&handled, 0),
        Err((FailureKind::Transient, _))
    ));
    assert_eq!(outputs_of(&handled, 1), Ok(vec!["fine".to_owned()]));
    assert!(matches!(
        outputs_of(&handled, 2),
        Err((FailureKind::Permanent, _))
    ));
}

#[tokio::test]
async fn an_instance_near_its_memory_limit_is_replaced_before_it_runs_out() {
    let engine = engine();
    let plugin = load(&engine, "misbehave", &[]);
    // Each call leaks 8 of the instance's 32 MiB: an instance reused after
    // its third call would run out in its fourth.
    for call in 1..=6 {
        let invocation = plugin.handle(&batch_of(&["leak:8"])).await;
        let handled = invocation
            .result
            .unwrap_or_else(|error| panic!("call {call} failed: {error}"));
        assert_eq!(outputs_of(&handled, 0), Ok(vec!["leaked:8".to_owned()]));
    }
}

/// Runs `command` in a batch and expects the whole call to fail with `kind`
/// within `bound`; then expects the next call to succeed on a fresh instance.
async fn expect_contained(plugin: &Plugin, command: &str, kind: CallErrorKind, bound: Duration) {
    let started = Instant::now();
    let invocation = plugin
        .handle(&batch_of(&["before", command, "after"]))
        .await;
    let elapsed = started.elapsed();
    let error = invocation
        .result
        .expect_err("the call must fail as a whole");
    assert_eq!(error.kind, kind, "{command}: {error}");
    assert!(
        elapsed < bound,
        "{command} took {elapsed:?}, past {bound:?}"
    );
    let next = plugin.handle(&batch_of(&["still alive"])).await;
    let handled = next
        .result
        .expect("the next call succeeds on a fresh instance");
    assert_eq!(outputs_of(&handled, 0), Ok(vec!["still alive".to_owned()]));
}

#[tokio::test]
async fn trap_loop_memory_blowup_and_sleep_are_contained() {
    let engine = engine();
    let plugin = engine
        .load(
            "misbehave",
            &plugin_bytes("misbehave"),
            Vec::new(),
            limits(300),
        )
        .expect("loads");
    // Bounds are generous: they prove the deadline is enforced, not speed.
    let bound = Duration::from_secs(5);
    expect_contained(&plugin, "trap", CallErrorKind::Trap, bound).await;
    expect_contained(&plugin, "loop", CallErrorKind::Timeout, bound).await;
    expect_contained(&plugin, "oom", CallErrorKind::OutOfMemory, bound).await;
    expect_contained(&plugin, "sleep:60000", CallErrorKind::Timeout, bound).await;
}

#[tokio::test]
async fn a_fuel_budget_stops_an_endless_loop() {
    let engine = engine();
    let limits = PluginLimits {
        fuel_per_call: Some(50_000_000),
        call_timeout: Duration::from_secs(60),
        ..limits(0)
    };
    let plugin = engine
        .load("misbehave", &plugin_bytes("misbehave"), Vec::new(), limits)
        .expect("loads");
    expect_contained(
        &plugin,
        "loop",
        CallErrorKind::OutOfFuel,
        Duration::from_secs(30),
    )
    .await;
    let invocation = plugin.handle(&batch_of(&["x"])).await;
    assert!(invocation.fuel_used.is_some_and(|fuel| fuel > 0));
}

/// Fuel is counted where a budget needs it, or everywhere when the host asks:
/// counting it costs a plugin speed.
#[tokio::test]
async fn only_plugins_with_a_fuel_budget_are_metered_unless_the_host_meters_all() {
    let batch = batch_of(&["x"]);
    let budget = PluginLimits {
        fuel_per_call: Some(1_000_000_000),
        ..limits(1000)
    };
    let engine = engine();
    let unbudgeted = load(&engine, "uppercase", &[]);
    let budgeted = engine
        .load("uppercase", &plugin_bytes("uppercase"), Vec::new(), budget)
        .expect("a budgeted plugin loads on a host that does not meter every plugin");
    let unmetered = unbudgeted.handle(&batch).await;
    assert!(unmetered.result.is_ok());
    assert_eq!(unmetered.fuel_used, None);
    let metered = budgeted.handle(&batch).await;
    assert!(metered.result.is_ok());
    assert!(metered.fuel_used.is_some_and(|fuel| fuel > 0));

    let meters_all = PluginEngine::new(EngineSettings {
        fuel_metering: true,
        ..EngineSettings::default()
    })
    .expect("engine starts");
    let invocation = load(&meters_all, "uppercase", &[]).handle(&batch).await;
    assert!(invocation.fuel_used.is_some_and(|fuel| fuel > 0));
}

#[tokio::test]
async fn a_plugin_cannot_read_files_or_the_host_environment() {
    // SAFETY-free: set_var is unsafe in edition 2024, so rely on a variable
    // every test process already has instead.
    assert!(std::env::var("PATH").is_ok());
    let engine = engine();
    let plugin = load(&engine, "misbehave", &[]);
    let handled = plugin
        .handle(&batch_of(&[
            "read-file:/etc/hostname",
            "read-file:Cargo.toml",
            "env",
            "list-dir:/",
            "connect:127.0.0.1:22",
            "resolve:localhost",
        ]))
        .await
        .result
        .expect("call succeeds");
    for i in 0..2 {
        let output = outputs_of(&handled, i).expect("answers")[0].clone();
        assert!(
            output.starts_with("err:"),
            "file read must fail, got {output}"
        );
    }
    let env = outputs_of(&handled, 2).expect("answers")[0].clone();
    assert!(
        env.starts_with("env:0"),
        "no environment expected, got {env}"
    );
    // No directory is preopened, and no socket or name lookup is granted.
    for (i, probe) in [(3, "list-dir"), (4, "connect"), (5, "resolve")] {
        let output = outputs_of(&handled, i).expect("answers")[0].clone();
        assert!(
            output.starts_with("err:"),
            "{probe} must fail, got {output}"
        );
    }
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_naming_the_plugin() {
    let engine = engine();
    let empty = wat::parse_str("(component)").expect("valid text");
    let error = engine
        .load("empty", &empty, Vec::new(), PluginLimits::default())
        .expect_err("an empty component is refused");
    assert!(matches!(error, LoadError::WrongWorld { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("plugin empty") && message.contains("runnel:plugin"),
        "{message}"
    );
}

#[tokio::test]
async fn an_answer_that_breaks_the_encoding_fails_the_call_as_a_contract_violation() {
    let engine = engine();
    let cases = [
        ("empty", "shorter than its 40-byte header"),
        ("wrong-magic", "does not start with"),
        ("short-count", "0 outcomes for a batch of 3"),
        ("lying-count", "4 outcomes for a batch of 3"),
        (
            "lying-output-count",
            "runs past the end of the 310-byte buffer",
        ),
        (
            "outside-buffer",
            "value of output 0 (4294901760 bytes at 0) runs past",
        ),
    ];
    for (answer, reason) in cases {
        let plugin = load(&engine, "broken-answer", &[("answer", answer)]);
        let error = plugin
            .handle(&batch_of(&["a", "b", "c"]))
            .await
            .result
            .expect_err("a broken answer fails the call");
        assert_eq!(error.kind, CallErrorKind::ContractViolation, "{answer}");
        assert!(
            error.message.contains(reason),
            "{answer}: {}",
            error.message
        );
    }
}

#[tokio::test]
async fn outputs_whose_value_spans_overlap_are_each_read_as_named() {
    let engine = engine();
    let plugin = load(&engine, "broken-answer", &[("answer", "overlapping")]);
    let handled = plugin
        .handle(&batch_of(&["a", "b"]))
        .await
        .result
        .expect("overlapping spans are allowed");
    for message in 0..2 {
        assert_eq!(
            outputs_of(&handled, message),
            Ok(vec!["abcdef".into(), "cdef".into()])
        );
    }
}

#[tokio::test]
async fn a_plugin_built_for_another_contract_version_is_told_to_rebuild() {
    let engine = engine();
    // The shape of a plugin built against an older SDK: its handler is
    // exported under another version of the package.
    let old = wat::parse_str(
        r#"(component
            (instance $handler)
            (export "runnel:plugin/handler@0.1.0" (instance $handler)))"#,
    )
    .expect("valid text");
    let error = engine
        .load("old", &old, Vec::new(), PluginLimits::default())
        .expect_err("an old plugin is refused");
    assert!(matches!(error, LoadError::WrongWorld { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("built for runnel:plugin@0.1.0") && message.contains("rebuild"),
        "{message}"
    );
}

#[tokio::test]
async fn a_corrupt_file_is_refused_naming_the_plugin() {
    let engine = engine();
    let mut bytes = plugin_bytes("uppercase");
    bytes.truncate(bytes.len() / 2);
    let error = engine
        .load("half-written", &bytes, Vec::new(), PluginLimits::default())
        .expect_err("a truncated component is refused");
    assert!(matches!(error, LoadError::Compile { .. }), "{error}");
    assert!(error.to_string().contains("plugin half-written"), "{error}");
}

#[tokio::test]
async fn bytes_that_are_not_a_binary_component_are_refused_saying_what_they_are() {
    let engine = engine();
    let core_module = wat::parse_str("(module)").expect("valid text");
    let cases: [(&[u8], &str); 4] = [
        (b"\x89PNG\r\n\x1a\n", "is not a WebAssembly binary"),
        (b"(component)", "holds WebAssembly text"),
        (
            &core_module,
            "is a core WebAssembly module, not a component",
        ),
        (b"", "is empty"),
    ];
    for (bytes, expected) in cases {
        let error = engine
            .load("odd", bytes, Vec::new(), PluginLimits::default())
            .expect_err("not a component");
        assert!(matches!(error, LoadError::NotAComponent { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.starts_with("plugin odd ") && message.contains(expected),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_failing_init_refuses_the_plugin_with_its_message() {
    let engine = engine();
    let plugin = load(&engine, "misbehave", &[("init_fail", "yes")]);
    let error = plugin.validate().await.expect_err("init fails");
    let message = error.to_string();
    assert!(matches!(error, LoadError::InitRefused { .. }), "{message}");
    assert!(
        message.contains("plugin misbehave") && message.contains("configured to fail init"),
        "{message}"
    );

    let router = load(&engine, "json-router", &[]);
    let error = router
        .validate()
        .await
        .expect_err("route_field is required");
    assert!(error.to_string().contains("route_field"), "{error}");
}

/// Files in `dir` and below, with their sizes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if let Ok(metadata) = entry.metadata() {
            files.push((path, metadata.len()));
        }
    }
    files
}

#[tokio::test]
async fn a_compile_cache_keeps_compiled_plugins_for_the_next_engine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("compiled");
    let cached_engine = || {
        PluginEngine::new(EngineSettings {
            compile_cache: Some(cache.clone()),
            ..EngineSettings::default()
        })
        .expect("engine starts")
    };
    // Compiled code, as opposed to the cache's small bookkeeping files.
    let wasm_size = plugin_bytes("uppercase").len() as u64;
    let compiled = || -> Vec<_> {
        let mut files = files_under(&cache);
        files.retain(|(_, size)| *size > wasm_size / 4);
        files.sort();
        files
    };
    let first = load(&cached_engine(), "uppercase", &[]);
    let kept = compiled();
    assert!(
        !kept.is_empty(),
        "no compiled code kept in {}",
        cache.display()
    );
    // A new engine, as a restarted host has, loads it from the cache and
    // it runs as the first did.
    let second = load(&cached_engine(), "uppercase", &[]);
    for plugin in [first, second] {
        let handled = plugin
            .handle(&batch_of(&["abc"]))
            .await
            .result
            .expect("call");
        assert_eq!(outputs_of(&handled, 0), Ok(vec!["ABC".to_owned()]));
    }
    assert_eq!(compiled(), kept, "nothing compiled twice");
}
