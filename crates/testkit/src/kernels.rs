//! Notebook kernels for tests: the real ipykernel `scripts/setup` installs, started through
//! the engine's supervisor as Rota starts them.

/// Kernels start through the engine's supervisor, as in Rota.
pub fn host() -> rota_notebook::kernel::Host {
    rota_engine::kernels::Kernels::default().host()
}

/// Fails (never skips) when no `python3` kernelspec can be found, saying how to get one.
pub async fn require_kernel() {
    if let Err(e) = rota_notebook::kernelspec::find_kernelspec("python3").await {
        panic!(
            "these tests need a real ipykernel: run `eval \"$(scripts/setup)\"` (or `python3 -m \
             pip install ipykernel nbformat` and `python3 -m ipykernel install --sys-prefix`) ({e})"
        );
    }
}
