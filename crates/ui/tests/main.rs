//! The UI's tests: the router in-process (`router`), and end to end in headless Chromium
//! against a real `rota serve` (`browser`, `plans` for plan review, `gates` for `approval:`
//! steps in the middle of a run).

mod browser;
mod gates;
mod plans;
mod router;
mod support;
