//! Cross-field checks on a converted job: unique step ids, known `needs`, no dependency
//! cycle, and template references that resolve (`params.X` declared, `steps.S` an ancestor,
//! `secrets.N` listed, `run.X` known, syntax valid).

use std::collections::HashMap;

use crate::convert::{Cx, Draft, TemplateSite};
use crate::limits::{MAX_CYCLE_SHOWN, MAX_CYCLES_REPORTED, MAX_HINTS, MAX_TEMPLATE_BYTES};
use crate::tree::Pos;

/// Fields of `run` visible to templates.
const RUN_FIELDS: &[&str] = &["id", "job", "namespace", "scheduled_at", "dry_run"];
/// Fields of `steps.<id>` visible to templates.
const STEP_FIELDS: &[&str] = &["outputs", "status", "exit_code"];
/// Global functions templates may call (minijinja builtins).
const GLOBAL_FUNCTIONS: &[&str] = &["range", "dict", "namespace", "debug"];

/// Runs every cross-field check on `draft`.
pub(crate) fn check(cx: &mut Cx, draft: &Draft) {
    let job = &draft.job;
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for (i, step) in job.steps.iter().enumerate() {
        if step.id.is_empty() {
            continue;
        }
        if let Some(&first) = index_of.get(step.id.as_str()) {
            cx.err(
                draft.step_pos[i],
                format!(
                    "duplicate step id `{}` (first defined at line {})",
                    step.id, draft.step_pos[first].line
                ),
            );
        } else {
            index_of.insert(&step.id, i);
        }
    }

    // Edges to known steps only; unknown needs are reported here.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); job.steps.len()];
    let mut hints_left = MAX_HINTS;
    for (i, step) in job.steps.iter().enumerate() {
        for (j, need) in step.needs.iter().enumerate() {
            match index_of.get(need.as_str()) {
                Some(&n) => edges[i].push(n),
                None => {
                    // A step is never its own suggestion: needing itself is a cycle, not a fix.
                    let hint = if hints_left > 0 {
                        hints_left -= 1;
                        closest(
                            need,
                            index_of.keys().copied().filter(|c| *c != step.id.as_str()),
                        )
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    let pos = draft
                        .needs_pos
                        .get(i)
                        .and_then(|p| p.get(j))
                        .copied()
                        .unwrap_or(draft.pos);
                    cx.err(
                        pos,
                        format!("step `{}` needs unknown step `{need}`{hint}", step.id),
                    );
                }
            }
        }
    }
    check_phases(cx, draft, &index_of, &mut edges);
    for cycle in cycles(&edges) {
        let Some(&first) = cycle.first() else {
            continue;
        };
        let pos = draft.step_pos.get(first).copied().unwrap_or(draft.pos);
        cx.err(pos, cycle_message(&cycle, |i| job.steps[i].id.as_str()));
    }

    let mut ancestors = Ancestors::new(&edges);
    let env = template_env();
    for site in &draft.templates {
        check_template(cx, &env, draft, site, &index_of, &mut ancestors);
    }
}

/// `rollback:` names a step of the job that runs only as that rollback, for one step only,
/// and no main-pass step needs a rollback or `finally` step (it would never start). A
/// rollback step sees the step it undoes as an ancestor (`edges`), so its templates may
/// read that step's outputs.
fn check_phases(
    cx: &mut Cx,
    draft: &Draft,
    index_of: &HashMap<&str, usize>,
    edges: &mut [Vec<usize>],
) {
    let job = &draft.job;
    let mut undone_by: HashMap<usize, usize> = HashMap::new();
    for (i, step) in job.steps.iter().enumerate() {
        let Some(target) = &step.rollback else {
            continue;
        };
        let pos = draft
            .rollback_pos
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(draft.step_pos[i]);
        let Some(&r) = index_of.get(target.as_str()) else {
            let hint = closest(
                target,
                index_of.keys().copied().filter(|c| *c != step.id.as_str()),
            )
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
            cx.err(
                pos,
                format!(
                    "step `{}` names unknown rollback step `{target}`{hint}",
                    step.id
                ),
            );
            continue;
        };
        let problem = if r == i {
            Some("a step cannot be its own rollback".to_owned())
        } else if job.steps[r].finally {
            Some(format!("`{target}` is a `finally` step, which always runs"))
        } else if job.steps[r].rollback.is_some() {
            Some(format!("`{target}` declares a rollback of its own"))
        } else if let Some(&first) = undone_by.get(&r) {
            Some(format!(
                "`{target}` is already the rollback of `{}`",
                job.steps[first].id
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => cx.err(pos, format!("`rollback` of step `{}`: {problem}", step.id)),
            None => {
                undone_by.insert(r, i);
                edges[r].push(i);
            }
        }
    }
    for (i, step) in job.steps.iter().enumerate() {
        for (j, need) in step.needs.iter().enumerate() {
            let Some(&n) = index_of.get(need.as_str()) else {
                continue;
            };
            let only = match (job.steps[n].finally, undone_by.get(&n)) {
                (true, _) => "a `finally` step".to_owned(),
                (false, Some(&owner)) => format!("the rollback of `{}`", job.steps[owner].id),
                (false, None) => continue,
            };
            let pos = draft
                .needs_pos
                .get(i)
                .and_then(|p| p.get(j))
                .copied()
                .unwrap_or(draft.pos);
            cx.err(
                pos,
                format!(
                    "step `{}` needs `{need}`, which runs only as {only}",
                    step.id
                ),
            );
        }
    }
}

/// "dependency cycle: a -> b -> a", naming at most [`MAX_CYCLE_SHOWN`] steps of a long cycle.
fn cycle_message<'a>(cycle: &[usize], name: impl Fn(usize) -> &'a str) -> String {
    let shown: Vec<&str> = cycle
        .iter()
        .take(MAX_CYCLE_SHOWN)
        .map(|&i| name(i))
        .collect();
    let back_to = shown.first().copied().unwrap_or_default();
    if cycle.len() > MAX_CYCLE_SHOWN {
        format!(
            "dependency cycle of {} steps: {} -> … -> {back_to}",
            cycle.len(),
            shown.join(" -> ")
        )
    } else {
        format!("dependency cycle: {} -> {back_to}", shown.join(" -> "))
    }
}

/// Up to [`MAX_CYCLES_REPORTED`] dependency cycles, each found once by a depth-first search
/// and given in run order starting at the step that comes first in the file. Time and memory
/// are linear in steps plus `needs` (each back edge closes a distinct cycle, so none repeats).
fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    /// Not yet visited; on the active path (at this depth); finished.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active(usize),
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut found: Vec<Vec<usize>> = Vec::new();
    for root in 0..edges.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative DFS: the active path in `path`, each node's next edge index in `next`.
        let mut path: Vec<usize> = vec![root];
        let mut next: Vec<usize> = vec![0];
        marks[root] = Mark::Active(0);
        while let Some(&node) = path.last() {
            let k = next.last().copied().unwrap_or(0);
            let Some(&to) = edges.get(node).and_then(|e| e.get(k)) else {
                marks[node] = Mark::Done;
                path.pop();
                next.pop();
                continue;
            };
            if let Some(top) = next.last_mut() {
                *top += 1;
            }
            match marks[to] {
                Mark::New => {
                    marks[to] = Mark::Active(path.len());
                    path.push(to);
                    next.push(0);
                }
                Mark::Active(depth) => {
                    let mut cycle: Vec<usize> = path[depth..].to_vec();
                    // The path follows `needs` edges; show it in run order (a -> b means
                    // b needs a) by reversing, starting at the smallest index.
                    cycle.reverse();
                    let min_at = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, &v)| v)
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(min_at);
                    found.push(cycle);
                    if found.len() >= MAX_CYCLES_REPORTED {
                        return found;
                    }
                }
                Mark::Done => {}
            }
        }
    }
    found
}

