//! `resources: { cpus, memory, pids }` on process steps, enforced by the kernel: a step over
//! its memory limit is killed and its reason says so, a step over its pids limit cannot
//! fork, the limits are the ones the kernel holds for the step's cgroups, and those cgroups
//! are gone after the run. These tests need a writable cgroup hierarchy with the memory,
//! cpu and pids controllers (v1 as on the machines Rota is tested on, or v2), as
//! docs/security.md says.

use std::path::Path;

use serde_json::Value;

use crate::util::{Rota, assert_code, stdout, step};

/// The newest run, with its steps.
fn latest_run(rota: &Rota) -> Value {
    let runs = rota.runs();
    let id = runs[0]["id"].as_str().expect("a run id").to_owned();
    rota.json_ok(&["runs", "show", &id])
}

/// Allocates and touches 200 MiB, then prints how much it held.
const HOG: &str = "python3 -c \"x = bytearray(200 * 1024 * 1024); print('held', len(x))\"";

#[test]
fn a_step_over_its_memory_limit_is_killed_and_says_so() {
    let rota = Rota::new();
    rota.write(
        "mem.yaml",
        &format!(
            "id: mem\nsteps:\n  - id: limited\n    resources: {{ memory: 16m }}\n    sh: {HOG}\n  \
             - id: free\n    sh: {HOG}\n"
        ),
    );
    let output = rota.run(["run", "mem.yaml"]);
    assert_code(&output, 1);
    let run = latest_run(&rota);
    let limited = step(&run, "limited");
    assert_eq!(limited["status"], "failed", "{limited}");
    let reason = limited["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("out of memory") && reason.contains("16m"),
        "the reason names the memory limit: {reason}"
    );
    // The same allocation without a limit succeeds: the limit is what killed the first.
    let free = step(&run, "free");
    assert_eq!(free["status"], "succeeded", "{free}");
    assert!(stdout(&output).contains("held 209715200"));
}

#[test]
fn a_step_over_its_pids_limit_cannot_fork() {
    let rota = Rota::new();
    rota.write(
        "pids.yaml",
        "id: pids\nsteps:\n  - id: forky\n    resources: { pids: 8 }\n    sh: |\n      \
         for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 30 & done\n      \
         echo all started\n",
    );
    let output = rota.run(["run", "pids.yaml"]);
    assert_code(&output, 1);
    assert!(
        !stdout(&output).contains("forky | all started"),
        "twenty processes started under a limit of eight: {}",
        stdout(&output)
    );
    let run = latest_run(&rota);
    assert_eq!(step(&run, "forky")["status"], "failed");
    rota.assert_no_processes_left();
}

/// The step reads its own cgroups and the limits the kernel holds there, and publishes
/// them; after the run those cgroups are gone.
#[test]
fn the_kernel_holds_the_limits_and_the_cgroups_go_with_the_run() {
    let rota = Rota::new();
    rota.write(
        "show.yaml",
        r#"id: show
steps:
  - id: show
    resources: { cpus: 0.5, memory: 64m, pids: 50 }
    sh: |
      if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
        dir=/sys/fs/cgroup$(sed -n 's/^0::\(.*\)/\1/p' /proc/self/cgroup)
        echo "memory=$(cat $dir/memory.max)" >> "$ROTA_OUTPUT"
        echo "cpu=$(cut -d' ' -f1 $dir/cpu.max)" >> "$ROTA_OUTPUT"
        echo "pids=$(cat $dir/pids.max)" >> "$ROTA_OUTPUT"
        echo "dirs=$dir" >> "$ROTA_OUTPUT"
      else
        of() { echo /sys/fs/cgroup/$1$(sed -n "s/^[0-9]*:$1:\(.*\)/\1/p" /proc/self/cgroup); }
        echo "memory=$(cat $(of memory)/memory.limit_in_bytes)" >> "$ROTA_OUTPUT"
        echo "cpu=$(cat $(of cpu)/cpu.cfs_quota_us)" >> "$ROTA_OUTPUT"
        echo "pids=$(cat $(of pids)/pids.max)" >> "$ROTA_OUTPUT"
        echo "dirs=$(of memory) $(of cpu) $(of pids)" >> "$ROTA_OUTPUT"
      fi
"#,
    );
    assert_code(&rota.run(["run", "show.yaml"]), 0);
    let run = latest_run(&rota);
    let outputs = &step(&run, "show")["outputs"];
    assert_eq!(outputs["memory"], "67108864", "{outputs}");
    assert_eq!(
        outputs["cpu"], "50000",
        "half of a 100 ms period: {outputs}"
    );
    assert_eq!(outputs["pids"], "50", "{outputs}");
    let dirs = outputs["dirs"].as_str().unwrap_or_default();
    assert!(
        dirs.contains("rota-"),
        "the step ran in cgroups of its own: {dirs}"
    );
    for dir in dirs.split(' ') {
        assert!(!Path::new(dir).exists(), "{dir} is left after the run");
    }
}

#[test]
fn limits_are_checked_where_they_are_written() {
    let rota = Rota::new();
    rota.write(
        "bad.yaml",
        "id: bad\nsteps:\n  - id: a\n    resources: { memory: 64x, cpus: 0, pids: 0, disk: 1g }\n    sh: \"true\"\n  \
         - id: b\n    resources: { memory: 64m }\n    http: { url: \"http://127.0.0.1:1/\" }\n",
    );
    let output = rota.run(["validate", "bad.yaml"]);
    assert_code(&output, 2);
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &stdout(&output);
    for expected in [
        "bad.yaml:4:26: `memory` of `resources` of step `a`: invalid size `64x`",
        "bad.yaml:4:37: `cpus` of `resources` of step `a` must be between 0.001 and 4096",
        "bad.yaml:4:46: `pids` of `resources` of step `a` must be an integer of at least 1",
        "bad.yaml:4:49: unknown key `disk` in `resources` of step `a`",
        "bad.yaml:7:5: `resources` in step `b` does not apply to http steps (no process runs)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
