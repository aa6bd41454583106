//! Native tests of the columnar encoding: batches are built by hand, and every outcome is
//! checked against all the conventions of `wit/runnel.wit` before its contents are.

use super::message::DecodedBatch;
use super::*;
use crate::Init;
use crate::bindings::{BytesColumn, FailureRecordKind, HeadersColumn};

/// One input message, as a test writes it.
#[derive(Clone)]
struct Input {
    topic: &'static str,
    key: Option<&'static [u8]>,
    value: &'static [u8],
    headers: Vec<(&'static str, &'static [u8])>,
    timestamp: i64,
}

fn input(value: &'static str) -> Input {
    Input {
        topic: "in",
        key: None,
        value: value.as_bytes(),
        headers: Vec::new(),
        timestamp: -1,
    }
}

/// Encodes `inputs` the way the host does: topics deduplicated, offsets `100 + i`.
fn batch(inputs: &[Input]) -> Batch {
    let mut topics: Vec<String> = Vec::new();
    let mut topic_index = Vec::new();
    let mut keys = Vec::new();
    let mut null_keys = Vec::new();
    let mut header_row_ends = Vec::new();
    let mut header_names = Vec::new();
    let mut header_values = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        let topic = match topics.iter().position(|topic| topic == input.topic) {
            Some(position) => position,
            None => {
                topics.push(input.topic.to_owned());
                topics.len() - 1
            }
        };
        topic_index.push(topic as u32);
        keys.push(input.key.unwrap_or_default());
        if input.key.is_none() {
            null_keys.push(index as u32);
        }
        for (name, value) in &input.headers {
            header_names.push(name.as_bytes());
            header_values.push(*value);
        }
        header_row_ends.push(header_names.len() as u32);
    }
    Batch {
        count: inputs.len() as u32,
        source: "orders-consumer".to_owned(),
        topics,
        topic_index,
        partitions: (0..inputs.len() as i32).collect(),
        offsets: (0..inputs.len() as i64).map(|i| 100 + i).collect(),
        timestamps: inputs.iter().map(|input| input.timestamp).collect(),
        keys: column(&keys),
        null_keys,
        values: column(&inputs.iter().map(|input| input.value).collect::<Vec<_>>()),
        headers: HeadersColumn {
            row_ends: header_row_ends,
            names: column(&header_names),
            values: column(&header_values),
        },
    }
}

fn column(entries: &[&[u8]]) -> BytesColumn {
    let mut data = Vec::new();
    let mut ends = Vec::new();
    for entry in entries {
        data.extend_from_slice(entry);
        ends.push(data.len() as u32);
    }
    BytesColumn { data, ends }
}

fn entry(column: &BytesColumn, row: usize) -> &[u8] {
    let start = if row == 0 { 0 } else { column.ends[row - 1] } as usize;
    &column.data[start..column.ends[row] as usize]
}

fn check_column(name: &str, column: &BytesColumn, rows: usize) {
    assert_eq!(column.ends.len(), rows, "{name}: one end per row");
    assert!(column.ends.is_sorted(), "{name}: ends non-decreasing");
    assert_eq!(
        column.ends.last().map_or(0, |&end| end as usize),
        column.data.len(),
        "{name}: last end is the data length"
    );
}

/// Asserts every convention the host relies on for a batch of `count` messages.
fn assert_well_formed(outcomes: &Outcomes, count: usize) {
    assert_eq!(
        outcomes.output_ends.len(),
        count,
        "one output-ends entry per message"
    );
    assert!(
        outcomes.output_ends.is_sorted(),
        "output-ends non-decreasing"
    );
    let outputs = outcomes.output_ends.last().map_or(0, |&end| end as usize);
    assert_eq!(outcomes.topic_index.len(), outputs);
    for &topic in &outcomes.topic_index {
        assert!(
            topic as usize <= outcomes.topics.len(),
            "topic-index in range"
        );
    }
    for (position, topic) in outcomes.topics.iter().enumerate() {
        assert!(
            !outcomes.topics[..position].contains(topic),
            "topics distinct"
        );
    }
    check_column("keys", &outcomes.keys, outputs);
    check_column("values", &outcomes.values, outputs);
    assert!(
        outcomes.null_keys.windows(2).all(|pair| pair[0] < pair[1]),
        "null-keys ascending"
    );
    for &output in &outcomes.null_keys {
        assert!((output as usize) < outputs);
        assert!(entry(&outcomes.keys, output as usize).is_empty());
    }
    let headers = &outcomes.headers;
    assert_eq!(headers.row_ends.len(), outputs);
    assert!(headers.row_ends.is_sorted());
    let header_count = headers.row_ends.last().map_or(0, |&end| end as usize);
    check_column("header names", &headers.names, header_count);
    check_column("header values", &headers.values, header_count);
    assert!(std::str::from_utf8(&headers.names.data).is_ok());
    assert!(
        outcomes
            .failures
            .windows(2)
            .all(|pair| pair[0].index < pair[1].index),
        "failures ascending, at most one per message"
    );
    for failure in &outcomes.failures {
        let message = failure.index as usize;
        assert!(message < count);
        let start = if message == 0 {
            0
        } else {
            outcomes.output_ends[message - 1]
        };
        assert_eq!(
            start, outcomes.output_ends[message],
            "failed message {message} produced no outputs"
        );
    }
}

