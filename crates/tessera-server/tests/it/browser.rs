//! End-to-end tests in a real browser: headless Chromium driven over WebDriver
//! by chromedriver, one of each per test. `scripts/test` installs both and sets
//! `TESSERA_TEST_CHROMEDRIVER` and `TESSERA_TEST_CHROMIUM`; without them the
//! tests skip themselves.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::response::Html;
use axum::routing::get;
use fantoccini::cookies::Cookie;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::sync::mpsc;
use url::Url;

use crate::common::{TempDir, TestServer, free_port};

/// How long a helper waits for a page, an element or a URL before failing.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// A headless Chromium behind its own chromedriver, both ended on drop.
pub struct Browser {
    client: Client,
    /// `None` once the session is closed.
    session_id: Option<String>,
    // Dropped in this order, after `Browser::drop`: chromedriver, then its
    // profile and log.
    driver: Driver,
    _dir: TempDir,
}

/// A chromedriver process, killed and reaped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a browser session, or returns `None` (after
    /// saying so) when the suite runs without a browser.
    pub async fn start() -> Option<Browser> {
        let Ok(driver_bin) = std::env::var("TESSERA_TEST_CHROMEDRIVER") else {
            eprintln!("skipped: TESSERA_TEST_CHROMEDRIVER not set (scripts/test sets it)");
            return None;
        };
        let dir = TempDir::new("browser");
        let driver = spawn_driver(&driver_bin, &dir).await;
        let client = connect(driver.port, &dir).await;
        let session_id = client.session_id().await.ok().flatten();
        Some(Browser {
            client,
            session_id,
            driver,
            _dir: dir,
        })
    }

    /// The underlying WebDriver client, for anything the helpers lack.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates and waits for the page to load. ChromeDriver gives up on a
    /// renderer that has not answered within 10 s, which happens when two
    /// browsers and the rest of the suite share two cores: such a navigation
    /// is tried again, any other failure is not.
    pub async fn goto(&self, url: &str) {
        let mut attempts = 0;
        loop {
            match self.client.goto(url).await {
                Ok(()) => return,
                Err(e)
                    if attempts < 2
                        && e.to_string().contains("receiving message from renderer") =>
                {
                    attempts += 1;
                    eprintln!("goto {url}: {e}; trying again");
                }
                Err(e) => panic!("goto {url}: {e}"),
            }
        }
    }

    pub async fn current_url(&self) -> Url {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("current_url: {e}"))
    }

    pub async fn page_source(&self) -> String {
        self.client
            .source()
            .await
            .unwrap_or_else(|e| panic!("page source: {e}"))
    }

    /// The cookies visible to the current page.
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client
            .get_all_cookies()
            .await
            .unwrap_or_else(|e| panic!("cookies: {e}"))
    }

    /// Replaces the value of the form field with this `name` attribute.
    pub async fn fill(&self, name: &str, value: &str) {
        let css = format!("[name=\"{}\"]", css_string(name));
        let field = self
            .wait_for(Locator::Css(&css), &format!("field {name:?}"))
            .await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear field {name:?}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into field {name:?}: {e}"));
    }

    /// Clicks the button whose visible text, `name` or `value` is `label`
    /// (a `<button>` or an `<input type=submit|button|image>`).
    pub async fn click_button(&self, label: &str) {
        let l = xpath_string(label);
        let xpath = format!(
            "//button[normalize-space(.)={l} or @name={l} or @value={l}] \
             | //input[(@type='submit' or @type='button' or @type='image') \
             and (@value={l} or @name={l})]"
        );
        let button = self
            .wait_for(Locator::XPath(&xpath), &format!("button {label:?}"))
            .await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("click button {label:?}: {e}"));
    }

    /// Waits until the browser is on a URL starting with `prefix` and
    /// returns it; redirects through the authorization server land there.
    pub async fn wait_for_url_prefix(&self, prefix: &str) -> Url {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let url = self.current_url().await;
            if url.as_str().starts_with(prefix) {
                return url;
            }
            if Instant::now() >= deadline {
                let source = self.page_source().await;
                panic!(
                    "still on {url} after {TIMEOUT:?}, expected {prefix}…; page:\n{}",
                    truncate(&source, 2000)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ends the session cleanly; dropping the browser also ends it.
    pub async fn close(mut self) {
        if self.session_id.take().is_some() {
            self.client
                .clone()
                .close()
                .await
                .unwrap_or_else(|e| panic!("close the browser: {e}"));
        }
    }

    async fn wait_for(&self, locator: Locator<'_>, what: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(TIMEOUT)
            .every(POLL)
            .for_element(locator)
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let url = self.current_url().await;
                let source = self.page_source().await;
                panic!(
                    "{what} not found on {url}: {e}; page:\n{}",
                    truncate(&source, 2000)
                );
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium outlives a killed chromedriver, so ask the driver to quit
        // it first. Blocking I/O: Drop also runs while a test unwinds.
        if let Some(id) = self.session_id.take() {
            let _ = blocking_request(self.driver.port, "DELETE", &format!("/session/{id}"));
        }
    }
}

/// Starts chromedriver on a free port and waits until it answers. The port is
/// picked before chromedriver binds it, so a clash is retried.
async fn spawn_driver(bin: &str, dir: &TempDir) -> Driver {
    let log_path = dir.path().join("chromedriver.log");
    for _ in 0..3 {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut driver = Driver { child, port };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if driver.child.try_wait().ok().flatten().is_some() {
                break;
            }
            if driver_ready(port).await {
                return driver;
            }
            if Instant::now() >= deadline {
                panic!(
                    "chromedriver did not answer on port {port} within {TIMEOUT:?}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
    panic!(
        "chromedriver exited at start three times:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

async fn driver_ready(port: u16) -> bool {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let Ok(r) = http
        .get(format!("http://127.0.0.1:{port}/status"))
        .send()
        .await
    else {
        return false;
    };
    let Ok(body) = r.json::<serde_json::Value>().await else {
        return false;
    };
    body["value"]["ready"] == true
}

async fn connect(port: u16, dir: &TempDir) -> Client {
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let mut chrome = json!({
        "args": [
            "--headless=new",
            // Tests run as root on CI, where the sandbox refuses to start.
            "--no-sandbox",
            "--disable-gpu",
            // /dev/shm is small in containers.
            "--disable-dev-shm-usage",
            // No traffic beyond the loopback servers under test.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            // A profile per browser: parallel tests share nothing.
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    if let Ok(binary) = std::env::var("TESSERA_TEST_CHROMIUM") {
        chrome["binary"] = json!(binary);
    }
    let caps: Capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        // Fail fast instead of the default five minutes on a hung page.
        "timeouts": { "pageLoad": TIMEOUT.as_millis() as u64, "script": TIMEOUT.as_millis() as u64 },
    })
    .as_object()
    .unwrap()
    .clone();
    let mut builder = ClientBuilder::rustls().expect("TLS roots for the WebDriver client");
    builder.capabilities(caps);
    // Chromium's own start-up limit in chromedriver is 60 s; two cores
    // shared with a parallel build can come close.
    match tokio::time::timeout(
        Duration::from_secs(90),
        builder.connect(&format!("http://127.0.0.1:{port}")),
    )
    .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!(
            "start a Chromium session: {e}\n{}",
            std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default()
        ),
        Err(_) => panic!("Chromium session not started within 90 s"),
    }
}

/// A one-shot HTTP/1.1 request that needs no runtime; returns once the whole
/// response is in, since chromedriver keeps the connection open regardless of
/// `Connection: close`.
fn blocking_request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if response.len() >= end + 4 + length {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// `s` as a CSS string body (between double quotes).
fn css_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `s` as an XPath 1.0 string literal, which has no escapes.
fn xpath_string(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One request the browser made to the callback listener.
#[derive(Debug, Clone)]
pub struct Callback {
    pub method: Method,
    /// The raw query string, empty if there was none.
    pub query: String,
    /// The raw body: the parameters of a `response_mode=form_post` response.
    pub body: String,
}

impl Callback {
    /// The query parameters of a GET, or the form parameters of a POST.
    pub fn params(&self) -> Vec<(String, String)> {
        let raw = if self.method == Method::POST {
            &self.body
        } else {
            &self.query
        };
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }

    /// The first parameter called `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A client's redirect URI inside the test: records every request to `/cb`
/// and answers a small page.
pub struct CallbackListener {
    /// `http://127.0.0.1:PORT/cb`
    pub url: String,
    received: mpsc::UnboundedReceiver<Callback>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackListener {
    pub async fn start() -> CallbackListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb", listener.local_addr().unwrap());
        let (tx, received) = mpsc::unbounded_channel();
        let router = Router::new()
            .route("/cb", get(record_callback).post(record_callback))
            .with_state(tx);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        CallbackListener {
            url,
            received,
            task,
        }
    }

    /// The next request to `/cb`, waiting at most [`TIMEOUT`].
    pub async fn next(&mut self) -> Callback {
        tokio::time::timeout(TIMEOUT, self.received.recv())
            .await
            .unwrap_or_else(|_| panic!("no request to {} within {TIMEOUT:?}", self.url))
            .expect("callback listener stopped")
    }

    /// A request already received and not yet taken, without waiting.
    pub fn try_next(&mut self) -> Option<Callback> {
        self.received.try_recv().ok()
    }
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_callback(
    State(tx): State<mpsc::UnboundedSender<Callback>>,
    method: Method,
    RawQuery(query): RawQuery,
    body: String,
) -> Html<&'static str> {
    let _ = tx.send(Callback {
        method,
        query: query.unwrap_or_default(),
        body,
    });
    Html(
        "<!doctype html><html><head><title>callback</title></head>\
         <body><p>callback received</p></body></html>",
    )
}

#[tokio::test]
async fn browser_drives_a_real_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;

    browser
        .goto(&format!(
            "{}/.well-known/openid-configuration",
            server.issuer
        ))
        .await;
    let source = browser.page_source().await;
    assert!(
        source.contains(&server.issuer),
        "discovery page does not show the issuer {}:\n{}",
        server.issuer,
        truncate(&source, 2000)
    );

    // A redirect back to the client, as the authorization endpoint will send.
    let mut cb = CallbackListener::start().await;
    browser.goto(&format!("{}?code=x&state=y", cb.url)).await;
    let landed = browser.wait_for_url_prefix(&cb.url).await;
    assert_eq!(landed.query(), Some("code=x&state=y"));
    let got = cb.next().await;
    assert_eq!(got.method, Method::GET);
    assert_eq!(got.query, "code=x&state=y");
    assert_eq!(got.param("code").as_deref(), Some("x"));
    assert_eq!(got.param("state").as_deref(), Some("y"));
    assert!(cb.try_next().is_none(), "one navigation, one request");

    // The form helpers and a form_post-style response, on a form put into
    // the callback page itself.
    browser
        .client()
        .execute(
            "document.cookie = 'probe=1; path=/';
             document.body.innerHTML =
               '<form method=\"post\" action=\"/cb\">' +
               '<input name=\"code\" value=\"old\"><input name=\"state\">' +
               '<button type=\"submit\" name=\"decision\" value=\"allow\">Allow access</button>' +
               '</form>';",
            vec![],
        )
        .await
        .unwrap();
    let cookies = browser.cookies().await;
    assert!(
        cookies
            .iter()
            .any(|c| c.name() == "probe" && c.value() == "1"),
        "{cookies:?}"
    );
    browser.fill("code", "p q").await;
    browser.fill("state", "s&t").await;
    browser.click_button("Allow access").await;
    let got = cb.next().await;
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.param("code").as_deref(), Some("p q"));
    assert_eq!(got.param("state").as_deref(), Some("s&t"));
    assert_eq!(got.param("decision").as_deref(), Some("allow"));

    browser.close().await;
}

#[tokio::test]
async fn two_browsers_at_once() {
    let (Some(a), Some(b)) = tokio::join!(Browser::start(), Browser::start()) else {
        return;
    };
    let mut cb = CallbackListener::start().await;
    let url_a = format!("{}?state=a", cb.url);
    let url_b = format!("{}?state=b", cb.url);
    tokio::join!(a.goto(&url_a), b.goto(&url_b));
    // Both arrive (a navigation tried again may arrive twice).
    let mut states = std::collections::BTreeSet::new();
    while states.len() < 2 {
        states.insert(cb.next().await.param("state").unwrap());
    }
    assert_eq!(states.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    // Separate profiles: a cookie set in one is not seen by the other.
    a.client()
        .execute("document.cookie = 'only=a; path=/'", vec![])
        .await
        .unwrap();
    assert!(a.cookies().await.iter().any(|c| c.name() == "only"));
    assert!(b.cookies().await.iter().all(|c| c.name() != "only"));
    tokio::join!(a.close(), b.close());
}
