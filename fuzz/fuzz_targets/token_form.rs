//! The form parser of the token, introspection, revocation and authorization
//! endpoints: `Params::from_form` and `Params::from_form_deferring_errors`.
//!
//! The input is a request body. Both parsers are checked against a model
//! written here from the rules in `params.rs` (RFC 6749 §3.1, §3.2 and
//! Appendix B, RFC 8707 §2, RFC 8693 §2.1, the URL Standard's form decoding),
//! with its own percent-decoder, and the decoded values against the
//! `form_urlencoded` crate.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::params::{Declared, MAX_PARAMETERS, Params};
use tessera_core::{Error, ErrorCode, Reason};

/// Parameters the grants read, for `require` (which takes `&'static str`).
const KNOWN: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "code_verifier",
    "scope",
    "refresh_token",
    "username",
    "password",
    "device_code",
    "assertion",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "requested_token_use",
    "token",
    "token_type_hint",
    "state",
    "nonce",
    "response_type",
    "resource",
    "audience",
];

/// What a grant may declare, for `Declared`.
const DECLARED: &[&str] = &["grant_type", "code", "redirect_uri", "audience"];

fuzz_target!(|body: &[u8]| {
    check(body);
});

/// One `name=value` pair as the model sees it: the name and value decoded,
/// `Err` holding the bytes when they are not UTF-8.
struct Pair {
    name: Result<String, Vec<u8>>,
    value: Result<String, Vec<u8>>,
}

impl Pair {
    fn valid(&self) -> Option<(&str, &str)> {
        match (&self.name, &self.value) {
            (Ok(n), Ok(v)) => Some((n, v)),
            _ => None,
        }
    }
}

/// Form decoding written independently of the crate: `+` is a space, `%XX`
/// with two hex digits is that byte, any other `%` stays.
fn model_decode(raw: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn utf8(bytes: Vec<u8>) -> Result<String, Vec<u8>> {
    String::from_utf8(bytes).map_err(|e| e.into_bytes())
}

/// The expected outcome of the deferring parser.
struct Model {
    too_many: bool,
    /// Name and value of each parameter other than `resource` and
    /// `audience`, in first-seen order, with how often it was sent (with a
    /// non-empty value, name and value both UTF-8).
    singles: Vec<(String, String, usize)>,
    resources: Vec<String>,
    audiences: Vec<String>,
    /// The first pair that was not UTF-8: its name, decoded lossily.
    first_not_utf8: Option<String>,
}

impl Model {
    fn build(pairs: &[Pair]) -> Model {
        let mut model = Model {
            too_many: pairs.len() > MAX_PARAMETERS,
            singles: Vec::new(),
            resources: Vec::new(),
            audiences: Vec::new(),
            first_not_utf8: None,
        };
        for pair in pairs {
            let Some((name, value)) = pair.valid() else {
                if model.first_not_utf8.is_none() {
                    let raw = match &pair.name {
                        Ok(name) => name.as_bytes().to_vec(),
                        Err(bytes) => bytes.clone(),
                    };
                    model.first_not_utf8 = Some(String::from_utf8_lossy(&raw).into_owned());
                }
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match name {
                "resource" => model.resources.push(value.to_owned()),
                "audience" => model.audiences.push(value.to_owned()),
                _ => match model.singles.iter_mut().find(|(n, _, _)| n == name) {
                    Some((_, _, count)) => *count += 1,
                    None => model.singles.push((name.to_owned(), value.to_owned(), 1)),
                },
            }
        }
        model
    }

    fn repeated(&self) -> bool {
        self.singles.iter().any(|(_, _, count)| *count > 1)
    }
}

fn invalid_request(error: &Error, reason: Reason) {
    assert_eq!(error.reason, reason, "{error:?}");
    assert_eq!(error.code(), ErrorCode::InvalidRequest, "{error:?}");
}

fn check(body: &[u8]) {
    let pairs: Vec<Pair> = body
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            Pair {
                name: utf8(model_decode(name)),
                value: utf8(model_decode(value)),
            }
        })
        .collect();
    let model = Model::build(&pairs);

    // The decoding agrees with the URL Standard's, as `form_urlencoded`
    // implements it (lossily: compare only what is UTF-8).
    let reference: Vec<_> = form_urlencoded::parse(body).collect();
    assert_eq!(reference.len(), pairs.len());
    for (pair, (name, value)) in pairs.iter().zip(&reference) {
        if let Ok(n) = &pair.name {
            assert_eq!(n, name);
        }
        if let Ok(v) = &pair.value {
            assert_eq!(v, value);
        }
    }

    let strict = Params::from_form(body);
    let deferred = Params::from_form_deferring_errors(body);

    if model.too_many {
        // The strict parser may stop earlier, at a repeated parameter.
        let error = strict.expect_err("more parameters than allowed");
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
        let error = deferred.expect_err("more parameters than allowed");
        invalid_request(&error, Reason::MalformedRequest);
        return;
    }
    let deferred = deferred.expect("the deferring parser fails only on the parameter count");

    // The strict parser: a repeat is reported first (it stops there), then
    // bytes that are not UTF-8.
    match &strict {
        Ok(_) => assert!(!model.repeated() && model.first_not_utf8.is_none()),
        Err(error) if model.repeated() => invalid_request(error, Reason::RepeatedParameter),
        Err(error) => {
            assert!(model.first_not_utf8.is_some(), "refused: {error:?}");
            invalid_request(error, Reason::ParameterNotUtf8);
        }
    }

    check_params(&deferred, &model, true);
    if let Ok(strict) = &strict {
        check_params(strict, &model, false);
        assert!(deferred.deferred_error().is_none());
    }

    // Deferred errors: UTF-8 first, then the first repeat.
    match (&model.first_not_utf8, deferred.deferred_error()) {
        (Some(_), Some(error)) => {
            invalid_request(&error, Reason::ParameterNotUtf8);
            assert!(error.description.contains("UTF-8"), "{}", error.description);
        }
        (None, Some(error)) => {
            assert!(model.repeated(), "{error:?}");
            invalid_request(&error, Reason::RepeatedParameter);
        }
        (None, None) => assert!(!model.repeated()),
        (Some(name), None) => panic!("{name:?} is not UTF-8 but no error is deferred"),
    }
    match (&model.first_not_utf8, deferred.utf8_error()) {
        (Some(name), Some(error)) => {
            invalid_request(&error, Reason::ParameterNotUtf8);
            assert!(deferred.is_not_utf8(name), "{name:?}");
        }
        (None, None) => {}
        (expected, got) => panic!("utf8_error: expected {expected:?}, got {got:?}"),
    }
}

