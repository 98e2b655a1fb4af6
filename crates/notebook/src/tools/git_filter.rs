//! `rota notebook git-filter install`: a git clean filter that strips every notebook as it
//! is staged, so outputs never reach a commit while the working copy keeps them.
//!
//! It sets `filter.rota-strip.clean` (the `rota notebook strip --stdin` command),
//! `.smudge` (`cat`: checkouts are left alone) and `.required` (a failing filter fails the
//! `git add` rather than staging the unstripped file), and adds `*.ipynb
//! filter=rota-strip` to the repository's `.gitattributes` (with `--global`: to git's
//! global config and attributes file). Running it again changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ToolError;

/// Name of the filter in git's config and attributes.
pub const FILTER: &str = "rota-strip";

/// The attributes line that routes notebooks through the filter.
pub fn attributes_line() -> String {
    format!("*.ipynb filter={FILTER}")
}

/// What `install` did, for the user.
#[derive(Debug, Default)]
pub struct Installed {
    /// The attributes file written (or already holding the line).
    pub attributes: PathBuf,
    /// Whether the attributes line was added now.
    pub added_line: bool,
    /// The clean command configured.
    pub clean: String,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, ToolError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| ToolError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(ToolError::Git(format!(
            "`git {}` failed: {}",
            args.join(" "),
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// The command line git runs as the clean filter: `rota` when the `rota` on `PATH` is this
/// program, else this program's absolute path (a build tree, an unpacked release), quoted
/// for git's shell.
pub fn clean_command(exe: &Path) -> String {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rota"))
            .find(|candidate| candidate.is_file())
    });
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let program = match on_path {
        Some(found) if same(&found, exe) => "rota".to_owned(),
        _ => shell_quote(&exe.to_string_lossy()),
    };
    format!("{program} notebook strip --stdin")
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+'))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Set up the filter for the repository around `dir` (or globally), idempotently.
pub fn install(dir: &Path, global: bool, exe: &Path) -> Result<Installed, ToolError> {
    let scope: &[&str] = if global {
        &["config", "--global"]
    } else {
        &["config", "--local"]
    };
    let attributes = if global {
        global_attributes_file(dir)?
    } else {
        let top = git(dir, &["rev-parse", "--show-toplevel"])?;
        PathBuf::from(top).join(".gitattributes")
    };
    let clean = clean_command(exe);
    for (key, value) in [
        ("clean", clean.as_str()),
        ("smudge", "cat"),
        ("required", "true"),
    ] {
        let name = format!("filter.{FILTER}.{key}");
        let mut args = scope.to_vec();
        args.extend([name.as_str(), value]);
        git(dir, &args)?;
    }
    let added_line = add_line(&attributes, &attributes_line())?;
    Ok(Installed {
        attributes,
        added_line,
        clean,
    })
}

/// Git's global attributes file: `core.attributesFile`, else
/// `$XDG_CONFIG_HOME/git/attributes`, else `~/.config/git/attributes`.
fn global_attributes_file(dir: &Path) -> Result<PathBuf, ToolError> {
    if let Ok(path) = git(
        dir,
        &["config", "--global", "--path", "core.attributesFile"],
    ) && !path.is_empty()
    {
        return Ok(PathBuf::from(path));
    }
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(xdg) => PathBuf::from(xdg),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".config"))
            .ok_or_else(|| ToolError::Usage("neither XDG_CONFIG_HOME nor HOME is set".into()))?,
    };
    Ok(config.join("git").join("attributes"))
}

/// Append `line` to the file unless a line equal to it is there. Returns whether it added.
fn add_line(path: &Path, line: &str) -> Result<bool, ToolError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ToolError::io(path, e)),
    };
    if existing.lines().any(|l| l.trim() == line) {
        return Ok(false);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ToolError::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| ToolError::io(path, e))?;
    Ok(true)
}
