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
