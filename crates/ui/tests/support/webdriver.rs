//! A small W3C WebDriver client over reqwest (the workspace's HTTP client), enough to drive
//! headless Chromium through chromedriver as a user would: open a page, find elements by
//! CSS selector, click, type, read text, and evaluate a script to check what is shown.
//! It replaces a WebDriver crate to keep the dependency tree lean; only localhost is spoken to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use serde_json::{Value, json};

use super::{PATIENCE, TestResult};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Debian packages the browser tests need.
pub const PACKAGES: &str = "apt-get install -y chromium chromium-driver";

/// Finds an executable on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A chromedriver child on a free local port, killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    _profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver and waits until it is ready; fails naming the Debian packages
    /// when chromium or chromedriver is missing.
    pub fn start() -> Result<Driver, Box<dyn std::error::Error>> {
        let chromedriver = which("chromedriver").ok_or_else(|| {
            format!("chromedriver is not installed; the browser tests need it: {PACKAGES}")
        })?;
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| which(name))
            .ok_or_else(|| {
                format!("chromium is not installed; the browser tests need it: {PACKAGES}")
            })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let driver = Driver {
            child,
            port,
            chromium,
            _profiles: tempfile::tempdir()?,
        };
        super::wait_for("chromedriver to listen", || {
            raw_http(port, "GET", "/status").is_ok_and(|body| body.contains("\"ready\":true"))
        })?;
        Ok(driver)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A new headless Chromium session with a fresh profile.
    pub async fn session(&self) -> Result<Session, Box<dyn std::error::Error>> {
        let profile = tempfile::tempdir_in(self._profiles.path())?;
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": self.chromium, "args": args},
        }}});
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let answer: Value = http
            .post(self.url("/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let id = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("chromedriver did not start a session: {answer}"))?
            .to_owned();
        Ok(Session {
            http,
            base: self.url(&format!("/session/{id}")),
            port: self.port,
            id,
            _profile: profile,
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; closed (and its Chromium ended) when dropped.
pub struct Session {
    http: reqwest::Client,
    base: String,
    port: u16,
    id: String,
    _profile: tempfile::TempDir,
}

/// A WebDriver error answer (`{"value": {"error", "message"}}`).
#[derive(Debug)]
pub struct WebDriverError {
    /// The error code, e.g. `no such element`, `no such alert`.
    pub error: String,
    /// What the driver said.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.message.lines().next().unwrap_or_default();
        write!(f, "webdriver: {}: {first}", self.error)
    }
}

impl std::error::Error for WebDriverError {}

impl Session {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer: Value = request.send().await?.json().await?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(Box::new(WebDriverError {
                error: error.to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            }));
        }
        Ok(value)
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) -> TestResult {
        self.call("POST", "/url", Some(json!({"url": url}))).await?;
        Ok(())
    }

    /// Reloads the page.
    pub async fn reload(&self) -> TestResult {
        self.call("POST", "/refresh", None).await?;
        Ok(())
    }

    /// Evaluates a script (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Value) -> Result<Value, Box<dyn std::error::Error>> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The element matching a CSS selector, waiting until there is one.
    pub async fn find(&self, css: &str) -> Result<String, Box<dyn std::error::Error>> {
        let start = Instant::now();
        loop {
            let found = self
                .call(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found {
                Ok(value) => {
                    return Ok(value[ELEMENT_KEY]
                        .as_str()
                        .ok_or("element reference missing")?
                        .to_owned());
                }
                Err(e) if start.elapsed() < PATIENCE => {
                    let missing = e
                        .downcast_ref::<WebDriverError>()
                        .is_some_and(|w| w.error == "no such element");
                    if !missing {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("gave up finding {css}: {e}").into()),
            }
        }
    }

    /// Clicks the element matching `css` (waiting for it to exist).
    pub async fn click(&self, css: &str) -> TestResult {
        let el = self.find(css).await?;
        self.call("POST", &format!("/element/{el}/click"), None)
            .await
            .map_err(|e| format!("clicking {css}: {e}"))?;
        Ok(())
    }

    /// Types text into the element matching `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) -> TestResult {
        let el = self.find(css).await?;
        self.call("POST", &format!("/element/{el}/clear"), None)
            .await
            .map_err(|e| format!("clearing {css}: {e}"))?;
        let keys = Some(json!({"text": text}));
        self.call("POST", &format!("/element/{el}/value"), keys)
            .await
            .map_err(|e| format!("typing into {css}: {e}"))?;
        Ok(())
    }

    /// Sends keys to the element matching `css` without clearing it first (WebDriver key
    /// codes such as `\u{E00C}` for Escape work here).
    pub async fn press(&self, css: &str, keys: &str) -> TestResult {
        let el = self.find(css).await?;
        let keys = Some(json!({"text": keys}));
        self.call("POST", &format!("/element/{el}/value"), keys)
            .await
            .map_err(|e| format!("pressing keys in {css}: {e}"))?;
        Ok(())
    }

    /// Types `keys` on the keyboard into whatever has the focus (for page shortcuts).
    pub async fn keyboard(&self, keys: &str) -> TestResult {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.call("POST", "/actions", Some(body)).await?;
        Ok(())
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String, Box<dyn std::error::Error>> {
        let el = self.find(css).await?;
        let value = self
            .call("GET", &format!("/element/{el}/text"), None)
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The text of an open alert, if any (an alert would mean injected script ran).
    pub async fn alert_text(&self) -> Result<Option<String>, Box<dyn std::error::Error>> {
        match self.call("GET", "/alert/text", None).await {
            Ok(value) => Ok(Some(value.as_str().unwrap_or_default().to_owned())),
            Err(e)
                if e.downcast_ref::<WebDriverError>()
                    .is_some_and(|w| w.error == "no such alert") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Polls a script until it returns something truthy (not null/false/""/0), and returns
    /// that; fails after the shared patience with `what`, the last value and a screenshot.
    pub async fn wait_for(
        &self,
        what: &str,
        script: &str,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < PATIENCE {
            last = self.js(script, json!([])).await?;
            let truthy = match &last {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                _ => true,
            };
            if truthy {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let shot = self.screenshot_to_temp().await.unwrap_or_default();
        let page = self
            .js(
                "return document.querySelector('main')?.innerText ?? ''",
                json!([]),
            )
            .await
            .unwrap_or_default();
        Err(format!(
            "gave up waiting for {what} (last value {last}); page text: {page}; screenshot: {shot}"
        )
        .into())
    }

    /// Saves a PNG screenshot and returns its path (kept for a failing test's reader).
    pub async fn screenshot_to_temp(&self) -> Result<String, Box<dyn std::error::Error>> {
        let value = self.call("GET", "/screenshot", None).await?;
        let b64 = value.as_str().ok_or("no screenshot")?;
        let path = std::env::temp_dir().join(format!("rota-ui-{}.png", self.id));
        std::fs::write(&path, BASE64_STANDARD.decode(b64)?)?;
        Ok(path.display().to_string())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ends Chromium even when a test failed half-way; a sync call, since drop cannot await.
        let _ = raw_http(self.port, "DELETE", &format!("/session/{}", self.id));
    }
}

/// One HTTP/1.1 request to chromedriver without a body, from sync code. Chromedriver keeps
/// the connection open despite `Connection: close`, so the body is read by its length.
fn raw_http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if response.len() >= end + 4 + length {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}
