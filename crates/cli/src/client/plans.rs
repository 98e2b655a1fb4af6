//! The plans operations of [`rota_ops::Rota`] over `/api/v1`.

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::{CreatePlan, DecidePlan, Plan, PlanPage, PlanQuery, Run};
use rota_ops::service::Plans;
use rota_ops::service::plans::Verdict;

use super::{Remote, seg};

impl Plans for Remote {
    async fn create_plan(
        &self,
        namespace: &str,
        job: &str,
        request: CreatePlan,
    ) -> Result<Plan, OpsError> {
        let path = format!(
            "/api/v1/namespaces/{}/jobs/{}/plans",
            seg(namespace),
            seg(job)
        );
        Ok(self.send(Method::POST, &path, &request).await?)
    }

    async fn list_plans(&self, query: PlanQuery) -> Result<PlanPage, OpsError> {
        let mut pairs = super::jobs::page(query.limit, query.cursor);
        if let Some(namespace) = query.namespace {
            pairs.push(("namespace", namespace.to_string()));
        }
        if let Some(status) = query.status {
            pairs.push(("status", status));
        }
        Ok(self.get("/api/v1/plans", &pairs).await?)
    }

    async fn get_plan(&self, id: &str) -> Result<Plan, OpsError> {
        Ok(self.get(&format!("/api/v1/plans/{}", seg(id)), &[]).await?)
    }

    async fn decide_plan(
        &self,
        id: &str,
        verdict: Verdict,
        decision: DecidePlan,
    ) -> Result<Plan, OpsError> {
        let path = format!("/api/v1/plans/{}/{}", seg(id), verdict.as_str());
        Ok(self.send(Method::POST, &path, &decision).await?)
    }

    async fn apply_plan(&self, id: &str) -> Result<Run, OpsError> {
        let path = format!("/api/v1/plans/{}/apply", seg(id));
        Ok(self
            .send(Method::POST, &path, &serde_json::json!({}))
            .await?)
    }
}
