//! Native tests of the SDK's side of the encoding: batches are written with the host's
//! writer, and every answer is read back with the host's checking reader.

use runnel_encoding::{BatchWriter, NewMessage, Outcome, OutcomesView};

use super::*;
use crate::{FailureKind, Init};

/// One input message, as a test writes it.
#[derive(Clone)]
struct Input {
    topic: &'static str,
    key: Option<&'static [u8]>,
    value: &'static [u8],
    headers: Vec<(&'static str, &'static [u8])>,
    timestamp: Option<i64>,
}

fn input(value: &'static str) -> Input {
    Input {
        topic: "in",
        key: None,
        value: value.as_bytes(),
        headers: Vec::new(),
        timestamp: None,
    }
}

/// Encodes `inputs` the way the host does: message `i` is at partition `i`, offset `100 + i`.
fn batch(inputs: &[Input]) -> Vec<u8> {
    let mut writer = BatchWriter::new("orders-consumer");
    for (index, input) in inputs.iter().enumerate() {
        let message = NewMessage {
            topic: input.topic,
            partition: index as i32,
            offset: 100 + index as i64,
            timestamp: input.timestamp,
            key: input.key,
            value: input.value,
        };
        writer.push(&message, input.headers.iter().copied());
    }
    writer.finish().bytes().to_vec()
}

/// One output, as a test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

type Answer = Vec<Result<Vec<Output>, (FailureKind, String)>>;

/// The outcome of each message, after the host's reader has accepted the answer.
fn read_answer(answer: &[u8], count: usize) -> Answer {
    let view = OutcomesView::parse(answer, count).expect("the answer is well-formed");
    (0..count)
        .map(|index| match view.outcome(index) {
            Outcome::Outputs(outputs) => Ok(outputs
                .map(|output| Output {
                    topic: output.topic.map(str::to_owned),
                    key: output.key.map(<[u8]>::to_vec),
                    value: output.value.to_vec(),
                    headers: output
                        .headers
                        .map(|(name, value)| (name.to_owned(), value.to_vec()))
                        .collect(),
                })
                .collect()),
            Outcome::Failed { kind, message } => Err((kind, message.to_owned())),
        })
        .collect()
}

/// The outputs of each message; panics if one failed.
fn outputs_per_message(answer: &[u8], count: usize) -> Vec<Vec<Output>> {
    read_answer(answer, count)
        .into_iter()
        .map(|outcome| outcome.expect("no message failed"))
        .collect()
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

fn run<F>(batch: &[u8], handle: F) -> Vec<u8>
where
    F: FnMut(&Message<'_>, &mut Outputs) -> Result<(), Failure> + 'static,
{
    handle_batch(
        Some(&mut ClosureHandler(handle)),
        batch,
        &mut Outputs::new(),
    )
}

/// Sends the message back unchanged.
fn echo(message: &Message<'_>, out: &mut Outputs) -> Result<(), Failure> {
    out.send(message.value())
        .key(message.key())
        .headers(message.headers());
    Ok(())
}

/// What the handler saw of each message.
fn seen<T: 'static>(batch: &[u8], look: impl Fn(&Message<'_>) -> T + 'static) -> Vec<T> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = seen.clone();
    run(batch, move |message, _| {
        record.borrow_mut().push(look(message));
        Ok(())
    });
    std::rc::Rc::try_unwrap(seen).ok().unwrap().into_inner()
}

