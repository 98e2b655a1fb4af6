//! Policy defaults that depend on each other.

use rota_core::model::ALLOW_DEFAULT_MAX_ACTIVE_RUNS;
use rota_core::parse::{Format, parse_str};

fn max_active_runs(policy: &str) -> u32 {
    let source = format!("id: policy-job\npolicy:\n{policy}\nsteps: [{{ id: s, sh: \"true\" }}]\n");
    match parse_str(&source, "policy.yaml", Format::Yaml) {
        Ok(jobs) => jobs[0].policy.max_active_runs,
        Err(e) => panic!("{policy} does not parse:\n{e}"),
    }
}

#[test]
fn overlap_allow_lifts_the_default_cap_of_one_unless_a_cap_is_given() {
    assert_eq!(max_active_runs("  overlap: skip"), 1);
    assert_eq!(max_active_runs("  overlap: buffer_all"), 1);
    assert_eq!(
        max_active_runs("  overlap: allow"),
        ALLOW_DEFAULT_MAX_ACTIVE_RUNS
    );
    assert_eq!(max_active_runs("  overlap: allow\n  max_active_runs: 3"), 3);
    assert_eq!(max_active_runs("  concurrency: 2\n  overlap: allow"), 2);
}
