//! A small Chrome DevTools protocol client: enough to launch Debian's
//! headless `chromium`, open a page, evaluate JavaScript in it, click with
//! real mouse events and take a screenshot.
//!
//! One WebSocket to the browser carries everything; the page is attached as
//! a flattened session, so its commands go over the same socket with a
//! `sessionId`. Console errors, uncaught exceptions and policy violations
//! the page reports are collected, so a test can insist there were none.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one protocol command or one wait may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// The launch flags: headless, no sandbox (tests may run as root), no GPU,
/// and no traffic of its own (first-run pages, component updates).
const FLAGS: &[&str] =
    &["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];

/// A running headless chromium and the DevTools connection to it.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The attached page's session, once [`Browser::open`] has run.
    session: Option<String>,
    /// What the page complained about: exceptions, console errors, log
    /// entries at level `error` (CSP violations are reported there).
    complaints: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

/// Where Debian installs chromium; `scripts/test.sh` installs it.
fn chromium() -> String {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output()
            && out.status.success()
        {
            return String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
    }
    panic!("chromium is not installed: run ./scripts/test.sh as root, or `apt-get install chromium`");
}

impl Browser {
    /// Start chromium with a throwaway profile and connect to it.
    pub async fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args(FLAGS)
            .args(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,800"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // Chromium names its DevTools endpoint on stderr; keep draining it
        // afterwards so it never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (pipe, seen) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                seen.lock().unwrap().push_str(&line);
                seen.lock().unwrap().push('\n');
            }
        });
        let url = match rx.recv_timeout(PATIENCE) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium never opened its DevTools endpoint:\n{}", stderr.lock().unwrap());
            }
        };
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("DevTools WebSocket");
        Self { child, _profile: profile, ws, next_id: 0, session: None, complaints: Vec::new(), stderr }
    }

    /// Send one command (to the page once one is open) and wait for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(message.to_string())).await.expect("DevTools accepts a command");
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} in {PATIENCE:?}"))
                .unwrap_or_else(|| panic!("chromium closed DevTools during {method}:\n{}", self.stderr()))
                .expect("a DevTools frame");
            let Message::Text(text) = frame else { continue };
            let message: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            self.note(&message);
        }
    }

    /// Keep what an event says about the page misbehaving.
    fn note(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                self.complaints.push(format!("exception: {}", p["exceptionDetails"]));
            }
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                self.complaints.push(format!("console.error: {}", p["args"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                let e = &p["entry"];
                self.complaints.push(format!("{}: {} ({})", e["source"], e["text"], e["url"]));
            }
            _ => {}
        }
    }

    /// Open `url` in a new tab of `width`×`height` CSS pixels and attach to it.
    pub async fn open(&mut self, url: &str, width: u32, height: u32) {
        self.open_with(url, width, height, None).await;
    }

    /// [`Self::open`], running `before` in the page ahead of its own
    /// scripts (the page's `Content-Security-Policy` does not apply to it).
    pub async fn open_with(&mut self, url: &str, width: u32, height: u32, before: Option<&str>) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached =
            self.call("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
        self.session = Some(attached["sessionId"].as_str().expect("a session id").to_owned());
        let metrics = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false });
        self.call("Emulation.setDeviceMetricsOverride", metrics).await;
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(domain, json!({})).await;
        }
        if let Some(source) = before {
            self.call("Page.addScriptToEvaluateOnNewDocument", json!({ "source": source })).await;
        }
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluate `expression` in the page (promises are awaited); its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let result = self.call("Runtime.evaluate", params).await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Wait until `expression` is truthy in the page.
    pub async fn wait_for(&mut self, expression: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.eval(&format!("!!({expression})")).await;
            if value == json!(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.eval("document.body.innerText").await;
                panic!("the page never showed {what} (`{expression}`); it shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the middle of the element `selector` with the mouse, as a
    /// person would: pressed and released at its position on screen.
    pub async fn click(&mut self, selector: &str) {
        let at = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let [x, y] = [&at[0], &at[1]].map(|v| v.as_f64().unwrap_or_else(|| panic!("nothing to click at {selector}")));
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
            self.call("Input.dispatchMouseEvent", event).await;
        }
    }

    /// Press and release a key, as a keyboard would, on whatever has the
    /// focus: `Enter`, `Escape`, `Tab` or `Backspace`.
    pub async fn press(&mut self, key: &str) {
        let (code, text) = match key {
            "Enter" => (13, "\r"),
            "Escape" => (27, ""),
            "Tab" => (9, ""),
            "Backspace" => (8, ""),
            other => panic!("no key code known for {other}"),
        };
        let down = json!({ "type": if text.is_empty() { "rawKeyDown" } else { "keyDown" }, "key": key, "code": key,
                           "windowsVirtualKeyCode": code, "text": text });
        self.call("Input.dispatchKeyEvent", down).await;
        let up = json!({ "type": "keyUp", "key": key, "code": key, "windowsVirtualKeyCode": code });
        self.call("Input.dispatchKeyEvent", up).await;
    }

    /// Type `text` into whatever has the focus, as keyboard input.
    pub async fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// A PNG of the page's viewport.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let data = shot["data"].as_str().expect("screenshot data");
        base64::engine::general_purpose::STANDARD.decode(data).expect("base64 PNG")
    }

    /// What the page complained about so far (after a round trip, so events
    /// sent before now have arrived).
    pub async fn complaints(&mut self) -> Vec<String> {
        self.eval("0").await;
        self.complaints.clone()
    }

    /// What chromium wrote on stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Ask chromium to quit and wait for it.
    pub async fn close(mut self) {
        self.session = None;
        self.next_id += 1;
        let close = json!({ "id": self.next_id, "method": "Browser.close" });
        let _ = self.ws.send(Message::text(close.to_string())).await;
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drop kills it.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
