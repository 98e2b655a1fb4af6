//! Notebook kernels started through the process supervisor.
//!
//! `rota-notebook` talks to a kernel over ZeroMQ and stops it itself, but starts no process:
//! it asks its [`KernelHost`] to. [`Kernels`] is that host, and starts each kernel with
//! [`process::start`] like any step process: confined out of `$ROTA_HOME` but its run
//! directory, without Rota's own `ROTA_*` variables, with the user's umask, in a process
//! group and a cgroup of its own (so a process a cell detaches with `setsid` is killed with
//! the kernel), killed if Rota dies (`PR_SET_PDEATHSIG` for the kernel, the guardian for the
//! rest). The [`process::ProcessGroup`] goes to the notebook crate as the kernel's hold:
//! dropping it, once the kernel is shut down, kills whatever its cells left behind.

use std::path::PathBuf;
use std::sync::Arc;

use rota_core::resources::Resources;
use rota_notebook::kernel::{Host, KernelCommand, KernelHost, KernelProcess};

use crate::guardian::Guardian;
use crate::process::{self, ProcessSpec, SpawnError};

/// Starts notebook kernels through [`process::start`].
#[derive(Debug, Clone, Default)]
pub struct Kernels {
    guardian: Option<Arc<Guardian>>,
    run_dir: Option<PathBuf>,
    resources: Resources,
    env: Vec<(String, String)>,
}

impl Kernels {
    /// Kernels watched by `guardian`, confined to `run_dir` inside `$ROTA_HOME` (when
    /// [`crate::sandbox::init`] set up confinement).
    pub fn new(guardian: Option<Arc<Guardian>>, run_dir: Option<PathBuf>) -> Kernels {
        Kernels {
            guardian,
            run_dir,
            resources: Resources::default(),
            env: Vec::new(),
        }
    }

    /// Kernels that get `env` besides their kernelspec's (which it overrides): the step's
    /// environment, as a process step would get it.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Kernels {
        self.env = env;
        self
    }

    /// Kernels whose processes are held to `resources` (the notebook step's `resources:`).
    pub fn limited(mut self, resources: Resources) -> Kernels {
        self.resources = resources;
        self
    }

    /// This host, as the notebook crate's requests carry it.
    pub fn host(self) -> Host {
        Host(Arc::new(self))
    }
}

impl KernelHost for Kernels {
    fn spawn(&self, command: &KernelCommand) -> std::io::Result<KernelProcess> {
        let mut spec = ProcessSpec::new(command.program.clone(), command.args.clone());
        spec.env.clone_from(&command.env);
        spec.env.extend(self.env.iter().cloned());
        spec.cwd.clone_from(&command.cwd);
        spec.run_dir.clone_from(&self.run_dir);
        spec.resources = self.resources;
        let (child, group) = process::start(&spec, self.guardian.as_ref())
            .map_err(|error| match error {
                SpawnError::Spawn { source, .. } => source,
                other => std::io::Error::other(other),
            })?
            .into_parts();
        Ok(KernelProcess {
            child,
            hold: Box::new(group),
        })
    }
}
