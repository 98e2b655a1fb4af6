//! `rota runbook init|new|lint`, and the dated instance `rota plan` writes for a runbook.
//!
//! A runbook library is a directory holding `templates/` (runbooks to start from) and `runs/`
//! (one dated folder per planned runbook, `runs/YYYY-MM-DD-<name>-<short plan id>/`, holding
//! the prepared copy, with its parameters filled in, and the files it references). Loading a
//! runbook as a job is `rota_core::runbook`'s; this module is the files around it.

use std::path::{Path, PathBuf};

use rota_core::parse::Format;
use rota_core::runbook::{self, Markdown};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::EXIT_USAGE;
use crate::output::Printer;

/// The sections every runbook has, in order (the first is its `# Title`).
pub const SECTIONS: &[&str] = &[
    "Title",
    "Description",
    "Parameters",
    "Steps",
    "Rollback",
    "Cleanup",
    "Learnings",
];

/// `rota runbook …`.
#[derive(Debug, clap::Subcommand)]
pub enum RunbookCommand {
    /// Lay out a runbook library: DIR/templates/ (with a template of each format) and DIR/runs/.
    Init {
        /// The library's directory (created if needed).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Start a runbook NAME.md or NAME.ipynb with every section, from a template or the built-in one.
    New {
        /// The runbook's name (its file name and job id): lower-case letters, digits, `-`.
        name: String,
        /// A template: a file, or the name of one in the library's templates/.
        #[arg(long)]
        from: Option<String>,
        /// The format of the new runbook.
        #[arg(long, value_enum, default_value_t = RunbookFormat::Md)]
        format: RunbookFormat,
        /// Where to write it (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Check runbooks: sections, a parameters block with `dry_run`, no outputs left in a
    /// template, no literal that looks like a secret, and that each loads as a job. Exit 2 on
    /// any problem.
    Lint {
        /// Runbooks (.md, .ipynb).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// The two runbook formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunbookFormat {
    /// Markdown with fenced `sh`/`python` blocks.
    Md,
    /// A Jupyter notebook.
    Ipynb,
}

impl RunbookFormat {
    fn extension(self) -> &'static str {
        match self {
            RunbookFormat::Md => "md",
            RunbookFormat::Ipynb => "ipynb",
        }
    }
}

/// Runs a `rota runbook` command; answers the exit code.
pub fn runbook(command: RunbookCommand, out: &Printer) -> u8 {
    let result = match command {
        RunbookCommand::Init { dir } => init(&dir, out),
        RunbookCommand::New {
            name,
            from,
            format,
            dir,
        } => new(&name, from.as_deref(), format, &dir, out),
        RunbookCommand::Lint { paths } => return lint_paths(&paths, out),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("rota: {message}");
            EXIT_USAGE
        }
    }
}

fn init(dir: &Path, out: &Printer) -> Result<(), String> {
    let templates = dir.join("templates");
    for sub in [&templates, &dir.join("runs")] {
        std::fs::create_dir_all(sub)
            .map_err(|e| format!("cannot create {}: {e}", sub.display()))?;
    }
    for format in [RunbookFormat::Md, RunbookFormat::Ipynb] {
        let path = templates.join(format!("runbook.{}", format.extension()));
        if !path.exists() {
            write_new(&path, &template_text("runbook", format))?;
        }
    }
    if out.is_json() {
        out.json(&json!({"dir": dir, "templates": templates, "runs": dir.join("runs")}));
    } else {
        out.text(&format!(
            "runbook library in {}: templates/ and runs/\n",
            dir.display()
        ));
    }
    Ok(())
}

fn new(
    name: &str,
    from: Option<&str>,
    format: RunbookFormat,
    dir: &Path,
    out: &Printer,
) -> Result<(), String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "runbook name {name:?}: expected lower-case letters, digits and `-` (it is the job id)"
        ));
    }
    let text = match from {
        None => template_text(name, format),
        Some(template) => {
            let path = find_template(template, format, dir)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read template {}: {e}", path.display()))?;
            retitle(&text, name, format)
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.{}", format.extension()));
    write_new(&path, &text)?;
    if out.is_json() {
        out.json(&json!({"path": path}));
    } else {
        out.text(&format!("{}\n", path.display()));
    }
    Ok(())
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A template named by path, or by name in the templates/ of the library `dir` belongs to.
fn find_template(template: &str, format: RunbookFormat, dir: &Path) -> Result<PathBuf, String> {
    let direct = PathBuf::from(template);
    if direct.is_file() {
        return Ok(direct);
    }
    let library = library_of(dir).unwrap_or_else(|| dir.to_path_buf());
    let mut candidates = vec![library.join("templates").join(template)];
    candidates.push(
        library
            .join("templates")
            .join(format!("{template}.{}", format.extension())),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no template {template:?} (a file, or a name in templates/)"))
}

/// The nearest directory from `dir` up that holds `runs/`: the runbook library.
fn library_of(dir: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(dir).ok()?;
    absolute
        .ancestors()
        .find(|d| d.join("runs").is_dir())
        .map(Path::to_path_buf)
}

/// A template's text with its title set to `name`.
fn retitle(text: &str, name: &str, format: RunbookFormat) -> String {
    match format {
        RunbookFormat::Md => {
            let mut done = false;
            text.lines()
                .map(|line| {
                    if !done && line.starts_with("# ") {
                        done = true;
                        format!("# {name}\n")
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect()
        }
        // A notebook template is copied as it is; its file name gives the job id.
        RunbookFormat::Ipynb => text.to_owned(),
    }
}

/// The built-in template of each format, titled `name`.
pub fn template_text(name: &str, format: RunbookFormat) -> String {
    match format {
        RunbookFormat::Md => MD_TEMPLATE.replace("{{name}}", name),
        RunbookFormat::Ipynb => notebook_template(name),
    }
}

const MD_TEMPLATE: &str = r#"---
report: html
params:
  dry_run: { type: bool, default: true, help: "say what would change, change nothing" }
---
# {{name}}

## Description

What this runbook does, when to use it, and who owns it.

## Parameters

The front matter above declares them; `dry_run` defaults to true, so a first run changes
nothing. Steps read each as `$ROTA_PARAM_<NAME>` (here `$ROTA_PARAM_DRY_RUN`).
`report: html` keeps each run's report with it (`rota artifacts RUN`).

## Steps

Check the current state first.

```sh {id=check}
echo "checking (dry run: $ROTA_PARAM_DRY_RUN)"
```

## Rollback

How to undo the steps above, and how to tell it worked.

## Cleanup

What to remove or close once the runbook is done.

## Learnings

What went well, what surprised you, what to change next time.
"#;

fn markdown_cell(index: usize, text: &str) -> Value {
    json!({"cell_type": "markdown", "id": format!("cell-{index}"), "metadata": {}, "source": text})
}

fn code_cell(index: usize, text: &str, tags: &[&str]) -> Value {
    let metadata = if tags.is_empty() {
        json!({})
    } else {
        json!({ "tags": tags })
    };
    json!({
        "cell_type": "code", "id": format!("cell-{index}"), "metadata": metadata,
        "execution_count": null, "outputs": [], "source": text
    })
}

fn notebook_template(name: &str) -> String {
    let cells = vec![
        markdown_cell(
            0,
            &format!(
                "# {name}\n\n## Description\n\nWhat this runbook does, when to use it, and who owns it."
            ),
        ),
        markdown_cell(
            1,
            "## Parameters\n\nThe cell below is tagged `parameters`; `dry_run` defaults to True, so a first run changes nothing.",
        ),
        code_cell(2, "dry_run = True", &["parameters"]),
        markdown_cell(3, "## Steps\n\nCheck the current state first."),
        code_cell(4, "print(f\"checking (dry run: {dry_run})\")", &[]),
        markdown_cell(
            5,
            "## Rollback\n\nHow to undo the steps above, and how to tell it worked.",
        ),
        markdown_cell(
            6,
            "## Cleanup\n\nWhat to remove or close once the runbook is done.",
        ),
        markdown_cell(
            7,
            "## Learnings\n\nWhat went well, what surprised you, what to change next time.",
        ),
    ];
    let notebook = json!({
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "rota": {"report": "html"}
        },
        "nbformat": 4,
        "nbformat_minor": 5
    });
    let mut text = serde_json::to_string_pretty(&notebook).unwrap_or_default();
    text.push('\n');
    text
}

/// One lint problem: where (a line of Markdown, a cell of a notebook) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    file: String,
    at: Place,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Line(usize),
    Cell(usize),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Place::Line(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            Place::Cell(cell) => write!(f, "{}:cell {cell}: {}", self.file, self.message),
        }
    }
}

impl Problem {
    fn to_json(&self) -> Value {
        let mut value = json!({"file": self.file, "message": self.message});
        match self.at {
            Place::Line(line) => value["line"] = json!(line),
            Place::Cell(cell) => value["cell"] = json!(cell),
        }
        value
    }
}

fn lint_paths(paths: &[PathBuf], out: &Printer) -> u8 {
    let mut problems = Vec::new();
    for path in paths {
        problems.extend(lint(path));
    }
    if out.is_json() {
        out.json(&json!({
            "ok": problems.is_empty(),
            "problems": problems.iter().map(Problem::to_json).collect::<Vec<_>>()
        }));
    } else {
        for problem in &problems {
            out.text(&format!("{problem}\n"));
        }
    }
    if problems.is_empty() { 0 } else { EXIT_USAGE }
}

/// Every problem of one runbook.
pub fn lint(path: &Path) -> Vec<Problem> {
    let file = path.display().to_string();
    let problem = |at: Place, message: String| Problem {
        file: file.clone(),
        at,
        message,
    };
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => return vec![problem(Place::Line(1), format!("cannot read: {e}"))],
    };
    let mut problems = match Format::from_path(path) {
        Format::Markdown => lint_markdown(&source, &problem),
        Format::Notebook => lint_notebook(&source, is_template(path), &problem),
        _ => {
            return vec![problem(
                Place::Line(1),
                "not a runbook: expected a .md or .ipynb file".to_owned(),
            )];
        }
    };
    if let Err(rota_core::parse::LoadError::Invalid(diagnostics)) =
        rota_core::parse::load_file(path)
    {
        let notebook = Format::from_path(path) == Format::Notebook;
        for d in diagnostics.0 {
            let at = if notebook {
                Place::Cell(cell_at_line(&source, d.line))
            } else {
                Place::Line(d.line)
            };
            let message = if notebook {
                d.message
            } else {
                format!("{} (column {})", d.message, d.col)
            };
            problems.push(problem(at, message));
        }
    }
    problems
}

/// A runbook under a `templates/` directory is a template.
fn is_template(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "templates")
}

fn missing_sections(headings: &[(u8, String)]) -> Vec<&'static str> {
    SECTIONS
        .iter()
        .filter(|section| {
            !headings.iter().any(|(level, text)| {
                if **section == "Title" {
                    *level == 1
                } else {
                    *level >= 2 && text.trim().eq_ignore_ascii_case(section)
                }
            })
        })
        .copied()
        .collect()
}

