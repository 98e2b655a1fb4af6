//! `rota artifacts RUN [STEP] [--get PATH [-o FILE]]`, written once over [`Rota`]: a run's
//! artifacts listed (`--output json`: an array of `{step, path, size}`), or one of them
//! written to FILE (stdout without it).

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
    // The run's kept report is the run's own, under a step id no job step can have.
    if let Some(step) = &args.step
        && step != rota_ops::reports::RUN_STEP
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
    match &args.out {
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
