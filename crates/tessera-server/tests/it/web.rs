//! A browser-like HTTP client for the page flows: cookies kept per name,
//! redirects not followed, forms read from the HTML. Shared by the people and
//! device tests; the real-browser tests are in `browser_flows`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Stdio;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::common::TestServer;

/// The password of every user the page tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates a user with `PASSWORD`; returns its `sub`.
pub fn create_user(
    server: &TestServer,
    username: &str,
    email: Option<&str>,
    name: Option<&str>,
) -> String {
    let mut args = vec!["user", "create", "--username", username];
    if let Some(email) = email {
        args.extend(["--email", email]);
    }
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    args.extend(["--password-stdin", "--json"]);
    cli_with_password(server, &args, PASSWORD)["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs a CLI command that reads a password from stdin (a pipe) and prints
/// JSON; it must succeed.
pub fn cli_with_password(server: &TestServer, args: &[&str], password: &str) -> Value {
    let mut child = server
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One HTTP response, body read.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header(LOCATION.as_str())
    }

    /// The value of the form input named `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        input_value(&self.body, name)
    }

    /// The raw `Set-Cookie` header for `name`, if this response set it.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| {
                v.split(';')
                    .next()
                    .and_then(|p| p.split_once('='))
                    .map(|(n, _)| n.trim())
                    == Some(name)
            })
    }

    pub fn is_login(&self) -> bool {
        self.status == StatusCode::OK && self.body.contains("action=\"/login\"")
    }

    pub fn is_confirmation(&self) -> bool {
        self.status == StatusCode::OK && self.body.contains("action=\"/device/decision\"")
    }

    pub fn is_consent(&self) -> bool {
        self.status == StatusCode::OK && self.body.contains("action=\"/consent\"")
    }

    /// The text of the page's error paragraph.
    pub fn error_message(&self) -> Option<String> {
        let start = self.body.find("class=\"error\"")?;
        let open = start + self.body[start..].find('>')? + 1;
        let close = open + self.body[open..].find("</p>")?;
        Some(unescape(&self.body[open..close]))
    }

    pub fn describe(&self) -> String {
        format!(
            "{} location={:?}\n{}",
            self.status,
            self.location(),
            self.body
        )
    }
}

/// The `value` of the first `<input>` or `<button>` named `name`, unescaped.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value = tag.find("value=\"")? + "value=\"".len();
    let rest = &tag[value..];
    Some(unescape(&rest[..rest.find('"')?]))
}

/// Decodes the character references a template escaper writes: the named
/// ones of HTML's special characters and numeric ones (`&#60;`, `&#x3c;`).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A cookie jar in front of the server's HTTP client, one cookie per name (all
/// of Tessera's cookies have path `/` on one host).
pub struct Browser<'a> {
    pub server: &'a TestServer,
    pub cookies: BTreeMap<String, String>,
    /// Sent as `X-Forwarded-For`, as a reverse proxy in front would.
    pub forwarded_for: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        Browser {
            server,
            cookies: BTreeMap::new(),
            forwarded_for: None,
        }
    }

    pub async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(reqwest::header::COOKIE, header);
        }
        if let Some(address) = &self.forwarded_for {
            request = request.header("x-forwarded-for", address);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for raw in headers.get_all(SET_COOKIE).iter() {
            let raw = raw.to_str().unwrap();
            let (name, value) = raw.split(';').next().unwrap().split_once('=').unwrap();
            let removed = value.is_empty()
                || raw
                    .split(';')
                    .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if removed {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.server.http.get(self.server.url(path));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.server.http.post(self.server.url(path)).form(form);
        self.send(request).await
    }

    /// Submits the login form of `page`.
    pub async fn login(&mut self, page: &Page, username: &str, password: &str) -> Page {
        assert!(page.is_login(), "not a login page: {}", page.describe());
        let csrf = page.input("csrf").expect("csrf field");
        let interaction = page.input("interaction").expect("interaction field");
        self.post(
            "/login",
            &[
                ("csrf", csrf.as_str()),
                ("interaction", interaction.as_str()),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}
