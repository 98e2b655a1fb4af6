//! The schedules operations of [`rota_ops::Rota`] over `/api/v1`.

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::{
    Backfill, BackfillResult, HistoryQuery, NextQuery, OccurrenceList, ResumeSchedule,
    ScheduleNext, ScheduleState,
};
use rota_ops::service::Schedules;

use super::{ApiFailure, Remote, seg};

impl Remote {
    /// `GET path?query` answered with JSON, the query being a record (`HistoryQuery`,
    /// `TokenPageQuery`, …) serialized as the route reads it.
    pub(super) async fn get_query<Q: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ApiFailure> {
        let request = self.request(Method::GET, path).query(query);
        self.json(request).await
    }
}

/// `/api/v1/namespaces/{namespace}/jobs/{job}/schedule`.
fn schedule_path(namespace: &str, job: &str) -> String {
    format!(
        "/api/v1/namespaces/{}/jobs/{}/schedule",
        seg(namespace),
        seg(job)
    )
}

impl Schedules for Remote {
    async fn schedule_history(
        &self,
        namespace: &str,
        job: &str,
        history: HistoryQuery,
    ) -> Result<OccurrenceList, OpsError> {
        let path = format!("{}/history", schedule_path(namespace, job));
        Ok(self.get_query(&path, &history).await?)
    }

    async fn pause_schedule(&self, namespace: &str, job: &str) -> Result<ScheduleState, OpsError> {
        let path = format!("{}/pause", schedule_path(namespace, job));
        Ok(self
            .send(Method::POST, &path, &serde_json::json!({}))
            .await?)
    }

    async fn resume_schedule(
        &self,
        namespace: &str,
        job: &str,
        resume: ResumeSchedule,
    ) -> Result<ScheduleState, OpsError> {
        let path = format!("{}/resume", schedule_path(namespace, job));
        Ok(self.send(Method::POST, &path, &resume).await?)
    }

    async fn schedule_next(
        &self,
        namespace: &str,
        job: &str,
        next: NextQuery,
    ) -> Result<ScheduleNext, OpsError> {
        let path = schedule_path(namespace, job);
        Ok(self.get_query(&path, &next).await?)
    }

    async fn backfill_schedule(
        &self,
        namespace: &str,
        job: &str,
        range: Backfill,
    ) -> Result<BackfillResult, OpsError> {
        let path = format!("{}/backfill", schedule_path(namespace, job));
        Ok(self.send(Method::POST, &path, &range).await?)
    }
}
