//! Arbitrary text in every place a job holds a template or an expression (`sh:`, `if:`,
//! `env`, an `http` body without a `url`, a notification), through validation: template
//! syntax and reference analysis must report problems, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rota_core::parse::{Format, parse_str};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let job = json!({
        "id": "fuzz",
        "params": { "x": { "type": "string", "default": "v" } },
        "env": { "JOB": text },
        "steps": [
            { "id": "a", "sh": text, "if": text },
            { "id": "b", "needs": ["a"], "exec": ["echo", text], "env": { "B": text } },
            { "id": "c", "needs": ["b"], "http": { "method": "POST", "body": text } },
            { "id": "d", "needs": ["a"], "http": { "url": text } },
        ],
        "notify": [
            { "on": ["failure"], "webhook": { "url": text, "headers": { "X-Fuzz": text } } },
            { "on": ["success"], "slack": { "webhook": text } },
        ],
    });
    let _ = parse_str(&job.to_string(), "fuzz.json", Format::Json);
});