fn section_message(section: &str) -> String {
    if section == "Title" {
        "missing section Title (a `# Title` heading)".to_owned()
    } else {
        format!("missing section {section} (a `## {section}` heading)")
    }
}

fn lint_markdown(source: &str, problem: &impl Fn(Place, String) -> Problem) -> Vec<Problem> {
    let doc: Markdown = runbook::read_markdown(source);
    let mut problems = Vec::new();
    let headings: Vec<(u8, String)> = doc
        .headings
        .iter()
        .map(|h| (h.level, h.text.clone()))
        .collect();
    for section in missing_sections(&headings) {
        problems.push(problem(Place::Line(1), section_message(section)));
    }
    let params_line = doc.front_matter.as_ref().and_then(|(yaml, first)| {
        yaml.lines()
            .position(|l| l.starts_with("params:"))
            .map(|i| (i + first, yaml))
    });
    match params_line {
        None => problems.push(problem(
            Place::Line(1),
            "no parameters: the front matter (`---` … `---`) declares no `params:`".to_owned(),
        )),
        Some((line, yaml)) => {
            let declares_dry_run = yaml.lines().any(|l| {
                let t = l.trim_start();
                l.len() > t.len() && t.starts_with("dry_run:")
            });
            if !declares_dry_run {
                problems.push(problem(
                    Place::Line(line),
                    "no `dry_run` parameter among the front matter's `params:`".to_owned(),
                ));
            }
        }
    }
    for (i, line) in source.lines().enumerate() {
        if let Some(why) = secret_like(line) {
            problems.push(problem(Place::Line(i + 1), why));
        }
    }
    problems
}

