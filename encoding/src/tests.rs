use super::*;

fn message<'a>(topic: &'a str, key: Option<&'a [u8]>, value: &'a [u8]) -> NewMessage<'a> {
    NewMessage {
        topic,
        partition: 3,
        offset: 42,
        timestamp: Some(1_700_000_000_000),
        key,
        value,
    }
}

fn sample_batch() -> EncodedBatch {
    let mut writer = BatchWriter::new("orders-in");
    writer.push(&message("a", Some(b"k1"), b"v1"), [("h", b"1".as_slice())]);
    writer.push(&message("b", None, b""), []);
    writer.push(
        &NewMessage {
            timestamp: None,
            partition: -1,
            offset: -1,
            ..message("a", Some(b""), b"v3")
        },
        [("x", b"".as_slice()), ("x", b"2".as_slice())],
    );
    writer.finish()
}

#[test]
fn a_batch_reads_back_as_written() {
    let batch = sample_batch();
    let view = BatchView::parse(batch.bytes()).unwrap();
    assert_eq!(view.len(), 3);
    assert_eq!(view.source(), "orders-in");

    let first = view.message(0);
    assert_eq!(
        (first.topic(), first.partition(), first.offset()),
        ("a", 3, 42)
    );
    assert_eq!(first.timestamp(), Some(1_700_000_000_000));
    assert_eq!((first.key(), first.value()), (Some(&b"k1"[..]), &b"v1"[..]));
    assert_eq!(first.headers().collect::<Vec<_>>(), [("h", &b"1"[..])]);

    let second = view.message(1);
    assert_eq!(
        (second.topic(), second.key(), second.value()),
        ("b", None, &b""[..])
    );
    assert_eq!(second.headers().count(), 0);

    let third = view.message(2);
    assert_eq!(
        third.key(),
        Some(&b""[..]),
        "an empty key is not a missing key"
    );
    assert_eq!(
        (third.partition(), third.offset(), third.timestamp()),
        (-1, -1, None)
    );
    assert_eq!(
        third.headers().rev().collect::<Vec<_>>(),
        [("x", &b"2"[..]), ("x", &b""[..])]
    );
}

#[test]
fn topics_are_stored_once() {
    let batch = sample_batch();
    let topic_count = u32::from_le_bytes(batch.bytes()[8..12].try_into().unwrap());
    assert_eq!(topic_count, 2);
}

#[test]
fn select_keeps_the_chosen_messages_in_the_given_order() {
    let batch = sample_batch();
    let picked = batch.view().select(&[2, 0]);
    let view = picked.view();
    assert_eq!(view.len(), 2);
    assert_eq!(view.source(), "orders-in");
    assert_eq!(view.message(0).value(), b"v3");
    assert_eq!(view.message(1).value(), b"v1");
    assert_eq!(view.message(1).headers().count(), 1);
    // What the writer laid out is what a parser finds.
    assert!(EncodedBatch::parse(picked.bytes().to_vec()).is_ok());
}

#[test]
fn an_empty_batch_is_valid() {
    let batch = BatchWriter::new("in").finish();
    let view = BatchView::parse(batch.bytes()).unwrap();
    assert!(view.is_empty());
    assert_eq!(view.messages().count(), 0);
}

/// A batch with one byte of one field changed; the field is at `at` of the bytes.
fn corrupt_batch(at: usize, value: u32) -> Vec<u8> {
    let mut bytes = sample_batch().bytes().to_vec();
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    bytes
}

#[test]
fn malformed_batches_are_refused_with_a_reason() {
    let bytes = sample_batch().bytes().to_vec();
    let messages_at = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bytes[..10].to_vec(), "shorter than"),
        (corrupt_batch(0, 0), "RNB1"),
        (corrupt_batch(4, 1_000_000), "messages table"),
        (corrupt_batch(20, u32::MAX), "messages table"),
        (corrupt_batch(28, u32::MAX), "data_at"),
        (corrupt_batch(36, 1 << 20), "the source"),
        // Message 0: topic, value length, header range.
        (corrupt_batch(messages_at + 20, 9), "names topic 9"),
        (
            corrupt_batch(messages_at + 36, 1 << 30),
            "the value of message 0",
        ),
        (corrupt_batch(messages_at + 44, 7), "message 0 has headers"),
        // A "no key" marker with a length.
        (corrupt_batch(messages_at + 48 + 28, 5), "marks no key"),
    ];
    for (bytes, reason) in cases {
        let error = BatchView::parse(&bytes).unwrap_err().to_string();
        assert!(error.contains(reason), "expected {reason:?} in {error:?}");
    }
}

/// `bytes` with the first byte of the only occurrence of `text` made invalid UTF-8.
fn break_utf8(bytes: &[u8], text: &str) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let at = bytes
        .windows(text.len())
        .position(|window| window == text.as_bytes())
        .unwrap();
    bytes[at] = 0xff;
    bytes
}

