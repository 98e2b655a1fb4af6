//! What a step cannot do to the server: reach `$ROTA_HOME` (the store, the key, the tokens,
//! other runs' files) by any path, read Rota's own environment, or leave processes behind
//! by leaving its process group; and what Rota writes is private whatever the umask.
//! Real `rota` processes, real kernels: these tests need Landlock and a writable cgroup
//! hierarchy, as the machines Rota is tested on have (see docs/security.md).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use crate::util::{Rota, assert_code, finish, json, read_pid, signal, step, wait_gone, wait_until};

const SECRET_KEY: &str = "c2VjcmV0LWtleS1vZi10aGUtc2VydmVyLTMyYnl0ZXM=";
const API_TOKEN: &str = "rota-token-that-steps-must-not-see";
const PLANTED_ADMIN: &str = "planted-admin-token-value";
const OTHER_RUN: &str = "another-runs-private-file";

/// A [`Rota`] whose `ROTA_HOME` is not inside `/tmp`, so that `/tmp` itself stays fully
/// usable by steps (the directories on the way to `$ROTA_HOME` are not; see docs). The
/// checkout itself may live in `/tmp` (a CI clone), so `/var/tmp` comes first.
fn rota_outside_tmp() -> (Rota, tempfile::TempDir) {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let base = [Path::new("/var/tmp"), target_tmp]
        .into_iter()
        .find(|dir| dir.is_dir() && !dir.starts_with("/tmp"))
        .unwrap_or(target_tmp);
    let parent = tempfile::Builder::new()
        .prefix("rota-sandbox-")
        .tempdir_in(base)
        .expect("temp dir");
    let rota = Rota::new_with_home(parent.path().join("home"));
    (rota, parent)
}

/// A [`Rota`] with credentials in its environment, whose store a first run created and
/// whose data directory holds a planted admin token, as a server's would.
fn rota_with_planted_home() -> (Rota, tempfile::TempDir) {
    let (rota, parent) = rota_outside_tmp();
    let rota = rota
        .env("ROTA_SECRET_KEY", SECRET_KEY)
        .env("ROTA_TOKEN", API_TOKEN);
    rota.write(
        "noop.yaml",
        "id: noop\nsteps:\n  - id: a\n    sh: \"true\"\n",
    );
    assert_code(&rota.run(["run", "noop.yaml"]), 0);
    std::fs::write(rota.home().join("admin.token"), PLANTED_ADMIN).expect("plant token");
    (rota, parent)
}

/// Every probe prints `NAME rc=<exit code>` and the probe's stdout (stderr is dropped: it
/// only names paths).
const PROBES: &str = r#"
      probe() { name=$1; shift; out=$("$@" 2>/dev/null); echo "$name rc=$? $out" | tr '\0' ' '; }
      H="$ROTA_HOME"
      RUN_DIR=$(dirname "$ROTA_OUTPUT")
      probe admin_token cat "$H/admin.token"
      probe store cat "$H/rota.db"
      probe store_wal cat "$H/rota.db-wal"
      probe list_home ls -a "$H"
      probe list_runs ls -a "$H/runs"
      probe other_run cat "$H/runs/other/secret.txt"
      probe up_from_run_dir cat "$RUN_DIR/../../admin.token"
      probe proc_root cat "/proc/self/root$H/admin.token"
      ln -s "$H" home-link 2>/dev/null
      probe symlink cat home-link/admin.token
      probe hardlink ln "$H/admin.token" hard-link
      probe hardlink_read cat hard-link
      probe write_home sh -c "echo x > '$H/planted'"
      probe remove_store rm -f "$H/rota.db"
      probe kill_rota kill -0 "$PPID"
      # Readable or not, no process's /proc environment may hold Rota's credentials.
      probe environs sh -c 'cat /proc/[0-9]*/environ'
      env > step-env.txt
      # What must keep working.
      echo mine > "$RUN_DIR/mine.txt" && echo "own_run_dir=$(cat "$RUN_DIR/mine.txt")"
      echo "result=ok" >> "$ROTA_OUTPUT" && echo "output_file ok"
      T=$(mktemp /tmp/rota-step-XXXXXX) && echo tmp > "$T" && echo "tmp_file=$(cat "$T")" && rm -f "$T"
      echo here > base-dir-file.txt && echo "base_dir=$(cat base-dir-file.txt)"
