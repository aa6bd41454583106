//! A plugin that misbehaves on command, for the host's reliability tests.
//!
//! Each message's value is a UTF-8 command:
//!
//! | value               | behaviour                                                          |
//! |---------------------|--------------------------------------------------------------------|
//! | `trap`              | panics, which traps the instance                                   |
//! | `loop`              | spins forever                                                      |
//! | `oom`               | allocates and touches 1 MiB chunks until allocation fails (traps)  |
//! | `leak:<mib>`        | allocates, touches and never frees `<mib>` MiB, then outputs `leaked:<mib>` |
//! | `sleep:<ms>`        | sleeps, then outputs `slept:<ms>`                                  |
//! | `transient`         | fails transiently                                                  |
//! | `permanent`         | fails permanently                                                  |
//! | `flaky:<n>:<id>`    | fails transiently the first n-1 times this instance sees `id`, then outputs `ok:<id>:attempt=<k>` |
//! | `read-file:<path>`  | outputs `ok:<content>` or `err:<error>`                            |
//! | `list-dir:<path>`   | outputs `ok:<entries>` or `err:<error>`                            |
//! | `env`               | outputs `env:<count>:<NAME=value,...>` of the environment it sees  |
//! | `connect:<addr>`    | opens a TCP connection; outputs `ok:connected` or `err:<error>`    |
//! | `resolve:<host>`    | looks a name up; outputs `ok:<addresses>` or `err:<error>`         |
//! | `write-to:<topic>`  | outputs the value to `<topic>` instead of the default topic        |
//! | `forge-headers`     | outputs the value with `runnel-*` headers of its own making        |
//! | `fan-out:<n>`       | outputs `<n>` one-byte values                                      |
//! | `log:<text>`        | logs `<text>` at info and echoes the value                         |
//! | `{...}`             | echoes valid JSON; invalid JSON fails permanently                  |
//! | anything else       | echoes the value, so this is also an identity plugin               |
//!
//! Outputs keep the message's key and headers. Setting `init_fail` (to anything) makes `init`
//! fail.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use runnel_plugin_sdk::{Config, Failure, Handler, Init, Message, Outputs, export_handler};

mod hostile;

struct Misbehave {
    /// How many times each `flaky` id has been seen by this instance.
    flaky_attempts: HashMap<String, u32>,
}

impl Init for Misbehave {
    fn init(config: &Config) -> Result<Self, String> {
        if config.get("init_fail").is_some() {
            return Err("misbehave configured to fail init".to_owned());
        }
        Ok(Self {
            flaky_attempts: HashMap::new(),
        })
    }
}

impl Handler for Misbehave {
    fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
        let command = std::str::from_utf8(message.value()).unwrap_or_default();
        if let Some(written) = hostile::write(command, message, out) {
            return written;
        }
        let output = match command {
            "trap" => panic!("misbehave: trap requested"),
            "loop" => spin_forever(),
            "oom" => exhaust_memory(),
            "transient" => {
                return Err(Failure::transient("misbehave: transient failure requested"));
            }
            "permanent" => {
                return Err(Failure::permanent("misbehave: permanent failure requested"));
            }
            // A value that looks like JSON must be JSON, as a JSON handler
            // would insist.
            _ if command.starts_with('{') => {
                if let Err(error) = serde_json::from_str::<serde_json::Value>(command) {
                    return Err(Failure::permanent(format!("invalid JSON: {error}")));
                }
                echo(message, out);
                return Ok(());
            }
            _ if let Some(probed) = hostile::probe(command) => probed,
            _ => match command.split_once(':') {
                Some(("sleep", millis)) => sleep(millis)?,
                Some(("flaky", spec)) => self.flaky(spec)?,
                Some(("leak", mib)) => leak(mib)?,
                Some(("log", text)) => {
                    runnel_plugin_sdk::log::info(text);
                    command.to_owned()
                }
                // Anything else, including a value that is not UTF-8, is echoed unchanged.
                _ => {
                    echo(message, out);
                    return Ok(());
                }
            },
        };
        out.send(output)
            .key(message.key())
            .headers(message.headers());
        Ok(())
    }
}

impl Misbehave {
    /// `<n>:<id>`: fails until the n-th time this instance sees `id`.
    fn flaky(&mut self, spec: &str) -> Result<String, Failure> {
        let (attempts_needed, id) = spec
            .split_once(':')
            .and_then(|(n, id)| Some((n.parse::<u32>().ok()?, id)))
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "misbehave: bad flaky spec `{spec}`, expected flaky:<n>:<id>"
                ))
            })?;
        let attempt = self.flaky_attempts.entry(id.to_owned()).or_default();
        *attempt += 1;
        if *attempt < attempts_needed {
            return Err(Failure::transient(format!(
                "misbehave: flaky {id} failed attempt {attempt} of {attempts_needed}"
            )));
        }
        Ok(format!("ok:{id}:attempt={attempt}"))
    }
}

fn echo(message: &Message, out: &mut Outputs) {
    out.send(message.value())
        .key(message.key())
        .headers(message.headers());
}

fn sleep(millis: &str) -> Result<String, Failure> {
    let duration = millis.parse().map(Duration::from_millis).map_err(|_| {
        Failure::permanent(format!(
            "misbehave: bad sleep duration `{millis}`, expected milliseconds"
        ))
    })?;
    std::thread::sleep(duration);
    Ok(format!("slept:{millis}"))
}

/// Grows the instance's memory for good, as a guest whose runtime never
/// frees what its exports return does.
fn leak(mib: &str) -> Result<String, Failure> {
    let size: usize = mib.parse().map_err(|_| {
        Failure::permanent(format!("misbehave: bad leak size `{mib}`, expected MiB"))
    })?;
    let block = vec![1u8; size << 20];
    std::mem::forget(block);
    Ok(format!("leaked:{mib}"))
}

fn spin_forever() -> ! {
    let mut spins = 0u64;
    loop {
        // black_box keeps the optimizer from proving the loop useless.
        spins = black_box(spins.wrapping_add(1));
    }
}

/// Keeps allocating 1 MiB chunks and writing into every byte (so the pages are really
/// committed) until the host's memory limit refuses to grow memory.
fn exhaust_memory() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(CHUNK).is_err() {
            panic!("misbehave: out of memory after {} MiB", chunks.len());
        }
        chunk.resize(CHUNK, 0xA5);
        chunks.push(black_box(chunk));
    }
}

export_handler!(Misbehave);
