//! Integration tests of rota-secrets: real keys and key files, real SQLite stores in
//! temporary directories, and the real `rota` binary end to end. One test binary (modules
//! below) saves link time.

mod cipher;
mod e2e;
mod key;
mod store;
