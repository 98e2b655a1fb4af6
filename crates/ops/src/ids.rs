//! Ids that appear in paths and queries, checked when they are parsed: a malformed id is
//! a 400 problem before any handler or query runs.
//!
//! Each id type also describes itself to the OpenAPI document (a string schema with the
//! same `pattern`, `minLength` and `maxLength` its check applies), so the document says
//! exactly which ids the server accepts.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Whether `id` is a valid namespace or job id: 3–64 of `a-z`, `0-9` and `-`, not starting
/// with `-` (the job-file rule).
fn is_name(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

/// [`is_name`] as a JSON Schema pattern.
const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9-]{2,63}$";

/// Whether `id` looks like a run or token id: 1–64 of `a-z` and `0-9`.
fn is_opaque_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// [`is_opaque_id`] as a JSON Schema pattern.
const OPAQUE_PATTERN: &str = "^[a-z0-9]{1,64}$";

/// Whether `name` is a valid secret name (the rule of [`rota_secrets::validate_name`]).
fn is_secret_name(name: &str) -> bool {
    rota_secrets::validate_name(name).is_ok()
}

/// [`is_secret_name`] as a JSON Schema pattern.
const SECRET_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// Whether `id` is a valid step id: 1–64 of `a-z`, `0-9`, `_` and `-` (the job-file rule).
fn is_step_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// [`is_step_id`] as a JSON Schema pattern.
const STEP_PATTERN: &str = "^[a-z0-9_-]{1,64}$";

/// Whether `id` names a step in a run's artifacts: a step id, or [`rota_store::RUN_STEP`]
/// for the run's own (its kept report).
fn is_artifact_step(id: &str) -> bool {
    is_step_id(id) || id == rota_store::RUN_STEP
}

/// [`is_artifact_step`] as a JSON Schema pattern.
const ARTIFACT_STEP_PATTERN: &str = "^(@run|[a-z0-9_-]{1,64})$";

/// Whether `text` is an attempt number: 1 to 999999999, without leading zeros.
fn is_attempt_number(text: &str) -> bool {
    (1..=9).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0')
}

/// [`is_attempt_number`] as a JSON Schema pattern.
const ATTEMPT_PATTERN: &str = "^[1-9][0-9]{0,8}$";

/// Whether `path` can be an artifact's path: 1–1024 characters, no control characters.
/// (An artifact is looked up by its recorded path, never by joining this to a file name.)
fn is_artifact_path(path: &str) -> bool {
    (1..=1024).contains(&path.chars().count()) && !path.chars().any(|c| c.is_control())
}

/// [`is_artifact_path`] as a JSON Schema pattern.
const ARTIFACT_PATH_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,1024}$";

macro_rules! checked_id {
    (
        $(#[$doc:meta])* $name:ident, $check:ident, $what:literal,
        schema: $schema_name:literal, $pattern:ident, $min:literal..=$max:literal,
        example: $example:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                if $check(&value) {
                    Ok($name(value))
                } else {
                    Err(format!(concat!("{:?} is not a valid ", $what), value))
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!("A ", $what, ".")))
                    .pattern(Some($pattern))
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .examples([$example])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }
        }
    };
}

checked_id!(
    /// A namespace name.
    Namespace,
    is_name,
    "namespace (3–64 characters of a-z, 0-9 and -)",
    schema: "NamespaceName", NAME_PATTERN, 3..=64,
    example: "default"
);
checked_id!(
    /// A job id.
    JobId,
    is_name,
    "job id (3–64 characters of a-z, 0-9 and -)",
    schema: "JobId", NAME_PATTERN, 3..=64,
    example: "hello"
);
checked_id!(
    /// A run id.
    RunId,
    is_opaque_id,
    "run id (1–64 characters of a-z and 0-9)",
    schema: "RunId", OPAQUE_PATTERN, 1..=64,
    example: "01jd2x3y4z5a6b7c8d9e0f1g2h"
);
checked_id!(
    /// A step id.
    StepId,
    is_step_id,
    "step id (1–64 characters of a-z, 0-9, _ and -)",
    schema: "StepId", STEP_PATTERN, 1..=64,
    example: "build"
);
checked_id!(
    /// The step of a run's artifact: a step id, or `@run` for the report the run kept
    /// when it ended.
    ArtifactStep,
    is_artifact_step,
    "artifact step (a step id, or @run for the run's kept report)",
    schema: "ArtifactStep", ARTIFACT_STEP_PATTERN, 1..=64,
    example: "build"
);
checked_id!(
    /// An attempt number, as it appears in a path.
    AttemptNo,
    is_attempt_number,
    "attempt number (1–999999999)",
    schema: "AttemptNo", ATTEMPT_PATTERN, 1..=9,
    example: "1"
);

impl AttemptNo {
    /// The number.
    pub fn number(&self) -> u32 {
        self.0.parse().unwrap_or(0)
    }
}

checked_id!(
    /// A token id.
    TokenId,
    is_opaque_id,
    "token id (1–64 characters of a-z and 0-9)",
    schema: "TokenId", OPAQUE_PATTERN, 1..=64,
    example: "3f9a0c1d2e4b5a67"
);
checked_id!(
    /// A secret's name: a letter or `_`, then letters, digits and `_`, at most 128.
    SecretName,
    is_secret_name,
    "secret name (a letter or _, then letters, digits and _, at most 128 characters)",
    schema: "SecretName", SECRET_PATTERN, 1..=128,
    example: "API_TOKEN"
);

checked_id!(
    /// An artifact's path relative to its step's `$ROTA_ARTIFACTS`, `/`-separated.
    ArtifactPath,
    is_artifact_path,
    "artifact path (1–1024 characters, no control characters)",
    schema: "ArtifactPath", ARTIFACT_PATH_PATTERN, 1..=1024,
    example: "reports/summary.txt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_well_formed_and_distinct() {
        let a = rota_store::ids::new_run_id();
        let b = rota_store::ids::new_run_id();
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
        assert!(RunId::try_from(a).is_ok(), "the API accepts its own ids");
    }

    #[test]
    fn checks_agree_with_their_documented_bounds() {
        assert!(Namespace::try_from("abc".to_owned()).is_ok());
        assert!(Namespace::try_from("a".repeat(64)).is_ok());
        assert!(Namespace::try_from("ab".to_owned()).is_err());
        assert!(Namespace::try_from("a".repeat(65)).is_err());
        assert!(Namespace::try_from("-ab".to_owned()).is_err());
        assert!(Namespace::try_from("a-b".to_owned()).is_ok());
        assert!(JobId::try_from("Abc".to_owned()).is_err());
        assert!(RunId::try_from("0".to_owned()).is_ok());
        assert!(RunId::try_from(String::new()).is_err());
        assert!(TokenId::try_from("a-b".to_owned()).is_err());
        assert!(SecretName::try_from("_".to_owned()).is_ok());
        assert!(SecretName::try_from(format!("A{}", "b".repeat(127))).is_ok());
        assert!(SecretName::try_from(format!("A{}", "b".repeat(128))).is_err());
        assert!(SecretName::try_from("1A".to_owned()).is_err());
        assert!(StepId::try_from(rota_store::RUN_STEP.to_owned()).is_err());
        assert!(ArtifactStep::try_from(rota_store::RUN_STEP.to_owned()).is_ok());
        assert!(ArtifactStep::try_from("build_2".to_owned()).is_ok());
        assert!(ArtifactStep::try_from("@runs".to_owned()).is_err());
        assert!(ArtifactStep::try_from("a".repeat(65)).is_err());
    }
}
