//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the wire types, served at `/api/v1/openapi.json`.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::wire;

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Rota API", description = "Rota's HTTP API. Errors are RFC 9457 problem bodies."),
    paths(
        routes::namespaces::list,
        routes::jobs::list,
        routes::jobs::get,
        routes::jobs::revisions,
        routes::jobs::validate,
        routes::jobs::put,
        routes::runs::create,
        routes::schedules::history,
        routes::schedules::pause,
        routes::schedules::resume,
        routes::secrets::list,
        routes::secrets::put,
        routes::secrets::remove,
        routes::runs::list,
        routes::runs::get,
        routes::runs::logs,
        routes::runs::cancel,
        routes::events::list,
        routes::events::stream,
        routes::tokens::create,
        routes::tokens::list,
        routes::tokens::revoke,
        routes::audit::list,
        crate::metrics::serve,
    ),
    components(schemas(wire::Problem)),
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

/// `GET /api/v1/openapi.json`. Public: it describes the API, it reveals no data.
pub(crate) async fn document() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
        routes::jobs::remove,
        routes::runs::retry,
