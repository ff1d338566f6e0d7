//! The browser's part of the code flow, scripted as the README describes it:
//! the authorization request, the login form with its CSRF token and
//! interaction, the consent form, and the redirect with the code. Used to
//! sign people in before the measurements, to mint authorization codes with a
//! session cookie, and for the login load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::header;
use tokio::time::Instant;

use crate::http::{Connection, Reply, Template, form};
use crate::load::Window;

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new(seed: &str) -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(digest(&SHA256, seed.as_bytes()));
        let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// A code request: the path and query of `/oauth2/authorize`.
pub fn authorize_path(client_id: &str, redirect_uri: &str, scope: &str, pkce: &Pkce) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "bench")
        .append_pair("nonce", "bench")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("/oauth2/authorize?{query}")
}

/// The `code` of a redirect's `Location`.
pub fn code_of(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
}

/// A browser: one connection and its cookies (one per name; Tessera's
/// cookies all have path `/` on one host).
#[derive(Debug)]
pub struct Browser {
    addr: SocketAddr,
    connection: Connection,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            connection: Connection::new(addr),
            cookies: Vec::new(),
        }
    }

    /// Forgets every cookie (a new browser on the same connection).
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        let template = Template::get(self.addr, path)?;
        self.send(template, Bytes::new()).await
    }

    pub async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Result<Reply, String> {
        let template = Template::post_form(self.addr, path)?;
        self.send(template, form(pairs)).await
    }

    async fn send(&mut self, mut template: Template, body: Bytes) -> Result<Reply, String> {
        if !self.cookies.is_empty() {
            template = template.cookie(&self.cookie_header())?;
        }
        let reply = self.connection.send(template.request(body)).await?;
        for raw in reply.headers.get_all(header::SET_COOKIE) {
            let Ok(raw) = raw.to_str() else { continue };
            let Some((name, value)) = raw.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let removed = value.is_empty()
                || raw
                    .split(';')
                    .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.cookies.retain(|(n, _)| n != name);
            if !removed {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Ok(reply)
    }

    /// Goes through the whole sign-in from `authorize` (a path with query):
    /// the login form, then the consent form if it comes. Returns the final
    /// redirect's `Location`.
    pub async fn sign_in(
        &mut self,
        authorize: &str,
        username: &str,
        password: &str,
    ) -> Result<String, String> {
        let login = self.get(authorize).await?;
        let page = String::from_utf8_lossy(&login.body).into_owned();
        if login.status != StatusCode::OK || !page.contains("action=\"/login\"") {
            return Err(format!(
                "expected the login page, got {}: {}",
                login.status,
                login.text(300)
            ));
        }
        let (csrf, interaction) = form_fields(&page)?;
        let mut reply = self
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("interaction", &interaction),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await?;
        let page = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status == StatusCode::OK && page.contains("action=\"/consent\"") {
            let (csrf, interaction) = form_fields(&page)?;
            reply = self
                .post(
                    "/consent",
                    &[
                        ("csrf", &csrf),
                        ("interaction", &interaction),
                        ("decision", "approve"),
                    ],
                )
                .await?;
        }
        redirect_location(&reply)
    }
}

/// The `Location` of a redirect that carries a code.
pub fn redirect_location(reply: &Reply) -> Result<String, String> {
    if !reply.status.is_redirection() {
        return Err(format!(
            "expected a redirect with a code, got {}: {}",
            reply.status,
            reply.text(300)
        ));
    }
    let location = reply
        .header(header::LOCATION)
        .ok_or("a redirect without Location")?;
    if code_of(location).is_none() {
        return Err(format!("a redirect without a code: {location}"));
    }
    Ok(location.to_owned())
}

fn form_fields(page: &str) -> Result<(String, String), String> {
    let csrf = input_value(page, "csrf").ok_or("the form has no csrf field")?;
    let interaction =
        input_value(page, "interaction").ok_or("the form has no interaction field")?;
    Ok((csrf, interaction))
}

/// The `value` of the first `<input>` named `name`, unescaped.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value = tag.find("value=\"")? + "value=\"".len();
    let rest = &tag[value..];
    Some(unescape(&rest[..rest.find('"')?]))
}