"#;

#[test]
fn a_step_cannot_reach_the_data_directory_nor_rotas_environment() {
    let (rota, _parent) = rota_with_planted_home();
    let other = rota.home().join("runs/other");
    std::fs::create_dir_all(&other).expect("other run dir");
    std::fs::write(other.join("secret.txt"), OTHER_RUN).expect("plant other run's file");

    rota.write(
        "probe.yaml",
        &format!("id: probe\nsteps:\n  - id: probe\n    sh: |\n{PROBES}"),
    );
    let output = rota.run(["run", "probe.yaml", "--output", "json"]);
    assert_code(&output, 0);
    let run = json(&output);
    let run_id = run["id"].as_str().expect("run id").to_owned();
    assert_eq!(step(&run, "probe")["outputs"]["result"], "ok", "{run:#}");
    let logs = rota.run(["logs", &run_id]);
    let log = String::from_utf8_lossy(&logs.stdout).into_owned();

    let denied = [
        "admin_token",
        "store",
        "store_wal",
        "list_home",
        "list_runs",
        "other_run",
        "up_from_run_dir",
        "proc_root",
        "symlink",
        "hardlink",
        "hardlink_read",
        "write_home",
        "remove_store",
        "kill_rota",
    ];
    for name in denied {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{name} rc=")))
            .unwrap_or_else(|| panic!("no line for probe {name} in:\n{log}"));
        assert!(
            !line.contains(&format!("{name} rc=0")),
            "probe {name} succeeded: {line}\n{log}"
        );
    }
    for secret in [
        PLANTED_ADMIN,
        OTHER_RUN,
        SECRET_KEY,
        API_TOKEN,
        "SQLite format",
    ] {
        assert!(!log.contains(secret), "{secret:?} leaked:\n{log}");
    }
    for kept in [
        "own_run_dir=mine",
        "output_file ok",
        "tmp_file=tmp",
        "base_dir=here",
    ] {
        assert!(
            log.contains(kept),
            "{kept:?} missing: the step lost access:\n{log}"
        );
    }
    let env = std::fs::read_to_string(rota.path("step-env.txt")).expect("step env");
    for name in ["ROTA_SECRET_KEY", "ROTA_TOKEN"] {
        assert!(!env.contains(name), "{name} reached the step:\n{env}");
    }
    assert!(env.contains("ROTA_RUN_ID="), "{env}");
    // The store survived the attempts on it.
    assert!(rota.home().join("rota.db").exists());
    assert!(!rota.home().join("planted").exists());
    assert_eq!(rota.runs().len(), 2);
}

/// Runs `rota ARGS` with `umask` set for it.
fn run_with_umask(rota: &Rota, umask: u32, args: &[&str]) -> std::process::Output {
    let mut command = rota.command(args);
    let mask = nix::sys::stat::Mode::from_bits_truncate(umask);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::sys::stat::umask(mask);
            Ok(())
        });
    }
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rota");
    finish(child, "rota")
}

fn modes_under(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                stack.push(entry.path());
            }
            found.push((entry.path(), mode, meta.is_dir()));
        }
    }
    found
}