/// Which steps are ancestors (transitively needed) of a step, computed on demand for one
/// step at a time: keeping every step's set would be quadratic in memory. Template sites come
/// grouped by step, so each step's set is computed about once.
struct Ancestors<'e> {
    edges: &'e [Vec<usize>],
    of: Option<usize>,
    seen: Vec<bool>,
}

impl<'e> Ancestors<'e> {
    fn new(edges: &'e [Vec<usize>]) -> Self {
        Ancestors {
            edges,
            of: None,
            seen: Vec::new(),
        }
    }

    /// Whether `target` is reachable from `step` through `needs` (itself only through a cycle).
    fn contains(&mut self, step: usize, target: usize) -> bool {
        if self.of != Some(step) {
            self.seen.clear();
            self.seen.resize(self.edges.len(), false);
            let mut todo: Vec<usize> = self.edges.get(step).cloned().unwrap_or_default();
            while let Some(n) = todo.pop() {
                if let Some(slot) = self.seen.get_mut(n)
                    && !*slot
                {
                    *slot = true;
                    todo.extend(self.edges.get(n).into_iter().flatten());
                }
            }
            self.of = Some(step);
        }
        self.seen.get(target).copied().unwrap_or(false)
    }
}

/// The closest name within edit distance 2 (and short of rewriting it whole), for "did you
/// mean" hints. Names whose lengths
/// differ by more than 2 cannot be that close and are skipped without the quadratic distance.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    candidates
        .filter(|c| c.chars().count().abs_diff(len) <= 2)
        .map(|c| (strsim::levenshtein(name, c), c))
        // A name every character of which must change is no near miss (`zz` is not `b`).
        .filter(|&(d, _)| d <= 2 && d < len)
        .min()
        .map(|(_, c)| c)
}