fn lint_notebook(
    source: &str,
    template: bool,
    problem: &impl Fn(Place, String) -> Problem,
) -> Vec<Problem> {
    let notebook: Value = match serde_json::from_str(source) {
        Ok(v) => v,
        // The load below reports where the JSON is wrong.
        Err(_) => return Vec::new(),
    };
    let cells = notebook["cells"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let mut headings = Vec::new();
    let mut parameters: Option<(usize, String)> = None;
    for (index, cell) in cells.iter().enumerate() {
        let text = cell_text(cell);
        match cell["cell_type"].as_str() {
            Some("markdown") => {
                for line in text.lines() {
                    let level = line.chars().take_while(|c| *c == '#').count();
                    if level > 0 && line[level..].starts_with(' ') {
                        headings.push((level as u8, line[level..].trim().to_owned()));
                    }
                }
            }
            Some("code") => {
                let tagged = cell["metadata"]["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == runbook::PARAMETERS_TAG));
                if tagged && parameters.is_none() {
                    parameters = Some((index, text.clone()));
                }
                let has_outputs = cell["outputs"].as_array().is_some_and(|o| !o.is_empty())
                    || !cell["execution_count"].is_null();
                if template && has_outputs {
                    problems.push(problem(
                        Place::Cell(index),
                        "outputs left in a template (clear them before saving)".to_owned(),
                    ));
                }
            }
            _ => {}
        }
        for line in text.lines() {
            if let Some(why) = secret_like(line) {
                problems.push(problem(Place::Cell(index), why));
            }
        }
    }
    for section in missing_sections(&headings) {
        problems.push(problem(Place::Cell(0), section_message(section)));
    }
    match parameters {
        None => problems.push(problem(
            Place::Cell(0),
            "no parameters cell (a code cell tagged `parameters`)".to_owned(),
        )),
        Some((index, text)) => {
            let (params, _) = runbook::infer_params(&text);
            if !params.iter().any(|p| p.name == "dry_run") {
                problems.push(problem(
                    Place::Cell(index),
                    "no `dry_run` parameter in the parameters cell".to_owned(),
                ));
            }
        }
    }
    problems
}

fn cell_text(cell: &Value) -> String {
    match &cell["source"] {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// The cell whose JSON holds 1-based `line` of a notebook's text (0 when none does).
fn cell_at_line(source: &str, line: usize) -> usize {
    let Ok(notebook) = serde_json::from_str::<Value>(source) else {
        return 0;
    };
    let Some(cells) = notebook["cells"].as_array() else {
        return 0;
    };
    // Cells start where `"cell_type"` appears, in order; count those at or before the line.
    let starts: Vec<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"cell_type\""))
        .map(|(i, _)| i + 1)
        .collect();
    starts
        .iter()
        .take(cells.len())
        .filter(|&&s| s <= line)
        .count()
        .saturating_sub(1)
}

/// Why a line looks like it holds a secret, if it does: a private key block, an AWS access
/// key id, a literal assigned to a password/token/secret name, or a long high-entropy token.
/// Templates (`{{ … }}`) and environment references (`$X`) are not literals.
pub fn secret_like(line: &str) -> Option<String> {
    if line.contains("-----BEGIN") {
        return Some("looks like a secret: a PEM block (`-----BEGIN …`)".to_owned());
    }
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-.".contains(c)))
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| {
        w.len() == 20
            && w.starts_with("AKIA")
            && w[4..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }) {
        return Some("looks like a secret: an AWS access key id (`AKIA…`)".to_owned());
    }
    let lower = line.to_ascii_lowercase();
    for name in ["password", "passwd", "token", "secret", "api_key", "apikey"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(name) {
            let rest = lower[from + i + name.len()..].trim_start();
            if let Some(value) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) {
                let value = value.trim_start().trim_start_matches(['"', '\'']);
                let literal: String = value
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !"\"'".contains(*c))
                    .collect();
                let reference = literal.starts_with(['$', '{', '<', '('])
                    || literal.contains("{{")
                    || literal.starts_with("os.environ")
                    || literal.starts_with("none")
                    || literal.starts_with("env")
                    || literal.starts_with("secrets.")
                    || literal.starts_with("getpass");
                if literal.len() >= 4 && !reference {
                    return Some(format!(
                        "looks like a secret: a literal assigned to `{name}`"
                    ));
                }
            }
            from += i + name.len();
        }
    }
    if words.iter().any(|w| high_entropy(w)) {
        return Some("looks like a secret: a long random-looking token".to_owned());
    }
    None
}

