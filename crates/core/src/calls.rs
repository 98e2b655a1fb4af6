//! Calls between jobs (`job:` steps) and their cycles.
//!
//! A job that calls itself, directly or through others, would start runs without end, so a
//! cycle is refused wherever jobs are loaded together: the jobs of one file
//! ([`crate::parse::parse_str`]), the files of one `rota validate`, a server's job
//! directory, and a job saved against those already stored. Each check is handed the call
//! sites of the jobs being loaded (with their positions) and the calls of the other jobs
//! it knows; a cycle through a loaded job is reported at the call that enters it, as
//! `job call cycle: a → b → a`. (Jobs can still change after they are checked: the engine
//! bounds the chain of runs at run time too.)

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::diag::Diagnostic;
use crate::kinds::job::JobStep;
use crate::model::Job;

/// Most cycles one check reports.
pub const MAX_CYCLES_REPORTED: usize = 10;

/// Most jobs a cycle's message names before it is shortened.
const MAX_CYCLE_SHOWN: usize = 12;

/// A `job:` step of a loaded job, with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// The calling job.
    pub job: String,
    /// Its namespace as the file gives it (`None`: the namespace it is loaded into).
    pub namespace: Option<String>,
    /// The `job:` step.
    pub step: String,
    /// The job it calls.
    pub callee: String,
    /// Line of the step (1-based).
    pub line: usize,
    /// Column of the step (1-based).
    pub col: usize,
}

/// The jobs a job calls (its `job:` steps), in step order, without repeats.
pub fn callees(job: &Job) -> Vec<String> {
    let mut seen = BTreeSet::new();
    job.steps
        .iter()
        .filter(|s| s.kind.name() == "job")
        .filter_map(|s| s.kind.decode::<JobStep>().ok())
        .map(|j| j.id)
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// One file's call sites, as the check takes them.
#[derive(Debug, Clone)]
pub struct LoadedCalls<'a> {
    /// The file, as diagnostics name it.
    pub file: &'a str,
    /// Its jobs' ids, also those that call nothing (a loaded job replaces a stored one).
    pub jobs: Vec<String>,
    /// Its `job:` steps.
    pub calls: &'a [CallSite],
}

/// The cycles of calls through the loaded jobs, each reported once at the call that
/// enters it from the first loaded job in it; `known` holds the calls of every other job
/// of the namespace (a loaded job's own entry there is ignored).
pub fn cycles(
    loaded: &[LoadedCalls<'_>],
    known: &BTreeMap<String, Vec<String>>,
) -> Vec<Diagnostic> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (job, callees) in known {
        graph.insert(job, callees.iter().map(String::as_str).collect());
    }
    for file in loaded {
        for job in &file.jobs {
            graph.insert(job, Vec::new());
        }
    }
    for file in loaded {
        for call in file.calls {
            let edges = graph.entry(&call.job).or_default();
            if !edges.contains(&call.callee.as_str()) {
                edges.push(&call.callee);
            }
        }
    }
    let mut found: BTreeSet<Vec<&str>> = BTreeSet::new();
    let mut out = Vec::new();
    for file in loaded {
        for call in file.calls {
            if out.len() >= MAX_CYCLES_REPORTED {
                return out;
            }
            let Some(path) = path_between(&graph, &call.callee, &call.job) else {
                continue;
            };
            // `call.job → path…` with path ending at call.job: the cycle's jobs.
            let mut cycle: Vec<&str> = vec![call.job.as_str()];
            cycle.extend(path.iter().take(path.len().saturating_sub(1)));
            let mut key = cycle.clone();
            let min_at = key
                .iter()
                .enumerate()
                .min_by_key(|(_, name)| **name)
                .map_or(0, |(i, _)| i);
            key.rotate_left(min_at);
            if !found.insert(key) {
                continue;
            }
            out.push(Diagnostic {
                file: file.file.to_owned(),
                line: call.line,
                col: call.col,
                message: cycle_message(&cycle, &call.step),
            });
        }
    }
    out
}

/// "job call cycle: a → b → a (step `call` of job `a` starts it)".
fn cycle_message(cycle: &[&str], step: &str) -> String {
    let first = cycle.first().copied().unwrap_or_default();
    let shown: Vec<&str> = cycle.iter().copied().take(MAX_CYCLE_SHOWN).collect();
    let path = if cycle.len() > MAX_CYCLE_SHOWN {
        format!("{} → … → {first}", shown.join(" → "))
    } else {
        format!("{} → {first}", shown.join(" → "))
    };
    format!(
        "job call cycle: {path} (step `{step}` of job `{first}` calls `{}`)",
        cycle.get(1).copied().unwrap_or(first)
    )
}

