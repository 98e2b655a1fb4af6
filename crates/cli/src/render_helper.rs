//! Templates that compute render in a helper process, `rota __render`, with a memory and a
//! CPU limit: a template that builds a huge value in a few instructions (which the
//! in-process instruction and output bounds cannot see coming) then ends that helper, not
//! `rota serve` (see `rota_core::template::Isolation`).
//!
//! The job (template, kind and context, secrets included) goes to the helper on its stdin,
//! never on its command line; its answer comes back as JSON on stdout.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use rota_core::template::{Isolation, RenderJob, Rendering, TemplateError};

/// Memory one isolated render may use (the helper's data segment, heap included).
pub const MEMORY_LIMIT_BYTES: u64 = 256 << 20;

/// CPU time one isolated render may use; the instruction bound ends a render far sooner.
pub const CPU_LIMIT_SECONDS: u64 = 10;

/// Job texts a helper accepts on stdin (a context holds at most the run's parameters,
/// secrets and step outputs, each bounded well below this).
const JOB_LIMIT_BYTES: u64 = 64 << 20;

/// `rota __render`: reads one [`RenderJob`] on stdin, writes its result on stdout.
pub fn main() -> ExitCode {
    limit(libc::RLIMIT_DATA, MEMORY_LIMIT_BYTES);
    limit(libc::RLIMIT_CPU, CPU_LIMIT_SECONDS);
    let mut input = Vec::new();
    if std::io::stdin()
        .take(JOB_LIMIT_BYTES)
        .read_to_end(&mut input)
        .is_err()
    {
        return ExitCode::from(2);
    }
    let result = match serde_json::from_slice::<RenderJob>(&input) {
        Ok(job) => rota_core::template::render_here(&job),
        Err(e) => Err(TemplateError::Invalid(format!("bad render job: {e}"))),
    };
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &result).is_ok() && stdout.flush().is_ok();
    if written {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn limit(resource: libc::__rlimit_resource_t, value: u64) {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    unsafe { libc::setrlimit(resource, &limit) };
}

/// Renders by running this same binary as `rota __render`.
pub struct HelperProcess {
    exe: PathBuf,
}

impl HelperProcess {
    /// The helper is this process's own executable.
    pub fn current() -> std::io::Result<HelperProcess> {
        Ok(HelperProcess {
            exe: std::env::current_exe()?,
        })
    }
}

impl Isolation for HelperProcess {
    fn render(&self, job: &RenderJob) -> Result<Rendering, TemplateError> {
        let failed = |what: String| {
            TemplateError::Invalid(format!("cannot render in a helper process: {what}"))
        };
        let input = serde_json::to_vec(job).map_err(|e| failed(e.to_string()))?;
        let mut command = std::process::Command::new(&self.exe);
        command
            .arg("__render")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // The helper needs none of Rota's credentials.
        for name in rota_ops::host::scrubbed_env() {
            command.env_remove(name);
        }
        let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;
        // The helper reads all of its input before it writes anything, so writing first and
        // reading after cannot deadlock.
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(&input))
            .transpose();
        let mut output = Vec::new();
        let read = child
            .stdout
            .take()
            .map(|mut stdout| stdout.read_to_end(&mut output))
            .transpose();
        let status = child.wait().map_err(|e| failed(e.to_string()))?;
        if !status.success() {
            // Out of memory (an aborted allocation) or out of CPU time (SIGXCPU, SIGKILL).
            return Err(TemplateError::Bounds(format!(
                "it needed more than {} MiB of memory or {CPU_LIMIT_SECONDS} s of CPU ({status})",
                MEMORY_LIMIT_BYTES >> 20
            )));
        }
        written.map_err(|e| failed(e.to_string()))?;
        read.map_err(|e| failed(e.to_string()))?;
        serde_json::from_slice::<Result<Rendering, TemplateError>>(&output)
            .map_err(|e| failed(e.to_string()))?
    }
}
