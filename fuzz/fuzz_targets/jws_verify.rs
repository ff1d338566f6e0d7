//! JWS parsing and verification in tessera-jose: `JwsRef::parse` (with a
//! `JwsScratch`, fresh and reused), `UnverifiedJws::parse`, the header
//! accessors, `verify_signature` and `verify`, with fixed keys for ES256,
//! RS256, PS256 (one RSA key for both), EdDSA and HS256 (fuzz/keys/).
//!
//! The oracle is the `jsonwebtoken` crate: for the same token and the same
//! key, tessera-jose never accepts a signature jsonwebtoken refuses
//! (`jsonwebtoken::crypto::verify`), nor a token `jsonwebtoken::decode`
//! refuses for the signature, the algorithm, the token's shape or its
//! base64 (claim validation is off; header members of the wrong type for
//! jsonwebtoken, which tessera ignores, do not count). Conversely, once
//! tessera-jose has parsed a token whose algorithm is the key's, it accepts
//! every signature jsonwebtoken accepts. Stricter refusals (`alg: none`, an
//! algorithm other than the key's, `crit`, `b64`, duplicate members) are
//! tessera's own and allowed.
//!
//! Two input forms:
//!
//! - a token as text (the seed corpus, whose first byte is printable);
//! - a first byte below 0x20, then structured data (`arbitrary`): one of the
//!   valid tokens signed at start-up, its header edited as JSON (alg, typ,
//!   kid, crit, b64, escapes, duplicates...), its payload replaced or
//!   edited, re-signed or not by one of the keys (or by HS256 keyed with a
//!   public key, the algorithm-confusion attack), its signature and text
//!   mutated: inputs that get past base64 and JSON to the signature check.
//!   When the signer is known, a key that is not the signer's (or not for
//!   the header's algorithm) never verifies, and the signer's always does
//!   when nothing after the signing touched the token.

#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::errors::ErrorKind;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tessera_jose::{
    Algorithm, Error, JwsRef, JwsScratch, SigningKey, UnverifiedJws, VerifyingKey, typ_matches,
};

/// The same secret as fuzz/keys/make_jws_corpus.py.
const HS256_SECRET: &[u8] = b"tessera-fuzz-hs256-secret-not-a-real-key";

const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

struct Verifier {
    alg: Algorithm,
    tessera: VerifyingKey,
    jwt_key: jsonwebtoken::DecodingKey,
    jwt_alg: jsonwebtoken::Algorithm,
    validation: jsonwebtoken::Validation,
}

/// A token in parts, decoded.
#[derive(Clone)]
struct Parts {
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
    /// Index into `Keys::signers`.
    signer: usize,
}

