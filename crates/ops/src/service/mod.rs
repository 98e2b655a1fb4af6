//! What can be asked of Rota, whoever asks and however: [`Rota`], one trait per area.
//!
//! Two things implement it. [`Session`] is the application layer itself acting for one
//! [`Principal`]: the API's handlers make one per request (extract → session → respond)
//! and the CLI's local mode makes one for the user running it. The CLI's remote mode
//! implements the same traits over HTTP (`rota --server URL`), answering with the same
//! [`crate::records`]. So each CLI command is written once, generic over [`Rota`], and
//! local and remote mode cannot disagree: authorization, audit and every other rule run
//! inside [`Session`], on whichever side holds the store.
//!
//! Each area's trait lives beside its [`Session`] implementation in a module of its own.

use crate::auth::Principal;
use crate::{Actor, Ops};

pub mod artifacts;
pub mod audit;
pub mod jobs;
pub mod page;
pub mod plans;
pub mod reports;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod secrets;
pub mod tokens;
pub mod workers;

pub use artifacts::Artifacts;
pub use audit::Audit;
pub use jobs::Jobs;
pub use plans::Plans;
pub use reports::Reports;
pub use retention::Retention;
pub use runs::Runs;
pub use schedules::Schedules;
pub use secrets::Secrets;
pub use tokens::Tokens;
pub use workers::Workers;

/// Everything that can be asked of Rota: implemented by [`Session`] (in this process) and
/// by the CLI's HTTP client (of a server).
pub trait Rota:
    Runs
    + Jobs
    + Plans
    + Schedules
    + Secrets
    + Tokens
    + Audit
    + Retention
    + Workers
    + Artifacts
    + Reports
{
}

impl<T> Rota for T where
    T: Runs
        + Jobs
        + Plans
        + Schedules
        + Secrets
        + Tokens
        + Audit
        + Retention
        + Workers
        + Artifacts
        + Reports
{
}

/// The application layer acting for one caller: every operation checks the caller's role
/// ([`Principal::require`]) and audits what it changes in the caller's name.
#[derive(Debug, Clone)]
pub struct Session {
    ops: Ops,
    principal: Principal,
    source: Option<String>,
}

impl Ops {
    /// The application layer acting for `principal`, calling from `source` (a client's
    /// address, for the audit log).
    pub fn session(&self, principal: Principal, source: Option<String>) -> Session {
        Session {
            ops: self.clone(),
            principal,
            source,
        }
    }
}

impl Session {
    /// The application layer underneath.
    pub fn ops(&self) -> &Ops {
        &self.ops
    }

    /// Who is asking.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Who is asking, as the audit log names them.
    pub fn actor(&self) -> Actor {
        self.principal.actor(self.source.clone())
    }

    /// Appends the audit entry of a mutation by this caller (`ok`, or the slug of its
    /// refusal, [`crate::OpsError::slug`]) and passes its outcome on. If the entry cannot
    /// be written, the call fails: an unaudited change must not look like a success.
    pub async fn audited<T>(
        &self,
        action: &str,
        target: &str,
        outcome: Result<T, crate::OpsError>,
    ) -> Result<T, crate::OpsError> {
        let result = match &outcome {
            Ok(_) => "ok",
            Err(error) => error.slug(),
        };
        self.ops
            .audit(&self.actor(), action, target, result)
            .await?;
        outcome
    }
}
