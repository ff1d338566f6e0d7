//! A small HTTP/1.1 client over hyper's connection API: one keep-alive
//! connection per user, `TCP_NODELAY`, no pool, no redirects, no cookies of
//! its own. Requests are made from prebuilt [`Template`]s so that the load
//! driver does little per request beyond what HTTP itself needs.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The request body type: a whole body in memory.
pub type Body = Full<Bytes>;

/// A response with its body read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text, for error messages (at most `limit` bytes).
    pub fn text(&self, limit: usize) -> String {
        let end = self.body.len().min(limit);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }

    /// The string value of a top-level JSON member, found without parsing the
    /// whole answer (`"name":"value"`, as Tessera and the floor write it).
    pub fn json_str(&self, name: &str) -> Option<&str> {
        json_str(&self.body, name)
    }
}

/// The string value of `"name":"…"` in a compact JSON text; values with
/// escapes are not expected (tokens and codes are base64url or hex).
pub fn json_str<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let at = find(body, key.as_bytes())? + key.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok()
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One keep-alive connection to one server, opened on first use and again
/// after the server closed it.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    sender: Option<SendRequest<Body>>,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Connection {
        Connection { addr, sender: None }
    }

    /// Sends a request and reads the whole answer. A failed exchange drops
    /// the connection; the next request opens a new one.
    pub async fn send(&mut self, request: Request<Body>) -> Result<Reply, String> {
        let open = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !open {
            self.sender = Some(connect(self.addr).await?);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err("no connection".into());
        };
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                self.sender = None;
                return Err(format!("request failed: {e}"));
            }
        };
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(body) => Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body: body.to_bytes(),
            }),
            Err(e) => {
                self.sender = None;
                Err(format!("reading the answer failed: {e}"))
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Body>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request prepared once: method, path and headers. Each request built
/// from it costs a header-map copy and the body's reference count.
#[derive(Debug, Clone)]
pub struct Template {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    /// A request to `path` (with its query) on `addr`.
    pub fn new(method: Method, addr: SocketAddr, path: &str) -> Result<Template, String> {
        let uri: Uri = path.parse().map_err(|e| format!("bad path {path}: {e}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value(&addr.to_string())?);
        Ok(Template {
            method,
            uri,
            headers,
        })
    }

    pub fn get(addr: SocketAddr, path: &str) -> Result<Template, String> {
        Template::new(Method::GET, addr, path)
    }

    /// A form POST (`application/x-www-form-urlencoded`).
    pub fn post_form(addr: SocketAddr, path: &str) -> Result<Template, String> {
        let mut template = Template::new(Method::POST, addr, path)?;
        template.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        Ok(template)
    }

    /// With HTTP Basic client authentication (RFC 6749 §2.3.1: both parts
    /// form-encoded, then base64).
    pub fn basic(mut self, id: &str, secret: &str) -> Result<Template, String> {
        use base64::Engine as _;
        let pair = format!("{}:{}", form_encode(id), form_encode(secret));
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.headers
            .insert(header::AUTHORIZATION, value(&format!("Basic {encoded}"))?);
        Ok(self)
    }

    /// With a `Cookie` header.
    pub fn cookie(mut self, cookie: &str) -> Result<Template, String> {
        self.headers.insert(header::COOKIE, value(cookie)?);
        Ok(self)
    }

    /// A request with `body`.
    pub fn request(&self, body: Bytes) -> Request<Body> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

fn value(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|e| format!("bad header value: {e}"))
}

/// One value, `application/x-www-form-urlencoded`.
pub fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A form body from pairs.
pub fn form(pairs: &[(&str, &str)]) -> Bytes {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    Bytes::from(serializer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_are_found_without_parsing() {
        let body = br#"{"access_token":"a.b.c","token_type":"Bearer","refresh_token":"r-1"}"#;
        assert_eq!(json_str(body, "access_token"), Some("a.b.c"));
        assert_eq!(json_str(body, "refresh_token"), Some("r-1"));
        assert_eq!(json_str(body, "id_token"), None);
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form(&[("a", "x y"), ("redirect_uri", "https://a.example/cb")]),
            Bytes::from_static(b"a=x+y&redirect_uri=https%3A%2F%2Fa.example%2Fcb")
        );
    }
}
