//! Request parameters of the token, introspection, revocation and authorization
//! endpoints.

use std::borrow::Cow;

use crate::Error;

/// The most parameters one request may carry (`resource` included); real
/// requests have a dozen at most.
pub const MAX_PARAMETERS: usize = 256;

/// Parameters from an `application/x-www-form-urlencoded` body or query.
#[derive(Debug, Default, Clone)]
pub struct Params {
    // A handful of parameters per request: a vector scans faster than a map hashes.
    single: Vec<(String, String)>,
    resources: Vec<String>,
    /// `audience` values of a token exchange, which RFC 8693 §2.1 allows
    /// several times.
    audiences: Vec<String>,
    /// The first parameter whose name or value is not UTF-8 (its name decoded
    /// lossily), set aside by [`Params::from_form_deferring_errors`].
    not_utf8: Option<String>,
    /// Parameters sent more than once, set aside (every occurrence) by
    /// [`Params::from_form_deferring_errors`], in the order they were found.
    repeated: Vec<String>,
}

impl Params {
    /// Parses a form body. Parameters must not be repeated (RFC 6749 §3.1 and
    /// §3.2), except `resource`, which RFC 8707 §2 allows several times. A
    /// parameter sent without a value is treated as omitted (RFC 6749 §3.1).
    /// Names and values must be UTF-8 once decoded (RFC 6749 Appendix B): a
    /// replacement character in place of a byte would make a different value
    /// from the one the client sent, so such a request is refused.
    pub fn from_form(body: &[u8]) -> Result<Self, Error> {
        let params = Self::parse(body, false)?;
        match params.not_utf8 {
            Some(name) => Err(not_utf8_error(&name)),
            None => Ok(params),
        }
    }

    /// Like [`Params::from_form`], except that a parameter whose name or value
    /// is not UTF-8, or that is repeated, is left out (every occurrence) and
    /// remembered ([`Params::deferred_error`]) instead of failing the whole
    /// request. For the authorization endpoint, which must first learn
    /// whether the client and its redirect URI can be trusted before it knows
    /// how to report an error (RFC 6749 §4.1.2.1).
    pub fn from_form_deferring_errors(body: &[u8]) -> Result<Self, Error> {
        Self::parse(body, true)
    }

    fn parse(body: &[u8], defer: bool) -> Result<Self, Error> {
        let mut params = Params::default();
        for (count, pair) in body
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            // The repeat check scans what came before: bounding the count keeps
            // a 64 KiB body of tiny parameters from costing quadratic time.
            if count >= MAX_PARAMETERS {
                return Err(Error::new(
                    crate::Reason::MalformedRequest,
                    format!("a request has at most {MAX_PARAMETERS} parameters"),
                ));
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            let (Some(name), Some(value)) = (decode(name), decode(value)) else {
                params
                    .not_utf8
                    .get_or_insert_with(|| String::from_utf8_lossy(&percent_decode(name)).into());
                continue;
            };
            if value.is_empty() {
                continue;
            }
            if name == "resource" {
                params.resources.push(value);
            } else if name == "audience" {
                params.audiences.push(value);
            } else if params.repeated.contains(&name) {
                // A third occurrence (or more) of one already set aside.
            } else if params.get(&name).is_some() {
                if !defer {
                    return Err(repeated_error(&name));
                }
                // Neither value can be told to be the one meant.
                params.single.retain(|(n, _)| *n != name);
                params.repeated.push(name);
            } else {
                params.single.push((name, value));
            }
        }
        Ok(params)
    }

    /// The error for a parameter that was not UTF-8, if one was set aside by
    /// [`Params::from_form_deferring_errors`].
    pub fn utf8_error(&self) -> Option<Error> {
        self.not_utf8.as_deref().map(not_utf8_error)
    }

    /// The error for what [`Params::from_form_deferring_errors`] set aside: a
    /// parameter that was not UTF-8, else the first repeated one.
    pub fn deferred_error(&self) -> Option<Error> {
        self.utf8_error()
            .or_else(|| self.repeated.first().map(|name| repeated_error(name)))
    }

    /// Whether `name` was sent more than once (and so set aside).
    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|n| n == name)
    }

    /// Whether the parameter set aside as not UTF-8 is `name`.
    pub fn is_not_utf8(&self, name: &str) -> bool {
        self.not_utf8.as_deref() == Some(name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.single
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &'static str) -> Result<&str, Error> {
        self.get(name).ok_or_else(|| missing(name))
    }

    /// RFC 8707 resource indicators, in request order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// RFC 8693 `audience` values, in request order.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
}

/// The parameters a grant declared, over the request's: the others read as
/// absent, so a grant cannot come to depend on one it did not declare.
/// `scope` and `resource` are common to every grant (RFC 6749 §3.3, RFC 8707).
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    params: &'a Params,
    names: &'static [&'static str],
}

impl<'a> Declared<'a> {
    pub fn new(params: &'a Params, names: &'static [&'static str]) -> Self {
        Declared { params, names }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        if name == "scope" || self.names.contains(&name) {
            self.params.get(name)
        } else {
            None
        }
    }

    pub fn require(&self, name: &'static str) -> Result<&'a str, Error> {
        self.get(name).ok_or_else(|| missing(name))
    }

    pub fn resources(&self) -> &'a [String] {
        self.params.resources()
    }

    /// The `audience` values, for a grant that declared `audience`.
    pub fn audiences(&self) -> &'a [String] {
        if self.names.contains(&"audience") {
            self.params.audiences()
        } else {
            &[]
        }
    }
}

