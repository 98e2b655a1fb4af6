//! What one job file may hold. Job files arrive from outside (`rota validate`, `serve --jobs`,
//! `POST …/jobs/validate` by any token that may read), so every dimension whose cost grows with
//! the input is bounded here, in one place; going over a bound is a diagnostic with
//! `file:line:col` like any other problem, never a panic, and is checked before the expensive
//! work it guards. The bounds are far above what a hand-written job needs.

/// Largest job file, in bytes (1 MiB). Checked before parsing; `load_file` reads no more.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Deepest nesting of mappings and lists in a YAML, JSON or TOML document (the top level is
/// depth 1). Bounds recursion in the conversion.
pub const MAX_DEPTH: usize = 64;

/// Most values (scalars, lists, mappings, alias copies included) one YAML or JSON stream may
/// produce, so an alias bomb cannot exhaust memory.
pub const MAX_NODES: usize = 200_000;

/// Most steps in one job.
pub const MAX_STEPS: usize = 1_000;

/// Most entries in one step's `needs`.
pub const MAX_NEEDS: usize = 256;

/// Most declared parameters of one job.
pub const MAX_PARAMS: usize = 256;

/// Longest template, `if:` expression or command text, in bytes (64 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Most diagnostics reported for one file; the rest are summarised in one last line, so a
/// file of many small mistakes cannot produce a report much larger than itself.
pub const MAX_DIAGNOSTICS: usize = 200;

/// Longest dependency cycle path shown in a diagnostic; a longer cycle is shown by its first
/// steps and its length.
pub const MAX_CYCLE_SHOWN: usize = 20;

/// Most dependency cycles reported for one job; each further one would repeat the lesson.
pub const MAX_CYCLES_REPORTED: usize = 10;

/// Most "did you mean" hints computed for one job's unknown `needs` (each compares against
/// every step id).
pub const MAX_HINTS: usize = 20;
