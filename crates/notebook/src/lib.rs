//! Native, papermill-compatible notebook execution for Rota.
//!
//! Rota runs `.ipynb` notebooks itself: it speaks the Jupyter messaging protocol over
//! ZeroMQ to a real kernel (ipykernel), injects parameters the way papermill does, records
//! papermill's metadata on the notebook and its cells, saves the output notebook after
//! every cell, and marks the first failing cell with papermill's banner and anchor cells.
//!
//! It deliberately knows nothing of the store, HTTP or job files: the engine hands it a
//! [`step::StepRequest`], the CLI a [`cli::NotebookCommand`].
//!
//! ```
//! use rota_notebook::params::{Language, Param, Params};
//!
//! let mut p = Params::default();
//! p.set("alpha", Param::Float(0.5));
//! p.set("name", Param::Str("x".into()));
//! let src = Language::Python.codify(&p, "Parameters")?;
//! assert_eq!(src, "# Parameters\nalpha = 0.5\nname = \"x\"\n");
//! # Ok::<(), rota_notebook::NotebookError>(())
//! ```

#![warn(missing_docs)]

pub mod cli;
pub mod document;
mod error;
pub mod execute;
pub mod inspect;
pub mod kernel;
pub mod kernelspec;
pub mod params;
mod ports;
pub mod redact;
pub mod report;
pub mod resume;
pub mod step;
pub mod tools;

pub use error::{NotebookError, Result};
pub use execute::{RunOutcome, RunReport, RunRequest};
pub use redact::{Redact, Redaction};
pub use step::{StepOutcome, StepRequest, run_notebook_step};
