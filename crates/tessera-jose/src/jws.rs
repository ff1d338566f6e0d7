use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, DeserializeOwned, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Algorithm, Error, SigningKey, VerifyingKey, b64, b64_decode};

/// The JOSE header members Tessera reads or writes (RFC 7515 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// The header as received, its strings borrowed from the decoded header
/// where they need no unescaping. `typ` and `kid` must be strings when
/// present (a `null` is not "absent"), and `crit` and `b64` are recorded
/// whatever their value, so that `"crit": null` cannot pass for a header
/// without `crit`. Duplicate members are refused.
#[derive(Deserialize)]
struct ReceivedHeader<'h> {
    #[serde(borrow)]
    alg: JsonStr<'h>,
    #[serde(default, borrow, deserialize_with = "present")]
    typ: Option<JsonStr<'h>>,
    #[serde(default, borrow, deserialize_with = "present")]
    kid: Option<JsonStr<'h>>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    b64: Option<IgnoredAny>,
}

/// A JSON string, borrowed from the input unless it had escapes. (serde's
/// own `Cow<str>` always copies inside an `Option`.) Also what tessera-guard
/// reads claims with.
#[derive(Debug)]
pub struct JsonStr<'a>(pub Cow<'a, str>);

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;

        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }

        deserializer.deserialize_str(StrVisitor).map(JsonStr)
    }
}

