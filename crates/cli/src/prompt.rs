//! Asking at an interactive terminal for the required parameters a run was not given.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};

use rota_core::model::{Job, ParamSpec, Value};

use crate::run_cmd::UsageError;

/// Asks on stderr, reading stdin, for each required parameter (no default) that neither
/// `file_values` nor `given` holds; a value that does not fit is asked again. Returns the
/// answers as `-p` pairs. End of input stops with a usage error naming the parameter.
pub(crate) fn ask_missing(
    job: &Job,
    file_values: &BTreeMap<String, Value>,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, UsageError> {
    let missing = job.params.iter().filter(|spec| {
        spec.default.is_none()
            && !file_values.contains_key(&spec.name)
            && !given.iter().any(|(name, _)| *name == spec.name)
    });
    let mut answers = Vec::new();
    for spec in missing {
        answers.push((spec.name.clone(), ask(spec)?));
    }
    Ok(answers)
}

/// Asks for one parameter until the answer fits its type and choices.
fn ask(spec: &ParamSpec) -> Result<String, UsageError> {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", describe(spec));
    let stdin = std::io::stdin();
    loop {
        let _ = write!(stderr, "{}: ", spec.name);
        let _ = stderr.flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                let _ = writeln!(stderr);
                return Err(UsageError(format!(
                    "rota: parameter {}: no value given; pass -p {}=VALUE",
                    spec.name, spec.name
                )));
            }
            Ok(_) => {}
        }
        let answer = line.trim_end_matches(['\n', '\r']);
        match rota_core::params::accept(spec, answer) {
            Ok(_) => return Ok(answer.to_owned()),
            Err(why) => {
                let _ = writeln!(stderr, "  {why}; try again");
            }
        }
    }
}

/// The parameter as the question shows it: name, type, help text and choices.
fn describe(spec: &ParamSpec) -> String {
    let mut text = format!(
        "Parameter {} ({}, required)",
        spec.name,
        rota_core::params::type_name_of(spec.ty)
    );
    if let Some(help) = &spec.help {
        text.push_str(": ");
        text.push_str(help);
    }
    if let Some(choices) = &spec.choices {
        let shown: Vec<String> = choices
            .iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        text.push_str(&format!("\n  choices: {}", shown.join(", ")));
    }
    text
}
