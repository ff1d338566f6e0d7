//! Redirect URI rules: `authorize::redirect_uri_matches` (exact string
//! comparison, RFC 6749 §3.1.2.3 and RFC 9700 §4.1.3, except the port of a
//! loopback IP literal, RFC 8252 §7.3) and `registration::check_redirect_uri`
//! (what may be registered, RFC 6749 §3.1.2, RFC 8252 §7, §8.3).
//!
//! Two input forms:
//!
//! - text (the seed corpus): lines, the last one the presented URI, the ones
//!   before it the registered URIs;
//! - a first byte of 0, then structured data (`arbitrary`): registered URIs
//!   built from parts, and a presented URI made from one of them by a few
//!   mutations (another port, host, scheme, path, user information, case...),
//!   so that near misses are common.
//!
//! Checked: the match is exactly "equal strings, or both loopback IP
//! literals over plain http with the same host and the same path and query
//! after an optional numeric port"; against registered URIs that pass the
//! registration rules, a match has the same scheme, host, path, query and
//! user information as one of them once parsed by the `url` crate, and
//! passes the registration rules itself (but for a port out of range, which
//! the authorization endpoint's own check of the URI refuses); whatever the
//! registration rules accept is absolute, without fragment, user
//! information, wildcard or whitespace, and https, http on a loopback host,
//! or a reverse-domain private-use scheme.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tessera_core::authorize::redirect_uri_matches;
use tessera_core::registration::{RegistrationErrorKind, check_redirect_uri, is_loopback_host};

fuzz_target!(|data: &[u8]| {
    let (registered, presented) = match data.split_first() {
        Some((0, rest)) => {
            let Ok(input) = Structured::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            input.render()
        }
        _ => {
            let text = String::from_utf8_lossy(data);
            let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
            let presented = lines.pop().unwrap_or_default();
            lines.truncate(8);
            (lines, presented)
        }
    };
    check(&registered, &presented);
});

fn check(registered: &[String], presented: &str) {
    for uri in registered.iter().map(String::as_str).chain([presented]) {
        check_rules(uri);
    }

    // The whole rule, restated.
    let matched = redirect_uri_matches(registered, presented);
    let exact = registered.iter().any(|r| r == presented);
    let loopback = loopback_parts(presented)
        .is_some_and(|p| registered.iter().any(|r| loopback_parts(r) == Some(p)));
    assert_eq!(
        matched,
        exact || loopback,
        "registered {registered:?}, presented {presented:?}"
    );

    // Against what the registration rules let in.
    let allowed: Vec<String> = registered
        .iter()
        .filter(|r| check_redirect_uri(r).is_ok())
        .cloned()
        .collect();
    if !redirect_uri_matches(&allowed, presented) {
        return;
    }
    if let Err(error) = check_redirect_uri(presented) {
        // Only the port can differ from a registered URI, and only a port
        // out of range makes the URI unparsable. The authorization endpoint
        // checks the presented URI against the registration rules as well.
        assert_eq!(
            url::Url::parse(presented),
            Err(url::ParseError::InvalidPort),
            "{presented:?} matches {allowed:?} but is refused: {error}"
        );
        return;
    }
    let p = url::Url::parse(presented).expect("passed the registration rules");
    let same = allowed.iter().any(|r| {
        let r = url::Url::parse(r).expect("passed the registration rules");
        r.scheme() == p.scheme()
            && r.host() == p.host()
            && r.username() == p.username()
            && r.password() == p.password()
            && r.path() == p.path()
            && r.query() == p.query()
            && r.fragment() == p.fragment()
            && (r.port() == p.port() || is_loopback_literal(&p))
    });
    assert!(
        same,
        "{presented:?} matches {allowed:?} but has another scheme, host, path or query"
    );
}