fn check_params(params: &Params, model: &Model, deferring: bool) {
    assert_eq!(params.resources(), model.resources.as_slice());
    assert_eq!(params.audiences(), model.audiences.as_slice());
    for (name, value, count) in &model.singles {
        let got = params.get(name);
        if *count == 1 {
            assert_eq!(got, Some(value.as_str()), "{name:?}");
            assert!(!params.is_repeated(name), "{name:?}");
        } else {
            assert!(deferring, "the strict parser accepted a repeated {name:?}");
            // Neither value can be told to be the one meant.
            assert_eq!(got, None, "{name:?} is repeated");
            assert!(params.is_repeated(name), "{name:?}");
        }
        if let Some(value) = got {
            // Present means a non-empty value, decoded as sent.
            assert!(!value.is_empty());
        }
    }
    // `resource` and `audience` are lists, never single parameters.
    assert_eq!(params.get("resource"), None);
    assert_eq!(params.get("audience"), None);
    assert!(!params.is_repeated("resource") && !params.is_repeated("audience"));

    for &name in KNOWN {
        let expected = model
            .singles
            .iter()
            .find(|(n, _, count)| n == name && *count == 1)
            .map(|(_, v, _)| v.as_str());
        assert_eq!(params.get(name), expected, "{name:?}");
        match params.require(name) {
            Ok(value) => assert_eq!(Some(value), expected),
            Err(error) => {
                assert_eq!(expected, None, "{name:?}");
                invalid_request(&error, Reason::MissingParameter);
            }
        }
        if !model.singles.iter().any(|(n, _, _)| n == name) {
            assert!(!params.is_repeated(name), "{name:?}");
        }
    }

    // A grant sees only what it declared, and `scope`.
    let declared = Declared::new(params, DECLARED);
    for &name in KNOWN {
        let visible = name == "scope" || DECLARED.contains(&name);
        let expected = if visible { params.get(name) } else { None };
        assert_eq!(declared.get(name), expected, "{name:?}");
        assert_eq!(declared.require(name).ok(), expected, "{name:?}");
    }
    assert_eq!(declared.resources(), params.resources());
    assert_eq!(declared.audiences(), params.audiences());
    let undeclared = Declared::new(params, &["code"]);
    assert!(undeclared.audiences().is_empty());
    assert_eq!(undeclared.get("grant_type"), None);
}