#[test]
fn everything_under_the_data_directory_is_private_whatever_the_umask() {
    for umask in [0o022, 0o000] {
        let rota = Rota::new();
        // A data directory left open by an older Rota.
        std::fs::set_permissions(rota.home(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod home");
        rota.write(
            "modes.yaml",
            "id: modes\nsteps:\n  - id: a\n    sh: |\n      echo made > made-by-step.txt\n      echo x=1 >> \"$ROTA_OUTPUT\"\n      mkdir -p made-dir\n",
        );
        let output = run_with_umask(&rota, umask, &["run", "modes.yaml"]);
        assert_code(&output, 0);
        let home_mode = std::fs::metadata(rota.home())
            .expect("home")
            .permissions()
            .mode();
        assert_eq!(home_mode & 0o777, 0o700, "umask {umask:o}: $ROTA_HOME");
        let found = modes_under(rota.home());
        assert!(
            found.iter().any(|(p, _, _)| p.ends_with("rota.db")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|(_, _, dir)| *dir),
            "no run directory: {found:?}"
        );
        for (path, mode, dir) in &found {
            let want = if *dir { 0o700 } else { 0o600 };
            assert_eq!(
                *mode,
                want,
                "umask {umask:o}: {} is {mode:o}",
                path.display()
            );
        }
        // What the step made in its working directory keeps the user's umask.
        let made = std::fs::metadata(rota.path("made-by-step.txt")).expect("step's file");
        assert_eq!(made.permissions().mode() & 0o777, 0o666 & !umask);
        let made = std::fs::metadata(rota.path("made-dir")).expect("step's dir");
        assert_eq!(made.permissions().mode() & 0o777, 0o777 & !umask);
    }
}

/// A step that starts three processes outside its process group — `setsid`, a double fork
/// and `setpgid` — writes their pids to `<name>.pid`, then runs `tail` (its last line).
fn escaping_step(tail: &str) -> String {
    format!(
        r#"id: escape
steps:
  - id: escape
    timeout: 30s
    sh: |
      setsid sleep 1000 > /dev/null 2>&1 &
      echo $! > setsid.pid
      sh -c 'sleep 1000 > /dev/null 2>&1 & echo $! > double.pid' &
      python3 -c 'import os; os.setpgid(0, 0); os.execvp("sleep", ["sleep", "1000"])' > /dev/null 2>&1 &
      echo $! > setpgid.pid
      while [ ! -s double.pid ]; do sleep 0.05; done
      echo started > started
      {tail}
"#
    )
}

fn escaped_pids(rota: &Rota) -> Vec<i32> {
    ["setsid", "double", "setpgid"]
        .iter()
        .map(|name| read_pid(&rota.path(&format!("{name}.pid"))))
        .collect()
}

fn assert_escapees_gone(rota: &Rota) {
    for pid in escaped_pids(rota) {
        wait_gone(pid, "a process that left the step's group");
    }
    rota.assert_no_processes_left();
}

#[test]
fn processes_that_leave_the_group_die_when_the_step_finishes() {
    let rota = Rota::new();
    rota.write("escape.yaml", &escaping_step("exit 0"));
    let output = rota.run(["run", "escape.yaml"]);
    assert_code(&output, 0);
    assert_escapees_gone(&rota);
}

#[test]
fn processes_that_leave_the_group_die_when_the_step_times_out() {
    let rota = Rota::new();
    rota.write(
        "escape.yaml",
        &escaping_step("exec sleep 1000").replace("timeout: 30s", "timeout: 1s"),
    );
    let (run, output) = rota.run_json(&["run", "escape.yaml"]);
    assert_code(&output, 1);
    assert_eq!(step(&run, "escape")["status"], "timed_out", "{run:#}");
    assert_escapees_gone(&rota);
}

#[test]
fn processes_that_leave_the_group_die_when_the_run_is_cancelled() {
    let rota = Rota::new();
    rota.write("escape.yaml", &escaping_step("exec sleep 1000"));
    let child = rota.spawn(["run", "escape.yaml"]);
    wait_until("the step to start its processes", || {
        rota.path("started").exists()
    });
    let run_id = rota.wait_for_running_run();
    assert_code(&rota.run(["cancel", &run_id]), 0);
    let output = finish(child, "rota run");
    let (run, _) = rota.run_json(&["runs", "show", &run_id]);
    assert_eq!(
        run["status"],
        "cancelled",
        "{run:#}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_escapees_gone(&rota);
}

#[test]
fn processes_that_leave_the_group_die_when_rota_is_killed() {
    let rota = Rota::new();
    rota.write("escape.yaml", &escaping_step("exec sleep 1000"));
    let child = rota.spawn(["run", "escape.yaml"]);
    wait_until("the step to start its processes", || {
        rota.path("started").exists()
    });
    signal(child.id(), Signal::SIGKILL);
    let _ = finish(child, "rota run");
    assert_escapees_gone(&rota);
}

#[test]
fn a_step_cannot_leave_its_cgroup() {
    let rota = Rota::new();
    rota.write(
        "leave.yaml",
        "id: leave\nsteps:\n  - id: a\n    sh: |\n      for f in /sys/fs/cgroup/freezer/cgroup.procs /sys/fs/cgroup/cgroup.procs; do\n        if echo $$ > $f 2>/dev/null; then echo \"moved via $f\"; fi\n      done\n      cat /proc/self/cgroup\n",
    );
    let output = rota.run(["run", "leave.yaml"]);
    assert_code(&output, 0);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!out.contains("moved via /"), "{out}");
    assert!(
        out.contains("rota-"),
        "the step is not in a cgroup of its own: {out}"
    );
}

#[test]
fn the_admin_token_file_is_removed_at_the_next_start() {
    let rota = Rota::new();
    std::fs::create_dir_all(rota.path("jobs")).expect("jobs dir");
    let token_file = rota.home().join("admin.token");
    {
        let server = rota.serve(&rota.path("jobs"));
        let mode = std::fs::metadata(&token_file)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!server.admin_token.is_empty());
    }
    let second = rota.spawn(["serve", "--listen", "127.0.0.1:0"]);
    wait_until("the admin token file to be removed", || {
        !token_file.exists()
    });
    signal(second.id(), Signal::SIGTERM);
    let output = finish(second, "rota serve");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("removed"), "{err}");
    // The token itself stays valid: it is still listed, not revoked.
    let tokens = rota.json_ok(&["tokens", "list"]);
    assert!(tokens.to_string().contains("admin"), "{tokens:#}");
}

