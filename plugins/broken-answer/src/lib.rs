//! Answers every batch with a buffer that breaks `wit/ENCODING.md`, chosen by the
//! `answer` setting: `empty` (no bytes), `wrong-magic`, `short-count` (a well-formed
//! header claiming no outcomes, whatever the batch holds), or a well-formed answer with one
//! lie written over it: `lying-count` (one outcome more than the batch has messages),
//! `lying-output-count` (a million outputs more than its table holds) or `outside-buffer`
//! (a value span running past the end of the buffer). `overlapping` is no lie: each
//! message gets two outputs whose value spans share bytes, `abcdef` and `cdef`, which the
//! encoding allows.

use std::cell::RefCell;

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

thread_local! {
    static ANSWER: RefCell<String> = const { RefCell::new(String::new()) };
}

struct BrokenAnswer;

impl exports::runnel::plugin::handler::Guest for BrokenAnswer {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let answer = config
            .into_iter()
            .find(|(name, _)| name == "answer")
            .map(|(_, value)| value)
            .ok_or("set `answer` to empty, wrong-magic or short-count")?;
        ANSWER.with_borrow_mut(|kept| *kept = answer);
        Ok(())
    }

    fn handle(batch: Vec<u8>) -> Vec<u8> {
        ANSWER.with_borrow(|answer| match answer.as_str() {
            "lying-count" | "lying-output-count" | "outside-buffer" | "overlapping" => {
                lie(answer, message_count(&batch))
            }
            "wrong-magic" => {
                let mut bytes = vec![0; 40];
                bytes[..4].copy_from_slice(b"NOPE");
                bytes
            }
            "short-count" => {
                // Every table empty and placed at the end of the header.
                let mut bytes = b"RNO1".to_vec();
                for _ in 0..9 {
                    bytes.extend_from_slice(&40u32.to_le_bytes());
                }
                bytes[4..8].copy_from_slice(&0u32.to_le_bytes());
                bytes[8..20].fill(0);
                bytes
            }
            _ => Vec::new(),
        })
    }
}

/// The batch's `count` field.
fn message_count(batch: &[u8]) -> usize {
    read_u32(batch, 4) as usize
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// A well-formed answer of two outputs per message, then the lie `answer` names written
/// over its header or its first output record.
fn lie(answer: &str, messages: usize) -> Vec<u8> {
    let mut writer = runnel_encoding::OutcomesWriter::with_capacity(messages, 16 * messages);
    for _ in 0..messages {
        writer.send(b"abcdef");
        writer.send(b"cdef");
        writer.finish_message(None);
    }
    let mut bytes = writer.finish();
    const COUNT: usize = 4;
    const OUTPUT_COUNT: usize = 12;
    const OUTPUTS_AT: usize = 28;
    // An output record's value span: offset at 12, length at 16.
    let first_output = read_u32(&bytes, OUTPUTS_AT) as usize;
    let first_value_length = first_output + 16;
    match answer {
        "lying-count" => write_u32(&mut bytes, COUNT, messages as u32 + 1),
        "lying-output-count" => {
            let claimed = read_u32(&bytes, OUTPUT_COUNT) + 1_000_000;
            write_u32(&mut bytes, OUTPUT_COUNT, claimed);
        }
        "outside-buffer" => write_u32(&mut bytes, first_value_length, 0xFFFF_0000),
        _ => {
            // Every second output: the last four bytes of the one before it.
            for output in (0..messages).map(|message| first_output + (2 * message + 1) * 32) {
                let shared = read_u32(&bytes, output - 32 + 12) + 2;
                write_u32(&mut bytes, output + 12, shared);
            }
        }
    }
    bytes
}

export!(BrokenAnswer);