struct Keys {
    signers: Vec<SigningKey>,
    /// HS256 keys over public key material: what an attacker signs with
    /// when hoping the verifier takes the algorithm from the header.
    confusion: Vec<SigningKey>,
    verifiers: Vec<Verifier>,
    bases: Vec<Parts>,
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).expect("PEM body")
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let es = pem_der(include_str!("../keys/es256.pem"));
    let rsa = pem_der(include_str!("../keys/rsa.pem"));
    let ed = pem_der(include_str!("../keys/ed25519.pem"));
    let signers: Vec<SigningKey> = ALGORITHMS
        .iter()
        .map(|&alg| {
            let kid = format!("fuzz-{}", alg.as_str().to_ascii_lowercase());
            match alg {
                Algorithm::ES256 => SigningKey::from_pkcs8(alg, kid, &es),
                Algorithm::RS256 | Algorithm::PS256 => SigningKey::from_pkcs8(alg, kid, &rsa),
                Algorithm::EdDSA => SigningKey::from_pkcs8(alg, kid, &ed),
                Algorithm::HS256 => SigningKey::hmac(kid, HS256_SECRET),
            }
            .unwrap_or_else(|e| panic!("{alg} key: {e}"))
        })
        .collect();

    let mut verifiers = Vec::new();
    let mut confusion = Vec::new();
    for key in &signers {
        let alg = key.alg();
        let tessera = key.verifying_key().expect("verifying key");
        let (jwt_key, jwt_alg) = match key.public_jwk() {
            None => (
                jsonwebtoken::DecodingKey::from_secret(HS256_SECRET).expect("secret"),
                jsonwebtoken::Algorithm::HS256,
            ),
            Some(jwk) => {
                let text = serde_json::to_vec(&jwk).expect("JWK");
                confusion.push(SigningKey::hmac("confused", &text).expect("HMAC"));
                let member = |m: &Option<String>| m.clone().expect("JWK member");
                match alg {
                    Algorithm::ES256 => (
                        jsonwebtoken::DecodingKey::from_ec_components(
                            &member(&jwk.x),
                            &member(&jwk.y),
                        )
                        .expect("EC key"),
                        jsonwebtoken::Algorithm::ES256,
                    ),
                    Algorithm::RS256 | Algorithm::PS256 => {
                        let n = member(&jwk.n);
                        confusion.push(
                            SigningKey::hmac("confused", &URL_SAFE_NO_PAD.decode(&n).expect("n"))
                                .expect("HMAC"),
                        );
                        (
                            jsonwebtoken::DecodingKey::from_rsa_components(&n, &member(&jwk.e))
                                .expect("RSA key"),
                            if alg == Algorithm::RS256 {
                                jsonwebtoken::Algorithm::RS256
                            } else {
                                jsonwebtoken::Algorithm::PS256
                            },
                        )
                    }
                    _ => (
                        jsonwebtoken::DecodingKey::from_ed_components(&member(&jwk.x))
                            .expect("Ed25519 key"),
                        jsonwebtoken::Algorithm::EdDSA,
                    ),
                }
            }
        };
        let mut validation = jsonwebtoken::Validation::new(jwt_alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        verifiers.push(Verifier {
            alg,
            tessera,
            jwt_key,
            jwt_alg,
            validation,
        });
    }

    let claims = json!({
        "iss": "https://issuer.example",
        "sub": "alice",
        "aud": "https://api.example",
        "iat": 1_800_000_000,
        "exp": 1_800_000_300,
        "scope": "openid api:read",
    });
    let payload = serde_json::to_vec(&claims).expect("claims");
    let mut bases = Vec::new();
    for (signer, key) in signers.iter().enumerate() {
        for header in [
            json!({"alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid()}),
            json!({"alg": key.alg().as_str(), "typ": "JWT"}),
        ] {
            let header = serde_json::to_vec(&header).expect("header");
            let mut parts = Parts {
                header,
                payload: payload.clone(),
                signature: Vec::new(),
                signer,
            };
            parts.signature = key.sign(parts.signing_input().as_bytes()).expect("sign");
            bases.push(parts);
        }
    }
    Keys {
        signers,
        confusion,
        verifiers,
        bases,
    }
});

impl Parts {
    fn signing_input(&self) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&self.header),
            URL_SAFE_NO_PAD.encode(&self.payload)
        )
    }

    fn token(&self) -> String {
        format!(
            "{}.{}",
            self.signing_input(),
            URL_SAFE_NO_PAD.encode(&self.signature)
        )
    }
}

fuzz_target!(|data: &[u8]| {
    let keys = &*KEYS;
    match data.split_first() {
        Some((&first, rest)) if first < 0x20 => {
            let Ok(forge) = Forge::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            let (token, signer) = forge.build(keys);
            check(keys, &token, signer);
        }
        _ => {
            let token = String::from_utf8_lossy(data);
            check(keys, &token, None);
        }
    }
});

