//! A real browser for tests: Debian's `chromium`, started headless with a profile of its
//! own, driven over the Chrome DevTools Protocol on a WebSocket (`tokio-tungstenite`), and
//! killed when dropped.
//!
//! [`Browser::launch`] finds the binary (`DURABLE_CHROMIUM`, else `chromium` or
//! `chromium-browser` on the `PATH`); a machine without it gets [`BrowserError::NotInstalled`],
//! which names the package (`.ci/run` installs it): a browser test never passes by skipping.
//! [`Page`] is one tab: [`goto`](Page::goto) a URL, [`eval`](Page::eval) a script in it, and
//! [`wait_for`](Page::wait_for) a condition (a script that becomes true), which is how tests
//! wait: for what a person would see, never for a time.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long a wait for a page or a condition lasts before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Why the browser could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// No Chromium binary was found.
    #[error(
        "no Chromium found (looked for $DURABLE_CHROMIUM, chromium and chromium-browser): install Debian's `chromium` package (apt-get install chromium)"
    )]
    NotInstalled,
    /// Starting or talking to the browser failed.
    #[error("browser: {0}")]
    Failed(String),
    /// The browser answered a command with an error.
    #[error("browser command {method}: {message}")]
    Command {
        /// The DevTools method.
        method: String,
        /// What the browser said.
        message: String,
    },
    /// A script threw.
    #[error("the script threw: {0}")]
    Script(String),
    /// A condition did not become true in time.
    #[error("waited {PATIENCE:?} for {what}; last value: {last}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The condition's last value.
        last: String,
    },
}

impl BrowserError {
    /// True for the errors a command gets while its page is being replaced (a navigation):
    /// a wait looks again.
    fn is_navigation(&self) -> bool {
        match self {
            BrowserError::Command { message, .. } => {
                message.contains("navigated or closed")
                    || message.contains("context")
                    || message.contains("destroyed")
            }
            _ => false,
        }
    }
}

fn failed(error: impl std::fmt::Display) -> BrowserError {
    BrowserError::Failed(error.to_string())
}

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// The DevTools connection: commands out, answers matched back by id.
struct Connection {
    sink: Mutex<Sink>,
    pending: Pending,
    next: AtomicU64,
}

impl Connection {
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, BrowserError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.sink
            .lock()
            .await
            .send(Message::text(message.to_string()))
            .await
            .map_err(failed)?;
        let answer = tokio::time::timeout(PATIENCE, rx)
            .await
            .map_err(|_| failed(format!("{method} got no answer")))?
            .map_err(|_| failed("the browser went away"))?;
        if let Some(error) = answer.get("error") {
            return Err(BrowserError::Command {
                method: method.to_owned(),
                message: error.to_string(),
            });
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

/// A headless Chromium, killed when dropped.
pub struct Browser {
    child: Child,
    conn: Arc<Connection>,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .finish()
    }
}

fn find_binary() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("DURABLE_CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        ["chromium", "chromium-browser"]
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

impl Browser {
    /// Starts a headless Chromium with an empty profile of its own.
    pub async fn launch() -> Result<Browser, BrowserError> {
        let binary = find_binary().ok_or(BrowserError::NotInstalled)?;
        let profile = tempfile::Builder::new()
            .prefix("durable-browser-")
            .tempdir()
            .map_err(failed)?;
        let mut child = Command::new(&binary)
            .args([
                "--headless=new",
                // Tests may run as root, where Chromium's sandbox refuses to start; the pages
                // are the tests' own, on loopback.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("start {}: {e}", binary.display())))?;
        let stderr = child.stderr.take().ok_or_else(|| failed("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(PATIENCE, async {
            let mut seen = Vec::new();
            while let Some(line) = lines.next_line().await.map_err(failed)? {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    return Ok(url.trim().to_owned());
                }
                seen.push(line);
            }
            Err(failed(format!(
                "Chromium exited before it listened: {}",
                seen.join("\n")
            )))
        })
        .await
        .map_err(|_| failed("Chromium did not say where it listens"))??;
        // The rest of its stderr is drained, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .map_err(failed)?;
        let (sink, mut stream) = socket.split();
        let pending: Pending = Arc::default();
        let answers = Arc::clone(&pending);
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if let Some(id) = value.get("id").and_then(Value::as_u64) {
                    let waiting = answers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    if let Some(waiting) = waiting {
                        let _ = waiting.send(value);
                    }
                }
            }
        });
        Ok(Browser {
            child,
            conn: Arc::new(Connection {
                sink: Mutex::new(sink),
                pending,
                next: AtomicU64::new(1),
            }),
            _profile: profile,
        })
    }

    /// A new tab, on `about:blank`.
    pub async fn new_page(&self) -> Result<Page, BrowserError> {
        let target = self
            .conn
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or_else(|| failed("no target id"))?
            .to_owned();
        let attached = self
            .conn
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| failed("no session id"))?
            .to_owned();
        let page = Page {
            conn: Arc::clone(&self.conn),
            session,
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Runtime.enable", json!({})).await?;
        Ok(page)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One tab of the browser.
#[derive(Clone)]
pub struct Page {
    conn: Arc<Connection>,
    session: String,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("session", &self.session)
            .finish()
    }
}

impl Page {
    async fn call(&self, method: &str, params: Value) -> Result<Value, BrowserError> {
        self.conn.call(Some(&self.session), method, params).await
    }

    /// Runs `script` (an expression; a promise is awaited) in the page; its value as JSON.
    pub async fn eval(&self, script: &str) -> Result<Value, BrowserError> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": script, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(exception) = answer.get("exceptionDetails") {
            return Err(BrowserError::Script(exception.to_string()));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Waits until `condition` (a script) is truthy; its value then.
    pub async fn wait_for(&self, condition: &str, what: &str) -> Result<Value, BrowserError> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let last = match self.eval(condition).await {
                Ok(value)
                    if !matches!(&value, Value::Null | Value::Bool(false))
                        && value != json!("")
                        && value != json!(0) =>
                {
                    return Ok(value);
                }
                Ok(value) => value,
                // A page being replaced has no context for a moment: look again.
                Err(BrowserError::Script(error)) => json!(error),
                Err(error @ BrowserError::Command { .. }) if error.is_navigation() => {
                    json!(error.to_string())
                }
                Err(other) => return Err(other),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BrowserError::Timeout {
                    what: what.to_owned(),
                    last: last.to_string(),
                });
            }
            // A short pause between looks, so the browser gets on with the page.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `action` (a script that navigates: a click, a form submission) and waits until
    /// the next document has loaded.
    pub async fn navigate_with(&self, action: &str) -> Result<(), BrowserError> {
        self.eval("window.__durableOld = true").await?;
        // Run after this call returns: the page may be gone before an answer could be sent.
        self.eval(&format!("setTimeout(() => {{ {action} }}, 0)"))
            .await?;
        self.wait_for(
            "!window.__durableOld && document.readyState === 'complete'",
            "the next page to load",
        )
        .await
        .map(drop)
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.eval("window.__durableOld = true").await?;
        self.call("Page.navigate", json!({ "url": url })).await?;
        self.wait_for(
            "!window.__durableOld && document.readyState === 'complete'",
            &format!("{url} to load"),
        )
        .await
        .map(drop)
    }

    /// The text of the first element matching `selector` (`None` if there is none).
    pub async fn text(&self, selector: &str) -> Result<Option<String>, BrowserError> {
        let script = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.innerText : null; }})()",
            json!(selector)
        );
        Ok(self.eval(&script).await?.as_str().map(str::to_owned))
    }
}
