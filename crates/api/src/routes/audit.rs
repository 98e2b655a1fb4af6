//! `GET /api/v1/audit`: the audit log, for admins, and `GET /api/v1/audit/verify`, the
//! check of its hash chain.

use axum::extract::State;
use rota_store::Role;

use super::AfterQuery;
use crate::auth::Caller;
use crate::extract::{Json, Query};
use crate::{ApiError, ApiState};
use rota_ops::auth::Scope;
use rota_ops::records::{AuditEntry, AuditPage, AuditVerification, Problem};

/// Audit entries after a position, oldest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "listAuditEntries", tag = "audit", params(AfterQuery),
    responses((status = 200, body = AuditPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Query(query): Query<AfterQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Scope::Global, Role::Admin)?;
    let (after, limit) = query.checked()?;
    let entries = state.store.list_audit(after, limit).await?;
    Ok(Json(AuditPage {
        next_after: entries.last().map_or(after, |e| e.id),
        items: entries.into_iter().map(AuditEntry::from).collect(),
    }))
}

/// Checks the whole hash chain: `intact`, or the first entry that was modified, deleted or
/// reordered since it was appended (as `rota audit verify` does on the server's store).
#[utoipa::path(get, path = "/api/v1/audit/verify", operation_id = "verifyAuditChain", tag = "audit",
    responses((status = 200, body = AuditVerification),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn verify(
    State(state): State<ApiState>,
    Caller(principal): Caller,
) -> Result<Json<AuditVerification>, ApiError> {
    principal.require(Scope::Global, Role::Admin)?;
    let verification = match state.store.check_audit_chain().await? {
        None => AuditVerification {
            intact: true,
            broken_entry: None,
            problem: None,
        },
        Some(broken) => AuditVerification {
            intact: false,
            broken_entry: Some(broken.entry_id),
            problem: Some(broken.what.to_string()),
        },
    };
    Ok(Json(verification))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}
