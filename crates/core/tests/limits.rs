//! What a job file may hold (`rota_core::limits`): each bound is refused with a diagnostic at
//! the offending place, quickly and in memory linear in the file, never by a panic.

use rota_core::limits::{
    MAX_CYCLE_SHOWN, MAX_DEPTH, MAX_DIAGNOSTICS, MAX_FILE_BYTES, MAX_NEEDS, MAX_PARAMS, MAX_STEPS,
    MAX_TEMPLATE_BYTES,
};
use rota_core::parse::{Format, load_file, parse_str};

/// The diagnostics of a document that must not validate, one per line.
fn errors(source: &str, format: Format) -> String {
    match parse_str(source, "f", format) {
        Ok(jobs) => panic!("expected diagnostics, got {} job(s)", jobs.len()),
        Err(d) => d.to_string(),
    }
}

/// A job whose `n` steps form one cycle: s0 needs s1, …, the last needs s0.
fn cycle(n: usize) -> String {
    let mut s = String::from("id: cyc\nsteps:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - {{ id: s{i}, needs: [s{}], sh: 'true' }}\n",
            (i + 1) % n
        ));
    }
    s
}

#[test]
fn a_cycle_through_a_thousand_steps_is_reported_once_and_briefly() {
    let report = errors(&cycle(MAX_STEPS), Format::Yaml);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 1, "{report}");
    // Run order: s0 runs after s999 (s999 needs s0), …; the message names the first steps only.
    assert!(
        lines[0].starts_with("f:3:11: dependency cycle of 1000 steps: s0 -> s999 -> s998 -> "),
        "{report}"
    );
    assert!(lines[0].ends_with(" -> … -> s0"), "{report}");
    assert_eq!(
        lines[0].matches(" -> ").count(),
        MAX_CYCLE_SHOWN + 1,
        "{report}"
    );
}

#[test]
fn ten_thousand_steps_are_refused_before_any_check() {
    let report = errors(&cycle(10_000), Format::Yaml);
    assert_eq!(
        report,
        format!("f:2:1: too many steps: 10000 (a job holds at most {MAX_STEPS})")
    );
}

#[test]
fn a_short_cycle_is_named_whole() {
    let source = "id: cyc\nsteps:\n  - { id: a, needs: [b], sh: 'true' }\n  - { id: b, needs: [a], sh: 'true' }\n  - { id: c, needs: [c], sh: 'true' }\n";
    assert_eq!(
        errors(source, Format::Yaml),
        "f:3:11: dependency cycle: a -> b -> a\nf:5:11: dependency cycle: c -> c"
    );
}

#[test]
fn too_many_needs_are_refused_where_they_are_written() {
    let needs: Vec<String> = (0..=MAX_NEEDS).map(|i| format!("n{i}")).collect();
    let source = format!(
        "id: wide\nsteps:\n  - id: a\n    needs: [{}]\n    sh: 'true'\n",
        needs.join(", ")
    );
    assert_eq!(
        errors(&source, Format::Yaml),
        format!(
            "f:4:5: too many `needs` in step `a`: {} (a step needs at most {MAX_NEEDS})",
            MAX_NEEDS + 1
        )
    );
}

#[test]
fn too_many_params_are_refused() {
    let params: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}: 1")).collect();
    let source = format!(
        "id: many\nparams: {{ {} }}\nsteps:\n  - {{ id: a, sh: 'true' }}\n",
        params.join(", ")
    );
    assert_eq!(
        errors(&source, Format::Yaml),
        format!(
            "f:2:9: too many parameters: {} (a job declares at most {MAX_PARAMS})",
            MAX_PARAMS + 1
        )
    );
}

#[test]
fn an_overlong_command_is_refused() {
    let command = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    let source = format!("id: long\nsteps:\n  - id: a\n    sh: {command}\n");
    assert_eq!(
        errors(&source, Format::Yaml),
        format!(
            "f:4:9: text too long: {} bytes (a template, expression or command holds at most {MAX_TEMPLATE_BYTES})",
            MAX_TEMPLATE_BYTES + 1
        )
    );
    // At the bound it is accepted.
    let command = "x".repeat(MAX_TEMPLATE_BYTES);
    let source = format!("id: long\nsteps:\n  - id: a\n    sh: {command}\n");
    assert!(parse_str(&source, "f", Format::Yaml).is_ok());
}

#[test]
fn nesting_is_bounded_in_every_format() {
    let deep = MAX_DEPTH + 1;
    let message = format!("nesting deeper than {MAX_DEPTH} levels (the limit of a job file)");
    let yaml = format!("id: deep\nx: {}{}\n", "[".repeat(deep), "]".repeat(deep));
    assert!(errors(&yaml, Format::Yaml).contains(&message));
    let json = format!(
        "{{\"id\": \"deep\", \"x\": {}{}}}",
        "[".repeat(deep),
        "]".repeat(deep)
    );
    assert!(errors(&json, Format::Json).contains(&message));
    // TOML: a dotted key adds a level per segment on top of nested arrays.
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let toml = format!(
        "id = \"deep\"\n{} = {}1{}\n",
        keys.join("."),
        "[".repeat(30),
        "]".repeat(30)
    );
    assert!(
        errors(&toml, Format::Toml).contains(&message),
        "{}",
        errors(&toml, Format::Toml)
    );
}

#[test]
fn an_oversized_file_is_refused_whole() {
    let mut source = String::from("id: big\nsteps:\n  - { id: a, sh: 'true' }\n");
    source.push_str(&"#".repeat(MAX_FILE_BYTES));
    let expected = format!(
        "f:1:1: job file too large: more than {MAX_FILE_BYTES} bytes (the limit of a job file)"
    );
    assert_eq!(errors(&source, Format::Yaml), expected);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &source).expect("write");
    let report = load_file(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        report.ends_with("job file too large: more than 1048576 bytes (the limit of a job file)"),
        "{report}"
    );
}

#[test]
fn many_mistakes_make_a_bounded_report() {
    let mut source = String::from("id: noisy\nsteps:\n  - id: a\n    sh: 'true'\n");
    for i in 0..1_000 {
        source.push_str(&format!("    bad{i}: 1\n"));
    }
    let report = errors(&source, Format::Yaml);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), MAX_DIAGNOSTICS + 1);
    assert!(
        lines[MAX_DIAGNOSTICS].ends_with(&format!(
            "… and {} more problems (at most {MAX_DIAGNOSTICS} are reported)",
            1_000 - MAX_DIAGNOSTICS
        )),
        "{}",
        lines[MAX_DIAGNOSTICS]
    );
}

#[test]
fn a_mapping_of_many_keys_is_checked_for_duplicates_in_linear_time() {
    // 50,000 distinct keys and one duplicate: a pairwise check would take over a billion
    // comparisons; the lookup reports the duplicate at once.
    let mut source = String::from("id: keys\nx:\n");
    for i in 0..50_000 {
        source.push_str(&format!("  k{i}: 1\n"));
    }
    source.push_str("  k7: 2\n");
    let report = errors(&source, Format::Yaml);
    assert!(
        report.contains("f:50003:3: duplicate key `k7` (first defined at line 10)"),
        "{report}"
    );
}
