//! The `code_login` example, a native app signing a person in through a
//! loopback redirect (RFC 8252), run as its own process against the real
//! server. The test plays the browser: it opens the address the example
//! prints, signs in and approves over HTTP, then follows the redirect to the
//! example's listener on 127.0.0.1.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::common::{TestServer, example};
use crate::web::{Browser, PASSWORD, Page, create_user};

/// The redirect URI exactly as the example's documentation registers it: no
/// port, since a loopback redirect URI matches on any port (RFC 8252 §7.3).
const REDIRECT: &str = "http://127.0.0.1/callback";

#[tokio::test]
async fn the_code_login_example_signs_in_through_a_loopback_redirect() {
    let (server, sub, client_id) = start().await;
    let mut example = Example::start(&server, &client_id);
    let url = example.authorize_url(&server).await;
    let query = query_of(&url);
    let redirect_uri = &query["redirect_uri"];
    let port: u16 = redirect_uri
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/callback"))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("not a loopback redirect URI: {redirect_uri}"));
    assert_ne!(port, 0);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["response_type"], "code");

    let mut browser = Browser::new(&server);
    let done = sign_in_and_decide(&mut browser, &url, "approve").await;
    let callback = done.location().expect("a redirect to the example");
    assert!(
        callback.starts_with(&format!("{redirect_uri}?")),
        "{callback}"
    );
    let answer = server.http.get(callback).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().await.unwrap().contains("Signed in"));

    let finished = example.finish().await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let out: Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e}): {}", finished.stdout));
    let access_token = out["tokens"]["access_token"].as_str().unwrap_or_default();
    assert!(!access_token.is_empty(), "{out}");
    assert!(out["tokens"]["id_token"].is_string(), "{out}");
    let claims = &out["id_token_claims"];
    assert_eq!(claims["sub"], sub.as_str(), "{out}");
    assert_eq!(claims["aud"], client_id.as_str(), "{out}");
    assert_eq!(claims["iss"], server.issuer.as_str(), "{out}");
    assert_eq!(claims["nonce"], query["nonce"].as_str(), "{out}");
    assert_eq!(out["userinfo"]["sub"], sub.as_str(), "{out}");
    assert_eq!(out["userinfo"]["name"], "Alice Liddell", "{out}");
    // The access token the example printed is one the server stands behind.
    let user = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_code_login_example_refuses_a_callback_with_another_state() {
    let (server, _, client_id) = start().await;
    let mut example = Example::start(&server, &client_id);
    let url = example.authorize_url(&server).await;
    let mut browser = Browser::new(&server);
    let done = sign_in_and_decide(&mut browser, &url, "approve").await;
    let callback = done.location().expect("a redirect to the example");

    // The real code, but a state this sign-in never sent: what a login-CSRF
    // attacker would deliver with a code of their own.
    let mut forged = url::Url::parse(callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { "forged".into() } else { v };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let answer = server.http.get(forged.as_str()).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(answer.text().await.unwrap().contains("state"));

    let finished = example.finish().await;
    assert!(!finished.status.success(), "{}", finished.stdout);
    assert!(
        finished
            .stderr
            .contains("state does not match this sign-in"),
        "{}",
        finished.stderr
    );
    assert!(finished.stdout.is_empty(), "{}", finished.stdout);
}

#[tokio::test]
async fn the_code_login_example_reports_a_denied_request() {
    let (server, _, client_id) = start().await;
    let mut example = Example::start(&server, &client_id);
    let url = example.authorize_url(&server).await;
    let mut browser = Browser::new(&server);
    let done = sign_in_and_decide(&mut browser, &url, "deny").await;
    let callback = done.location().expect("a redirect to the example");
    let answer = server.http.get(callback).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);

    let finished = example.finish().await;
    assert!(!finished.status.success(), "{}", finished.stdout);
    assert!(
        finished
            .stderr
            .contains("the server answered access_denied"),
        "{}",
        finished.stderr
    );
}

/// A server with alice and the public client of the example's documentation.
async fn start() -> (TestServer, String, String) {
    let server = TestServer::start().await;
    let sub = create_user(
        &server,
        "alice",
        Some("alice@example.com"),
        Some("Alice Liddell"),
    );
    let client = server.cli(&[
        "client",
        "create",
        "--name",
        "My CLI",
        "--public",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        REDIRECT,
        "--scope",
        "openid profile email offline_access",
        "--json",
    ]);
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    (server, sub, client_id)
}

/// Opens the authorization URL, signs alice in and submits the consent form
/// with `decision`: the response that sends the browser back to the client.
async fn sign_in_and_decide(browser: &mut Browser<'_>, url: &str, decision: &str) -> Page {
    let request = browser.server.http.get(url);
    let login = browser.send(request).await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    let csrf = consent.input("csrf").expect("csrf field");
    let interaction = consent.input("interaction").expect("interaction field");
    let done = browser
        .post(
            "/consent",
            &[
                ("csrf", csrf.as_str()),
                ("interaction", interaction.as_str()),
                ("decision", decision),
            ],
        )
        .await;
    assert!(done.status.is_redirection(), "{}", done.describe());
    done
}

fn query_of(url: &str) -> std::collections::BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The example running as a child process; killed if the test ends early.
struct Example {
    child: Option<Child>,
    stderr: UnboundedReceiver<String>,
    stderr_seen: Vec<String>,
    stdout: Option<JoinHandle<String>>,
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Example {
    fn start(server: &TestServer, client_id: &str) -> Example {
        let mut child = Command::new(example("code_login"))
            .args([
                "--issuer",
                &server.issuer,
                "--client-id",
                client_id,
                "--scope",
                "openid profile",
                "--no-browser",
                "--timeout",
                "60",
            ])
            // Belt and braces with --no-browser: no browser may open during tests.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the code_login example");
        let (lines, stderr) = unbounded_channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Example {
            child: Some(child),
            stderr,
            stderr_seen: Vec::new(),
            stdout: Some(stdout),
        }
    }

    /// The authorization URL the example prints for the person to open.
    async fn authorize_url(&mut self, server: &TestServer) -> String {
        let endpoint = format!("{}/oauth2/authorize?", server.issuer);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.stderr.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    panic!(
                        "the example printed no authorization URL:\n{}",
                        self.stderr_seen.join("\n")
                    )
                });
            self.stderr_seen.push(line.clone());
            if line.trim().starts_with(&endpoint) {
                return line.trim().to_owned();
            }
        }
    }

    /// Waits for the example to exit; returns its status and output.
    async fn finish(mut self) -> Finished {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit:\n{}",
                self.stderr_seen.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.child = None;
        // The pipes close with the process, so both readers end promptly.
        while let Some(line) = self.stderr.recv().await {
            self.stderr_seen.push(line);
        }
        let stdout = self.stdout.take().unwrap().join().unwrap();
        Finished {
            status,
            stdout,
            stderr: self.stderr_seen.join("\n"),
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
