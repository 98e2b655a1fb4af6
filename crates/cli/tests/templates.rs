//! Templates through a real `rota run`: values rendered into `sh:` never run as shell code,
//! reach steps as `ROTA_PARAM_*` variables, keep secrets off command lines; a template over
//! its bounds fails its step at once; unknown filters do not validate; booleans print
//! lowercase; wrapped base64 of a secret is masked.

use crate::util::{
    Rota, assert_code, assert_reason_has, describe, example, stderr, step, wait_until,
};

/// Runs the README's hello job with `greeting` set to `value`, and returns its greet line.
fn greet_with(value: &str) -> String {
    let rota = Rota::new();
    let hello = example("hello.yaml");
    let greeting = format!("greeting={value}");
    let (run, output) = rota.run_json(&[
        "run",
        hello.to_str().expect("utf-8 path"),
        "-p",
        greeting.as_str(),
    ]);
    assert_code(&output, 0);
    assert_eq!(step(&run, "greet")["status"], "succeeded", "{run:#}");
    let err = stderr(&output);
    assert!(
        !err.contains("uid="),
        "a value ran as code: {}",
        describe(&output)
    );
    err.lines()
        .filter(|line| line.contains("greet |") && line.ends_with("from hello"))
        .map(str::to_owned)
        .next()
        .unwrap_or_else(|| panic!("no greet line: {}", describe(&output)))
}

#[test]
fn hello_prints_shell_metacharacters_in_parameters_literally() {
    for value in [
        "$(cat /etc/hostname)",
        "x\"; id; echo \"",
        "`id`",
        "a; id",
        "it's 'quoted'",
        "$HOME and ${PATH}",
        "a  b*",
    ] {
        let line = greet_with(value);
        assert!(
            line.ends_with(&format!("greet | {value} from hello")),
            "{value:?} printed as {line:?}"
        );
    }
}

#[test]
fn parameters_reach_steps_as_environment_variables() {
    let rota = Rota::new();
    rota.write(
        "p.yaml",
        r#"id: penv
params:
  dry_run: { type: bool, default: true }
  hosts: { type: list, default: [a, b] }
  who: { type: string, default: "x y" }
steps:
  - id: show
    sh: |
      echo "env=$ROTA_PARAM_DRY_RUN|$ROTA_PARAM_HOSTS|$ROTA_PARAM_WHO"
      echo "tpl={{ params.dry_run }}"
      printf '<%s>' {{ params.hosts | join(" ") }}; echo
"#,
    );
    let (run, output) = rota.run_json(&["run", "p.yaml"]);
    assert_code(&output, 0);
    assert_eq!(step(&run, "show")["status"], "succeeded");
    let err = stderr(&output);
    assert!(
        err.contains("show | env=true|[\"a\",\"b\"]|x y"),
        "{}",
        describe(&output)
    );
    assert!(err.contains("show | tpl=true"), "{}", describe(&output));
    assert!(err.contains("show | <a><b>"), "{}", describe(&output));
}

