//! `GET /api/v1/audit`: the audit log, for admins.

use axum::extract::State;
use rota_store::Role;

use super::AfterQuery;
use crate::auth::{Principal, Scope};
use crate::extract::{Json, Query};
use crate::wire::{AuditEntry, AuditPage, Problem};
use crate::{ApiError, ApiState};

/// Audit entries after a position, oldest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AfterQuery),
    responses((status = 200, body = AuditPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    principal: Principal,
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
