//! The per-language table: the `uppercase` handler in every SDK's language,
//! from the same run as the Rust row.

use std::fmt::Write as _;

use super::{Results, rate};
use crate::languages::BATCH_SIZES;
use crate::wasm_stage;

pub(super) fn write_languages(page: &mut String, results: &Results) {
    if results.languages.is_empty() {
        return;
    }
    let _ = writeln!(
        page,
        "## 3b. The uppercase handler in every language, one core\n"
    );
    let _ = writeln!(
        page,
        "Each SDK's `uppercase` example (`sdk/<language>/examples/uppercase`, built by \
         `scripts/sdks.sh`; Rust's is `plugins/uppercase`) timed as the WASM stage above: \
         100-byte values, 16-byte keys, median of {} windows of {:.1} s taken in turn across \
         all rows, messages per second of the measuring thread's own CPU time. Compile is \
         what a host spends turning the component into machine code when it loads it, and \
         cached what it spends loading that machine code from its compile cache \
         (`runtime.compile_cache`) instead, as a restarted host does; \
         start is the median of 11 instances created from the pooling allocator with `init` \
         run (each of a freshly configured plugin, so none is reused), fastest–slowest \
         beside it. A host starts an instance once and reuses it for every later batch, \
         unless a call fails or leaves it short of memory.\n",
        wasm_stage::WINDOWS,
        results.method.wasm_window.as_secs_f64()
    );
    let batches: Vec<String> = BATCH_SIZES
        .iter()
        .map(|size| format!("msg/s per core, batch {size}"))
        .collect();
    let _ = writeln!(
        page,
        "| language | component | compile | compile, cached | start an instance | {} | against Rust, batch 100 |",
        batches.join(" | ")
    );
    let _ = writeln!(
        page,
        "|---|---|---|---|---|{}---|",
        "---|".repeat(BATCH_SIZES.len())
    );
    let rust = results.rust_language_rate(100);
    for run in &results.languages {
        let rates: Vec<String> = BATCH_SIZES
            .iter()
            .map(|&size| run.messages_per_sec_at(size).map_or("–".into(), rate))
            .collect();
        let against = match (run.messages_per_sec_at(100), rust) {
            (Some(own), Some(rust)) => format!("{:.2}×", own / rust),
            _ => "–".into(),
        };
        let _ = writeln!(
            page,
            "| {} | {:.2} MB | {:.2} s | {:.3} s | {:.2} ms ({:.2}–{:.2}) | {} | {against} |",
            run.language.name(),
            run.component_bytes as f64 / 1e6,
            run.compile.as_secs_f64(),
            run.compile_cached.as_secs_f64(),
            run.instantiate.as_secs_f64() * 1e3,
            run.instantiate_range.0.as_secs_f64() * 1e3,
            run.instantiate_range.1.as_secs_f64() * 1e3,
            rates.join(" | ")
        );
    }
    let _ = writeln!(page);
}
