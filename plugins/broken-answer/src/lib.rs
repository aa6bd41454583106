//! Answers every batch with a buffer that breaks `wit/ENCODING.md`, chosen by the
//! `answer` setting: `empty` (no bytes), `wrong-magic`, or `short-count` (a well-formed
//! header claiming no outcomes, whatever the batch holds).

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

    fn handle(_batch: Vec<u8>) -> Vec<u8> {
        ANSWER.with_borrow(|answer| match answer.as_str() {
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

export!(BrokenAnswer);