/// The environment used to analyse templates; it matches the one `template::render` uses.
fn template_env() -> minijinja::Environment<'static> {
    crate::template::environment()
}

fn check_template(
    cx: &mut Cx,
    env: &minijinja::Environment<'static>,
    draft: &Draft,
    site: &TemplateSite,
    index_of: &HashMap<&str, usize>,
    ancestors: &mut Ancestors<'_>,
) {
    if site.text.len() > MAX_TEMPLATE_BYTES {
        cx.err(
            site.pos,
            format!(
                "text too long: {} bytes (a template, expression or command holds at most {MAX_TEMPLATE_BYTES})",
                site.text.len()
            ),
        );
        return;
    }
    if site.is_expr && closes_a_tag(&site.text) {
        // minijinja's expression lexer panics on a `}}` outside a string; refuse it first.
        cx.err(
            site.pos,
            "invalid `if` expression: unexpected `}}` (an `if:` expression is written without `{{ }}`)",
        );
        return;
    }
    // The template engine is outside code: should it still panic on some text, the panic is
    // this template's error rather than the caller's crash (the analysis keeps no state).
    let guarded =
        |f: &dyn Fn() -> Option<Result<std::collections::HashSet<String>, minijinja::Error>>| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(None)
        };
    let names = if site.is_expr {
        let analysed = guarded(&|| {
            Some(
                env.compile_expression(&site.text)
                    .map(|expr| expr.undeclared_variables(true)),
            )
        });
        let Some(analysed) = analysed else {
            cx.err(
                site.pos,
                "invalid `if` expression: the template engine cannot read it",
            );
            return;
        };
        match analysed {
            Ok(names) => names,
            Err(e) => {
                cx.err(
                    site.pos,
                    format!("invalid `if` expression: {}", crate::template::describe(&e)),
                );
                return;
            }
        }
    } else {
        if !site.text.contains("{{") && !site.text.contains("{%") && !site.text.contains("{#") {
            return;
        }
        let analysed = guarded(&|| {
            Some(
                env.template_from_str(&site.text)
                    .map(|t| t.undeclared_variables(true)),
            )
        });
        let Some(analysed) = analysed else {
            cx.err(
                site.pos,
                "invalid template: the template engine cannot read it",
            );
            return;
        };
        match analysed {
            Ok(names) => names,
            Err(e) => {
                cx.err(
                    site.pos,
                    format!("invalid template: {}", crate::template::describe(&e)),
                );
                return;
            }
        }
    };
    for unknown in crate::template::unknown_names(&site.text, site.is_expr) {
        let pos = locate(cx, site, &unknown.name);
        let line = match unknown.line {
            1 => String::new(),
            n => format!(" (template line {n})"),
        };
        cx.err(
            pos,
            format!("unknown {} `{}`{line}", unknown.kind, unknown.name),
        );
    }
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    for name in names {
        let problem = if site.notify {
            notify_reference_problem(&name)
                .or_else(|| reference_problem(&name, draft, site.step, index_of, ancestors))
        } else {
            reference_problem(&name, draft, site.step, index_of, ancestors)
        };
        if let Some(message) = problem {
            let pos = locate(cx, site, &name);
            cx.err(pos, message);
        }
    }
}

/// Whether an expression holds `}}` outside a string literal.
fn closes_a_tag(expr: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut previous = None;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' && previous == Some('}') => return true,
            None => {}
        }
        previous = Some(c);
    }
    false
}

/// Points at the reference inside the template when the template is written verbatim on
/// one source line (plain or simply quoted); otherwise at the start of the value.
fn locate(cx: &Cx, site: &TemplateSite, name: &str) -> Pos {
    let Some(in_text) = find_reference(&site.text, name) else {
        return site.pos;
    };
    if site.text.contains('\n') {
        return site.pos;
    }
    let Some(line) = cx.lines.get(site.pos.line.saturating_sub(1)) else {
        return site.pos;
    };
    let chars: Vec<char> = line.chars().collect();
    let text: Vec<char> = site.text.chars().collect();
    let start = site.pos.col.saturating_sub(1);
    for skip in [0, 1] {
        let from = start + skip;
        if chars.get(from..from + text.len()) == Some(&text[..]) {
            let offset = site.text[..in_text].chars().count();
            return Pos {
                line: site.pos.line,
                col: from + offset + 1,
            };
        }
    }
    site.pos
}

