//! Integration tests of rota-core, one binary: job files → model or diagnostics, parameters,
//! templates, and robustness against arbitrary input.

mod data;
mod examples;
mod limits;
mod params;
mod plan;
mod policy;
mod props;
mod stored;
mod templates;