/// A token of 24 characters or more mixing letters and digits whose Shannon entropy is over
/// 4 bits per character (English words and paths stay well below).
fn high_entropy(word: &str) -> bool {
    if word.len() < 24 || word.contains('/') && word.contains('.') {
        return false;
    }
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let has_upper = word.chars().any(|c| c.is_ascii_uppercase());
    let has_lower = word.chars().any(|c| c.is_ascii_lowercase());
    if !(has_digit && has_lower && has_upper) {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for c in word.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = word.chars().count() as f64;
    let entropy: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    entropy > 4.0
}

/// What `rota plan` wrote for a runbook: the instance folder, the prepared copy, its sha256.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Instance {
    /// The dated folder.
    pub dir: PathBuf,
    /// The prepared copy in it.
    pub copy: PathBuf,
    /// Lower-case hex SHA-256 of the prepared copy.
    pub sha256: String,
    /// Files the runbook references, copied beside it (relative paths).
    pub copied: Vec<String>,
}

/// Writes the runbook's dated instance for `plan_id`: the prepared copy (parameters filled in)
/// and the files it references, in `runs/YYYY-MM-DD-<name>-<short id>/` of its library (the
/// nearest parent holding `runs/`, else a `runs/` beside the file), and `plan.json` recording
/// the plan and the copy's hash.
pub fn write_instance(
    path: &Path,
    job: &rota_core::model::Job,
    params: &serde_json::Map<String, Value>,
    plan_id: &str,
    plan_hash: &str,
) -> anyhow::Result<Instance> {
    use anyhow::Context as _;
    let source =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let library = library_of(&base).unwrap_or_else(|| base.clone());
    let day = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let short: String = plan_id
        .chars()
        .rev()
        .take(8)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    let dir = library
        .join("runs")
        .join(format!("{day}-{}-{}", job.id, short.to_lowercase()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let prepared = match Format::from_path(path) {
        Format::Notebook => prepared_notebook(&source, params)?,
        _ => prepared_markdown(&source, job, params),
    };
    let file_name = path.file_name().map_or_else(
        || std::ffi::OsString::from("runbook"),
        std::ffi::OsStr::to_owned,
    );
    let copy = dir.join(&file_name);
    std::fs::write(&copy, &prepared).with_context(|| format!("cannot write {}", copy.display()))?;
    let sha256 = hex::encode(Sha256::digest(prepared.as_bytes()));
    let mut copied = Vec::new();
    for reference in referenced_files(job, &base) {
        let target = dir.join(&reference);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(base.join(&reference), &target)
            .with_context(|| format!("cannot copy {reference}"))?;
        copied.push(reference);
    }
    let record = json!({
        "plan": plan_id, "plan_hash": plan_hash, "runbook": path,
        "copy": file_name.to_string_lossy(), "sha256": sha256, "params": params, "copied": copied,
    });
    std::fs::write(
        dir.join("plan.json"),
        serde_json::to_string_pretty(&record)? + "\n",
    )?;
    Ok(Instance {
        dir,
        copy,
        sha256,
        copied,
    })
}

/// Relative paths named by the job's steps (whole words of their configuration) that are
/// files beside the runbook.
fn referenced_files(job: &rota_core::model::Job, base: &Path) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut texts = Vec::new();
    for step in &job.steps {
        strings_of(
            &serde_json::to_value(&step.kind).unwrap_or_default(),
            &mut texts,
        );
    }
    for text in &texts {
        for word in text.split(|c: char| c.is_whitespace() || "\"'`,;()[]{}<>|&=".contains(c)) {
            let relative = Path::new(word);
            if word.is_empty()
                || relative.is_absolute()
                || word.contains("..")
                || word.contains('\\')
                || !base.join(relative).is_file()
            {
                continue;
            }
            found.insert(word.to_owned());
        }
    }
    // The runbook itself is written as the prepared copy.
    found.retain(|w| !w.ends_with(".ipynb") || job.steps.len() > 1);
    found.into_iter().collect()
}

/// Every string inside `value`.
fn strings_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings_of(v, out)),
        _ => {}
    }
}

