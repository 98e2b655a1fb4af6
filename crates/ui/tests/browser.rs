//! End to end in headless Chromium (through chromedriver) against a real `rota serve`.