#[test]
fn nested_loops_fail_the_step_with_the_bounds_reason_and_no_retry() {
    let rota = Rota::new();
    rota.write(
        "dos.yaml",
        r#"id: dos
steps:
  - id: boom
    retry: { attempts: 3, initial: 1s }
    sh: "{% for i in range(100000) %}{% for j in range(100000) %}echo {{ i }}{{ j }};{% endfor %}{% endfor %}"
  - id: after
    sh: echo other steps still run
"#,
    );
    let output = rota.run(["validate", "dos.yaml"]);
    assert_code(&output, 0);
    let (run, output) = rota.run_json(&["run", "dos.yaml"]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed", "{run:#}");
    let boom = step(&run, "boom");
    assert_eq!(boom["status"], "failed", "{boom:#}");
    assert_eq!(boom["attempts"], 1, "{boom:#}");
    assert!(
        boom["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("template exceeded its bounds: ")),
        "{boom:#}"
    );
    assert_eq!(step(&run, "after")["status"], "succeeded");
}

#[test]
fn unknown_filters_and_tests_do_not_validate() {
    let rota = Rota::new();
    rota.write(
        "bad.yaml",
        "id: bad\nsteps:\n  - id: a\n    sh: echo {{ run.id | nosuchfilter }}\n  - id: b\n    if: run.id is nosuchtest\n    sh: echo b\n",
    );
    let output = rota.run(["validate", "bad.yaml"]);
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
    let text = format!(
        "{}{}",
        stderr(&output),
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        text.contains("bad.yaml:4:") && text.contains("unknown filter `nosuchfilter`"),
        "{text}"
    );
    assert!(
        text.contains("bad.yaml:6:") && text.contains("unknown test `nosuchtest`"),
        "{text}"
    );
}

#[test]
fn a_templated_secret_is_not_on_the_command_line() {
    const TOKEN: &str = "cmdline-secret-4f9a1c";
    let rota = Rota::new().env("MY_TOKEN", TOKEN);
    let started = rota.path("started");
    let release = rota.path("release");
    rota.write(
        "s.yaml",
        &format!(
            r#"id: secret-cmd
secrets: [MY_TOKEN]
steps:
  - id: wait
    sh: |
      token="{{{{ secrets.MY_TOKEN }}}}"
      touch {started}
      while [ ! -e {release} ]; do sleep 0.05; done
      [ "$token" = "$MY_TOKEN" ] && echo same
"#,
            started = started.display(),
            release = release.display()
        ),
    );
    let child = rota.spawn(["run", "s.yaml", "--output", "json"]);
    wait_until("the step to start", || started.exists());
    let mut seen = 0;
    for pid in rota.processes() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(TOKEN), "pid {pid}: {cmdline}");
        seen += usize::from(cmdline.contains("ROTA_TPL_"));
    }
    assert!(seen > 0, "the step's shell was not found");
    std::fs::write(&release, "").expect("release the step");
    let output = child.wait_with_output().expect("rota run ends");
    assert_code(&output, 0);
    assert!(
        stderr(&output).contains("wait | same"),
        "{}",
        describe(&output)
    );
}

#[test]
fn wrapped_base64_of_a_long_secret_is_masked() {
    let secret: String = (0..200)
        .map(|i| {
            char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"[(i * 13) % 57])
        })
        .collect();
    let rota = Rota::new().env("LONG_TOKEN", &secret);
    rota.write(
        "b.yaml",
        "id: benc\nsecrets: [LONG_TOKEN]\nsteps:\n  - id: enc\n    sh: |\n      printf %s \"$LONG_TOKEN\" | base64\n      echo \"x$LONG_TOKEN\" | base64\n      printf %s \"$LONG_TOKEN\" | base64 -w 64\n",
    );
    let (run, output) = rota.run_json(&["run", "b.yaml"]);
    assert_code(&output, 0);
    assert_eq!(step(&run, "enc")["status"], "succeeded");
    let logged = stderr(&output);
    for (input, width) in [
        (secret.clone(), "76"),
        (format!("x{secret}\n"), "76"),
        (secret.clone(), "64"),
    ] {
        // What the step printed, computed by the same tool.
        let mut encoder = std::process::Command::new("base64")
            .args(["-w", width])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("base64 runs");
        std::io::Write::write_all(&mut encoder.stdin.take().expect("stdin"), input.as_bytes())
            .expect("feed base64");
        let encoded = encoder.wait_with_output().expect("base64 ends");
        let encoded = String::from_utf8_lossy(&encoded.stdout).into_owned();
        assert!(encoded.lines().count() >= 4, "{encoded}");
        for line in encoded.lines() {
            // A line holding only a few of the secret's first or last bytes may stay.
            if line.len() > 16 {
                assert!(!logged.contains(line), "{line} leaked: {logged}");
            }
        }
    }
    assert!(logged.contains("enc | ***"), "{logged}");
}

/// Templates that build a huge value in a few instructions (under the instruction bound)
/// render in a helper process with a memory limit: the step fails with the bounds reason
/// and `rota` itself carries on, in `sh:`, `env:` and `if:` alike.
#[test]
fn templates_that_build_huge_values_fail_their_step_not_rota() {
    let rota = Rota::new();
    rota.write(
        "bomb.yaml",
        r#"id: bomb
steps:
  - id: doubling
    sh: "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(48) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}echo {{ ns.s | length }}"
  - id: wide_join
    env: { WIDE: "{{ range(100000) | join('y' * 60000) }}" }
    sh: echo "$WIDE" | wc -c
  - id: condition
    if: (range(100000) | join('z' * 60000)) | length > 0
    sh: echo condition held
  - id: plain
    sh: echo "{{ run.job }} still runs"
"#,
    );
    let (run, output) = rota.run_json(&["run", "bomb.yaml"]);
    assert_code(&output, 1);
    for id in ["doubling", "wide_join", "condition"] {
        let failed = step(&run, id);
        assert_eq!(failed["status"], "failed", "{failed:#}");
        assert_reason_has(failed, "template exceeded its bounds");
    }
    assert_eq!(step(&run, "plain")["status"], "succeeded", "{run:#}");
}
