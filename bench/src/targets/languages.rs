//! The per-language targets: compiled languages at half Rust's rate or
//! better, interpreted ones at a floor, and every instance started fast.

use super::{TargetRow, Verdict, percent_margin};
use crate::languages::{Language, LanguageRun};
use crate::report::{Results, rate};

const MIN_COMPILED_RATIO_TO_RUST: f64 = 0.5;
const MIN_INTERPRETED_MESSAGES_PER_SEC: f64 = 300e3;
const MAX_INSTANTIATE_MS: f64 = 1.0;
const TARGET_BATCH: usize = 100;

fn runs_of<'a>(results: &'a Results, languages: &[Language]) -> Vec<&'a LanguageRun> {
    results
        .languages
        .iter()
        .filter(|run| languages.contains(&run.language))
        .collect()
}

fn names_and(runs: &[&LanguageRun], show: impl Fn(&LanguageRun) -> String) -> String {
    runs.iter()
        .map(|run| format!("{} {}", run.language.name(), show(run)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn compiled_languages_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!("Go and C uppercase, batch {TARGET_BATCH}, against Rust's, one core"),
        format!("≥ {MIN_COMPILED_RATIO_TO_RUST}×"),
    );
    let Some(rust) = results.rust_language_rate(TARGET_BATCH) else {
        return row;
    };
    let runs = runs_of(results, &[Language::Go, Language::C]);
    let ratio = |run: &LanguageRun| run.messages_per_sec_at(TARGET_BATCH).unwrap_or(0.0) / rust;
    let Some(worst) = runs.iter().map(|run| ratio(run)).reduce(f64::min) else {
        return row;
    };
    row.measured = names_and(&runs, |run| format!("{:.2}×", ratio(run)));
    row.judge_ratio_at_least(worst, MIN_COMPILED_RATIO_TO_RUST);
    row
}

pub(super) fn interpreted_languages_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        format!("JavaScript and Python uppercase, batch {TARGET_BATCH}, one core"),
        format!("≥ {} msg/s", rate(MIN_INTERPRETED_MESSAGES_PER_SEC)),
    );
    let runs = runs_of(results, &[Language::JavaScript, Language::Python]);
    let at_batch = |run: &LanguageRun| run.messages_per_sec_at(TARGET_BATCH).unwrap_or(0.0);
    let Some(worst) = runs.iter().map(|run| at_batch(run)).reduce(f64::min) else {
        return row;
    };
    row.measured = names_and(&runs, |run| rate(at_batch(run)));
    row.result = Verdict::of(worst >= MIN_INTERPRETED_MESSAGES_PER_SEC);
    row.margin = percent_margin(worst, MIN_INTERPRETED_MESSAGES_PER_SEC);
    row
}

pub(super) fn instantiate_target(results: &Results) -> TargetRow {
    let mut row = TargetRow::unmeasured(
        "Start an instance (pooling allocator, `init` run), every language".into(),
        format!("< {MAX_INSTANTIATE_MS} ms"),
    );
    let runs: Vec<&LanguageRun> = results.languages.iter().collect();
    let millis = |run: &LanguageRun| run.instantiate.as_secs_f64() * 1e3;
    let Some(worst) = runs.iter().map(|run| millis(run)).reduce(f64::max) else {
        return row;
    };
    row.measured = names_and(&runs, |run| format!("{:.2} ms", millis(run)));
    row.result = Verdict::of(worst < MAX_INSTANTIATE_MS);
    row.margin = format!("{:+.2} ms at the worst", MAX_INSTANTIATE_MS - worst);
    row
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(language: Language, batch_100: f64, instantiate_ms: f64) -> LanguageRun {
        let instantiate = Duration::from_secs_f64(instantiate_ms / 1e3);
        LanguageRun {
            language,
            component_bytes: 1,
            compile: Duration::ZERO,
            compile_cached: Duration::ZERO,
            instantiate,
            instantiate_range: (instantiate, instantiate),
            messages_per_sec: vec![(1, batch_100 / 10.0), (100, batch_100)],
        }
    }

    #[test]
    fn each_language_target_is_judged_by_its_worst_language() {
        let mut results = Results::empty();
        results.languages = vec![
            run(Language::Rust, 6e6, 0.03),
            run(Language::C, 5e6, 0.04),
            run(Language::Go, 2e6, 1.4),
            run(Language::Python, 400e3, 0.5),
            run(Language::JavaScript, 310e3, 0.9),
        ];
        let compiled = compiled_languages_target(&results);
        assert_eq!(compiled.result, Verdict::Miss, "Go is 0.33× Rust");
        assert_eq!(compiled.measured, "C 0.83×, Go 0.33×");
        assert_eq!(interpreted_languages_target(&results).result, Verdict::Pass);
        assert_eq!(
            instantiate_target(&results).result,
            Verdict::Miss,
            "Go takes 1.4 ms"
        );

        results
            .languages
            .retain(|run| run.language != Language::Rust);
        let unjudged = compiled_languages_target(&results);
        assert_eq!(
            unjudged.result,
            Verdict::NotMeasured,
            "no Rust row to compare with"
        );
    }
}
