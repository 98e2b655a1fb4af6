//! The UI's tests: the router in-process (`router`), and end to end in headless Chromium
//! against a real `rota serve` (`browser`, and `plans` for plan review).

mod browser;
mod plans;
mod router;
mod support;
