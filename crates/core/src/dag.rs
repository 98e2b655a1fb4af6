//! The step DAG: order and readiness.

use crate::model::Job;

/// Step indices in an order where every step comes after all of its `needs`.
/// Validation guarantees the job has no cycle and no unknown need.
pub fn topological_order(job: &Job) -> Vec<usize> {
    let index_of = |id: &str| job.steps.iter().position(|s| s.id == id);
    let mut indegree: Vec<usize> = job.steps.iter().map(|s| s.needs.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); job.steps.len()];
    for (i, step) in job.steps.iter().enumerate() {
        for need in &step.needs {
            if let Some(n) = index_of(need) {
                dependents[n].push(i);
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..job.steps.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(job.steps.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    order
}

/// The step `from` and every step downstream of it through `needs`, transitively: what a
/// retry "from a step" runs again. `None` when the job has no step `from`.
pub fn downstream(job: &Job, from: &str) -> Option<std::collections::BTreeSet<String>> {
    job.steps.iter().find(|s| s.id == from)?;
    let mut found = std::collections::BTreeSet::from([from.to_owned()]);
    // Steps come in any order, so sweep until a pass adds nothing; a job has few steps.
    loop {
        let before = found.len();
        for step in &job.steps {
            if step.needs.iter().any(|n| found.contains(n)) {
                found.insert(step.id.clone());
            }
        }
        if found.len() == before {
            return Some(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::downstream;
    use crate::parse::{Format, parse_str};

    #[test]
    fn downstream_follows_needs_transitively_and_skips_other_branches() {
        let source = "id: chain\nsteps:\n  \
            - { id: d, needs: [c], sh: 'true' }\n  \
            - { id: a, sh: 'true' }\n  \
            - { id: b, needs: [a], sh: 'true' }\n  \
            - { id: c, needs: [b], sh: 'true' }\n  \
            - { id: side, needs: [a], sh: 'true' }\n";
        let jobs = parse_str(source, "chain.yaml", Format::Yaml).expect("valid job");
        let ids = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(downstream(&jobs[0], "b"), Some(ids(&["b", "c", "d"])));
        assert_eq!(
            downstream(&jobs[0], "a"),
            Some(ids(&["a", "b", "c", "d", "side"]))
        );
        assert_eq!(downstream(&jobs[0], "d"), Some(ids(&["d"])));
        assert_eq!(downstream(&jobs[0], "nope"), None);
    }
}
