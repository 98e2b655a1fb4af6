//! `GET /api/v1/audit`: the audit log, for admins, and `GET /api/v1/audit/verify`, the
//! check of its hash chain.

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Query};
use rota_ops::records::{AfterQuery, AuditPage, AuditVerification, Problem};
use rota_ops::service::Audit as _;

/// Audit entries after a position, oldest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "listAuditEntries", tag = "audit", params(AfterQuery),
    responses((status = 200, body = AuditPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Query(query): Query<AfterQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(session.list_audit(query).await?))
}

/// Checks the whole hash chain: `intact`, or the first entry that was modified, deleted or
/// reordered since it was appended; then each ended run's steps and logs against the
/// digest its `run.finished` entry holds and each kept report's bytes against its `run.report` entry (as
/// `rota audit verify` does on the server's store).
#[utoipa::path(get, path = "/api/v1/audit/verify", operation_id = "verifyAuditChain", tag = "audit",
    responses((status = 200, body = AuditVerification),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn verify(Asking(session): Asking) -> Result<Json<AuditVerification>, ApiError> {
    Ok(Json(session.verify_audit().await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}
