//! The reports operation of [`crate::Rota`]: a run's report, written on whichever side
//! holds the store.

use std::future::Future;

use super::Session;
use super::runs::Runs;
use crate::OpsError;
use crate::reports::ReportFormat;

/// The reports operations.
pub trait Reports {
    /// The report of run `id` (or the only run whose id starts with it) in `format`; it
    /// needs the viewer role in the run's namespace.
    fn run_report(
        &self,
        id: &str,
        format: ReportFormat,
    ) -> impl Future<Output = Result<String, OpsError>> + Send;
}

impl Reports for Session {
    async fn run_report(&self, id: &str, format: ReportFormat) -> Result<String, OpsError> {
        let run = self.find_run(id).await?;
        let report = crate::reports::gather(self.ops(), run).await?;
        Ok(crate::reports::render(&report, format))
    }
}