/// What the registration rules accept, restated from RFC 6749 §3.1.2,
/// RFC 8252 §7 and §8.3 and RFC 9700 §4.1.3.
fn check_rules(uri: &str) {
    if let Err(error) = check_redirect_uri(uri) {
        assert_eq!(error.kind, RegistrationErrorKind::InvalidRedirectUri);
        assert!(!error.message.is_empty());
        return;
    }
    assert!(!uri.is_empty() && uri.len() <= 2_000, "{uri:?}");
    assert!(
        !uri.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '#'),
        "{uri:?}"
    );
    let url = url::Url::parse(uri).unwrap_or_else(|e| panic!("{uri:?} accepted: {e}"));
    assert!(url.fragment().is_none(), "{uri:?}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{uri:?}"
    );
    let scheme = url.scheme();
    assert!(
        !["javascript", "data", "vbscript", "file", "blob", "about"].contains(&scheme),
        "{uri:?}"
    );
    match scheme {
        "https" => assert!(url.host().is_some(), "{uri:?}"),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.octets()[0] == 127,
                Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
                None => false,
            };
            assert!(loopback, "plain http on {:?} accepted: {uri:?}", url.host());
            assert!(is_loopback_host(&url));
        }
        other => assert!(other.contains('.'), "{uri:?}"),
    }
}

/// `http://127.0.0.1` or `http://[::1]`, then an optional `:` and digits,
/// then nothing, or a path or query: the host and what follows the port.
fn loopback_parts(uri: &str) -> Option<(&'static str, &str)> {
    for host in ["127.0.0.1", "[::1]"] {
        let Some(after) = uri
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_prefix(host))
        else {
            continue;
        };
        let port_len = match after.strip_prefix(':') {
            Some(digits) => {
                let n = digits.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 {
                    return None;
                }
                1 + n
            }
            None => 0,
        };
        let rest = &after[port_len..];
        return (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
            .then_some((host, rest));
    }
    None
}

fn is_loopback_literal(url: &url::Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            _ => false,
        }
}

// --- Structured input ----------------------------------------------------

#[derive(Arbitrary, Debug, Clone)]
enum Scheme {
    Https,
    Http,
    HttpUpper,
    Private,
    NoDot,
    Javascript,
    Data,
    File,
    Other(String),
}

