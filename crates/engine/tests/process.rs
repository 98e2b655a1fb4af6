//! The supervisor, the redactor and the guardian against real processes, checked through
//! `/proc`. Waits are polls with generous upper bounds, never timing assertions.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use rota_engine::guardian::Guardian;
use rota_engine::process::{
    Ending, LogLine, ProcessOutcome, ProcessSpec, SpawnError, Stream, adopt_orphans, supervise,
};
use rota_engine::redact::Redactor;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// helpers

/// Makes the test process the reaper of orphaned step processes, as the `rota` binary does:
/// the init process of some machines never reaps, which would leave zombies to trip the
/// `/proc` checks.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| adopt_orphans().expect("PR_SET_CHILD_SUBREAPER works on Linux"));
}

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec::new("sh", ["-c", script])
}

async fn run_with(
    spec: &ProcessSpec,
    redactor: &Redactor,
    cancel: &CancellationToken,
) -> (ProcessOutcome, Vec<LogLine>) {
    setup();
    let mut lines = Vec::new();
    let outcome = supervise(spec, redactor, cancel, None, &mut |line| lines.push(line))
        .await
        .expect("the program starts");
    (outcome, lines)
}

async fn run(spec: &ProcessSpec) -> (ProcessOutcome, Vec<LogLine>) {
    run_with(spec, &Redactor::none(), &CancellationToken::new()).await
}

fn texts(lines: &[LogLine], stream: Stream) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.text.as_str())
        .collect()
}

/// Runs `script` and cancels it as soon as it printed its first line (a pid).
async fn run_and_cancel_after_first_line(spec: &ProcessSpec) -> (ProcessOutcome, Vec<u32>) {
    setup();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let mut pids = Vec::new();
    let outcome = supervise(spec, &Redactor::none(), &cancel, None, &mut |line| {
        if let Ok(pid) = line.text.parse::<u32>() {
            pids.push(pid);
            trigger.cancel();
        }
    })
    .await
    .expect("sh starts");
    (outcome, pids)
}

/// `(pid, state)` of every process whose process group is `pgid`, zombies included.
fn group_members(pgid: u32) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, pgrp)) = stat(pid)
            && pgrp == pgid
        {
            found.push((pid, state));
        }
    }
    found
}

/// State letter and process group of `pid`, from `/proc/<pid>/stat`; `None` once it is gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn assert_gone(pid: u32) {
    assert_eq!(
        stat(pid),
        None,
        "process {pid} still exists (zombie or alive)"
    );
}

fn assert_group_empty(pgid: u32) {
    assert_eq!(
        group_members(pgid),
        vec![],
        "group {pgid} still has members"
    );
}

/// Polls `cond` until it holds; panics after a minute (a generous bound, not a measurement).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// exit and spawn

#[tokio::test]
async fn exit_codes_are_reported_and_the_leader_is_reaped() {
    let (outcome, _) = run(&ProcessSpec::new("true", Vec::<String>::new())).await;
    assert_eq!(outcome.ending, Ending::Exited(0));
    assert_gone(outcome.pid);

    let (outcome, _) = run(&sh("exit 3")).await;
    assert_eq!(outcome.ending, Ending::Exited(3));
    assert!(!outcome.log_truncated);
    assert_gone(outcome.pid);

    let (outcome, _) = run(&sh("kill -KILL $$")).await;
    assert_eq!(outcome.ending, Ending::Signalled(9));
    assert_gone(outcome.pid);
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    setup();
    let spec = ProcessSpec::new("/nonexistent/rota-test-program", Vec::<String>::new());
    let err = supervise(
        &spec,
        &Redactor::none(),
        &CancellationToken::new(),
        None,
        &mut |_| {},
    )
    .await
    .expect_err("nothing to start");
    assert!(matches!(err, SpawnError::Spawn { ref program, .. } if program == &spec.program));
}

#[tokio::test]
async fn env_and_cwd_reach_the_child() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = sh("echo \"$ROTA_TEST_VAR\"; pwd");
    spec.env.push(("ROTA_TEST_VAR".into(), "hello".into()));
    spec.cwd = Some(dir.path().to_path_buf());
    let (outcome, lines) = run(&spec).await;
    assert_eq!(outcome.ending, Ending::Exited(0));
    let cwd = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    assert_eq!(
        texts(&lines, Stream::Stdout),
        vec!["hello", cwd.to_str().expect("utf-8 temp path")]
    );
}

// ---------------------------------------------------------------------------------------------
// lines

