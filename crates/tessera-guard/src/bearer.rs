//! Reading the bearer token from a request (RFC 6750 §2.1).
//!
//! Only the `Authorization` header is read: tokens in query strings end up
//! in logs and browser history (RFC 6750 §5.3), and form bodies would tie
//! the guard to one body type.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::Error;

/// The bearer token of a request.
///
/// - no `Authorization` header, or one with another scheme:
///   [`Error::MissingToken`] (a bare challenge, RFC 6750 §3.1);
/// - several `Authorization` headers: [`Error::MultipleCredentials`];
/// - `Bearer` followed by anything but a `b64token`: [`Error::Malformed`].
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Error::MissingToken);
    };
    if values.next().is_some() {
        return Err(Error::MultipleCredentials);
    }
    let Ok(value) = value.to_str() else {
        return Err(Error::Malformed("the Authorization header is not ASCII"));
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(Error::MissingToken);
    }
    let token = token.trim_matches(' ');
    if !is_b64token(token) {
        return Err(Error::Malformed("the bearer credential is not a b64token"));
    }
    Ok(token)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
        }
        map
    }

    #[test]
    fn bearer_tokens_are_read() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])).ok(),
            Some("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(&headers(&["bearer  abc=="])).ok(),
            Some("abc==")
        );
        assert_eq!(
            bearer_token(&headers(&["BEARER a-b_c~d+e/f"])).ok(),
            Some("a-b_c~d+e/f")
        );
    }

    #[test]
    fn absent_or_other_schemes_mean_no_token() {
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(Error::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic dXNlcjpwdw=="])),
            Err(Error::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearerabc"])),
            Err(Error::MissingToken)
        ));
    }

    #[test]
    fn malformed_credentials_are_invalid_tokens() {
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer =abc",
            "Bearer a=b",
        ] {
            assert!(
                matches!(bearer_token(&headers(&[bad])), Err(Error::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(Error::MultipleCredentials)
        ));
    }
}
