//! The admin commands against the real broker: `runnel topics`, `runnel
//! produce` and `runnel consume`, run as the real binary. What `produce`
//! writes is read back with an independent client as well as with
//! `consume`, so that a fault the two commands share cannot hide.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cli::{Ran, runnel, runnel_with_input};
use support::config::HostConfig;
use support::kafka::{self, TopicReader};

/// Runs `runnel ARGS` against the test broker (`RUNNEL_BROKERS`).
fn admin(args: &[&str]) -> Ran {
    runnel(args, &[("RUNNEL_BROKERS", &kafka::brokers())])
}

/// [`admin`] with `input` on stdin.
fn admin_with_input(args: &[&str], input: &str) -> Ran {
    runnel_with_input(
        args,
        &[("RUNNEL_BROKERS", &kafka::brokers())],
        Some(input.as_bytes()),
    )
}

fn succeeded(ran: &Ran) {
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.errors().is_empty(), "{ran:?}");
}

/// The JSON lines a run printed.
fn json_lines(ran: &Ran) -> Vec<Value> {
    succeeded(ran);
    (ran.stdout.lines())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The one error line a failed run printed, after checking its exit code.
fn one_error(ran: &Ran, code: i32) -> String {
    assert_eq!(ran.code, code, "{ran:?}");
    assert_eq!(ran.errors().len(), 1, "one error line: {ran:?}");
    ran.errors()[0].to_owned()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[test]
fn topics_are_created_listed_and_described() {
    let topic = kafka::unique_topic("admin-topics");
    let create = [
        "topics",
        "create",
        &topic,
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--topic-config",
        "retention.ms=3600000",
        "--topic-config",
        "cleanup.policy=compact",
    ];
    let created = admin(&create);
    succeeded(&created);
    assert_eq!(created.stdout, format!("created topic {topic}\n"));
    let again = one_error(&admin(&create), 1);
    assert_eq!(
        again,
        format!(
            "error: topic {topic} already exists on {} (`--if-not-exists` accepts that)",
            kafka::brokers()
        )
    );
    let accepted = admin(&[&create[..], &["--if-not-exists"]].concat());
    succeeded(&accepted);
    assert_eq!(accepted.stdout, format!("topic {topic} exists already\n"));
    // One broker cannot hold three replicas.
    let other = kafka::unique_topic("admin-refused");
    let refused = admin(&["topics", "create", &other, "--replication-factor", "3"]);
    let error = one_error(&refused, 1);
    assert!(
        error.starts_with(&format!(
            "error: the brokers refused to create topic {other}: "
        )),
        "{error}"
    );

    let listed = admin(&["topics", "list", "--json"]);
    let topics = json_lines(&listed).remove(0);
    let entry = (topics.as_array().expect("an array").iter())
        .find(|entry| entry["name"] == topic.as_str())
        .unwrap_or_else(|| panic!("{topic} listed: {topics}"));
    assert_eq!(entry["partitions"], 3);
    assert_eq!(entry["replication_factor"], 1);
    let table = admin(&["topics", "list"]);
    succeeded(&table);
    let row = (table.stdout.lines())
        .find(|line| line.starts_with(&format!("{topic} ")))
        .unwrap_or_else(|| panic!("a row for {topic}: {table:?}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [&topic, "3", "1"]
    );

    let keys = (0..20).map(|i| (format!("key-{i}"), format!("value-{i}")));
    kafka::produce(&topic, keys);
    described_as_created(&topic);
}

/// `topics describe` of the topic the test above created and filled.
fn described_as_created(topic: &str) {
    let described = json_lines(&admin(&["topics", "describe", topic, "--json"])).remove(0);
    assert_eq!(described["name"], topic);
    let partitions = described["partitions"].as_array().expect("partitions");
    let highs = kafka::high_watermarks(topic, 3);
    assert_eq!(partitions.len(), 3, "{described}");
    for (index, partition) in partitions.iter().enumerate() {
        assert_eq!(partition["partition"], index, "{described}");
        let leader = partition["leader"].as_i64().expect("a leader");
        assert_eq!(partition["replicas"], json!([leader]), "{described}");
        assert_eq!(partition["isr"], json!([leader]), "{described}");
        assert_eq!(partition["low"], 0, "{described}");
        assert_eq!(partition["high"], highs[index], "{described}");
    }
    assert_eq!(highs.iter().sum::<i64>(), 20);
    let configs = described["configs"].as_array().expect("configs");
    let set_on_topic: Vec<(&str, &str)> = configs
        .iter()
        .filter(|config| config["source"] == "topic")
        .map(|config| {
            let name = config["name"].as_str().expect("a name");
            (name, config["value"].as_str().expect("a value"))
        })
        .collect();
    assert_eq!(
        set_on_topic,
        [("cleanup.policy", "compact"), ("retention.ms", "3600000")]
    );

    let described = admin(&["topics", "describe", topic]);
    succeeded(&described);
    let lines: Vec<&str> = described.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("topic {topic}: 3 partitions, replication factor 1")
    );
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        ["PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH"]
    );
    let first: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(first[0], "0");
    assert_eq!(first[5], highs[0].to_string());
    assert!(
        lines.contains(&"  retention.ms = 3600000 (topic)"),
        "{described:?}"
    );
}

/// A record as the independent client reads it: key, value (lossily
/// UTF-8), headers.
type Expected = (
    Option<&'static str>,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const FROM_STDIN: &[(&str, &str)] = &[("trace", "t-1"), ("team", "ops")];
const FROM_FILE: &[(&str, &str)] = &[("src", "file")];

/// What the test below produces, in order.
const ROUND_TRIP: [Expected; 6] = [
    (Some("k1"), "v1", FROM_STDIN),
    (Some("k2"), "a:b", FROM_STDIN),
    (Some("k3"), "", FROM_STDIN),
    (
        Some("j1"),
        "{\"n\":1}",
        &[
            ("src", "file"),
            ("kind", "json"),
            ("tag", "a"),
            ("tag", "b"),
        ],
    ),
    (None, "\u{fffd}\0\u{1}\u{2}", FROM_FILE),
    (Some("j3"), "", FROM_FILE),
];

/// Produces [`ROUND_TRIP`] to a topic of one partition: three text lines
/// from stdin, then three JSON lines from a file.
fn produce_from_stdin_and_a_file(topic: &str) {
    let from_stdin = admin_with_input(
        &[
            "produce",
            topic,
            "-K",
            ":",
            "-H",
            "trace=t-1",
            "-H",
            "team=ops",
        ],
        "k1:v1\nk2:a:b\n\nk3:\r\n",
    );
    succeeded(&from_stdin);
    assert_eq!(
        from_stdin.stdout,
        format!("produced 3 records to {topic}\n")
    );

    let dir = kafka::scratch_dir();
    let file = dir.path().join("records.jsonl");
    let lines = [
        r#"{"key":"j1","value":"{\"n\":1}","headers":{"kind":"json","tag":["a","b"]}}"#,
        r#"{"key":null,"value":{"base64":"/wABAg=="},"timestamp":1700000000000}"#,
        r#"{"key":"j3","value":null,"partition":0}"#,
    ];
    std::fs::write(&file, lines.join("\n")).expect("writing the records");
    let from_file = admin(&[
        "produce",
        topic,
        "--format",
        "json",
        "--file",
        text(&file),
        "-H",
        "src=file",
    ]);
    succeeded(&from_file);
    assert_eq!(from_file.stdout, format!("produced 3 records to {topic}\n"));
}

#[test]
fn records_with_keys_and_headers_round_trip_from_stdin_and_from_a_file() {
    let topic = kafka::unique_topic("admin-round-trip");
    kafka::create_topic(&topic, 1);
    produce_from_stdin_and_a_file(&topic);

    let mut reader = TopicReader::new(&topic, 1, "read_committed");
    assert!(reader.read_until(Duration::from_secs(30), |records| records.len() >= 6));
    let read = &reader.records;
    assert_eq!(read.len(), 6, "{read:?}");
    for (record, (key, value, headers)) in read.iter().zip(ROUND_TRIP) {
        assert_eq!(record.key.as_deref(), key, "{record:?}");
        assert_eq!(record.value, value, "{record:?}");
        let read_headers: Vec<(&str, &str)> = (record.headers.iter())
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(read_headers, headers, "{record:?}");
    }
    assert_eq!(read[4].timestamp, Some(1_700_000_000_000));

    let consumed = json_lines(&admin(&["consume", &topic, "--format", "json", "-e"]));
    assert_eq!(consumed.len(), 6, "{consumed:?}");
    for (offset, (line, record)) in consumed.iter().zip(read).enumerate() {
        assert_eq!(line["topic"], topic.as_str());
        assert_eq!(line["partition"], 0);
        assert_eq!(line["offset"], offset);
        assert_eq!(line["timestamp"], json!(record.timestamp), "{line}");
    }
    let fields = |line: &Value| {
        (
            line["key"].clone(),
            line["value"].clone(),
            line["headers"].clone(),
        )
    };
    assert_eq!(
        fields(&consumed[0]),
        (
            json!("k1"),
            json!("v1"),
            json!({"trace": "t-1", "team": "ops"})
        )
    );
    assert_eq!(fields(&consumed[2]).1, json!(""));
    assert_eq!(
        fields(&consumed[3]),
        (
            json!("j1"),
            json!("{\"n\":1}"),
            json!({"src": "file", "kind": "json", "tag": ["a", "b"]})
        )
    );
    assert_eq!(
        fields(&consumed[4]),
        (
            Value::Null,
            json!({"base64": "/wABAg=="}),
            json!({"src": "file"})
        )
    );
    assert_eq!(
        fields(&consumed[5]).1,
        Value::Null,
        "a record without a value"
    );

    let as_text = admin(&["consume", &topic, "-K", "=", "-e", "--limit", "3"]);
    succeeded(&as_text);
    assert_eq!(as_text.stdout, "k1=v1\nk2=a:b\nk3=\n");
}

#[test]
fn what_consume_writes_produce_reads_back_into_another_topic() {
    let source = kafka::unique_topic("admin-copy-from");
    let copy = kafka::unique_topic("admin-copy-to");
    kafka::create_topic(&source, 2);
    kafka::create_topic(&copy, 2);
    let records = r#"{"key":"a","value":{"base64":"gIE="},"headers":{"h":["1",null]},"partition":1}
{"key":"b","value":"plain","partition":0,"timestamp":1600000000000}
"#;
    succeeded(&admin_with_input(
        &["produce", &source, "--format", "json"],
        records,
    ));
    let exported = admin(&["consume", &source, "--format", "json", "-e"]);
    succeeded(&exported);
    succeeded(&admin_with_input(
        &["produce", &copy, "--format", "json"],
        &exported.stdout,
    ));
    let copied = admin(&["consume", &copy, "--format", "json", "-e"]);
    let strip_topic = |ran: &Ran| {
        let mut lines: Vec<Value> = json_lines(ran)
            .into_iter()
            .map(|mut line| {
                line["topic"] = Value::Null;
                line
            })
            .collect();
        lines.sort_by_key(|line| line["partition"].as_i64());
        lines
    };
    assert_eq!(strip_topic(&copied), strip_topic(&exported));
    assert_eq!(strip_topic(&copied)[0]["timestamp"], 1_600_000_000_000_i64);
    assert_eq!(
        strip_topic(&copied)[1]["headers"],
        json!({"h": ["1", null]})
    );
}

/// `count` records in each of the topic's two partitions, valued
/// `p{partition}-{index}`.
fn fill_two_partitions(topic: &str, count: usize) {
    let lines: String = (0..count)
        .flat_map(|index| {
            (0..2).map(move |partition| {
                format!("{{\"value\":\"p{partition}-{index}\",\"partition\":{partition}}}\n")
            })
        })
        .collect();
    let produced = admin_with_input(&["produce", topic, "--format", "json"], &lines);
    succeeded(&produced);
    assert_eq!(
        produced.stdout,
        format!("produced {} records to {topic}\n", 2 * count)
    );
}

#[test]
fn consume_starts_where_asked_per_partition_and_stops_when_asked() {
    let topic = kafka::unique_topic("admin-offsets");
    kafka::create_topic(&topic, 2);
    fill_two_partitions(&topic, 10);
    let values = |args: &[&str]| {
        let ran = admin(&[&["consume", &topic], args].concat());
        succeeded(&ran);
        let mut values: Vec<String> = ran.stdout.lines().map(str::to_owned).collect();
        values.sort();
        values
    };
    assert_eq!(
        values(&["-p", "0", "--limit", "4"]),
        ["p0-0", "p0-1", "p0-2", "p0-3"]
    );
    assert_eq!(
        values(&["--offset", "7", "-p", "1", "-e"]),
        ["p1-7", "p1-8", "p1-9"]
    );
    assert_eq!(
        values(&["--offset", "-2", "-e"]),
        ["p0-8", "p0-9", "p1-8", "p1-9"]
    );
    assert_eq!(values(&["--offset=-50", "-p", "1", "-e"]).len(), 10);
    assert_eq!(values(&["--offset", "99", "-e"]), Vec::<String>::new());
    assert_eq!(
        values(&["--offset", "end", "--timeout", "1s"]),
        Vec::<String>::new()
    );
    assert_eq!(values(&["-e"]).len(), 20);

    let offsets = json_lines(&admin(&[
        "consume", &topic, "-p", "1", "-o", "5", "--limit", "2", "--format", "json",
    ]));
    let offsets: Vec<&Value> = offsets.iter().map(|line| &line["offset"]).collect();
    assert_eq!(offsets, [5, 6]);

    // Reading this way commits nothing, under the group librdkafka needs
    // for assigning partitions or any other.
    assert_eq!(
        kafka::committed_offsets("runnel-consume", &topic, 2),
        [-1, -1]
    );
}

#[test]
fn consume_without_an_end_stops_once_nothing_arrives_for_its_timeout() {
    let topic = kafka::unique_topic("admin-idle");
    kafka::create_topic(&topic, 1);
    kafka::produce(&topic, [("k".to_owned(), "only".to_owned())]);
    let started = Instant::now();
    let ran = admin(&["consume", &topic, "--timeout", "2s"]);
    succeeded(&ran);
    assert_eq!(ran.stdout, "only\n");
    // Bounded, not timed: a consume that never stopped would hang the test.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_topic_that_does_not_exist_is_one_clear_error_of_each_command() {
    let missing = kafka::unique_topic("admin-missing");
    let expected = format!(
        "error: topic {missing} does not exist on {}",
        kafka::brokers()
    );
    let described = admin(&["topics", "describe", &missing]);
    assert_eq!(one_error(&described, 1), expected);
    let produced = admin_with_input(&["produce", &missing], "a record\n");
    assert_eq!(one_error(&produced, 1), expected);
    let consumed = admin(&["consume", &missing, "--timeout", "2s"]);
    assert_eq!(one_error(&consumed, 1), expected);
    let listed = admin(&["topics", "list"]);
    assert!(!listed.stdout.contains(&missing), "not created: {listed:?}");

    let topic = kafka::unique_topic("admin-partitions");
    kafka::create_topic(&topic, 2);
    let consumed = admin(&["consume", &topic, "-p", "2", "--timeout", "2s"]);
    assert_eq!(
        one_error(&consumed, 1),
        format!("error: topic {topic} has no partition 2 (it has 2)")
    );
}

#[test]
fn a_line_that_is_no_record_stops_produce_after_delivering_those_before_it() {
    let topic = kafka::unique_topic("admin-bad-line");
    kafka::create_topic(&topic, 1);
    let ran = admin_with_input(
        &["produce", &topic, "-K", ":"],
        "a:1\nb:2\nno separator\nc:3\n",
    );
    assert_eq!(
        one_error(&ran, 1),
        "error: stdin, line 3: no key separator `:` in the line; the 2 records before it were \
         produced"
    );
    assert_eq!(kafka::high_watermarks(&topic, 1), [2]);

    let ran = admin_with_input(
        &["produce", &topic, "--format", "json"],
        "{\"vaule\":\"x\"}\n",
    );
    let error = one_error(&ran, 1);
    assert!(
        error.starts_with("error: stdin, line 1: unknown field `vaule`"),
        "{error}"
    );
    assert!(error.ends_with("; nothing was produced"), "{error}");
}

#[test]
fn brokers_that_do_not_answer_are_a_runtime_error_within_the_timeout() {
    let unreachable = [("RUNNEL_BROKERS", "127.0.0.1:1")];
    let started = Instant::now();
    let runs = [
        runnel(&["topics", "list", "--timeout", "2s"], &unreachable),
        runnel(&["topics", "create", "t", "--timeout", "2s"], &unreachable),
        runnel(
            &["topics", "describe", "t", "--timeout", "2s"],
            &unreachable,
        ),
        runnel_with_input(
            &["produce", "t", "--timeout", "2s"],
            &unreachable,
            Some(b"a record\n"),
        ),
        runnel(&["consume", "t", "--timeout", "2s"], &unreachable),
    ];
    for ran in &runs {
        let error = one_error(ran, 4);
        assert!(
            error.starts_with("error: cannot reach the Kafka brokers 127.0.0.1:1 within 2s: "),
            "{error}"
        );
        assert!(error.contains("Connection refused"), "the reason: {error}");
    }
    // Bounded, not timed: a command that hung would hang the test.
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn the_configuration_files_kafka_table_is_what_the_commands_connect_with() {
    let dir = kafka::scratch_dir();
    let topic = kafka::unique_topic("admin-config");
    kafka::create_topic(&topic, 1);
    // From RUNNEL_CONFIG alone; then --brokers over a file naming no broker
    // that answers.
    let config = HostConfig::new(&kafka::brokers()).write_in(dir.path());
    let listed = runnel(&["topics", "list"], &[("RUNNEL_CONFIG", text(&config))]);
    succeeded(&listed);
    assert!(listed.stdout.contains(&topic), "{listed:?}");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let config = HostConfig::new("127.0.0.1:1").write_in(&elsewhere);
    let args = ["topics", "describe", &topic, "--config", text(&config)];
    assert_eq!(runnel(&args, &[]).code, 4);
    succeeded(&runnel(
        &[&args[..], &["--brokers", &kafka::brokers()]].concat(),
        &[],
    ));

    // [kafka.producer] reaches produce: a record over its size limit is
    // refused before it is sent.
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let config = HostConfig::new(&kafka::brokers())
        .producer("message.max.bytes", "1000")
        .write_in(&small);
    let input = format!("short\n{}\n", "x".repeat(2000));
    let ran = runnel_with_input(
        &["produce", &topic, "--config", text(&config)],
        &[],
        Some(input.as_bytes()),
    );
    let error = one_error(&ran, 1);
    assert!(
        error.starts_with("error: stdin, line 2: the record cannot be sent: "),
        "{error}"
    );
    assert!(
        error.ends_with("the record before it was produced"),
        "{error}"
    );

    // [kafka.consumer] reaches consume, [kafka.producer] the topics
    // commands: an option librdkafka does not know is a configuration
    // error.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir(&wrong).unwrap();
    let config = HostConfig::new(&kafka::brokers())
        .settings("[kafka.consumer]\n\"no.such.option\" = \"1\"\n")
        .write_in(&wrong);
    let error = one_error(&admin(&["consume", &topic, "--config", text(&config)]), 3);
    assert!(error.contains("no.such.option"), "{error}");
    let config = HostConfig::new(&kafka::brokers())
        .producer("no.such.option", "1")
        .write_in(&wrong);
    let error = one_error(&admin(&["topics", "list", "--config", text(&config)]), 3);
    assert!(error.contains("no.such.option"), "{error}");

    let missing = dir.path().join("missing.toml");
    assert_eq!(
        admin(&["topics", "list", "--config", text(&missing)]).code,
        3
    );
}