#[test]
fn decodes_metadata_of_every_message() {
    let inputs = [
        Input {
            timestamp: Some(1_700_000_000_000),
            ..input("a")
        },
        Input {
            topic: "other",
            ..input("b")
        },
        input("c"),
    ];
    let messages = seen(&batch(&inputs), |message| {
        (
            message.topic().to_owned(),
            message.value().to_vec(),
            message.partition(),
            message.offset(),
            message.timestamp(),
            message.source().to_owned(),
        )
    });

    assert_eq!(messages.len(), 3);
    let topics: Vec<_> = messages.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(topics, ["in", "other", "in"]);
    let values: Vec<_> = messages.iter().map(|m| m.1.as_slice()).collect();
    assert_eq!(values, [b"a", b"b", b"c"]);
    assert_eq!((messages[2].2, messages[2].3), (2, 102));
    assert_eq!(messages[0].4, Some(1_700_000_000_000));
    assert_eq!(messages[1].4, None, "unknown timestamps stay unknown");
    assert_eq!(messages[0].5, "orders-consumer");
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
    let keys = seen(&batch, |message| message.key().map(<[u8]>::to_vec));
    assert_eq!(keys, [None, Some(vec![]), Some(b"k".to_vec()), None]);

    let outputs = outputs_per_message(&run(&batch, echo), 4);
    let output_keys: Vec<_> = outputs
        .iter()
        .map(|outputs| outputs[0].key.clone())
        .collect();
    assert_eq!(output_keys, keys);
}

#[test]
fn headers_belong_to_their_message() {
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
    let looks = seen(&batch, |message| {
        (
            message.headers().len(),
            message.header("kind").map(<[u8]>::to_vec),
            message.header("Kind").is_some(),
            message.header("ünïcode").map(<[u8]>::to_vec),
        )
    });
    assert_eq!(
        looks[0],
        (3, Some(b"b".to_vec()), false, None),
        "last one wins"
    );
    assert_eq!(looks[1], (0, None, false, None));
    assert_eq!(looks[2], (1, None, false, Some(vec![])));

    let outputs = outputs_per_message(&run(&batch, echo), 3);
    let names: Vec<_> = outputs[0][0].headers.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(names, ["trace", "kind", "kind"], "order is kept");
    assert_eq!(outputs[1][0].headers, []);
    assert_eq!(outputs[2][0].headers, [("ünïcode".to_owned(), vec![])]);
}

#[test]
fn each_message_may_send_any_number_of_outputs() {
    let inputs = [input("0"), input("2"), input("0"), input("3"), input("1")];
    let answer = run(&batch(&inputs), |message, out| {
        let copies: usize = std::str::from_utf8(message.value())
            .unwrap()
            .parse()
            .unwrap();
        for copy in 0..copies {
            out.send(copy.to_string());
        }
        Ok(())
    });

    let outputs = outputs_per_message(&answer, inputs.len());
    let counts: Vec<_> = outputs.iter().map(Vec::len).collect();
    assert_eq!(counts, [0, 2, 0, 3, 1]);
    assert_eq!(outputs[3], [output("0"), output("1"), output("2")]);
}

#[test]
fn outputs_go_to_the_default_topic_unless_routed() {
    let inputs = [input("b"), input("a"), input(""), input("b")];
    let answer = run(&batch(&inputs), |message, out| {
        let output = out.send(message.value());
        if !message.value().is_empty() {
            output.topic(std::str::from_utf8(message.value()).unwrap());
        }
        Ok(())
    });

    let topics: Vec<_> = outputs_per_message(&answer, inputs.len())
        .into_iter()
        .map(|outputs| outputs[0].topic.clone())
        .collect();
    assert_eq!(
        topics,
        [Some("b".into()), Some("a".into()), None, Some("b".into())]
    );
}

