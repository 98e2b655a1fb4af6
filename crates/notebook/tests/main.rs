//! Integration tests of rota-notebook against a real ipykernel.
//!
//! Needs `python3 -m pip install ipykernel nbformat` and a `python3` kernelspec
//! (`python3 -m ipykernel install --sys-prefix`); without them the kernel tests fail
//! with a message saying so.

mod util;

mod cli;
mod execute;
mod inject;
mod kernel;
mod params;
