//! The API's one error type and its RFC 9457 `application/problem+json` rendering.
//!
//! Every failure a client can see is an [`ApiError`]. Each variant has a stable problem
//! `type` URI (`https://rota.dev/problems/<slug>`), a fixed `title` and an HTTP status;
//! `detail` says what was wrong with this request. Internal failures are logged with their
//! cause through `tracing` and answered with a generic detail, so no SQL or path leaks.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rota_ops::auth::Role;

use rota_ops::records::{Problem, ProblemItem};

/// The base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://rota.dev/problems/";

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No valid bearer token was presented.
    #[error("{0}")]
    Unauthorized(String),
    /// The token lacks the role the call needs.
    #[error("this call needs the {needed} role {scope}", needed = .needed.as_str())]
    Forbidden {
        /// The role needed.
        needed: Role,
        /// Where, in words: `in namespace "ops"` or `in every namespace`.
        scope: String,
    },
    /// The thing asked for does not exist.
    #[error("{0} was not found")]
    NotFound(String),
    /// A path segment is not a well-formed id.
    #[error("{0}")]
    InvalidId(String),
    /// The query string is malformed, has an unknown parameter or a bad value.
    #[error("{0}")]
    InvalidQuery(String),
    /// The body is not syntactically valid JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// The body is JSON of the wrong shape (unknown field, missing field, wrong type).
    #[error("{0}")]
    InvalidBody(String),
    /// The body is larger than the API accepts.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not declared as `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The call conflicts with the current state (e.g. cancelling a finished run).
    #[error("{0}")]
    Conflict(String),
    /// A job file sent in the body is not a valid job (or not the job the path names);
    /// `problems` lists each problem with its position.
    #[error("{detail}")]
    InvalidJob {
        /// A summary.
        detail: String,
        /// Every problem found.
        problems: Vec<ProblemItem>,
    },
    /// Run parameters do not fit the job's declarations; `problems` names each one.
    #[error("{detail}")]
    InvalidParams {
        /// A summary.
        detail: String,
        /// Every problem found.
        problems: Vec<ProblemItem>,
    },
    /// A feature the call needs is not set up on this server (e.g. secrets without a
    /// data directory).
    #[error("{0}")]
    Unavailable(String),
    /// No route has this path.
    #[error("no API route matches this path")]
    NoRoute,
    /// The route exists but not with this method.
    #[error("this route does not accept this method")]
    MethodNotAllowed,
    /// Something failed inside the server; the cause is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::InvalidId(_) | ApiError::InvalidQuery(_) | ApiError::MalformedJson(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::InvalidBody(_)
            | ApiError::InvalidJob { .. }
            | ApiError::InvalidParams { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable last segment of the problem `type` URI.
    pub fn slug(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::InvalidId(_) => "invalid-id",
            ApiError::InvalidQuery(_) => "invalid-query",
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::InvalidBody(_) => "invalid-body",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Conflict(_) => "conflict",
            ApiError::InvalidJob { .. } => "invalid-job",
            ApiError::InvalidParams { .. } => "invalid-params",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NoRoute => "no-route",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "Authentication required",
            ApiError::Forbidden { .. } => "Permission denied",
            ApiError::NotFound(_) => "Not found",
            ApiError::InvalidId(_) => "Invalid id",
            ApiError::InvalidQuery(_) => "Invalid query string",
            ApiError::MalformedJson(_) => "Malformed JSON body",
            ApiError::InvalidBody(_) => "Invalid request body",
            ApiError::PayloadTooLarge(_) => "Request body too large",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::Conflict(_) => "Conflict",
            ApiError::InvalidJob { .. } => "Invalid job file",
            ApiError::InvalidParams { .. } => "Invalid run parameters",
            ApiError::Unavailable(_) => "Not available",
            ApiError::NoRoute => "No such route",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The problem body sent for this error.
    pub fn problem(&self) -> Problem {
        let detail = match self {
            ApiError::Internal(_) => {
                "the server failed to handle this request; the cause is in its log".to_owned()
            }
            other => other.to_string(),
        };
        Problem {
            kind: format!("{PROBLEM_BASE}{}", self.slug()),
            title: self.title().to_owned(),
            status: self.status().as_u16(),
            detail,
            problems: match self {
                ApiError::InvalidJob { problems, .. }
                | ApiError::InvalidParams { problems, .. } => problems.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "API request failed");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rota\""),
            );
        }
        response
    }
}

impl From<rota_ops::OpsError> for ApiError {
    fn from(error: rota_ops::OpsError) -> Self {
        use rota_ops::OpsError;
        match error {
            OpsError::Unauthorized(message) => ApiError::Unauthorized(message),
            OpsError::Forbidden { needed, scope } => ApiError::Forbidden { needed, scope },
            OpsError::NotFound(what) => ApiError::NotFound(what),
            OpsError::NeedsPlan { .. } | OpsError::Conflict(_) => {
                ApiError::Conflict(error.to_string())
            }
            OpsError::Ambiguous { .. } => ApiError::InvalidId(error.to_string()),
            OpsError::InvalidParams(errors) => ApiError::InvalidParams {
                detail: format!("{} parameter problem(s)", errors.len()),
                problems: errors
                    .into_iter()
                    .map(|e| rota_ops::records::ProblemItem {
                        line: None,
                        column: None,
                        param: Some(e.name),
                        message: e.message,
                    })
                    .collect(),
            },
            OpsError::Invalid(message) => ApiError::InvalidBody(message),
            OpsError::InvalidQuery(message) => ApiError::InvalidQuery(message),
            OpsError::InvalidId(message) => ApiError::InvalidId(message),
            OpsError::InvalidJob { detail, problems } => ApiError::InvalidJob { detail, problems },
            OpsError::Unavailable(message) => ApiError::Unavailable(message),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                ApiError::InvalidBody(without_string_values(&e.body_text()))
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(e.body_text()),
            JsonRejection::MissingJsonContentType(e) => {
                ApiError::UnsupportedMediaType(e.body_text())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(crate::BODY_LIMIT)
            }
            other => ApiError::MalformedJson(other.body_text()),
        }
    }
}

/// `text` with the contents of every double-quoted string replaced by `…`. A body's
/// deserialisation error quotes the string it could not use (`invalid type: string
/// "…"`), and that string may be a secret's value sent in the wrong shape; field names
/// and expected values, which the client needs to fix the body, are in backticks and stay.
fn without_string_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        out.push('…');
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        out.push('"');
    }
    out
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidQuery(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => ApiError::InvalidId(e.body_text()),
            other => ApiError::Internal(other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn string_values_are_dropped_from_body_errors_and_field_names_kept() {
        let text = r#"invalid type: string "hunter2 \"quoted\"", expected struct PutSecret; unknown field `valu`"#;
        let shown = super::without_string_values(text);
        assert_eq!(
            shown,
            "invalid type: string \"…\", expected struct PutSecret; unknown field `valu`"
        );
    }
}
