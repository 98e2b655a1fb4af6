//! A run's artifacts: the list (`GET /api/v1/runs/{id}/artifacts`) and one file's bytes
//! (`GET /api/v1/runs/{id}/artifacts/{step}/{path}`, the path's `/`s included), read with
//! the rights of a run read.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rota_ops::ids::{ArtifactPath, ArtifactStep, RunId};
use rota_ops::records::{Artifact, Problem};
use rota_ops::service::Artifacts as _;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Path, Query};

/// `GET /api/v1/runs/{id}/artifacts` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ArtifactQuery {
    /// Only this step's artifacts (`@run`: the run's kept report).
    step: Option<String>,
}

/// A run's artifacts (or one step's), by step then path.
#[utoipa::path(get, path = "/api/v1/runs/{id}/artifacts", operation_id = "listRunArtifacts",
    tag = "runs",
    params(("id" = RunId, Path, description = "Run id"), ArtifactQuery),
    responses((status = 200, body = Vec<Artifact>),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    Query(query): Query<ArtifactQuery>,
) -> Result<Json<Vec<Artifact>>, ApiError> {
    Ok(Json(session.list_artifacts(id.as_str(), query.step).await?))
}

/// One artifact's bytes, as an attachment named after its file.
///
/// The route matches the rest of the URL as `path` (`{*path}` to the router; the document
/// names it `{path}`, see `openapi::routes`).
#[utoipa::path(get, path = "/api/v1/runs/{id}/artifacts/{step}/{*path}",
    operation_id = "getRunArtifact", tag = "runs",
    params(("id" = RunId, Path, description = "Run id"),
           ("step" = ArtifactStep, Path, description = "Step id, or `@run` for the run's kept report"),
           ("path" = ArtifactPath, Path, description = "The artifact's path, `/`s included")),
    responses((status = 200, description = "The artifact's bytes",
               content_type = "application/octet-stream", body = Vec<u8>),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    Asking(session): Asking,
    Path((id, step, path)): Path<(RunId, ArtifactStep, ArtifactPath)>,
) -> Result<Response, ApiError> {
    let bytes = session
        .artifact_bytes(id.as_str(), step.as_str(), path.as_str())
        .await?;
    let disposition = format!("attachment; filename=\"{}\"", file_name(path.as_str()));
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The last segment of `path` with anything but ASCII letters, digits, `.`, `-` and `_`
/// replaced by `_`, so it sits in a quoted header value as it is.
fn file_name(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "artifact".to_owned()
    } else {
        name
    }
}

pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_name_keeps_only_safe_characters_of_the_last_segment() {
        assert_eq!(super::file_name("out/deep/report.html"), "report.html");
        assert_eq!(super::file_name("a\"b;c é.txt"), "a_b_c__.txt");
        assert_eq!(super::file_name("dir/"), "artifact");
    }
}
