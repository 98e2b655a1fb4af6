//! Kernel start-up failures, with stand-in kernels that are real processes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rota_notebook::kernel::{Kernel, KernelOptions};
use rota_notebook::kernelspec::{InterruptMode, KernelSpec};

use crate::util::require_kernel;

/// A kernelspec whose kernel is `script`, run by `sh` in `dir`.
fn shell_kernel(dir: &Path, script: &str) -> KernelSpec {
    KernelSpec {
        name: "stand-in".to_string(),
        dir: dir.to_path_buf(),
        argv: vec![
            "sh".to_string(),
            "-c".to_string(),
            script.to_string(),
            "{connection_file}".to_string(),
        ],
        display_name: "Stand-in".to_string(),
        language: "python".to_string(),
        env: HashMap::new(),
        interrupt_mode: InterruptMode::Signal,
    }
}

fn options() -> KernelOptions {
    KernelOptions {
        cwd: None,
        start_timeout: Duration::from_secs(30),
        process_log: None,
        host: crate::util::host(),
    }
}

async fn start_error(spec: &KernelSpec) -> String {
    match Kernel::start(spec, &options()).await {
        Ok(_) => panic!("the stand-in kernel {:?} started", spec.argv),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_kernel_that_exits_at_start_up_is_explained_by_its_last_stderr_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = shell_kernel(
        dir.path(),
        "echo 'Traceback (most recent call last):' >&2; \
         echo \"ModuleNotFoundError: No module named 'ipykernel_launcher'\" >&2; exit 3",
    );
    let error = start_error(&spec).await;
    assert!(
        error.contains("kernel exited during start-up (exit status: 3)"),
        "{error}"
    );
    assert!(
        error.ends_with("ModuleNotFoundError: No module named 'ipykernel_launcher'"),
        "{error}"
    );
}

#[tokio::test]
async fn a_kernel_whose_port_was_taken_is_started_again_on_fresh_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let launches = dir.path().join("launches");
    // Each launch records the connection file it was given, then fails to bind as
    // ipykernel does when another process holds one of its ports.
    let script = format!(
        "cat \"$0\" >> '{}'; echo >> '{}'; \
         echo 'zmq.error.ZMQError: Address already in use (addr='\"'\"'tcp://127.0.0.1:1'\"'\"')' >&2; \
         exit 1",
        launches.display(),
        launches.display()
    );
    let spec = shell_kernel(dir.path(), &script);
    let error = start_error(&spec).await;
    assert!(
        error.contains("another process took one of the kernel's ports (gave up after 4 launches)"),
        "{error}"
    );
    let text = std::fs::read_to_string(&launches).expect("launches recorded");
    let files: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("connection file is JSON"))
        .collect();
    assert_eq!(files.len(), 4, "{text}");
    let mut ports = std::collections::HashSet::new();
    for file in &files {
        for channel in [
            "shell_port",
            "iopub_port",
            "stdin_port",
            "control_port",
            "hb_port",
        ] {
            let port = file[channel].as_u64().expect("port");
            assert!(ports.insert(port), "port {port} given to two launches");
        }
    }
}

#[tokio::test]
async fn kernels_started_at_once_all_become_ready() {
    require_kernel().await;
    let spec = rota_notebook::kernelspec::find_kernelspec("python3")
        .await
        .expect("python3 kernel");
    let starts = (0..4).map(|_| {
        let spec = spec.clone();
        tokio::spawn(async move { Kernel::start(&spec, &options()).await })
    });
    let mut kernels = Vec::new();
    for start in starts {
        kernels.push(
            start
                .await
                .expect("start task")
                .expect("kernel started alongside three others"),
        );
    }
    for kernel in &mut kernels {
        kernel.shutdown().await;
    }
}
