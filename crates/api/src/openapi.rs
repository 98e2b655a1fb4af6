//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the wire types, served at `/api/v1/openapi.json`.
//!
//! The document is a promise checked by schemathesis (`scripts/schemathesis`): it must say
//! exactly what the server accepts and answers. Ids carry the pattern their check applies
//! ([`rota_ops::ids`]), closed sets of words are enums (the helpers here), and bodies whose
//! serde type denies unknown fields say `additionalProperties: false`.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;
use rota_ops::{ids, records as wire};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Rota API", description = "Rota's HTTP API. Errors are RFC 9457 problem bodies."),
    components(schemas(
        wire::Problem,
        ids::Namespace,
        ids::JobId,
        ids::RunId,
        ids::TokenId,
        ids::StepId,
        ids::ArtifactStep,
        ids::AttemptNo,
        ids::ArtifactPath,
        ids::SecretName,
        EventFrame,
        LogFrame,
        wire::LogLine
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The schema of a server-sent event as a client parses it: `id`, `event` and `data`, the
/// last always JSON text. `id` and `event` are required only where the stream always
/// sends them.
fn sse_frame(id_and_event_required: bool) -> utoipa::openapi::RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let mut frame = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", text().pattern(Some("^[0-9]+$")))
        .property("event", text().min_length(Some(1)))
        .property("data", text().content_media_type("application/json"))
        .required("data");
    if id_and_event_required {
        frame = frame.required("id").required("event");
    }
    frame.into()
}

/// One server-sent event of `/api/v1/events/stream`: `id` (the event id), `event` (its
/// kind) and `data` (the [`wire::Event`] as JSON text).
pub(crate) struct EventFrame;

impl utoipa::PartialSchema for EventFrame {
    fn schema() -> utoipa::openapi::RefOr<Schema> {
        sse_frame(true)
    }
}

impl utoipa::ToSchema for EventFrame {}

/// One server-sent event of `/api/v1/runs/{id}/logs/stream`: a log line (`id` is its
/// `seq`, `data` the [`wire::LogLine`]), or the last event, `end`, whose `data` is the
/// run's `{"status", "reason"}`.
pub(crate) struct LogFrame;

impl utoipa::PartialSchema for LogFrame {
    fn schema() -> utoipa::openapi::RefOr<Schema> {
        sse_frame(false)
    }
}

impl utoipa::ToSchema for LogFrame {}

/// The document as served: [`ApiDoc`], plus what utoipa cannot state: the `contentSchema`
/// of each event frame's `data` (JSON Schema 2020-12, which OpenAPI 3.1 uses).
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(routes().1).unwrap_or_default();
    let run_end = serde_json::json!({
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": rota_ops::records::schema::run_status_schema(),
            "reason": { "type": ["string", "null"] }
        }
    });
    let contents = [
        (
            "EventFrame",
            serde_json::json!({ "$ref": "#/components/schemas/Event" }),
        ),
        (
            "LogFrame",
            serde_json::json!({ "anyOf": [{ "$ref": "#/components/schemas/LogLine" }, run_end] }),
        ),
    ];
    spell_out_client_errors(&mut doc);
    for (frame, content) in contents {
        let pointer = format!("/components/schemas/{frame}/properties/data");
        if let Some(data) = doc
            .pointer_mut(&pointer)
            .and_then(serde_json::Value::as_object_mut)
        {
            data.insert("contentSchema".to_owned(), content);
        }
    }
    doc
}

/// Replaces each operation's catch-all `4XX` problem response by the client errors it can
/// actually answer, so a status the document does not name is a finding:
/// 400 for a malformed id, query string or JSON body; 401 and 403 where a token is needed;
/// 404 where a path names something; 413, 415 and 422 where there is a request body.
/// Statuses a handler adds on its own (409, 503) are declared in its annotation and kept.
fn spell_out_client_errors(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let params = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let has_body = operation.get("requestBody").is_some();
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(|r| r.as_object_mut())
            else {
                continue;
            };
            let Some(problem) = responses.remove("4XX") else {
                continue;
            };
            let mut codes: Vec<(&str, &str)> = Vec::new();
            if !params.is_empty() || has_body {
                codes.push(("400", "A malformed id, query string or JSON body"));
            }
            if secured {
                codes.push(("401", "No valid bearer token"));
                codes.push(("403", "The token lacks the role this call needs"));
            }
            if params.iter().any(|p| p["in"] == "path") {
                codes.push(("404", "What the path names does not exist"));
            }
            if has_body {
                codes.push(("413", "The body is larger than the API accepts"));
                codes.push(("415", "The body is not declared as JSON"));
                codes.push((
                    "422",
                    "The body is JSON of the wrong shape, or its content is invalid",
                ));
            }
            for (code, description) in codes {
                if !responses.contains_key(code) {
                    let mut response = problem.clone();
                    response["description"] = serde_json::Value::from(description);
                    responses.insert(code.to_owned(), response);
                }
            }
        }
    }
}

/// Every route of the API with its OpenAPI operation: the router serves exactly what the
/// document describes, since both come from the same declarations (each area's
/// `routes::<area>::router`, on `utoipa-axum`).
pub(crate) fn routes() -> (axum::Router<crate::ApiState>, utoipa::openapi::OpenApi) {
    use utoipa_axum::router::OpenApiRouter;
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::namespaces::router())
        .merge(routes::jobs::router())
        .merge(routes::runs::router())
        .merge(routes::schedules::router())
        .merge(routes::secrets::router())
        .merge(routes::plans::router())
        .merge(routes::events::router())
        .merge(routes::tokens::router())
        .merge(routes::audit::router())
        .merge(routes::workers::router())
        .merge(routes::retention::router())
        .merge(crate::metrics::router())
        .merge(routes::artifacts::router())
        .split_for_parts();
    (router, catch_all_as_parameters(doc))
}

/// A route's catch-all `{*name}` (what the router needs to match the rest of a URL) is an
/// ordinary path parameter `{name}` in the document, where `*` has no meaning.
fn catch_all_as_parameters(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    doc
}

/// `GET /api/v1/openapi.json`. Public: it describes the API, it reveals no data.
pub(crate) async fn document() -> Response {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(document_json)).into_response()
}