/// The shortest chain of calls from `from` to `to`, `from` and `to` included (`[to]` when
/// they are the same job).
fn path_between<'g>(
    graph: &BTreeMap<&'g str, Vec<&'g str>>,
    from: &'g str,
    to: &str,
) -> Option<Vec<&'g str>> {
    let mut before: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![at];
            let mut cur = at;
            while let Some(prev) = before.get(cur) {
                path.push(prev);
                cur = prev;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(at).into_iter().flatten() {
            if seen.insert(next) {
                before.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The cycles of calls across files loaded together (`rota validate a.yaml b.yaml`, a job
/// directory), namespace by namespace (a job without `namespace:` is in the namespace the
/// files are loaded into, the same for all); `known` holds the calls of other jobs of
/// that namespace (stored ones), by job id.
pub fn across_files(
    files: &[(&str, &crate::parse::JobFile)],
    known: &BTreeMap<String, Vec<String>>,
) -> Vec<Diagnostic> {
    let namespaces: BTreeSet<Option<&str>> = files
        .iter()
        .flat_map(|(_, f)| f.jobs.iter().map(|j| j.namespace.as_deref()))
        .collect();
    let mut out = Vec::new();
    for namespace in namespaces {
        let sites: Vec<Vec<CallSite>> = files
            .iter()
            .map(|(_, f)| {
                f.calls
                    .iter()
                    .filter(|c| c.namespace.as_deref() == namespace)
                    .cloned()
                    .collect()
            })
            .collect();
        let loaded: Vec<LoadedCalls<'_>> = files
            .iter()
            .zip(&sites)
            .map(|((origin, f), calls)| LoadedCalls {
                file: origin,
                jobs: f
                    .jobs
                    .iter()
                    .filter(|j| j.namespace.as_deref() == namespace)
                    .map(|j| j.id.clone())
                    .collect(),
                calls,
            })
            .collect();
        out.extend(cycles(&loaded, known));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(job: &str, callee: &str, line: usize) -> CallSite {
        CallSite {
            job: job.into(),
            namespace: None,
            step: "call".into(),
            callee: callee.into(),
            line,
            col: 5,
        }
    }

    #[test]
    fn a_cycle_is_reported_once_with_its_path() {
        let calls = [site("aaa", "bbb", 3), site("bbb", "aaa", 9)];
        let loaded = [LoadedCalls {
            file: "f.yaml",
            jobs: vec!["aaa".into(), "bbb".into()],
            calls: &calls,
        }];
        let found = cycles(&loaded, &BTreeMap::new());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 3);
        assert!(
            found[0]
                .message
                .starts_with("job call cycle: aaa → bbb → aaa"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn stored_calls_close_a_cycle_and_a_loaded_job_replaces_its_stored_self() {
        let calls = [site("aaa", "bbb", 3)];
        let loaded = [LoadedCalls {
            file: "f.yaml",
            jobs: vec!["aaa".into()],
            calls: &calls,
        }];
        let known = BTreeMap::from([
            ("bbb".to_owned(), vec!["ccc".to_owned()]),
            ("ccc".to_owned(), vec!["aaa".to_owned()]),
        ]);
        let found = cycles(&loaded, &known);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .starts_with("job call cycle: aaa → bbb → ccc → aaa"),
            "{}",
            found[0].message
        );
        let known = BTreeMap::from([("aaa".to_owned(), vec!["aaa".to_owned()])]);
        assert!(
            cycles(
                &[LoadedCalls {
                    file: "f",
                    jobs: vec!["aaa".into()],
                    calls: &[]
                }],
                &known
            )
            .is_empty()
        );
    }

    #[test]
    fn a_job_calling_itself_is_a_cycle() {
        let calls = [site("aaa", "aaa", 2)];
        let loaded = [LoadedCalls {
            file: "f",
            jobs: vec!["aaa".into()],
            calls: &calls,
        }];
        let found = cycles(&loaded, &BTreeMap::new());
        assert!(
            found[0].message.starts_with("job call cycle: aaa → aaa"),
            "{}",
            found[0].message
        );
    }
}