impl Scheme {
    fn render(&self) -> &str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
            Scheme::HttpUpper => "HTTP",
            Scheme::Private => "com.example.app",
            Scheme::NoDot => "myapp",
            Scheme::Javascript => "javascript",
            Scheme::Data => "data",
            Scheme::File => "file",
            Scheme::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Host {
    Loopback4,
    Loopback6,
    Loopback4Other,
    Loopback4Hex,
    Localhost,
    LocalhostUpper,
    App,
    AppUpper,
    AppSuffix,
    AppTrailingDot,
    Evil,
    Ipv4(u8, u8, u8, u8),
    Ipv6Mapped,
    None,
    Other(String),
}

impl Host {
    fn render(&self) -> String {
        match self {
            Host::Loopback4 => "127.0.0.1".into(),
            Host::Loopback6 => "[::1]".into(),
            Host::Loopback4Other => "127.0.0.2".into(),
            Host::Loopback4Hex => "0x7f.1".into(),
            Host::Localhost => "localhost".into(),
            Host::LocalhostUpper => "LocalHost".into(),
            Host::App => "app.example".into(),
            Host::AppUpper => "APP.example".into(),
            Host::AppSuffix => "app.example.evil".into(),
            Host::AppTrailingDot => "app.example.".into(),
            Host::Evil => "evil.example".into(),
            Host::Ipv4(a, b, c, d) => format!("{a}.{b}.{c}.{d}"),
            Host::Ipv6Mapped => "[::ffff:127.0.0.1]".into(),
            Host::None => String::new(),
            Host::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Port {
    Number(u16),
    Large(u32),
    LeadingZeros(u16),
    Empty,
    Other(String),
}

impl Port {
    fn render(&self) -> String {
        match self {
            Port::Number(n) => format!(":{n}"),
            Port::Large(n) => format!(":{}", u64::from(*n) + 65_536),
            Port::LeadingZeros(n) => format!(":00{n}"),
            Port::Empty => ":".into(),
            Port::Other(s) => format!(":{s}"),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Segment {
    Cb,
    Callback,
    Empty,
    Dot,
    DotDot,
    EncodedSlash,
    EncodedDot,
    Backslash,
    Other(String),
}

impl Segment {
    fn render(&self) -> &str {
        match self {
            Segment::Cb => "cb",
            Segment::Callback => "callback",
            Segment::Empty => "",
            Segment::Dot => ".",
            Segment::DotDot => "..",
            Segment::EncodedSlash => "%2F",
            Segment::EncodedDot => "%2e",
            Segment::Backslash => "\\",
            Segment::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Uri {
    scheme: Scheme,
    /// Without `//` (a private-use scheme's `com.example.app:/cb`).
    no_authority: bool,
    userinfo: Option<String>,
    host: Host,
    port: Option<Port>,
    path: Vec<Segment>,
    query: Option<String>,
    fragment: Option<String>,
}

impl Uri {
    fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(self.scheme.render());
        out.push(':');
        if !self.no_authority {
            out.push_str("//");
            if let Some(userinfo) = &self.userinfo {
                out.push_str(userinfo);
                out.push('@');
            }
            out.push_str(&self.host.render());
            if let Some(port) = &self.port {
                out.push_str(&port.render());
            }
        }
        for segment in self.path.iter().take(6) {
            out.push('/');
            out.push_str(segment.render());
        }
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        if let Some(fragment) = &self.fragment {
            out.push('#');
            out.push_str(fragment);
        }
        out
    }
}

/// Changes to one registered URI that make the presented one.
#[derive(Arbitrary, Debug, Clone)]
enum Mutation {
    SetPort(Option<Port>),
    SetHost(Host),
    SetScheme(Scheme),
    SetUserinfo(Option<String>),
    PushSegment(Segment),
    PopSegment,
    SetQuery(Option<String>),
    SetFragment(Option<String>),
    // On the rendered text:
    Uppercase,
    TrailingSlash,
    Append(String),
    Prepend(String),
    Insert(u16, String),
    Remove(u16, u8),
    PercentEncode(u16),
}

#[derive(Arbitrary, Debug)]
struct Structured {
    registered: Vec<Uri>,
    base: u8,
    mutations: Vec<Mutation>,
}

impl Structured {
    fn render(&self) -> (Vec<String>, String) {
        let registered: Vec<String> = self.registered.iter().take(4).map(Uri::render).collect();
        let Some(base) = self
            .registered
            .get(usize::from(self.base) % self.registered.len().clamp(1, 4))
        else {
            return (registered, String::new());
        };
        let mut uri = base.clone();
        let mutations = &self.mutations[..self.mutations.len().min(4)];
        for mutation in mutations {
            match mutation {
                Mutation::SetPort(port) => uri.port = port.clone(),
                Mutation::SetHost(host) => uri.host = host.clone(),
                Mutation::SetScheme(scheme) => uri.scheme = scheme.clone(),
                Mutation::SetUserinfo(userinfo) => uri.userinfo = userinfo.clone(),
                Mutation::PushSegment(segment) => uri.path.push(segment.clone()),
                Mutation::PopSegment => {
                    uri.path.pop();
                }
                Mutation::SetQuery(query) => uri.query = query.clone(),
                Mutation::SetFragment(fragment) => uri.fragment = fragment.clone(),
                _ => {}
            }
        }
        let mut text = uri.render();
        for mutation in mutations {
            let at = |i: &u16, text: &String| {
                let mut i = usize::from(*i) % (text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            match mutation {
                Mutation::Uppercase => text = text.to_uppercase(),
                Mutation::TrailingSlash => text.push('/'),
                Mutation::Append(s) => text.push_str(s),
                Mutation::Prepend(s) => text.insert_str(0, s),
                Mutation::Insert(i, s) => {
                    let i = at(i, &text);
                    text.insert_str(i, s);
                }
                Mutation::Remove(i, n) => {
                    let start = at(i, &text);
                    let mut end = (start + usize::from(*n)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(start..end, "");
                }
                Mutation::PercentEncode(i) => {
                    let i = at(i, &text);
                    if let Some(c) = text[i..].chars().next().filter(char::is_ascii) {
                        text.replace_range(i..i + 1, &format!("%{:02X}", c as u32));
                    }
                }
                _ => {}
            }
        }
        (registered, text)
    }
}
