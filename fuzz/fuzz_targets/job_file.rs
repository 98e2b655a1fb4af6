//! Arbitrary bytes as a job file of every format (YAML, JSON, TOML, script header,
//! Markdown and notebook runbooks) through
//! parsing and validation, then through what is done with a valid job (its step order and
//! downstream sets); and as a parameters file. None of it may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rota_core::parse::{Format, parse_str, parse_value};

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    for format in [
        Format::Yaml,
        Format::Json,
        Format::Toml,
        Format::ScriptHeader,
        Format::Markdown,
        Format::Notebook,
    ] {
        if let Ok(jobs) = parse_str(&source, "fuzz.yaml", format) {
            for job in &jobs {
                let order = rota_core::dag::topological_order(job);
                assert_eq!(order.len(), job.steps.len(), "a valid job has no cycle");
                if let Some(step) = job.steps.first() {
                    let _ = rota_core::dag::downstream(job, &step.id);
                }
            }
        }
    }
    let _ = parse_value(&source, "params.yaml");
    let _ = rota_core::duration::parse_duration(&source);
});
