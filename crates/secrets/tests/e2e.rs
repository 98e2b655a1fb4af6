//! End to end through the `rota` binary (placeholder until the CLI command lands).
