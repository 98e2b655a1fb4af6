//! `rota artifacts RUN [STEP] [--get PATH [-o FILE]]`, written once over [`Rota`]: a run's
//! artifacts listed (`--output json`: an array of `{step, path, size}`), or one of them
//! written to FILE (stdout without it).

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use rota_ops::Rota;
use rota_ops::records::Artifact;
use serde_json::json;

use crate::EXIT_USAGE;
use crate::args::ArtifactsArgs;
use crate::output::Printer;
use crate::runs_cmd::find;

pub async fn artifacts<R: Rota>(
    rota: &R,
    args: ArtifactsArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    let Some(run) = find(rota, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    if let Some(step) = &args.step
        && !run.steps.iter().any(|s| &s.id == step)
    {
        eprintln!("rota: run {} has no step {step:?}", run.id);
        return Ok(EXIT_USAGE);
    }
    let listed = rota.list_artifacts(&run.id, args.step.clone()).await?;
    let Some(path) = &args.get else {
        print_list(out, &listed);
        return Ok(0);
    };
    let matching: Vec<&Artifact> = listed.iter().filter(|a| &a.path == path).collect();
    let artifact = match matching.as_slice() {
        [one] => *one,
        [] => {
            eprintln!("rota: run {} has no artifact {path:?}", run.id);
            return Ok(1);
        }
        several => {
            let steps: Vec<&str> = several.iter().map(|a| a.step.as_str()).collect();
            eprintln!(
                "rota: steps {} of run {} each have an artifact {path:?}: name the step \
                 (rota artifacts {} STEP --get {path})",
                steps.join(", "),
                run.id,
                run.id
            );
            return Ok(EXIT_USAGE);
        }
    };
    let bytes = rota
        .artifact_bytes(&run.id, &artifact.step, &artifact.path)
        .await?;
    match &args.to {
        Some(file) if file != Path::new("-") => std::fs::write(file, &bytes)
            .with_context(|| format!("cannot write {}", file.display()))?,
        _ => std::io::stdout()
            .lock()
            .write_all(&bytes)
            .context("cannot write to stdout")?,
    }
    Ok(0)
}

fn print_list(out: &Printer, listed: &[Artifact]) {
    if out.is_json() {
        let items: Vec<_> = listed
            .iter()
            .map(|a| json!({ "step": a.step, "path": a.path, "size": a.size }))
            .collect();
        out.json(&serde_json::Value::Array(items));
        return;
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|a| vec![a.step.clone(), a.path.clone(), a.size.to_string()])
        .collect();
    out.table(&["STEP", "PATH", "SIZE"], &rows);
}

/// `-o` is the global output format (`-o json`), but `rota artifacts RUN --get PATH -o FILE`
/// names the file to write: in an `artifacts` command with `--get`, a `-o` whose value is
/// not a format becomes `--to FILE` before the arguments are parsed. (A file named `json` or
/// `human` is written `./json`.)
pub fn file_flag(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let Some(command) = args.iter().position(|a| a == "artifacts") else {
        return args;
    };
    if !args[command..]
        .iter()
        .any(|a| a == "--get" || a.to_string_lossy().starts_with("--get="))
    {
        return args;
    }
    let is_format = |value: &str| matches!(value, "json" | "human");
    let mut i = command + 1;
    while i < args.len() {
        let arg = args[i].to_string_lossy().into_owned();
        if arg == "--" {
            break;
        }
        if arg == "-o" && i + 1 < args.len() && !is_format(&args[i + 1].to_string_lossy()) {
            args[i] = OsString::from("--to");
            i += 2;
            continue;
        }
        if let Some(value) = arg.strip_prefix("-o").map(|v| v.trim_start_matches('='))
            && !arg.starts_with("--")
            && !value.is_empty()
            && !is_format(value)
        {
            args.splice(i..=i, [OsString::from("--to"), OsString::from(value)]);
            i += 2;
            continue;
        }
        i += 1;
    }
    args
}

#[cfg(test)]
mod tests {
    use super::file_flag;

    fn rewrite(line: &str) -> String {
        let args = file_flag(line.split(' ').map(Into::into));
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn only_an_artifacts_get_has_its_dash_o_file_read_as_the_file() {
        assert_eq!(
            rewrite("rota artifacts R --get a/b.txt -o out.txt"),
            "rota artifacts R --get a/b.txt --to out.txt"
        );
        assert_eq!(
            rewrite("rota artifacts R --get a -oout.txt"),
            "rota artifacts R --get a --to out.txt"
        );
        assert_eq!(
            rewrite("rota artifacts R --get a -o json"),
            "rota artifacts R --get a -o json"
        );
        assert_eq!(rewrite("rota artifacts R -o x"), "rota artifacts R -o x");
        assert_eq!(rewrite("rota runs R -o json"), "rota runs R -o json");
    }
}
