//! The UI's tests: the router in-process (`router`), and end to end in headless Chromium
//! against a real `rota serve` (`browser`).

mod browser;
mod router;
mod support;