/// The notebook with its parameters injected after the `parameters` cell, in a cell tagged
/// `injected-parameters` (replacing an earlier one), as papermill does.
fn prepared_notebook(
    source: &str,
    params: &serde_json::Map<String, Value>,
) -> anyhow::Result<String> {
    let mut notebook: Value = serde_json::from_str(source)?;
    let Some(cells) = notebook["cells"].as_array_mut() else {
        anyhow::bail!("the notebook has no cells");
    };
    cells.retain(|c| {
        !c["metadata"]["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "injected-parameters"))
    });
    let at = cells
        .iter()
        .position(|c| {
            c["metadata"]["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == runbook::PARAMETERS_TAG))
        })
        .map_or(0, |i| i + 1);
    let mut text = String::from("# Parameters\n");
    for (name, value) in params {
        text.push_str(&format!("{name} = {}\n", python_literal(value)));
    }
    cells.insert(
        at,
        json!({
            "cell_type": "code", "id": "injected-parameters", "execution_count": null,
            "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": text
        }),
    );
    Ok(serde_json::to_string_pretty(&notebook)? + "\n")
}

fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        // A JSON string literal is a valid Python one.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The Markdown runbook with its front matter's `params:` rewritten so each parameter's
/// default is the planned value (the rest of the document unchanged).
fn prepared_markdown(
    source: &str,
    job: &rota_core::model::Job,
    params: &serde_json::Map<String, Value>,
) -> String {
    let mut block = String::from("params:\n");
    for spec in &job.params {
        let mut fields = serde_json::Map::new();
        fields.insert(
            "type".into(),
            serde_json::to_value(spec.ty).unwrap_or_default(),
        );
        if let Some(value) = params.get(&spec.name).or(spec.default.as_ref()) {
            fields.insert("default".into(), value.clone());
        }
        if let Some(choices) = &spec.choices {
            fields.insert("enum".into(), json!(choices));
        }
        if let Some(help) = &spec.help {
            fields.insert("help".into(), json!(help));
        }
        block.push_str(&format!("  {}: {}\n", spec.name, Value::Object(fields)));
    }
    if job.params.is_empty() {
        return source.to_owned();
    }
    let doc = runbook::read_markdown(source);
    let Some((yaml, _)) = doc.front_matter else {
        return format!("---\n{block}---\n{source}");
    };
    let mut kept = String::new();
    let mut in_params = false;
    for line in yaml.split_inclusive('\n') {
        if line.starts_with("params:") {
            in_params = true;
            continue;
        }
        if in_params && (line.starts_with([' ', '\t']) || line.trim().is_empty()) {
            continue;
        }
        in_params = false;
        kept.push_str(line);
    }
    if !kept.is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    let rest = source.get(doc.body_start..).unwrap_or_default();
    format!("---\n{kept}{block}---\n{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_told_from_references() {
        assert!(secret_like("password = \"hunter22\"").is_some());
        assert!(secret_like("AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(secret_like("-----BEGIN RSA PRIVATE KEY-----").is_some());
        assert!(secret_like("x = 'q8Zr2LmX9vKp4TnW7yBs3HdF6gJc'").is_some());
        assert!(secret_like("token: \"{{ secrets.TOKEN }}\"").is_none());
        assert!(secret_like("password = os.environ[\"PW\"]").is_none());
        assert!(secret_like("echo \"checking (dry run: $ROTA_PARAM_DRY_RUN)\"").is_none());
    }

    #[test]
    fn python_literals_of_json_values() {
        assert_eq!(
            python_literal(&json!([1, "a\"b", true, null])),
            r#"[1, "a\"b", True, None]"#
        );
    }
}
