//! The workers' operations of [`rota_ops::Rota`] over `/api/v1`. A claim waits at the
//! server for work, so its call may take that long; the lease calls must answer within a
//! fraction of a lease, or the worker would hold up its heartbeat behind one slow call.

use std::time::Duration;

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::{
    AttemptFinish, AttemptKey, AttemptLogs, Claim, ClaimAttempt, ClusterStatus, LeaseCall,
    LeaseRenewed, MAX_CLAIM_WAIT_MS,
};
use rota_ops::service::Workers;

use super::{Remote, seg};

/// Time for a lease call (heartbeat, lines, end) to answer.
const LEASE_CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// Time for a claim to answer beyond its wait at the server.
const CLAIM_SLACK: Duration = Duration::from_secs(10);

fn attempt_path(key: &AttemptKey, what: &str) -> String {
    format!(
        "/api/v1/attempts/{}/{}/{}/{what}",
        seg(&key.run_id),
        seg(&key.step_id),
        key.attempt
    )
}

impl Workers for Remote {
    async fn claim_attempt(&self, claim: ClaimAttempt) -> Result<Claim, OpsError> {
        let wait = Duration::from_millis(claim.wait_ms.min(MAX_CLAIM_WAIT_MS));
        Ok(self
            .send_json_within(
                Method::POST,
                "/api/v1/workers/claim",
                &claim,
                wait + CLAIM_SLACK,
            )
            .await?)
    }

    async fn renew_lease(
        &self,
        key: &AttemptKey,
        call: LeaseCall,
    ) -> Result<LeaseRenewed, OpsError> {
        Ok(self
            .send_json_within(
                Method::POST,
                &attempt_path(key, "heartbeat"),
                &call,
                LEASE_CALL_TIMEOUT,
            )
            .await?)
    }

    async fn send_attempt_logs(&self, key: &AttemptKey, logs: AttemptLogs) -> Result<(), OpsError> {
        Ok(self
            .send_within(
                Method::POST,
                &attempt_path(key, "logs"),
                &logs,
                LEASE_CALL_TIMEOUT,
            )
            .await?)
    }

    async fn finish_attempt(&self, key: &AttemptKey, end: AttemptFinish) -> Result<(), OpsError> {
        Ok(self
            .send_within(
                Method::POST,
                &attempt_path(key, "finish"),
                &end,
                LEASE_CALL_TIMEOUT,
            )
            .await?)
    }

    async fn cluster_status(&self) -> Result<ClusterStatus, OpsError> {
        Ok(self.get("/api/v1/cluster", &[]).await?)
    }
}
