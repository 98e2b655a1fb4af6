//! The OpenAPI schemas of closed sets of words (statuses, roles, outcomes), shared by the
//! records and the API's query parameters.

use rota_core::model::{ALL_RUN_STATUSES, ALL_STEP_STATUSES, RunStatus, StepStatus};
use rota_store::{LogStream, OccurrenceKind, Role};
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type,
};

/// A string schema that allows exactly these words.
fn words(values: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// Every run status, as the API spells it.
pub fn run_status_schema() -> Object {
    words(ALL_RUN_STATUSES.map(RunStatus::as_str))
}

/// Every step status, as the API spells it.
pub fn step_status_schema() -> Object {
    words(ALL_STEP_STATUSES.map(StepStatus::as_str))
}

/// Every plan status, as the API spells it.
pub fn plan_status_schema() -> Object {
    words(rota_store::PlanStatus::ALL.map(rota_store::PlanStatus::as_str))
}

/// Every gate status, as the API spells it.
pub fn gate_status_schema() -> Object {
    words(rota_store::GateStatus::ALL.map(rota_store::GateStatus::as_str))
}

/// An approver's decision.
pub fn decision_schema() -> Object {
    words(["approve", "reject"])
}

/// Every role.
pub fn role_schema() -> Object {
    words(Role::ALL.map(Role::as_str))
}

/// The streams a log line comes from.
pub fn log_stream_schema() -> Object {
    words([LogStream::Stdout, LogStream::Stderr, LogStream::System].map(LogStream::as_str))
}

/// What became of a schedule occurrence.
pub fn outcome_schema() -> Object {
    words(
        [
            OccurrenceKind::Run,
            OccurrenceKind::Skipped,
            OccurrenceKind::Missed,
        ]
        .map(OccurrenceKind::as_str),
    )
}

/// `now`, an RFC 3339 instant, or null (meaning `now`).
pub fn resume_from_schema() -> Schema {
    AnyOfBuilder::new()
        .item(words(["now"]))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// How a worker may report an attempt's end (`abandoned`: handed back).
pub fn attempt_end_schema() -> Object {
    words(
        [
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::TimedOut,
            StepStatus::Cancelled,
            StepStatus::Abandoned,
        ]
        .map(StepStatus::as_str),
    )
}

/// A worker's labels: at most 32, names as `runs_on:` spells them, values of at most 200
/// characters.
pub fn worker_labels_schema() -> Object {
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(200))
        .build();
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9_.-]{1,63}$"))
        .build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::RefOr(
            utoipa::openapi::RefOr::T(Schema::Object(value)),
        )))
        .property_names(Some(name))
        .max_properties(Some(32))
        .build()
}
