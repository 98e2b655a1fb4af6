//! Property tests: no input, however malformed, makes the parser panic.

use proptest::prelude::*;
use rota_core::parse::{Format, parse_str};

const FORMATS: [Format; 6] = [
    Format::Yaml,
    Format::Json,
    Format::Toml,
    Format::ScriptHeader,
    Format::Markdown,
    Format::Notebook,
];

fn parse_all(source: &str) {
    for format in FORMATS {
        // Either outcome is fine; reaching here without a panic is the property.
        let _ = parse_str(source, "fuzz", format);
    }
}

/// YAML-ish fragments: keys the parser knows, values of every type, odd punctuation.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id: ".to_owned()),
        Just("steps:\n".to_owned()),
        Just("  - id: a\n".to_owned()),
        Just("    sh: echo {{ params.x }}\n".to_owned()),
        Just("    needs: [a, b]\n".to_owned()),
        Just("params:\n  x: { type: int, default: \"q\" }\n".to_owned()),
        Just("triggers:\n  - cron: \"* * *\"\n".to_owned()),
        Just("retry: { attempts: 0 }\n".to_owned()),
        Just("&a [*a]\n".to_owned()),
        Just("# /// rota\n".to_owned()),
        Just("# ///\n".to_owned()),
        Just("{{ }}".to_owned()),
        Just("---\n".to_owned()),
        Just("[[steps]]\n".to_owned()),
        Just("\"".to_owned()),
        Just("\t".to_owned()),
        "[a-z_]{1,8}: [a-z0-9{}\\[\\]\",: ]{0,12}\n",
        "[ -~\n]{0,20}",
    ]
}

proptest! {
    // `ROTA_FUZZ_CASES=20000` runs a longer search locally; CI keeps the default.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("ROTA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_yamlish_documents_never_panic(parts in proptest::collection::vec(fragment(), 0..25)) {
        parse_all(&parts.concat());
    }
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused_not_crashed() {
    let deep = "[".repeat(10_000);
    parse_all(&deep);
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_owned()
        } else {
            format!("l{}", i - 1)
        };
        bomb.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let result = parse_str(&bomb, "bomb.yaml", Format::Yaml);
    let text = result.err().map(|d| d.to_string()).unwrap_or_default();
    assert!(text.contains("document too large"), "{text}");
}