/// Names are checked once, when a buffer is parsed, and read unchecked afterwards: every kind
/// of name must be refused when it is not UTF-8, and read back whole when it is, ASCII or not.
#[test]
fn names_are_checked_as_utf8_not_only_as_ascii() {
    let mut writer = BatchWriter::new("entrée");
    writer.push(
        &message("tópico", None, b"v"),
        [("名前", b"value".as_slice())],
    );
    let batch = writer.finish();
    let view = BatchView::parse(batch.bytes()).unwrap();
    let message = view.message(0);
    assert_eq!(view.source(), "entrée");
    assert_eq!(message.topic(), "tópico");
    assert_eq!(
        message.headers().collect::<Vec<_>>(),
        [("名前", &b"value"[..])]
    );
    for (name, reason) in [
        ("entrée", "the source"),
        ("tópico", "topic 0"),
        ("名前", "the name of header 0"),
    ] {
        let error = BatchView::parse(&break_utf8(batch.bytes(), name))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(reason) && error.contains("not UTF-8"),
            "{error}"
        );
    }

    let mut writer = OutcomesWriter::with_capacity(2, 0);
    writer.send(b"v");
    writer.set_topic("sortie");
    writer.add_header("clé", b"1");
    writer.finish_message(None);
    writer.finish_message(Some((FailureKind::Permanent, "échec")));
    let answer = writer.finish();
    let view = OutcomesView::parse(&answer, 2).unwrap();
    let Outcome::Outputs(mut outputs) = view.outcome(0) else {
        panic!("message 0 succeeded")
    };
    let output = outputs.next().unwrap();
    assert_eq!(output.topic, Some("sortie"));
    assert_eq!(output.headers.collect::<Vec<_>>(), [("clé", &b"1"[..])]);
    let Outcome::Failed { message, .. } = view.outcome(1) else {
        panic!("message 1 failed")
    };
    assert_eq!(message, "échec");
    for (name, reason) in [
        ("sortie", "output topic 0"),
        ("clé", "the name of header 0"),
        ("échec", "the failure message of message 1"),
    ] {
        let error = OutcomesView::parse(&break_utf8(&answer, name), 2)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(reason) && error.contains("not UTF-8"),
            "{error}"
        );
    }
}

/// Runs the writer as a plugin would over three messages: two outputs with everything set,
/// a failure after an output (rolled back), and a message with no output.
fn sample_answer() -> Vec<u8> {
    let mut writer = OutcomesWriter::with_capacity(3, 64);
    writer.send(b"first");
    writer.set_key(Some(b"k"));
    writer.add_header("h", b"1");
    writer.send(b"second");
    writer.set_topic("elsewhere");
    writer.add_header("a", b"");
    writer.add_header("b", b"2");
    writer.finish_message(None);

    writer.send(b"discarded");
    writer.set_topic("only-for-the-failed-one");
    writer.add_header("gone", b"x");
    writer.finish_message(Some((FailureKind::Transient, "database down")));

    writer.finish_message(None);
    writer.finish()
}

#[test]
fn an_answer_reads_back_as_written() {
    let bytes = sample_answer();
    let view = OutcomesView::parse(&bytes, 3).unwrap();
    assert_eq!((view.len(), view.output_count()), (3, 2));

    let Outcome::Outputs(outputs) = view.outcome(0) else {
        panic!("message 0 succeeded")
    };
    let outputs: Vec<_> = outputs.collect();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0].topic, None);
    assert_eq!(outputs[0].key, Some(&b"k"[..]));
    assert_eq!(outputs[0].value, b"first");
    assert_eq!(
        outputs[0].headers.clone().collect::<Vec<_>>(),
        [("h", &b"1"[..])]
    );
    assert_eq!(outputs[1].topic, Some("elsewhere"));
    assert_eq!(outputs[1].key, None);
    assert_eq!(
        outputs[1].headers.clone().collect::<Vec<_>>(),
        [("a", &b""[..]), ("b", &b"2"[..])]
    );

    let Outcome::Failed { kind, message } = view.outcome(1) else {
        panic!("message 1 failed")
    };
    assert_eq!((kind, message), (FailureKind::Transient, "database down"));

    let Outcome::Outputs(none) = view.outcome(2) else {
        panic!("message 2 succeeded")
    };
    assert_eq!(none.count(), 0);
}

#[test]
fn a_failed_message_leaves_nothing_behind() {
    let bytes = sample_answer();
    let topic_count = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let header_count = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
    assert_eq!(topic_count, 1, "the failed message's topic is gone");
    assert_eq!(header_count, 3, "the failed message's header is gone");
    assert!(!bytes.windows(9).any(|w| w == b"discarded"));
}

#[test]
fn the_key_can_be_set_again() {
    let mut writer = OutcomesWriter::with_capacity(1, 0);
    writer.send(b"v");
    writer.set_key(Some(b"old"));
    writer.set_key(None);
    writer.finish_message(None);
    let bytes = writer.finish();
    let view = OutcomesView::parse(&bytes, 1).unwrap();
    let Outcome::Outputs(mut outputs) = view.outcome(0) else {
        panic!()
    };
    assert_eq!(outputs.next().unwrap().key, None);
}