/// `Some` for any member that is there, `null` included; `#[serde(default)]`
/// supplies the `None` for a member that is not.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Whether a JSON text is an object, judged by its first byte after JSON
/// whitespace (RFC 8259 §2); the parse that follows checks the rest.
fn is_json_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// Whether a `typ` header names the media type `expected`. RFC 7515 §4.1.9:
/// a value without a `/` stands for `application/` + value; media type names
/// are case-insensitive (RFC 2045 §5.1, RFC 8725 §3.11). So `at+jwt`,
/// `AT+JWT` and `application/at+jwt` all match `at+jwt`; parameters, spaces
/// and other top-level types do not. An absent `typ` matches nothing.
pub fn typ_matches(typ: Option<&str>, expected: &str) -> bool {
    fn split(media_type: &str) -> (&str, &str) {
        // The first `/`, as `split_once` would find it, without a char
        // searcher: this runs for every token.
        match media_type.bytes().position(|b| b == b'/') {
            Some(i) => (&media_type[..i], &media_type[i + 1..]),
            None => ("application", media_type),
        }
    }
    let Some(typ) = typ else { return false };
    if typ.len() == expected.len() && typ.eq_ignore_ascii_case(expected) {
        // The common case, spelled as expected: equal splits.
        return !split(expected).1.is_empty();
    }
    let (top, sub) = split(typ);
    let (expected_top, expected_sub) = split(expected);
    !sub.is_empty()
        && top.eq_ignore_ascii_case(expected_top)
        && sub.eq_ignore_ascii_case(expected_sub)
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}`.
pub fn encode<T: Serialize + ?Sized>(
    key: &SigningKey,
    typ: &str,
    claims: &T,
) -> Result<String, Error> {
    let header = Header {
        alg: key.alg().as_str().to_owned(),
        typ: Some(typ.to_owned()),
        kid: Some(key.kid().to_owned()),
    };
    let header = serde_json::to_vec(&header).map_err(|_| Error::Crypto)?;
    let payload = serde_json::to_vec(claims).map_err(|e| Error::MalformedPayload(e.to_string()))?;
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 400);
    token.push_str(&b64(&header));
    token.push('.');
    token.push_str(&b64(&payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64(&signature));
    Ok(token)
}

/// The three parts of a compact JWS: exactly two dots (RFC 7515 §7.1).
/// Found with `memchr`, which reads the long payload segment only once.
fn split(token: &str) -> Result<(&str, &str, &str), Error> {
    let bytes = token.as_bytes();
    let (Some(first), Some(last)) = (memchr::memchr(b'.', bytes), memchr::memrchr(b'.', bytes))
    else {
        return Err(Error::Malformed);
    };
    if first == last || memchr::memchr(b'.', &bytes[first + 1..last]).is_some() {
        return Err(Error::Malformed);
    }
    Ok((&token[..first], &token[first + 1..last], &token[last + 1..]))
}

/// Room to decode a header and a signature without allocating: the usual
/// header is about 100 bytes, and a signature at most 512 (RSA with a
/// 4,096-bit key). Anything longer (up to the 1,024 bytes of an 8,192-bit RSA
/// key, or a forgery) is still decoded, on the heap. Create one per verification (on the stack) and pass
/// it to [`JwsRef::parse`].
pub struct JwsScratch {
    header: [u8; 256],
    signature: [u8; 512],
    header_heap: Vec<u8>,
    signature_heap: Vec<u8>,
}

impl JwsScratch {
    pub fn new() -> Self {
        JwsScratch {
            header: [0; 256],
            signature: [0; 512],
            header_heap: Vec::new(),
            signature_heap: Vec::new(),
        }
    }
}

impl Default for JwsScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for JwsScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwsScratch")
    }
}

/// Decodes unpadded base64url into `inline` when the result fits, else into
/// `heap`. Same rules as [`b64_decode`](crate::b64_decode).
fn decode_into<'b>(
    text: &str,
    inline: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], Error> {
    // An upper bound of the decoded length (the exact one, plus at most 2).
    if text.len().div_ceil(4) * 3 <= inline.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(text, inline)
            .map_err(|_| Error::Malformed)?;
        Ok(&inline[..n])
    } else {
        *heap = b64_decode(text)?;
        Ok(heap)
    }
}

/// A compact JWS split into its parts, header parsed, signature decoded but
/// not yet checked; borrowed from the token and from a [`JwsScratch`], so
/// reading one allocates nothing (unless a header string has escapes).
///
/// The same rules as [`UnverifiedJws`], which is built on it.
pub struct JwsRef<'t, 's> {
    alg: Algorithm,
    typ: Option<Cow<'s, str>>,
    kid: Option<Cow<'s, str>>,
    signing_input: &'t str,
    payload_b64: &'t str,
    signature: &'s [u8],
}

impl fmt::Debug for JwsRef<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwsRef")
            .field("alg", &self.alg)
            .field("typ", &self.typ)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl<'t, 's> JwsRef<'t, 's> {
    /// Splits and decodes a compact JWS. Refused here: anything but exactly
    /// three parts, a header that is not a UTF-8 JSON object of the expected
    /// member types (or that repeats a member), an unknown `alg` (including
    /// `none`), any `crit` or `b64` member, and a signature that is not
    /// base64url.
    pub fn parse(token: &'t str, scratch: &'s mut JwsScratch) -> Result<Self, Error> {
        let (header_b64, payload_b64, signature_b64) = split(token)?;
        let JwsScratch {
            header,
            signature,
            header_heap,
            signature_heap,
        } = scratch;
        let header = decode_into(header_b64, header, header_heap)?;
        let received = parse_header(header)?;
        let alg = received.alg.0.parse()?;
        let signature = decode_into(signature_b64, signature, signature_heap)?;
        Ok(JwsRef {
            alg,
            typ: received.typ.map(|t| t.0),
            kid: received.kid.map(|k| k.0),
            signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
            payload_b64,
            signature,
        })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Checks the signature with `key`, whose algorithm must be the one the
    /// header names. The payload is not looked at.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), Error> {
        if key.alg() != self.alg {
            return Err(Error::AlgorithmMismatch);
        }
        key.verify(self.signing_input.as_bytes(), self.signature)
    }

    /// The decoded payload, which must be a UTF-8 JSON object (a JWT claims
    /// set); its members are not parsed. Call after
    /// [`verify_signature`](Self::verify_signature) for anything trusted.
    pub fn payload_json(&self) -> Result<String, Error> {
        payload_json(self.payload_b64)
    }
}

/// A compact JWS split into its parts, header parsed, signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedJws<'a> {
    header: Header,
    alg: Algorithm,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

impl<'a> UnverifiedJws<'a> {
    /// Splits and decodes a compact JWS, by the rules of [`JwsRef::parse`].
    pub fn parse(token: &'a str) -> Result<Self, Error> {
        let mut scratch = JwsScratch::new();
        let jws = JwsRef::parse(token, &mut scratch)?;
        Ok(UnverifiedJws {
            header: Header {
                alg: jws.alg.as_str().to_owned(),
                typ: jws.typ.map(Cow::into_owned),
                kid: jws.kid.map(Cow::into_owned),
            },
            alg: jws.alg,
            signing_input: jws.signing_input,
            payload_b64: jws.payload_b64,
            signature: jws.signature.to_vec(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Verifies the signature with `key`, whose algorithm must be the one the
    /// header names, then returns the decoded payload, which must be a UTF-8
    /// JSON object (a JWT claims set).
    pub fn verify<T: DeserializeOwned>(&self, key: &VerifyingKey) -> Result<T, Error> {
        if key.alg() != self.alg {
            return Err(Error::AlgorithmMismatch);
        }
        key.verify(self.signing_input.as_bytes(), &self.signature)?;
        self.payload_unverified()
    }

    /// The payload without any signature check: for display and for routing
    /// (finding the issuer of an assertion), never for trust decisions.
    pub fn payload_unverified<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let text = payload_json(self.payload_b64)?;
        serde_json::from_str(&text).map_err(|e| Error::MalformedPayload(e.to_string()))
    }
}

/// Decodes a payload segment that must be a UTF-8 JSON object.
fn payload_json(payload_b64: &str) -> Result<String, Error> {
    let bytes = b64_decode(payload_b64)?;
    // serde_json does not check the UTF-8 of strings it skips; RFC 7519
    // §7.2 wants the whole payload to be UTF-8 JSON.
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::MalformedPayload("the payload is not UTF-8".to_owned()))?;
    // A claims set is a JSON object (RFC 7519 §7.2 step 10); serde would
    // also fill a struct from an array, positionally.
    if !is_json_object(&text) {
        return Err(Error::MalformedPayload(
            "the payload is not a JSON object".to_owned(),
        ));
    }
    Ok(text)
}

fn parse_header(bytes: &[u8]) -> Result<ReceivedHeader<'_>, Error> {
    // RFC 7515 §5.2 step 3: the header must be a completely valid UTF-8 JSON
    // object, including members we do not read, which serde_json would skip
    // without checking their UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|_| Error::MalformedHeader)?;
    if !is_json_object(text) {
        return Err(Error::MalformedHeader);
    }
    let received: ReceivedHeader<'_> =
        serde_json::from_str(text).map_err(|_| Error::MalformedHeader)?;
    // RFC 7515 §4.1.11: a recipient must refuse a `crit` naming extensions
    // it does not understand, and must refuse one that is not a non-empty
    // array. Tessera implements no extension, so every `crit` is refused.
    if received.crit.is_some() {
        return Err(Error::UnsupportedHeader("crit"));
    }
    // RFC 7797 §6: `b64` is only meaningful when listed in `crit`, which we
    // refuse; a lone `b64: false` must not change how the payload is read.
    if received.b64.is_some() {
        return Err(Error::UnsupportedHeader("b64"));
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn round_trip(alg: Algorithm) {
        let (key, pkcs8) = SigningKey::generate(alg, "k1").expect("generate");
        let reloaded = SigningKey::from_pkcs8(alg, "k1", &pkcs8).expect("reload");
        let token = encode(&reloaded, "at+jwt", &json!({"sub": "s"})).expect("sign");
        let jwk = key.public_jwk().expect("public");
        assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
        let verifier = VerifyingKey::from_jwk(&jwk).expect("jwk");
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(jws.header().typ.as_deref(), Some("at+jwt"));
        let claims: Value = jws.verify(&verifier).expect("verify");
        assert_eq!(claims["sub"], "s");

        // Flip one bit of the payload: the signature must fail.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(br#"{"sub":"t"}"#);
        let forged = parts.join(".");
        let jws = UnverifiedJws::parse(&forged).expect("parse");
        assert_eq!(jws.verify::<Value>(&verifier), Err(Error::BadSignature));
    }

    #[test]
    fn every_asymmetric_algorithm_signs_and_verifies() {
        for alg in Algorithm::ASYMMETRIC {
            round_trip(alg);
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // The classic RS/HS confusion: sign HS256 with the public key bytes and
        // hope the verifier picks the algorithm from the header.
        let (key, _) = SigningKey::generate(Algorithm::RS256, "k1").expect("generate");
        let jwk = key.public_jwk().expect("public");
        let public_bytes = serde_json::to_vec(&jwk).expect("json");
        let forger = SigningKey::hmac("k1", &public_bytes).expect("hmac");
        let token = encode(&forger, "at+jwt", &json!({"sub": "s"})).expect("sign");
        let verifier = VerifyingKey::from_jwk(&jwk).expect("jwk");
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(
            jws.verify::<Value>(&verifier),
            Err(Error::AlgorithmMismatch)
        );
    }

    #[test]
    fn alg_none_and_malformed_tokens_are_refused() {
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"sub":"s"}"#));
        assert!(matches!(
            UnverifiedJws::parse(&none),
            Err(Error::UnsupportedAlgorithm(_))
        ));
        for bad in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(UnverifiedJws::parse(bad).is_err(), "{bad}");
        }
    }

    /// A compact JWS with this raw header and payload and a dummy signature:
    /// enough for `parse`, which never looks at the signature's value.
    fn raw_token(header: &[u8], payload: &[u8]) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    #[test]
    fn crit_is_refused_in_every_form() {
        // RFC 7515 §4.1.11: absent, or a non-empty array of understood names.
        // We understand none, so there is no acceptable crit at all.
        for crit in [
            "null",
            "[]",
            r#"["exp"]"#,
            r#"["b64"]"#,
            r#""b64""#,
            "{}",
            "false",
        ] {
            let header = format!(r#"{{"alg":"ES256","kid":"k1","crit":{crit}}}"#);
            assert_eq!(
                UnverifiedJws::parse(&raw_token(header.as_bytes(), b"{}")).map(|_| ()),
                Err(Error::UnsupportedHeader("crit")),
                "{crit}"
            );
        }
    }

    #[test]
    fn b64_is_refused_with_or_without_crit() {
        // RFC 7797: b64 only counts when listed in crit; either way it is
        // an extension we do not implement.
        for header in [
            r#"{"alg":"ES256","b64":false}"#,
            r#"{"alg":"ES256","b64":true}"#,
            r#"{"alg":"ES256","b64":null}"#,
        ] {
            assert_eq!(
                UnverifiedJws::parse(&raw_token(header.as_bytes(), b"{}")).map(|_| ()),
                Err(Error::UnsupportedHeader("b64")),
                "{header}"
            );
        }
        let with_crit = br#"{"alg":"ES256","b64":false,"crit":["b64"]}"#;
        assert!(UnverifiedJws::parse(&raw_token(with_crit, b"{}")).is_err());
    }

    #[test]
    fn a_header_with_invalid_utf8_is_refused_even_in_a_skipped_member() {
        // 0xC3 0x28: a two-byte lead followed by a byte that cannot continue
        // it. serde_json checks UTF-8 only in strings it decodes.
        let mut header = br#"{"alg":"ES256","kid":"k1","x":""#.to_vec();
        header.extend_from_slice(&[0xC3, 0x28]);
        header.extend_from_slice(br#""}"#);
        assert_eq!(
            UnverifiedJws::parse(&raw_token(&header, b"{}")).map(|_| ()),
            Err(Error::MalformedHeader)
        );
        // The same bytes in a member we read are refused too.
        let mut in_kid = br#"{"alg":"ES256","kid":""#.to_vec();
        in_kid.extend_from_slice(&[0xC3, 0x28]);
        in_kid.extend_from_slice(br#""}"#);
        assert_eq!(
            UnverifiedJws::parse(&raw_token(&in_kid, b"{}")).map(|_| ()),
            Err(Error::MalformedHeader)
        );
        // And the payload, even where the target type skips the member.
        let mut payload = br#"{"sub":"s","x":""#.to_vec();
        payload.extend_from_slice(&[0xC3, 0x28]);
        payload.extend_from_slice(br#""}"#);
        let token = raw_token(br#"{"alg":"ES256"}"#, &payload);
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert!(matches!(
            jws.payload_unverified::<serde::de::IgnoredAny>(),
            Err(Error::MalformedPayload(_))
        ));
        for not_an_object in ["[]", r#"["s"]"#, "5", r#""s""#] {
            let token = raw_token(br#"{"alg":"ES256"}"#, not_an_object.as_bytes());
            let jws = UnverifiedJws::parse(&token).expect("parse");
            assert!(
                matches!(
                    jws.payload_unverified::<serde::de::IgnoredAny>(),
                    Err(Error::MalformedPayload(_))
                ),
                "{not_an_object}"
            );
        }
        let text = r#" {"x":"\u00e9 é"}"#;
        let token = raw_token(br#"{"alg":"ES256"}"#, text.as_bytes());
        let valid = UnverifiedJws::parse(&token).expect("parse");
        assert!(valid.payload_unverified::<Value>().is_ok());
    }

    #[test]
    fn header_members_of_the_wrong_type_are_refused() {
        for header in [
            r#"{"alg":"ES256","typ":null}"#,
            r#"{"alg":"ES256","kid":null}"#,
            r#"{"alg":"ES256","kid":5}"#,
            r#"{"alg":null}"#,
            r#"{"alg":"ES256","alg":"ES256"}"#,
            r#"["ES256"]"#,
            r#" ["ES256", "k"]"#,
        ] {
            assert_eq!(
                UnverifiedJws::parse(&raw_token(header.as_bytes(), b"{}")).map(|_| ()),
                Err(Error::MalformedHeader),
                "{header}"
            );
        }
        // Members we do not know are ignored (RFC 7515 §4).
        let token = raw_token(br#"{"alg":"ES256","x5u":"https://x","kid":"k"}"#, b"{}");
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(jws.kid(), Some("k"));
    }

    #[test]
    fn typ_is_a_case_insensitive_media_type_with_an_implied_application() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(typ_matches(Some(typ), "at+jwt"), "{typ}");
            assert!(typ_matches(Some(typ), "application/at+jwt"), "{typ}");
        }
        for typ in [
            "JWT",
            "text/at+jwt",
            "application/application/at+jwt",
            "at+jwt; charset=utf-8",
            " at+jwt",
            "at+jwt ",
            "application/",
            "",
            "/at+jwt",
        ] {
            assert!(!typ_matches(Some(typ), "at+jwt"), "{typ:?}");
        }
        assert!(!typ_matches(None, "at+jwt"));
        assert!(typ_matches(Some("jwt"), "JWT"));
        assert!(typ_matches(Some("application/JWT"), "JWT"));
        assert!(!typ_matches(Some("at+jwt"), "JWT"));
    }

    #[test]
    fn a_token_has_exactly_three_parts() {
        assert_eq!(split("h.p.s"), Ok(("h", "p", "s")));
        assert_eq!(split("h..s"), Ok(("h", "", "s")));
        assert_eq!(split(".."), Ok(("", "", "")));
        for bad in [
            "", "nodots", "h.p", "h.p.s.x", "h.p.s.", ".h.p.s", "h..p.s", "....",
        ] {
            assert_eq!(split(bad), Err(Error::Malformed), "{bad}");
        }
    }

    #[test]
    fn header_strings_are_borrowed_unless_escaped() {
        let mut scratch = JwsScratch::new();
        let token = raw_token(br#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#, b"{}");
        let jws = JwsRef::parse(&token, &mut scratch).expect("parse");
        assert!(matches!(jws.kid, Some(Cow::Borrowed("k1"))));
        assert!(matches!(jws.typ, Some(Cow::Borrowed("at+jwt"))));
        // Escapes are decoded, in every member: what counts is the value.
        let token = raw_token(
            br#"{"\u0061lg":"ES\u0032\u0035\u0036","typ":"at\u002bjwt","kid":"k\"1\/\u00e9"}"#,
            b"{}",
        );
        let jws = JwsRef::parse(&token, &mut scratch).expect("parse");
        assert_eq!(jws.alg(), Algorithm::ES256);
        assert_eq!(jws.typ(), Some("at+jwt"));
        assert_eq!(jws.kid(), Some("k\"1/\u{e9}"));
        let owned = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(owned.header().alg, "ES256");
        assert_eq!(owned.kid(), Some("k\"1/\u{e9}"));
        // A repeated member is refused, however it is spelled.
        for header in [
            r#"{"alg":"ES256","kid":"a","kid":"b"}"#,
            r#"{"alg":"ES256","typ":"at+jwt","t\u0079p":"at+jwt"}"#,
            r#"{"alg":"ES256","\u0061lg":"ES256"}"#,
        ] {
            assert_eq!(
                JwsRef::parse(&raw_token(header.as_bytes(), b"{}"), &mut scratch).map(|_| ()),
                Err(Error::MalformedHeader),
                "{header}"
            );
        }
    }

    #[test]
    fn long_headers_and_signatures_are_decoded_on_the_heap() {
        let (key, _) = SigningKey::generate(Algorithm::ES256, "k1").expect("generate");
        let verifier = key.verifying_key().expect("public");
        let long_kid = "k".repeat(1_000);
        let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{long_kid}"}}"#);
        let input = format!("{}.{}", b64(&header), b64(br#"{"sub":"s"}"#));
        let signature = key.sign(input.as_bytes()).expect("sign");
        let token = format!("{input}.{}", b64(&signature));
        let mut scratch = JwsScratch::new();
        let jws = JwsRef::parse(&token, &mut scratch).expect("parse");
        assert_eq!(jws.kid(), Some(long_kid.as_str()));
        assert_eq!(jws.verify_signature(&verifier), Ok(()));
        assert_eq!(jws.payload_json().as_deref(), Ok(r#"{"sub":"s"}"#));
        // An overlong signature decodes and then fails as a signature.
        let forged = format!("{input}.{}", b64(vec![7u8; 2_000]));
        let jws = JwsRef::parse(&forged, &mut scratch).expect("parse");
        assert_eq!(jws.signature.len(), 2_000);
        assert_eq!(jws.verify_signature(&verifier), Err(Error::BadSignature));
    }

    #[test]
    fn decoding_into_the_scratch_follows_b64_decode() {
        // Every length around the inline capacity, valid or not: padding,
        // the standard alphabet, stray bits at the end and a length of
        // 4n + 1 are refused the same way.
        let mut inputs: Vec<String> = (0..=700).map(|n| b64(vec![0xA5; n])).collect();
        for tail in [
            "=", "==", "+", "/", "B", "AB", "ABC", "AAB", "AAAAB", " ", ".",
        ] {
            inputs.push(format!("{}{tail}", b64(vec![1u8; 255])));
            inputs.push(format!("{}{tail}", b64(vec![1u8; 510])));
            inputs.push(tail.to_owned());
        }
        for input in inputs {
            let mut inline = [0u8; 256];
            let mut heap = Vec::new();
            let decoded = decode_into(&input, &mut inline, &mut heap).map(<[u8]>::to_vec);
            assert_eq!(decoded, b64_decode(&input), "{input}");
        }
    }

    #[test]
    fn a_key_is_refused_for_another_kty() {
        let (key, _) = SigningKey::generate(Algorithm::ES256, "k1").expect("generate");
        let mut jwk = key.public_jwk().expect("public");
        jwk.alg = Some("RS256".into());
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
    }
}