/// `signer`: the key (index into `Keys::signers`, or `Err` for a confusion
/// key) that signed exactly this token's signing input with exactly this
/// signature, when that is known.
fn check(keys: &Keys, token: &str, signer: Option<Result<usize, ()>>) {
    let mut scratch = JwsScratch::new();
    let by_ref = JwsRef::parse(token, &mut scratch);
    let owned = UnverifiedJws::parse(token);

    // A scratch that decoded another token first gives the same result.
    let mut reused = JwsScratch::new();
    {
        let base = keys.bases[token.len() % keys.bases.len()].token();
        let _ = JwsRef::parse(&base, &mut reused).map(|j| j.alg());
        let again = JwsRef::parse(token, &mut reused);
        match (&by_ref, &again) {
            (Ok(a), Ok(b)) => {
                assert_eq!((a.alg(), a.typ(), a.kid()), (b.alg(), b.typ(), b.kid()));
                for v in &keys.verifiers {
                    assert_eq!(
                        a.verify_signature(&v.tessera),
                        b.verify_signature(&v.tessera)
                    );
                }
                assert_eq!(a.payload_json(), b.payload_json());
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("fresh scratch: {a:?}, reused: {b:?}"),
        }
    }

    match (&by_ref, &owned) {
        (Ok(r), Ok(o)) => {
            assert_eq!(r.alg(), o.alg());
            assert_eq!(o.header().alg, o.alg().as_str());
            assert_eq!(r.kid(), o.kid());
            assert_eq!(r.typ(), o.header().typ.as_deref());
            check_parsed(token, o.alg(), r.typ(), r.kid());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("JwsRef: {a:?}, UnverifiedJws: {b:?}"),
    }

    for (index, v) in keys.verifiers.iter().enumerate() {
        let signature = by_ref.as_ref().ok().map(|j| j.verify_signature(&v.tessera));
        let full = owned.as_ref().ok().map(|j| j.verify::<Value>(&v.tessera));
        let parsed_alg = owned.as_ref().ok().map(UnverifiedJws::alg);

        // `verify` is `verify_signature`, then the payload.
        match (&signature, &full) {
            (None, None) => {}
            (Some(Err(e)), Some(full)) => assert_eq!(full.as_ref().err(), Some(e)),
            (Some(Ok(())), Some(Err(e))) => {
                assert!(
                    matches!(e, Error::MalformedPayload(_) | Error::Malformed),
                    "{e:?}"
                )
            }
            (Some(Ok(())), Some(Ok(claims))) => {
                assert!(
                    claims.is_object(),
                    "a claims set that is not an object: {claims}"
                )
            }
            (a, b) => panic!("{a:?} / {b:?}"),
        }
        if parsed_alg.is_some_and(|alg| alg != v.alg) {
            assert_eq!(signature, Some(Err(Error::AlgorithmMismatch)));
        }

        // The oracle, for the signature alone (tessera-jose refuses a key
        // for another algorithm before any signature is checked).
        let oracle = parsed_alg == Some(v.alg) && jwt_signature_ok(token, v);
        if signature == Some(Ok(())) {
            assert!(
                oracle,
                "{} signature accepted by tessera-jose, refused by jsonwebtoken: {token}",
                v.alg
            );
            match jsonwebtoken::decode_header(token) {
                Ok(header) => assert_eq!(header.alg, v.jwt_alg, "{token}"),
                Err(e) => assert!(
                    !signature_reason(e.kind()),
                    "jsonwebtoken cannot read the header: {e:?}: {token}"
                ),
            }
        }
        if oracle {
            assert_eq!(
                signature,
                Some(Ok(())),
                "{} signature accepted by jsonwebtoken, refused by tessera-jose: {token}",
                v.alg
            );
        }

        // The oracle, for the whole token.
        if let Some(Ok(claims)) = &full {
            match jsonwebtoken::decode::<Value>(token, &v.jwt_key, &v.validation) {
                Ok(data) => assert_eq!(&data.claims, claims, "{token}"),
                Err(e) => assert!(
                    !signature_reason(e.kind()),
                    "{} token accepted by tessera-jose, refused by jsonwebtoken: {e:?}: {token}",
                    v.alg
                ),
            }
        }

        // What is known of the signer.
        if let Some(signer) = signer {
            let accepted = signature == Some(Ok(()));
            if accepted {
                assert_eq!(signer, Ok(index), "verified with a key that did not sign");
            }
            if signer == Ok(index) && parsed_alg == Some(v.alg) {
                assert!(accepted, "the signer's own signature refused: {token}");
            }
        }
    }
}

/// Refusals by jsonwebtoken that a token tessera-jose accepts must not get:
/// the signature, the algorithm, the shape, the base64.
fn signature_reason(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidToken
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::Base64(_)
    )
}

/// jsonwebtoken's verdict on the signature alone, with the verifier's
/// algorithm: the token split at its last dot (as jsonwebtoken splits it).
fn jwt_signature_ok(token: &str, v: &Verifier) -> bool {
    let Some((message, signature)) = token.rsplit_once('.') else {
        return false;
    };
    jsonwebtoken::crypto::verify(signature, message.as_bytes(), &v.jwt_key, v.jwt_alg)
        .unwrap_or(false)
}

/// What holds of any token tessera-jose parses.
fn check_parsed(token: &str, alg: Algorithm, typ: Option<&str>, kid: Option<&str>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    // The header is a JSON object with exactly this alg, typ and kid, and no
    // crit or b64.
    let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("header base64");
    // (A member tessera-jose skips may hold a number out of a `Value`'s
    // range, such as 1e999: then there is no `Map` to compare with.)
    if let Ok(header) = serde_json::from_slice::<Map<String, Value>>(&header) {
        assert_eq!(header.get("alg"), Some(&Value::from(alg.as_str())));
        assert_eq!(header.get("typ").map(|t| t.as_str()), typ.map(Some));
        assert_eq!(header.get("kid").map(|k| k.as_str()), kid.map(Some));
        assert!(!header.contains_key("crit") && !header.contains_key("b64"));
    }
    // The signature is canonical unpadded base64url.
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature base64");
    assert_eq!(URL_SAFE_NO_PAD.encode(signature), parts[2]);
    // `typ` names a media type case-insensitively, `application/` implied.
    for expected in ["at+jwt", "JWT", "application/jwt"] {
        let want = expected.to_ascii_lowercase();
        let want = want.strip_prefix("application/").unwrap_or(&want);
        let named = typ.is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == want || t.strip_prefix("application/") == Some(want)
        });
        assert_eq!(typ_matches(typ, expected), named, "{typ:?} vs {expected}");
    }
}