#[tokio::test]
async fn stdout_and_stderr_lines_keep_their_order_per_stream() {
    let (outcome, lines) = run(&sh(
        "printf 'a\\nb\\n'; printf 'x\\n' >&2; echo c; echo y >&2; echo d",
    ))
    .await;
    assert_eq!(outcome.ending, Ending::Exited(0));
    assert_eq!(texts(&lines, Stream::Stdout), vec!["a", "b", "c", "d"]);
    assert_eq!(texts(&lines, Stream::Stderr), vec!["x", "y"]);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0].ts <= w[1].ts || w[0].stream != w[1].stream)
    );
}

#[tokio::test]
async fn crlf_invalid_utf8_and_an_unterminated_last_line() {
    let (_, lines) = run(&sh("printf 'one\\r\\ntwo\\377\\n\\nlast'")).await;
    assert_eq!(
        texts(&lines, Stream::Stdout),
        vec!["one", "two\u{FFFD}", "", "last"]
    );
}

#[tokio::test]
async fn very_long_lines_are_split() {
    let (outcome, lines) = run(&sh("head -c 200000 /dev/zero | tr '\\0' a; echo; echo end")).await;
    assert_eq!(outcome.ending, Ending::Exited(0));
    let lens: Vec<usize> = texts(&lines, Stream::Stdout)
        .iter()
        .map(|t| t.len())
        .collect();
    assert_eq!(lens, vec![65536, 65536, 65536, 200000 - 3 * 65536, 3]);
}

#[tokio::test]
async fn output_beyond_the_cap_is_replaced_by_one_marker_and_drained() {
    let mut spec = sh("echo 12345; echo 67890; echo more >&2; seq 1 200000; exit 4");
    spec.log_cap_bytes = 10;
    let (outcome, lines) = run(&spec).await;
    // The process is not killed: it runs to its own end.
    assert_eq!(outcome.ending, Ending::Exited(4));
    assert!(outcome.log_truncated);
    let all: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(all, vec!["12345", "[rota] log truncated after 6 bytes"]);
}

// ---------------------------------------------------------------------------------------------
// killing groups

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    // The straggler must have started before the timeout for the test to mean something;
    // on a loaded machine, retry with a longer timeout rather than assert on timing.
    let mut timeout = Duration::from_millis(500);
    loop {
        let mut spec = sh("sleep 1000 & echo $!; sleep 1000");
        spec.timeout = Some(timeout);
        let (outcome, lines) = run(&spec).await;
        assert_eq!(outcome.ending, Ending::TimedOut);
        assert_gone(outcome.pid);
        assert_group_empty(outcome.pid);
        if let Some(straggler) = texts(&lines, Stream::Stdout).first() {
            let straggler: u32 = straggler.parse().expect("a pid");
            assert_gone(straggler);
            break;
        }
        assert!(timeout < Duration::from_secs(60), "sh never got to start");
        timeout *= 2;
    }
}

#[tokio::test]
async fn cancel_kills_the_whole_group() {
    let (outcome, pids) = run_and_cancel_after_first_line(&sh("sleep 1000 & echo $!; wait")).await;
    assert_eq!(outcome.ending, Ending::Cancelled);
    assert_eq!(pids.len(), 1);
    assert_gone(pids[0]);
    assert_gone(outcome.pid);
    assert_group_empty(outcome.pid);
}

#[tokio::test]
async fn a_group_ignoring_sigterm_gets_sigkill_after_the_grace() {
    let mut spec = sh("trap '' TERM; sleep 1000 & echo $!; wait; wait");
    spec.grace = Duration::from_millis(200);
    let (outcome, pids) = run_and_cancel_after_first_line(&spec).await;
    assert_eq!(outcome.ending, Ending::Cancelled);
    assert_gone(pids[0]);
    assert_gone(outcome.pid);
    assert_group_empty(outcome.pid);
}

#[tokio::test]
async fn stragglers_after_a_normal_exit_are_killed_and_reaped() {
    let mut spec =
        sh("sleep 1000 & echo $!; sh -c \"trap '' TERM; sleep 1000\" & echo $!; echo bye");
    spec.grace = Duration::from_millis(200);
    // Both stragglers hold the stdout pipe open: returning at all shows draining is bounded.
    let (outcome, lines) = run(&spec).await;
    assert_eq!(outcome.ending, Ending::Exited(0));
    let out = texts(&lines, Stream::Stdout);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2], "bye");
    for pid in &out[..2] {
        assert_gone(pid.parse().expect("a pid"));
    }
    assert_gone(outcome.pid);
    assert_group_empty(outcome.pid);
}