#[test]
fn builder_rewrites_only_the_last_output() {
    let answer = run(&batch(&[input("x")]), |_, out| {
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

    let outputs = outputs_per_message(&answer, 1);
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
fn edit_value_changes_the_sent_copy_only() {
    let inputs = [
        Input {
            key: Some(b"key"),
            ..input("hello")
        },
        input("world"),
    ];
    let seen_after_edit = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = seen_after_edit.clone();
    let answer = run(&batch(&inputs), move |message, out| {
        out.send(message.value())
            .key(message.key())
            .edit_value(|value| value.make_ascii_uppercase());
        record.borrow_mut().push(message.value().to_vec());
        Ok(())
    });

    let outputs = outputs_per_message(&answer, 2);
    assert_eq!(outputs[0][0].value, b"HELLO");
    assert_eq!(outputs[0][0].key, Some(b"key".to_vec()));
    assert_eq!(outputs[1][0].value, b"WORLD");
    assert_eq!(
        *seen_after_edit.borrow(),
        [b"hello".to_vec(), b"world".to_vec()],
        "the input is untouched"
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
    let answer = run(&batch(&inputs), |message, out| {
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

    let outcomes = read_answer(&answer, 3);
    assert_eq!(outcomes[1], Err((FailureKind::Permanent, "bad".to_owned())));
    let first = outcomes[0].as_ref().unwrap();
    let third = outcomes[2].as_ref().unwrap();
    assert_eq!((first.len(), third.len()), (2, 2));
    assert_eq!(first[0].key, Some(b"k".to_vec()));
    assert_eq!(third[1].headers.len(), 2);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        !text.contains("only-failed"),
        "a topic only failed outputs used is gone"
    );
}

#[test]
fn failures_keep_their_kind_and_position() {
    let inputs = [
        input("ok"),
        input("transient"),
        input("ok"),
        input("permanent"),
        input("transient"),
    ];
    let answer = run(&batch(&inputs), |message, out| {
        out.send(message.value());
        match message.value() {
            b"transient" => Err(Failure::transient("try later")),
            b"permanent" => Err(Failure::permanent("never")),
            _ => Ok(()),
        }
    });

    let kinds: Vec<_> = read_answer(&answer, inputs.len())
        .into_iter()
        .map(|outcome| {
            outcome
                .map(|outputs| outputs.len())
                .map_err(|(kind, _)| kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Ok(1),
            Err(FailureKind::Transient),
            Ok(1),
            Err(FailureKind::Permanent),
            Err(FailureKind::Transient),
        ]
    );
}

#[test]
fn empty_batch_has_an_empty_answer() {
    let answer = run(&batch(&[]), echo);
    assert!(read_answer(&answer, 0).is_empty());
}

#[test]
fn handle_before_init_fails_every_message() {
    let batch = batch(&[input("a"), input("b")]);
    let answer = handle_batch::<ClosureHandler<fn(&Message<'_>, &mut Outputs) -> _>>(
        None,
        &batch,
        &mut Outputs::new(),
    );

    for outcome in read_answer(&answer, 2) {
        let (kind, message) = outcome.unwrap_err();
        assert_eq!(kind, FailureKind::Permanent);
        assert!(message.contains("before init"), "{message}");
    }
}

#[test]
fn malformed_batches_fail_every_message_without_panicking() {
    let good = batch(&[input("one"), input("two"), input("three")]);
    let messages_at = u32::from_le_bytes(good[20..24].try_into().unwrap()) as usize;
    let mut breakages: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut patch = |name, at: usize, value: u32| {
        let mut bytes = good.clone();
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        breakages.push((name, bytes));
    };
    patch("magic", 0, 0);
    patch("topics table past the end", 16, u32::MAX);
    patch("data area past the end", 28, u32::MAX);
    patch("value past the data area", messages_at + 36, 1 << 30);
    patch("unknown topic", messages_at + 20, 5);
    for (breakage, bytes) in breakages {
        let outcomes = read_answer(&run(&bytes, echo), 3);
        for outcome in outcomes {
            let (kind, message) = outcome.expect_err(breakage);
            assert_eq!(kind, FailureKind::Permanent);
            assert!(message.contains("malformed batch"), "{breakage}: {message}");
        }
    }
}

#[test]
fn an_unreadable_batch_gets_an_empty_answer() {
    let answer = run(b"RNB", echo);
    assert!(read_answer(&answer, 0).is_empty());
}