/// Byte offset of a dotted reference in a template, matching whole names only.
fn find_reference(text: &str, name: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).map(|(i, _)| i).find(|&i| {
        !text[..i].ends_with(|c: char| is_ident(c) || c == '.')
            && !text[i + name.len()..].starts_with(is_ident)
    })
}

/// Notification templates are rendered when the notification is sent, from what the run
/// recorded: its parameters, its facts and the job's secrets; step results are not there.
fn notify_reference_problem(name: &str) -> Option<String> {
    let root = name.split('.').next().unwrap_or_default();
    match root {
        "params" | "secrets" | "run" => None,
        root if GLOBAL_FUNCTIONS.contains(&root) => None,
        _ => Some(format!(
            "unknown template reference `{name}` in a notification (expected params, secrets or run)"
        )),
    }
}

fn reference_problem(
    name: &str,
    draft: &Draft,
    step: Option<usize>,
    index_of: &HashMap<&str, usize>,
    ancestors: &mut Ancestors<'_>,
) -> Option<String> {
    let job = &draft.job;
    let parts: Vec<&str> = name.split('.').collect();
    let list = |items: Vec<&str>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    match parts[0] {
        "params" => {
            let declared: Vec<&str> = job.params.iter().map(|p| p.name.as_str()).collect();
            let field = parts.get(1)?;
            (!declared.contains(field)).then(|| {
                format!(
                    "unknown template reference `params.{field}` (declared params: {})",
                    list(declared)
                )
            })
        }
        "secrets" => {
            let declared: Vec<&str> = job.secrets.iter().map(String::as_str).collect();
            let field = parts.get(1)?;
            (!declared.contains(field)).then(|| {
                format!(
                    "unknown template reference `secrets.{field}` (declared secrets: {})",
                    list(declared)
                )
            })
        }
        "run" => {
            let field = parts.get(1)?;
            (!RUN_FIELDS.contains(field)).then(|| {
                format!(
                    "unknown template reference `run.{field}` (run has: {})",
                    RUN_FIELDS.join(", ")
                )
            })
        }
        "steps" => {
            let target = parts.get(1)?;
            let Some(&t) = index_of.get(target) else {
                let dashed = job
                    .steps
                    .iter()
                    .find(|s| s.id.starts_with(&format!("{target}-")));
                let hint = match dashed {
                    Some(s) => format!(
                        " (a step id with `-` must be written `steps[\"{}\"]`)",
                        s.id
                    ),
                    None => String::new(),
                };
                return Some(format!(
                    "unknown template reference `{name}`: there is no step `{target}`{hint}"
                ));
            };
            if let Some(field) = parts.get(2)
                && !STEP_FIELDS.contains(field)
            {
                return Some(format!(
                    "unknown template reference `{name}` (a step has: {})",
                    STEP_FIELDS.join(", ")
                ));
            }
            match step {
                None => Some(format!(
                    "template reference `{name}` cannot be used in job-level `env` (step results exist only for steps that need `{target}`)"
                )),
                Some(s) if !ancestors.contains(s, t) => Some(format!(
                    "step `{}` references `{name}` but `{target}` is not among its `needs` (directly or transitively)",
                    job.steps.get(s).map_or("", |step| step.id.as_str())
                )),
                Some(_) => None,
            }
        }
        root if GLOBAL_FUNCTIONS.contains(&root) => None,
        root => Some(format!(
            "unknown template reference `{root}` (expected params, steps, secrets or run)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_in_run_order() {
        // 0 needs 1, 1 needs 0; 2 needs 2.
        let edges = vec![vec![1], vec![0], vec![2]];
        assert_eq!(cycles(&edges), vec![vec![0, 1], vec![2]]);
        let acyclic = vec![vec![], vec![0], vec![0, 1]];
        assert!(cycles(&acyclic).is_empty());
    }

    #[test]
    fn closing_braces_are_found_outside_strings_only() {
        assert!(closes_a_tag("p}}arams.x == 1"));
        assert!(closes_a_tag("a } } }}"));
        assert!(!closes_a_tag("params.x == \"}}\""));
        assert!(!closes_a_tag("params.x == '\\'}}'"));
    }

    #[test]
    fn near_misses_are_within_two_edits() {
        assert_eq!(
            closest("biuld", ["build", "deploy"].into_iter()),
            Some("build")
        );
        assert_eq!(closest("zzz", ["build"].into_iter()), None);
    }

    #[test]
    fn references_are_found_as_whole_names() {
        assert_eq!(
            find_reference("{{ xparams.a }} {{ params.a }}", "params.a"),
            Some(19)
        );
        assert_eq!(find_reference("{{ params.ab }}", "params.a"), None);
    }

    #[test]
    fn positions_are_ordered_by_line_then_column() {
        assert!(Pos { line: 1, col: 9 } < Pos { line: 2, col: 1 });
    }
}