fn repeated_error(name: &str) -> Error {
    Error::new(
        crate::Reason::RepeatedParameter,
        format!("parameter {:?} is repeated", crate::error::bounded(name)),
    )
}

fn not_utf8_error(name: &str) -> Error {
    Error::new(
        crate::Reason::ParameterNotUtf8,
        format!(
            "parameter {:?} is not valid UTF-8",
            crate::error::bounded(name)
        ),
    )
}

fn missing(name: &str) -> Error {
    Error::new(
        crate::Reason::MissingParameter,
        format!("parameter {name:?} is missing"),
    )
}

/// One name or value of a form (URL Standard §5.1): `+` stands for a space,
/// then percent-decoding; `None` when the bytes are not UTF-8.
fn decode(raw: &[u8]) -> Option<String> {
    String::from_utf8(percent_decode(raw)).ok()
}

fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let spaced: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    percent_encoding::percent_decode(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_of_parameters_is_bounded() {
        let many = |n: usize| {
            (0..n)
                .map(|i| format!("p{i}=x"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert!(Params::from_form(many(MAX_PARAMETERS).as_bytes()).is_ok());
        let err = Params::from_form(many(MAX_PARAMETERS + 1).as_bytes()).expect_err("too many");
        assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
        let resources = "resource=https%3A%2F%2Fa.example&".repeat(MAX_PARAMETERS + 1);
        assert!(Params::from_form(resources.as_bytes()).is_err());
    }

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        let ok = Params::from_form(b"grant_type=client_credentials&resource=a&resource=b&scope=")
            .expect("valid");
        assert_eq!(ok.get("grant_type"), Some("client_credentials"));
        assert_eq!(ok.resources(), ["a", "b"]);
        assert_eq!(ok.get("scope"), None);
        let err = Params::from_form(b"scope=a&scope=b").expect_err("repeated");
        assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
    }

    #[test]
    fn the_authorization_endpoint_sets_repeated_parameters_aside() {
        let params =
            Params::from_form_deferring_errors(b"state=a&client_id=c&state=b&scope=x&state=c")
                .expect("deferred");
        assert_eq!(params.get("state"), None, "ambiguous: neither value");
        assert!(params.is_repeated("state"));
        assert!(!params.is_repeated("client_id"));
        assert_eq!(params.get("client_id"), Some("c"));
        assert_eq!(params.get("scope"), Some("x"));
        let err = params.deferred_error().expect("the repeat is reported");
        assert_eq!(err.reason, crate::Reason::RepeatedParameter);
        assert!(err.description.contains("state"), "{}", err.description);
        // A value that is not UTF-8 is reported first.
        let both =
            Params::from_form_deferring_errors(b"scope=a&scope=b&nonce=%FF").expect("deferred");
        assert_eq!(
            both.deferred_error().map(|e| e.reason),
            Some(crate::Reason::ParameterNotUtf8)
        );
        assert!(
            Params::from_form_deferring_errors(b"a=1")
                .expect("valid")
                .deferred_error()
                .is_none()
        );
    }

    #[test]
    fn forms_decode_as_the_url_standard_says() {
        let params = Params::from_form(b"&a=x+y%2Bz&b=%C3%A9t%C3%A9&c=1=2&d&e=%zz&&f=%E2%82%AC")
            .expect("valid");
        assert_eq!(params.get("a"), Some("x y+z"));
        assert_eq!(params.get("b"), Some("\u{e9}t\u{e9}"));
        assert_eq!(params.get("c"), Some("1=2"));
        assert_eq!(params.get("d"), None);
        // A `%` not followed by two hex digits stays as it is.
        assert_eq!(params.get("e"), Some("%zz"));
        assert_eq!(params.get("f"), Some("\u{20ac}"));
        assert_eq!(params.utf8_error().map(|e| e.code()), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_not_replaced() {
        for body in [
            &b"grant_type=client_credentials&state=%FF"[..],
            b"state=%C3%28",
            b"state=ok&%FF=x",
            b"state=\xff",
            // An overlong encoding of `/`.
            b"state=%C0%AF",
        ] {
            let err = Params::from_form(body).expect_err("not UTF-8");
            assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
            assert!(err.description.contains("UTF-8"), "{}", err.description);
        }
        // Deferred, the rest is kept and the error is named.
        let params = Params::from_form_deferring_errors(
            b"client_id=app&state=%FF&redirect_uri=https%3A%2F%2Fa",
        )
        .expect("deferred");
        assert_eq!(params.get("client_id"), Some("app"));
        assert_eq!(params.get("redirect_uri"), Some("https://a"));
        assert_eq!(params.get("state"), None);
        assert!(params.is_not_utf8("state"));
        assert!(!params.is_not_utf8("client_id"));
        let err = params.utf8_error().expect("remembered");
        assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
        assert!(err.description.contains("\"state\""), "{}", err.description);
    }
}