#[test]
fn an_unfinished_message_is_not_part_of_the_answer() {
    let mut writer = OutcomesWriter::with_capacity(1, 0);
    writer.finish_message(None);
    writer.send(b"half");
    let bytes = writer.finish();
    let view = OutcomesView::parse(&bytes, 1).unwrap();
    assert_eq!(view.output_count(), 0);
}

#[test]
fn an_answer_for_another_batch_size_is_refused() {
    let error = OutcomesView::parse(&sample_answer(), 4)
        .unwrap_err()
        .to_string();
    assert!(error.contains("3 outcomes for a batch of 4"), "{error}");
}

fn corrupt_answer(field_at: impl Fn(&[u8]) -> usize, value: u32) -> Vec<u8> {
    let mut bytes = sample_answer();
    let at = field_at(&bytes);
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    bytes
}

fn table(bytes: &[u8], header_at: usize) -> usize {
    u32::from_le_bytes(bytes[header_at..header_at + 4].try_into().unwrap()) as usize
}

#[test]
fn malformed_answers_are_refused_with_a_reason() {
    let outcomes = |b: &[u8]| table(b, 24);
    let outputs = |b: &[u8]| table(b, 28);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (corrupt_answer(|_| 0, 0), "RNO1"),
        (corrupt_answer(|_| 12, 99), "outputs table"),
        // Outputs end beyond the outputs, or going backwards.
        (corrupt_answer(|b| outcomes(b), 5), "ends its outputs at 5"),
        (
            corrupt_answer(|b| outcomes(b) + 32, 0),
            "ends its outputs at 0, after 2",
        ),
        // The failed message claims an output.
        (
            corrupt_answer(|b| outcomes(b) + 16, 3),
            "ends its outputs at 3",
        ),
        (corrupt_answer(|b| outcomes(b) + 4, 7), "outcome kind 7"),
        (
            corrupt_answer(|b| outcomes(b) + 16 + 12, 1 << 20),
            "failure message",
        ),
        (corrupt_answer(|b| outputs(b), 2), "names topic 2"),
        (
            corrupt_answer(|b| outputs(b) + 16, 1 << 30),
            "the value of output 0",
        ),
        (
            corrupt_answer(|b| outputs(b) + 24, 9),
            "output 0 has headers",
        ),
    ];
    for (bytes, reason) in cases {
        let error = OutcomesView::parse(&bytes, 3).unwrap_err().to_string();
        assert!(error.contains(reason), "expected {reason:?} in {error:?}");
    }
}

#[test]
fn a_failed_message_with_outputs_is_refused() {
    // Message 0 ends its outputs at 2 but is marked as failed.
    let bytes = corrupt_answer(|b| table(b, 24) + 4, 2);
    let error = OutcomesView::parse(&bytes, 3).unwrap_err().to_string();
    assert!(error.contains("failed but also has outputs"), "{error}");
}

#[test]
fn truncated_buffers_never_panic() {
    let batch = sample_batch().bytes().to_vec();
    for len in 0..batch.len() {
        let _ = BatchView::parse(&batch[..len]);
    }
    let answer = sample_answer();
    for len in 0..answer.len() {
        let _ = OutcomesView::parse(&answer[..len], 3);
    }
}

#[test]
fn a_writer_serves_one_answer_after_another() {
    let mut writer = OutcomesWriter::with_capacity(1, 0);
    writer.send(b"first answer");
    writer.set_topic("t");
    writer.finish_message(None);
    let first = writer.finish();

    writer.begin(2, 0);
    writer.send(b"second");
    writer.finish_message(None);
    writer.finish_message(Some((FailureKind::Permanent, "no")));
    let second = writer.finish();

    assert!(OutcomesView::parse(&first, 1).is_ok());
    let view = OutcomesView::parse(&second, 2).unwrap();
    assert_eq!(view.output_count(), 1);
    let Outcome::Outputs(mut outputs) = view.outcome(0) else {
        panic!()
    };
    let output = outputs.next().unwrap();
    assert_eq!((output.topic, output.value), (None, &b"second"[..]));
}

#[test]
fn the_last_value_can_be_edited_in_place() {
    let mut writer = OutcomesWriter::with_capacity(1, 0);
    writer.send(b"abc");
    writer.set_key(Some(b"key"));
    writer.last_value_mut().make_ascii_uppercase();
    writer.finish_message(None);
    let bytes = writer.finish();
    let view = OutcomesView::parse(&bytes, 1).unwrap();
    let Outcome::Outputs(mut outputs) = view.outcome(0) else {
        panic!()
    };
    let output = outputs.next().unwrap();
    assert_eq!((output.key, output.value), (Some(&b"key"[..]), &b"ABC"[..]));
}