/// Decodes the character references an HTML escaper writes.
fn unescape(text: &str) -> String {
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

/// Authorization codes minted with a signed-in browser's session cookie:
/// `GET /oauth2/authorize` answers at once with a redirect carrying a code,
/// as consent was given before.
#[derive(Debug)]
pub struct Minted {
    pub codes: Vec<String>,
    pub failures: u64,
    pub first_failure: Option<String>,
}

/// Mints up to `count` codes over `parallel` connections, stopping at
/// `until` (codes expire: minting must leave time to use them).
pub async fn mint_codes(
    addr: SocketAddr,
    authorize: &str,
    session_cookie: &str,
    count: usize,
    parallel: usize,
    until: Instant,
) -> Result<Minted, String> {
    let template = Template::get(addr, authorize)?.cookie(session_cookie)?;
    let left = Arc::new(AtomicU64::new(count as u64));
    let mut tasks = Vec::new();
    for _ in 0..parallel.max(1) {
        let (template, left) = (template.clone(), Arc::clone(&left));
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::new(addr);
            let mut codes = Vec::new();
            let (mut failures, mut first_failure) = (0, None);
            while Instant::now() < until
                && left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let result = connection.send(template.request(Bytes::new())).await;
                match result.and_then(|reply| redirect_location(&reply)) {
                    Ok(location) => codes.extend(code_of(&location)),
                    Err(e) => {
                        failures += 1;
                        first_failure.get_or_insert(e);
                        if failures > 10 {
                            break;
                        }
                    }
                }
            }
            (codes, failures, first_failure)
        }));
    }
    let mut minted = Minted {
        codes: Vec::with_capacity(count),
        failures: 0,
        first_failure: None,
    };
    for task in tasks {
        let (codes, failures, first) = task.await.map_err(|e| e.to_string())?;
        minted.codes.extend(codes);
        minted.failures += failures;
        if minted.first_failure.is_none() {
            minted.first_failure = first;
        }
    }
    Ok(minted)
}

/// The login load: browsers that sign in again and again with the right
/// password, each a whole form flow (authorization request, login form,
/// redirect with a code), until stopped. Counts the sign-ins completed
/// inside a window.
#[derive(Debug)]
pub struct Logins {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, u64, Option<String>)>>,
}

impl Logins {
    /// Starts one looping browser per `(authorize, username)` pair.
    pub fn start(
        addr: SocketAddr,
        people: Vec<(String, String)>,
        password: String,
        window: Window,
    ) -> Logins {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = people
            .into_iter()
            .map(|(authorize, username)| {
                let (stop, password) = (Arc::clone(&stop), password.clone());
                tokio::spawn(async move {
                    let mut browser = Browser::new(addr);
                    let (mut counted, mut failures, mut first_failure) = (0, 0, None);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < window.to {
                        browser.clear_cookies();
                        match browser.sign_in(&authorize, &username, &password).await {
                            Ok(_) if window.contains(Instant::now()) => counted += 1,
                            Ok(_) => {}
                            Err(e) => {
                                failures += 1;
                                first_failure.get_or_insert(e);
                            }
                        }
                    }
                    (counted, failures, first_failure)
                })
            })
            .collect();
        Logins { stop, tasks }
    }

    /// Stops the browsers: (sign-ins in the window, failures, first failure).
    pub async fn stop(self) -> (u64, u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut counted, mut failures, mut first) = (0, 0, None);
        for task in self.tasks {
            match task.await {
                Ok((c, f, e)) => {
                    counted += c;
                    failures += f;
                    if first.is_none() {
                        first = e;
                    }
                }
                Err(e) => {
                    failures += 1;
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
        (counted, failures, first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_inputs_and_codes_are_read() {
        let page = r#"<form method="post" action="/login"><input type="hidden" name="csrf" value="a&amp;b"><input type="hidden" name="interaction" value="x.y"></form>"#;
        assert_eq!(input_value(page, "csrf").as_deref(), Some("a&b"));
        assert_eq!(input_value(page, "interaction").as_deref(), Some("x.y"));
        assert_eq!(input_value(page, "username"), None);
        assert_eq!(
            code_of("https://app.example/cb?code=abc%2B&state=bench&iss=x").as_deref(),
            Some("abc+")
        );
        assert_eq!(code_of("https://app.example/cb?error=access_denied"), None);
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let pkce = Pkce::new("seed");
        assert_eq!(pkce.verifier.len(), 43);
    }
}