/// One output decoded back from the columns, for readable assertions.
#[derive(Debug, PartialEq, Eq)]
struct Output {
    topic: Option<String>,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

fn output(value: &str) -> Output {
    Output {
        topic: None,
        key: None,
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

/// The outputs of each message, after checking the outcomes are well-formed.
fn outputs_per_message(outcomes: &Outcomes, count: usize) -> Vec<Vec<Output>> {
    assert_well_formed(outcomes, count);
    let mut start = 0;
    let mut header_start = 0;
    let mut per_message = Vec::new();
    for &end in &outcomes.output_ends {
        let mut outputs = Vec::new();
        for index in start..end as usize {
            let header_end = outcomes.headers.row_ends[index] as usize;
            outputs.push(Output {
                topic: match outcomes.topic_index[index] {
                    0 => None,
                    topic => Some(outcomes.topics[topic as usize - 1].clone()),
                },
                key: (!outcomes.null_keys.contains(&(index as u32)))
                    .then(|| entry(&outcomes.keys, index).to_vec()),
                value: entry(&outcomes.values, index).to_vec(),
                headers: (header_start..header_end)
                    .map(|header| {
                        let name = entry(&outcomes.headers.names, header);
                        let value = entry(&outcomes.headers.values, header);
                        (String::from_utf8(name.to_vec()).unwrap(), value.to_vec())
                    })
                    .collect(),
            });
            header_start = header_end;
        }
        per_message.push(outputs);
        start = end as usize;
    }
    per_message
}

/// A handler written inline as a closure.
struct ClosureHandler<F>(F);

impl<F> Init for ClosureHandler<F> {
    fn init(_config: &crate::Config) -> Result<Self, String> {
        Err("tests build ClosureHandler directly".into())
    }
}

impl<F> Handler for ClosureHandler<F>
where
    F: FnMut(&Message<'_>, &mut Outputs) -> Result<(), Failure> + 'static,
{
    fn handle(&mut self, message: &Message<'_>, out: &mut Outputs) -> Result<(), Failure> {
        (self.0)(message, out)
    }
}

fn run<F>(batch: &Batch, handle: F) -> Outcomes
where
    F: FnMut(&Message<'_>, &mut Outputs) -> Result<(), Failure> + 'static,
{
    handle_batch(Some(&mut ClosureHandler(handle)), batch)
}

/// Sends the message back unchanged.
fn echo(message: &Message<'_>, out: &mut Outputs) -> Result<(), Failure> {
    out.send(message.value())
        .key(message.key())
        .headers(message.headers());
    Ok(())
}

#[test]
fn decodes_metadata_of_every_message() {
    let inputs = [
        Input {
            timestamp: 1_700_000_000_000,
            ..input("a")
        },
        Input {
            topic: "other",
            ..input("b")
        },
        input("c"),
    ];
    let batch = batch(&inputs);
    let decoded = DecodedBatch::decode(&batch).unwrap();
    let messages: Vec<_> = decoded.messages().collect();

    assert_eq!(messages.len(), 3);
    let topics: Vec<_> = messages.iter().map(Message::topic).collect();
    assert_eq!(topics, ["in", "other", "in"]);
    let values: Vec<_> = messages.iter().map(Message::value).collect();
    assert_eq!(values, [b"a", b"b", b"c"]);
    assert_eq!(messages[2].partition(), 2);
    assert_eq!(messages[2].offset(), 102);
    assert_eq!(messages[0].timestamp(), Some(1_700_000_000_000));
    assert_eq!(messages[1].timestamp(), None, "-1 means unknown");
    assert_eq!(messages[0].source(), "orders-consumer");
}

#[test]
fn null_key_differs_from_empty_key() {
    let inputs = [
        input("no key"),
        Input {
            key: Some(b""),
            ..input("empty key")
        },
        Input {
            key: Some(b"k"),
            ..input("key")
        },
        input("no key again"),
    ];
    let batch = batch(&inputs);
    assert_eq!(batch.null_keys, [0, 3]);
    let decoded = DecodedBatch::decode(&batch).unwrap();
    let keys: Vec<_> = decoded.messages().map(|message| message.key()).collect();
    assert_eq!(keys, [None, Some(&b""[..]), Some(&b"k"[..]), None]);

    let outcomes = run(&batch, echo);
    assert_eq!(outcomes.null_keys, [0, 3]);
    let outputs = outputs_per_message(&outcomes, 4);
    let output_keys: Vec<_> = outputs
        .iter()
        .map(|outputs| outputs[0].key.clone())
        .collect();
    assert_eq!(output_keys, [None, Some(vec![]), Some(b"k".to_vec()), None]);
}

#[test]
fn headers_belong_to_their_row() {
    let inputs = [
        Input {
            headers: vec![("trace", b"1"), ("kind", b"a"), ("kind", b"b")],
            ..input("three headers")
        },
        input("no headers"),
        Input {
            headers: vec![("ünïcode", b"")],
            ..input("one header")
        },
    ];
    let batch = batch(&inputs);
    let decoded = DecodedBatch::decode(&batch).unwrap();
    let messages: Vec<_> = decoded.messages().collect();

    let first: Vec<_> = messages[0].headers().collect();
    assert_eq!(
        first,
        [("trace", &b"1"[..]), ("kind", b"a"), ("kind", b"b")]
    );
    assert_eq!(messages[0].headers().len(), 3);
    assert_eq!(messages[0].header("kind"), Some(&b"b"[..]), "last one wins");
    assert_eq!(messages[0].header("Kind"), None, "names are case-sensitive");
    assert_eq!(messages[1].headers().count(), 0);
    assert_eq!(messages[2].header("ünïcode"), Some(&b""[..]));

    let outputs = outputs_per_message(&run(&batch, echo), 3);
    assert_eq!(outputs[0][0].headers.len(), 3);
    assert_eq!(outputs[1][0].headers, []);
    assert_eq!(outputs[2][0].headers, [("ünïcode".to_owned(), vec![])]);
}

#[test]
fn output_ends_has_one_entry_per_message_however_many_outputs() {
    let inputs = [input("0"), input("2"), input("0"), input("3"), input("1")];
    let outcomes = run(&batch(&inputs), |message, out| {
        let copies: usize = std::str::from_utf8(message.value())
            .unwrap()
            .parse()
            .unwrap();
        for copy in 0..copies {
            out.send(copy.to_string());
        }
        Ok(())
    });

    assert_eq!(outcomes.output_ends, [0, 2, 2, 5, 6]);
    let outputs = outputs_per_message(&outcomes, inputs.len());
    assert_eq!(outputs[3], [output("0"), output("1"), output("2")]);
}

#[test]
fn topics_are_deduplicated_and_numbered_from_one() {
    let inputs = [input("b"), input("a"), input(""), input("b")];
    let outcomes = run(&batch(&inputs), |message, out| {
        let output = out.send(message.value());
        if !message.value().is_empty() {
            output.topic(std::str::from_utf8(message.value()).unwrap());
        }
        Ok(())
    });

    assert_eq!(outcomes.topics, ["b", "a"]);
    assert_eq!(outcomes.topic_index, [1, 2, 0, 1], "0 is the default topic");
    assert_well_formed(&outcomes, inputs.len());
}

#[test]
fn builder_rewrites_only_the_last_output() {
    let outcomes = run(&batch(&[input("x")]), |_, out| {
        out.send("first").key(Some(b"k1")).header("h", "1");
        out.send("second")
            .key(Some(b"long key"))
            .key(None)
            .key(Some(b""))
            .topic("t1")
            .topic("t2")
            .header("a", "1")
            .headers([("b", "2"), ("c", "3")]);
        out.send("third").key(Some(b"k3")).key(None);
        Ok(())
    });

    let outputs = outputs_per_message(&outcomes, 1);
    let header = |name: &str, value: &str| (name.to_owned(), value.as_bytes().to_vec());
    assert_eq!(
        outputs[0],
        [
            Output {
                key: Some(b"k1".to_vec()),
                headers: vec![header("h", "1")],
                ..output("first")
            },
            Output {
                topic: Some("t2".to_owned()),
                key: Some(vec![]),
                headers: vec![header("a", "1"), header("b", "2"), header("c", "3")],
                ..output("second")
            },
            output("third"),
        ]
    );
}

#[test]
fn failed_message_outputs_are_rolled_back() {
    let inputs = [
        Input {
            key: Some(b"k"),
            headers: vec![("h", b"v")],
            ..input("ok")
        },
        input("fail"),
        Input {
            headers: vec![("h", b"v")],
            ..input("ok")
        },
    ];
    let outcomes = run(&batch(&inputs), |message, out| {
        let topic = if message.value() == b"fail" {
            "only-failed"
        } else {
            "kept"
        };
        out.send("one")
            .key(message.key())
            .headers(message.headers())
            .topic(topic);
        out.send("two")
            .headers(message.headers())
            .header("extra", "x");
        if message.value() == b"fail" {
            return Err(Failure::permanent("bad"));
        }
        Ok(())
    });

    assert_eq!(outcomes.output_ends, [2, 2, 4]);
    assert_eq!(
        outcomes.topics,
        ["kept"],
        "a topic only failed outputs used is gone"
    );
    assert_eq!(outcomes.null_keys, [1, 2, 3]);
    let outputs = outputs_per_message(&outcomes, 3);
    assert!(outputs[1].is_empty());
    assert_eq!(outputs[0].len(), 2);
    assert_eq!(outputs[2][1].headers.len(), 2);
    assert_eq!(outcomes.failures.len(), 1);
    assert_eq!(outcomes.failures[0].index, 1);
    assert_eq!(outcomes.failures[0].kind, FailureRecordKind::Permanent);
    assert_eq!(outcomes.failures[0].message, "bad");
}

#[test]
fn failures_are_ascending_with_their_kind() {
    let inputs = [
        input("ok"),
        input("transient"),
        input("ok"),
        input("permanent"),
        input("transient"),
    ];
    let outcomes = run(&batch(&inputs), |message, out| {
        out.send(message.value());
        match message.value() {
            b"transient" => Err(Failure::transient("try later")),
            b"permanent" => Err(Failure::permanent("never")),
            _ => Ok(()),
        }
    });

    assert_well_formed(&outcomes, inputs.len());
    let failures: Vec<_> = outcomes
        .failures
        .iter()
        .map(|failure| (failure.index, failure.kind))
        .collect();
    assert_eq!(
        failures,
        [
            (1, FailureRecordKind::Transient),
            (3, FailureRecordKind::Permanent),
            (4, FailureRecordKind::Transient),
        ]
    );
    assert_eq!(outcomes.output_ends, [1, 1, 2, 2, 2]);
}

#[test]
fn empty_batch_has_empty_outcomes() {
    let outcomes = run(&batch(&[]), echo);
    assert_well_formed(&outcomes, 0);
    assert!(outcomes.output_ends.is_empty());
}

#[test]
fn handle_before_init_fails_every_message() {
    let batch = batch(&[input("a"), input("b")]);
    let outcomes =
        handle_batch::<ClosureHandler<fn(&Message<'_>, &mut Outputs) -> _>>(None, &batch);

    assert_well_formed(&outcomes, 2);
    assert_eq!(outcomes.failures.len(), 2);
    for failure in &outcomes.failures {
        assert_eq!(failure.kind, FailureRecordKind::Permanent);
        assert!(
            failure.message.contains("before init"),
            "{}",
            failure.message
        );
    }
}

#[test]
fn malformed_batches_fail_every_message_without_panicking() {
    type Breakage = fn(&mut Batch);
    let breakages: [(&str, Breakage); 12] = [
        ("count", |batch| batch.count += 1),
        ("timestamps", |batch| {
            batch.timestamps.pop();
        }),
        ("values ends past data", |batch| batch.values.ends[2] += 1),
        ("values ends decreasing", |batch| batch.values.ends[1] = 2),
        ("keys data too long", |batch| batch.keys.data.push(b'x')),
        ("topic index", |batch| batch.topic_index[1] = 7),
        ("null keys order", |batch| batch.null_keys = vec![2, 0]),
        ("null key repeated", |batch| batch.null_keys = vec![0, 0]),
        ("null key with a key", |batch| batch.null_keys = vec![1]),
        ("header rows", |batch| {
            batch.headers.row_ends = vec![1, 0, 2]
        }),
        ("header name not utf-8", |batch| {
            batch.headers.names.data[0] = 0xff
        }),
        ("header name splits a char", |batch| {
            batch.headers.names.ends[0] = 1;
        }),
    ];
    for (breakage, break_batch) in breakages {
        let inputs = [
            Input {
                key: Some(b"key"),
                headers: vec![("é", b"1")],
                ..input("one")
            },
            Input {
                key: Some(b"k"),
                ..input("two")
            },
            Input {
                headers: vec![("x", b"2")],
                ..input("three")
            },
        ];
        let mut batch = batch(&inputs);
        break_batch(&mut batch);
        assert!(
            DecodedBatch::decode(&batch).is_err(),
            "{breakage} is detected"
        );

        let outcomes = run(&batch, echo);
        let count = batch.count as usize;
        assert_well_formed(&outcomes, count);
        assert_eq!(outcomes.failures.len(), count, "{breakage}");
        assert!(outcomes.failures[0].message.contains("malformed batch"));
    }
}
