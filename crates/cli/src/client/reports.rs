//! The reports operation of [`rota_ops::Rota`] over `/api/v1`: the server writes the
//! report, this side only saves it.

use rota_ops::OpsError;
use rota_ops::records::Run;
use rota_ops::reports::ReportFormat;
use rota_ops::service::{Reports, Runs};

use super::{Remote, seg};

impl Reports for Remote {
    async fn run_report(&self, id: &str, format: ReportFormat) -> Result<String, OpsError> {
        // An abbreviated id is resolved first, as `rota runs` does.
        let run: Run = self.find_run(id).await?;
        let format = match format {
            ReportFormat::Html => "html",
            ReportFormat::Md => "md",
        };
        let path = format!("/api/v1/runs/{}/report", seg(&run.id));
        Ok(self
            .get_text(&path, &[("format", format.to_owned())])
            .await?)
    }
}