#[tokio::test]
async fn dropping_the_supervisor_kills_the_group() {
    setup();
    let spec = sh("sleep 1000 & echo $!; wait");
    let cancel = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let task = async {
        let mut on_line = |line: LogLine| {
            if let Ok(pid) = line.text.parse() {
                let _ = tx.send(pid);
            }
        };
        supervise(&spec, &Redactor::none(), &cancel, None, &mut on_line).await
    };
    // Poll the supervisor only until the straggler's pid arrived, then drop it.
    let straggler = tokio::select! {
        _ = task => panic!("the step cannot end by itself"),
        pid = async {
            loop {
                if let Ok(pid) = rx.try_recv() { break pid; }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => pid,
    };
    let pgid = stat(straggler).expect("the straggler runs").1;
    wait_until("the dropped step's group is gone", || {
        reap_group(pgid);
        group_members(pgid).is_empty()
    });
}

/// Reaps members of `pgid` that ended up as this process's children.
fn reap_group(pgid: u32) {
    let group = Pid::from_raw(-i32::try_from(pgid).expect("pid_t"));
    while let Ok(status) = waitpid(group, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// redaction

#[tokio::test]
async fn secrets_are_redacted_in_step_output() {
    let secret = "s3cr3t-value/with+chars";
    let mut spec = sh("echo \"token=$TOKEN\"; printf %s \"$TOKEN\" | base64; echo public");
    spec.env.push(("TOKEN".into(), secret.into()));
    let redactor = Redactor::new([secret.to_owned()]);
    let (_, lines) = run_with(&spec, &redactor, &CancellationToken::new()).await;
    assert_eq!(
        texts(&lines, Stream::Stdout),
        vec!["token=***", "***", "public"]
    );
}

#[test]
fn plain_values_are_redacted_and_short_ones_ignored() {
    let r = Redactor::new(["hunter2".to_owned(), "ab".to_owned(), String::new()]);
    assert_eq!(r.redact("pw=hunter2 and hunter2!"), "pw=*** and ***!");
    assert_eq!(r.redact("ab abc"), "ab abc");
    assert!(matches!(
        r.redact("nothing here"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert!(Redactor::new(["xy".to_owned()]).is_empty());
}

#[test]
fn base64_forms_are_redacted() {
    // Lengths 7, 8 and 9 give all three padding shapes; `?>` bytes differ between alphabets.
    for secret in ["p4ss>?x", "p4ss>?xy", "p4ss>?xyz"] {
        let r = Redactor::new([secret.to_owned()]);
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(secret);
            assert_eq!(r.redact(&format!("x {encoded} y")), "x *** y", "{encoded}");
        }
    }
}

#[test]
fn base64_of_a_value_inside_a_longer_string_is_redacted_at_every_alignment() {
    let secret = "correct-horse-battery";
    let r = Redactor::new([secret.to_owned()]);
    for prefix in ["", "u", "us", "user:", "admin:", "root:x"] {
        for suffix in ["", "!", "!!", "!!!"] {
            let plain = format!("{prefix}{secret}{suffix}");
            for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
                let encoded = engine.encode(&plain);
                let redacted = r.redact(&encoded);
                assert!(redacted.contains("***"), "{plain} as {encoded}");
                // What is left is at most the encoded prefix and suffix plus the two
                // characters that mix secret bits with neighbouring bits.
                let left = redacted.len() - 3;
                assert!(
                    left <= (prefix.len() + suffix.len()) * 4 / 3 + 6,
                    "{plain}: {redacted}"
                );
            }
        }
    }
}

#[test]
fn percent_encoded_values_are_redacted() {
    let secret = "p@ss word/ü";
    let r = Redactor::new([secret.to_owned()]);
    assert_eq!(r.redact("?pw=p%40ss%20word%2F%C3%BC&x=1"), "?pw=***&x=1");
    assert_eq!(r.redact("?pw=p%40ss%20word%2f%c3%bc"), "?pw=***");
    assert_eq!(r.redact("pw=p%40ss+word%2F%C3%BC"), "pw=***");
    // Encoders that keep some reserved characters literal (Python's `quote` keeps `/`,
    // `encodeURI` keeps `@`), mixed hex case, and the value twice on a line.
    assert_eq!(r.redact("p%40ss%20word/%C3%BC"), "***");
    assert_eq!(
        r.redact("x=p@ss%20word/%c3%BC y=p%40ss word%2F\u{fc}"),
        "x=*** y=***"
    );
    // A malformed escape or a lone `%` is left alone, and so is text near the value.
    assert_eq!(r.redact("100% p%40ss%2 word"), "100% p%40ss%2 word");
    assert_eq!(r.redact("p%40ss%20wor"), "p%40ss%20wor");
}

#[test]
fn json_escaped_values_are_redacted() {
    let secret = "p\"ss\\wörd";
    let r = Redactor::new([secret.to_owned()]);
    let as_json = serde_json::json!({ "password": secret }).to_string();
    assert_eq!(r.redact(&as_json), r#"{"password":"***"}"#);
    assert_eq!(
        r.redact(r#"{"password": "p\"ss\\w\u00f6rd"}"#),
        r#"{"password": "***"}"#
    );
}

#[test]
fn unrelated_text_is_left_alone_and_debug_hides_values() {
    let r = Redactor::new(["topsecret".to_owned()]);
    let line = "dG9wIHNlY3JldA== top secret topsecre";
    assert_eq!(r.redact(line), line);
    let debug = format!("{r:?}");
    assert!(!debug.contains("topsecret"), "{debug}");
    assert!(debug.starts_with("Redactor"));
    let mut spec = sh("true");
    spec.env.push(("TOKEN".into(), "topsecret".into()));
    assert!(!format!("{spec:?}").contains("topsecret"));
}

// ---------------------------------------------------------------------------------------------
// guardian

/// Marks the re-executed test binary as the guardian (libtest takes it as a second filter).
const GUARDIAN_MODE: &str = "rota-test-guardian-mode";

/// The guardian's entry point when this test binary is re-executed by `spawn_guardian`;
/// in a normal test run it does nothing.
#[test]
fn guardian_child_entry() {
    if std::env::args().any(|a| a == GUARDIAN_MODE) {
        std::process::exit(rota_engine::guardian::guardian_main());
    }
}

fn spawn_guardian() -> Guardian {
    let exe = std::env::current_exe().expect("test binary path");
    let guardian = Guardian::spawn(
        Path::new(&exe),
        &[
            "guardian_child_entry",
            GUARDIAN_MODE,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ],
    )
    .expect("guardian starts");
    // Ready once it ignores SIGINT (bit 2 of SigIgn): guardian_main has started.
    let pid = guardian.pid();
    wait_until("the guardian ignores SIGINT", || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("SigIgn:"))?.to_owned();
                u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()
            })
            .is_some_and(|mask| mask & 0b10 != 0)
    });
    guardian
}

/// Starts `sh -c 'sleep 1000 & sleep 1000'` in a group of its own; waits until both run.
fn spawn_group() -> std::process::Child {
    let child = Command::new("sh")
        .args(["-c", "sleep 1000 & sleep 1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("sh starts");
    let pgid = child.id();
    wait_until("both sleeps run", || {
        group_members(pgid)
            .iter()
            .filter(|(pid, _)| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .count()
            == 2
    });
    child
}

#[test]
fn guardian_kills_watched_groups_when_the_runner_goes_away() {
    setup();
    let guardian = spawn_guardian();
    let guardian_pid = guardian.pid();
    // Ctrl-C in a terminal must not take the guardian down.
    kill(
        Pid::from_raw(i32::try_from(guardian_pid).expect("pid_t")),
        Signal::SIGINT,
    )
    .expect("signal the guardian");

    let mut watched = spawn_group();
    let mut unwatched = spawn_group();
    let mut released = spawn_group();
    guardian.watch(watched.id(), None);
    guardian.watch(released.id(), None);
    guardian.unwatch(released.id());

    // The runner "dies": its end of the pipe closes without any unwatch. Dropping the handle
    // also waits for the guardian to finish its clean-up and exit.
    drop(guardian);
    assert_gone(guardian_pid);

    let status = watched.wait().expect("reap the watched leader");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    wait_until("the watched group is gone", || {
        reap_group(watched.id());
        group_members(watched.id()).is_empty()
    });

    // The others were left alone.
    for child in [&mut unwatched, &mut released] {
        assert_eq!(child.try_wait().expect("try_wait"), None);
        // `sh` and its two `sleep`s.
        assert_eq!(group_members(child.id()).len(), 3);
        let pgid = Pid::from_raw(i32::try_from(child.id()).expect("pid_t"));
        killpg(pgid, Signal::SIGKILL).expect("clean up");
        child.wait().expect("reap");
        let id = child.id();
        wait_until("the cleaned-up group is gone", || {
            reap_group(id);
            group_members(id).is_empty()
        });
    }
}

#[tokio::test]
async fn a_step_supervised_with_a_guardian_runs_and_the_guardian_then_exits() {
    setup();
    let guardian = std::sync::Arc::new(spawn_guardian());
    let (outcome, lines) = {
        let mut lines = Vec::new();
        let outcome = supervise(
            &sh("echo hi"),
            &Redactor::none(),
            &CancellationToken::new(),
            Some(&guardian),
            &mut |l| lines.push(l),
        )
        .await
        .expect("sh starts");
        (outcome, lines)
    };
    assert_eq!(outcome.ending, Ending::Exited(0));
    assert_eq!(texts(&lines, Stream::Stdout), vec!["hi"]);
    let pid = guardian.pid();
    drop(guardian);
    assert_gone(pid);
}