/// A notebook's kernel is a step process like any other: its code cannot read `$ROTA_HOME`
/// nor find Rota's credentials in its environment or in Rota's `/proc` entry.
#[test]
fn a_notebook_kernel_cannot_reach_the_data_directory_nor_rotas_environment() {
    let (rota, _parent) = rota_with_planted_home();
    let cell = r#"import os
home = os.environ['ROTA_HOME']
def probe(name, path):
    try:
        with open(path, 'rb') as f:
            print(name, 'read', f.read().replace(b'\\0', b' ').decode(errors='replace'))
    except OSError as e:
        print(name, 'denied', e.errno)
probe('admin_token', home + '/admin.token')
probe('store', home + '/rota.db')
probe('parent_environ', '/proc/%d/environ' % os.getppid())
print('env_key', os.environ.get('ROTA_SECRET_KEY'), os.environ.get('ROTA_TOKEN'))
"#;
    let nb = serde_json::json!({
        "cells": [{"cell_type": "code", "execution_count": null, "id": "c0",
                   "metadata": {}, "outputs": [], "source": cell}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    });
    rota.write("probe.ipynb", &nb.to_string());
    rota.write(
        "nb.yaml",
        "id: nb-probe\nsteps:\n  - id: nb\n    notebook: probe.ipynb\n",
    );
    let output = rota.run(["run", "nb.yaml", "--output", "json"]);
    assert_code(&output, 0);
    let run_id = json(&output)["id"].as_str().expect("run id").to_owned();
    let log = String::from_utf8_lossy(&rota.run(["logs", &run_id]).stdout).into_owned();
    assert!(log.contains("admin_token denied"), "{log}");
    assert!(log.contains("store denied"), "{log}");
    assert!(log.contains("env_key None None"), "{log}");
    for secret in [PLANTED_ADMIN, SECRET_KEY, API_TOKEN, "SQLite format"] {
        assert!(!log.contains(secret), "{secret:?} leaked:\n{log}");
    }
}