// --- Structured input ----------------------------------------------------

#[derive(Arbitrary, Debug)]
enum AlgName {
    Known(u8),
    None,
    NoneUpper,
    Lowercase(u8),
    Hs512,
    Rs384,
    Es256k,
    Null,
    Number,
    Other(String),
}

impl AlgName {
    fn value(&self) -> Value {
        let known = |i: &u8| ALGORITHMS[usize::from(*i) % ALGORITHMS.len()].as_str();
        match self {
            AlgName::Known(i) => known(i).into(),
            AlgName::None => "none".into(),
            AlgName::NoneUpper => "None".into(),
            AlgName::Lowercase(i) => known(i).to_ascii_lowercase().into(),
            AlgName::Hs512 => "HS512".into(),
            AlgName::Rs384 => "RS384".into(),
            AlgName::Es256k => "ES256K".into(),
            AlgName::Null => Value::Null,
            AlgName::Number => 256.into(),
            AlgName::Other(s) => s.as_str().into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Small {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    EmptyArray,
    Strings(Vec<String>),
    Object(String, String),
}

impl Small {
    fn value(&self) -> Value {
        match self {
            Small::Null => Value::Null,
            Small::Bool(b) => (*b).into(),
            Small::Int(i) => (*i).into(),
            Small::Str(s) => s.as_str().into(),
            Small::EmptyArray => json!([]),
            Small::Strings(v) => v.iter().take(4).cloned().collect::<Vec<_>>().into(),
            Small::Object(k, v) => json!({ k: v }),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Member {
    Alg,
    Typ,
    Kid,
    Crit,
    B64,
    Jwk,
    X5c,
    Jku,
    Cty,
    Zip,
    Other(String),
}

impl Member {
    fn name(&self) -> &str {
        match self {
            Member::Alg => "alg",
            Member::Typ => "typ",
            Member::Kid => "kid",
            Member::Crit => "crit",
            Member::B64 => "b64",
            Member::Jwk => "jwk",
            Member::X5c => "x5c",
            Member::Jku => "jku",
            Member::Cty => "cty",
            Member::Zip => "zip",
            Member::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum TypName {
    AtJwt,
    AtJwtUpper,
    ApplicationAtJwt,
    Jwt,
    TextAtJwt,
    WithParameter,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum HeaderEdit {
    SetAlg(AlgName),
    SetTyp(Option<TypName>),
    SetKid(Option<String>),
    Set(Member, Small),
    Remove(Member),
}

/// How the edited header is written out.
#[derive(Arbitrary, Debug)]
enum HeaderText {
    Compact,
    Pretty,
    LeadingWhitespace,
    /// A second `alg` member, written after the others.
    DuplicateAlg(AlgName),
    /// `alg` and its value spelled with `\u` escapes.
    Escaped,
    TrailingBytes(Vec<u8>),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum PayloadEdit {
    Keep,
    Set(String, Small),
    Raw(Vec<u8>),
    Array,
    LeadingWhitespace,
    InvalidUtf8(u16),
}

#[derive(Arbitrary, Debug)]
enum Signer {
    /// One of the fixed keys (by index).
    Key(u8),
    /// HS256 keyed with public key material.
    Confused(u8),
}

#[derive(Arbitrary, Debug)]
enum SignatureEdit {
    FlipBit(u16, u8),
    Truncate(u16),
    Append(Vec<u8>),
    Empty,
    Replace(Vec<u8>),
    FromBase(u8),
    Zeroes,
}

#[derive(Arbitrary, Debug)]
enum TextEdit {
    Insert(u16, u8),
    Remove(u16),
    PadSignature,
    StandardAlphabet,
    Dot(u16),
}

#[derive(Arbitrary, Debug)]
struct Forge {
    base: u8,
    header: Vec<HeaderEdit>,
    header_text: HeaderText,
    payload: PayloadEdit,
    resign: Option<Signer>,
    signature: Vec<SignatureEdit>,
    text: Vec<TextEdit>,
}

impl Forge {
    /// The token, and who signed it if that is still known.
    fn build(&self, keys: &Keys) -> (String, Option<Result<usize, ()>>) {
        let mut parts = keys.bases[usize::from(self.base) % keys.bases.len()].clone();
        let mut signer = Some(Ok(parts.signer));
        let changed_header =
            !self.header.is_empty() || !matches!(self.header_text, HeaderText::Compact);
        let changed_payload = !matches!(self.payload, PayloadEdit::Keep);
        if changed_header {
            parts.header = self.edit_header(&parts.header);
        }
        if changed_payload {
            parts.payload = self.edit_payload(&parts.payload);
        }
        match &self.resign {
            Some(Signer::Key(i)) => {
                let i = usize::from(*i) % keys.signers.len();
                parts.signature = keys.signers[i]
                    .sign(parts.signing_input().as_bytes())
                    .expect("sign");
                signer = Some(Ok(i));
            }
            Some(Signer::Confused(i)) => {
                let key = &keys.confusion[usize::from(*i) % keys.confusion.len()];
                parts.signature = key.sign(parts.signing_input().as_bytes()).expect("sign");
                signer = Some(Err(()));
            }
            None if changed_header || changed_payload => signer = None,
            None => {}
        }
        for edit in self.signature.iter().take(2) {
            signer = None;
            let sig = &mut parts.signature;
            match edit {
                SignatureEdit::FlipBit(at, bit) => {
                    if !sig.is_empty() {
                        let at = usize::from(*at) % sig.len();
                        sig[at] ^= 1 << (bit % 8);
                    }
                }
                SignatureEdit::Truncate(n) => sig.truncate(usize::from(*n) % (sig.len() + 1)),
                SignatureEdit::Append(bytes) => sig.extend_from_slice(bytes),
                SignatureEdit::Empty => sig.clear(),
                SignatureEdit::Replace(bytes) => *sig = bytes.clone(),
                SignatureEdit::FromBase(i) => {
                    *sig = keys.bases[usize::from(*i) % keys.bases.len()]
                        .signature
                        .clone()
                }
                SignatureEdit::Zeroes => sig.iter_mut().for_each(|b| *b = 0),
            }
        }
        let mut token = parts.token().into_bytes();
        for edit in self.text.iter().take(3) {
            signer = None;
            let at = |i: &u16, len: usize| usize::from(*i) % (len + 1);
            match edit {
                TextEdit::Insert(i, byte) => {
                    const CHARS: &[u8] =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
                    let i = at(i, token.len());
                    token.insert(i, CHARS[usize::from(*byte) % CHARS.len()]);
                }
                TextEdit::Remove(i) => {
                    if !token.is_empty() {
                        let i = usize::from(*i) % token.len();
                        token.remove(i);
                    }
                }
                TextEdit::PadSignature => token.extend_from_slice(b"=="),
                TextEdit::StandardAlphabet => {
                    for b in &mut token {
                        *b = match *b {
                            b'-' => b'+',
                            b'_' => b'/',
                            other => other,
                        };
                    }
                }
                TextEdit::Dot(i) => {
                    let i = at(i, token.len());
                    token.insert(i, b'.');
                }
            }
        }
        (String::from_utf8_lossy(&token).into_owned(), signer)
    }

    fn edit_header(&self, original: &[u8]) -> Vec<u8> {
        let mut header: Map<String, Value> = serde_json::from_slice(original).expect("base header");
        for edit in self.header.iter().take(4) {
            match edit {
                HeaderEdit::SetAlg(alg) => {
                    header.insert("alg".into(), alg.value());
                }
                HeaderEdit::SetTyp(None) => {
                    header.remove("typ");
                }
                HeaderEdit::SetTyp(Some(typ)) => {
                    let typ = match typ {
                        TypName::AtJwt => "at+jwt",
                        TypName::AtJwtUpper => "AT+JWT",
                        TypName::ApplicationAtJwt => "application/at+jwt",
                        TypName::Jwt => "JWT",
                        TypName::TextAtJwt => "text/at+jwt",
                        TypName::WithParameter => "at+jwt; charset=utf-8",
                        TypName::Other(s) => s,
                    };
                    header.insert("typ".into(), typ.into());
                }
                HeaderEdit::SetKid(None) => {
                    header.remove("kid");
                }
                HeaderEdit::SetKid(Some(kid)) => {
                    header.insert("kid".into(), kid.as_str().into());
                }
                HeaderEdit::Set(member, value) => {
                    header.insert(member.name().into(), value.value());
                }
                HeaderEdit::Remove(member) => {
                    header.remove(member.name());
                }
            }
        }
        let compact = serde_json::to_vec(&header).expect("header");
        match &self.header_text {
            HeaderText::Compact => compact,
            HeaderText::Pretty => serde_json::to_vec_pretty(&header).expect("header"),
            HeaderText::LeadingWhitespace => [b" \r\n\t".as_slice(), &compact].concat(),
            HeaderText::DuplicateAlg(alg) => {
                let mut text = compact;
                let extra = format!("\"alg\":{}", alg.value());
                if text.len() > 2 {
                    text.pop();
                    text.push(b',');
                    text.extend_from_slice(extra.as_bytes());
                    text.push(b'}');
                }
                text
            }
            HeaderText::Escaped => String::from_utf8(compact)
                .expect("JSON")
                .replace("\"alg\"", "\"\\u0061lg\"")
                .replace("S256\"", "S\\u0032\\u00356\"")
                .into_bytes(),
            HeaderText::TrailingBytes(bytes) => [compact.as_slice(), bytes].concat(),
            HeaderText::Raw(bytes) => bytes.clone(),
        }
    }

    fn edit_payload(&self, original: &[u8]) -> Vec<u8> {
        match &self.payload {
            PayloadEdit::Keep => original.to_vec(),
            PayloadEdit::Set(name, value) => {
                let mut claims: Map<String, Value> =
                    serde_json::from_slice(original).expect("base payload");
                claims.insert(name.clone(), value.value());
                serde_json::to_vec(&claims).expect("payload")
            }
            PayloadEdit::Raw(bytes) => bytes.clone(),
            PayloadEdit::Array => b"[\"alice\",1800000300]".to_vec(),
            PayloadEdit::LeadingWhitespace => [b"\n ".as_slice(), original].concat(),
            PayloadEdit::InvalidUtf8(at) => {
                let mut bytes = original.to_vec();
                let at = usize::from(*at) % (bytes.len() + 1);
                bytes.insert(at, 0xFF);
                bytes
            }
        }
    }
}
