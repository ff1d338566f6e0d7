//! Claim parsing and the checks of RFC 9068 §4 and RFC 7662 §2.2. Pure
//! functions of the claims, the configuration and the current time: no I/O,
//! so every rule is tested without a server.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use tessera_jose::JsonStr;

use crate::Error;
use crate::token::{Actor, AudienceParts, MAX_CLAIMS_BYTES, Text, TokenParts};

/// What a token must match, with the time it is checked at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Allowed clock difference between Tessera and this service, seconds.
    pub leeway: i64,
    /// Unix seconds.
    pub now: i64,
}

/// The claims the guard reads, deserialized in one pass from the JSON text
/// and borrowing every string that has no escapes; unknown claims are
/// skipped without being built, and a repeated claim is refused.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims<'a> {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default, borrow)]
    iss: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    sub: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    aud: Option<AudiencesRef<'a>>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default, borrow)]
    jti: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    client_id: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    scope: Option<JsonStr<'a>>,
    #[serde(default)]
    act: Option<Box<Actor>>,
    /// Introspection answers only (RFC 7662 §2.2).
    #[serde(default, borrow)]
    token_type: Option<JsonStr<'a>>,
}

/// The text of an introspection answer, checked to be UTF-8 throughout:
/// serde_json skips unread members without checking their UTF-8.
pub(crate) fn json_text(body: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(body)
        .map_err(|_| Error::Malformed("the claims do not have the types RFC 9068 requires"))
}

impl<'a> Claims<'a> {
    /// Parses claims from JSON text: a JWT payload (which
    /// `JwsRef::payload_json` has checked to be UTF-8, after the signature)
    /// or an introspection answer (which the caller has checked to be
    /// UTF-8, since serde_json skips unread members without checking
    /// theirs). Either must be a JSON object (RFC 7519 §7.2, RFC 7662 §2.2).
    pub(crate) fn parse(json: &'a str) -> Result<Self, Error> {
        let malformed = || Error::Malformed("the claims do not have the types RFC 9068 requires");
        if json.len() > MAX_CLAIMS_BYTES
            || !json
                .trim_start_matches([' ', '\t', '\n', '\r'])
                .starts_with('{')
        {
            return Err(malformed());
        }
        serde_json::from_str(json).map_err(|_| malformed())
    }

    /// RFC 9068 §4: `iss` exactly the issuer, `aud` naming this resource,
    /// `exp` in the future; and the claims §2.2 makes REQUIRED present.
    pub(crate) fn check_jwt(&self, expect: &Expectations<'_>) -> Result<(), Error> {
        let iss = self.iss.as_ref().ok_or(Error::MissingClaim("iss"))?;
        check_issuer(iss, expect)?;
        self.check_audience(expect)?;
        let exp = self.exp.ok_or(Error::MissingClaim("exp"))?;
        check_times(Some(exp), self.nbf, expect)?;
        let iat = self.iat.ok_or(Error::MissingClaim("iat"))?;
        if iat.0 > expect.now.saturating_add(expect.leeway) {
            return Err(Error::IssuedInFuture(iat.0));
        }
        for (name, present) in [
            ("sub", self.sub.is_some()),
            ("client_id", self.client_id.is_some()),
            ("jti", self.jti.is_some()),
        ] {
            if !present {
                return Err(Error::MissingClaim(name));
            }
        }
        Ok(())
    }

    /// RFC 7662 §2.2: `active` must be `true`. The rest is optional in the
    /// RFC, but a resource server still has to check audience and expiry
    /// (RFC 7662 §4), and Tessera always sends `sub` and `client_id`.
    pub(crate) fn check_introspected(&self, expect: &Expectations<'_>) -> Result<(), Error> {
        if self.active != Some(true) {
            return Err(Error::Inactive);
        }
        // An active refresh token (Tessera answers `refresh_token` for one)
        // is not an access token. `token_type` is an RFC 6749 §5.1 access
        // token type, case-insensitive; the guard checks bearer tokens only,
        // so a DPoP-bound token (RFC 9449) is refused rather than accepted
        // without its proof. Tessera's access tokens say `Bearer`.
        if let Some(token_type) = self.token_type.as_ref()
            && !token_type.eq_ignore_ascii_case("Bearer")
        {
            return Err(Error::NotAnAccessToken(token_type.to_string()));
        }
        if let Some(iss) = self.iss.as_ref() {
            check_issuer(iss, expect)?;
        }
        self.check_audience(expect)?;
        check_times(self.exp, self.nbf, expect)?;
        if self.sub.is_none() {
            return Err(Error::MissingClaim("sub"));
        }
        if self.client_id.is_none() {
            return Err(Error::MissingClaim("client_id"));
        }
        Ok(())
    }

    pub(crate) fn expires_at(&self) -> Option<i64> {
        self.exp.map(|e| e.0)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active == Some(true)
    }

    fn check_audience(&self, expect: &Expectations<'_>) -> Result<(), Error> {
        match &self.aud {
            None => Err(Error::MissingClaim("aud")),
            Some(aud) if aud.contains(expect.audience) => Ok(()),
            Some(_) => Err(Error::WrongAudience),
        }
    }

    /// The claims with their strings as ranges of `json`, the text they
    /// were parsed from, so that the text can move into the result; call
    /// only after a `check_*` succeeded.
    pub(crate) fn detach(self, json: &str) -> TokenParts {
        let text = |s: Option<JsonStr<'_>>| s.map(|s| Text::new(s.0, json));
        TokenParts {
            issuer: text(self.iss),
            subject: text(self.sub),
            client_id: text(self.client_id),
            scope: text(self.scope),
            jti: text(self.jti),
            audience: self.aud.map(|aud| match aud {
                AudiencesRef::One(one) => AudienceParts::One(Text::new(one.0, json)),
                AudiencesRef::Many(all) => {
                    AudienceParts::Many(all.into_iter().map(|a| Text::new(a.0, json)).collect())
                }
            }),
            expires_at: self.exp.map(|d| d.0),
            issued_at: self.iat.map(|d| d.0),
            actor: self.act,
        }
    }
}

/// Issuers are compared as exact strings, never normalized (RFC 9068 §4,
/// OpenID Connect Discovery §3): `https://a/` is not `https://a`.
fn check_issuer(iss: &str, expect: &Expectations<'_>) -> Result<(), Error> {
    if iss == expect.issuer {
        Ok(())
    } else {
        Err(Error::WrongIssuer(iss.to_owned()))
    }
}

/// RFC 7519 §4.1.4: the token is refused "on or after" `exp`; §4.1.5: it is
/// accepted from `nbf` on. The leeway widens both by the same amount.
fn check_times(
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    expect: &Expectations<'_>,
) -> Result<(), Error> {
    if let Some(exp) = exp
        && expect.now >= exp.0.saturating_add(expect.leeway)
    {
        return Err(Error::Expired(exp.0));
    }
    if let Some(nbf) = nbf
        && expect.now.saturating_add(expect.leeway) < nbf.0
    {
        return Err(Error::NotYetValid(nbf.0));
    }
    Ok(())
}

/// `aud` as parsed: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug)]
enum AudiencesRef<'a> {
    One(JsonStr<'a>),
    Many(Vec<JsonStr<'a>>),
}

impl AudiencesRef<'_> {
    fn contains(&self, audience: &str) -> bool {
        match self {
            AudiencesRef::One(a) => **a == *audience,
            AudiencesRef::Many(all) => all.iter().any(|a| **a == *audience),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AudiencesRef<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;

        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = AudiencesRef<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AudiencesRef::One(JsonStr(Cow::Borrowed(v))))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AudiencesRef::One(JsonStr(Cow::Owned(v.to_owned()))))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AudiencesRef::One(JsonStr(Cow::Owned(v))))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(a) = seq.next_element::<JsonStr<'de>>()? {
                    all.push(a);
                }
                Ok(AudiencesRef::Many(all))
            }
        }

        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// A NumericDate (RFC 7519 §2) as Tessera writes it: whole seconds from
/// 1970 up to the end of year 9999. RFC 7662 §2.2 wants integers in
/// introspection answers, and JWTs are held to the same rule so that both
/// kinds of token read their dates alike. The upper bound keeps absurd
/// values (`exp` of 2^63 − 1, a token that never expires) out, and keeps
/// every date convertible to a `SystemTime` and safe to add a leeway to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumericDate(i64);

/// 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;

        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("whole seconds between 1970 and 9999")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                if (0..=MAX_NUMERIC_DATE).contains(&v) {
                    Ok(NumericDate(v))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom("NumericDate out of range"))
                    .and_then(|v| self.visit_i64(v))
            }

            // serde_json hands over any number with a fraction or an
            // exponent (`1.7e9`, `1700000000.0`) as a float.
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<NumericDate, E> {
                Err(E::custom("NumericDate is not a whole number of seconds"))
            }
        }

        deserializer.deserialize_any(DateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessToken;
    use crate::token::TokenKind;

    const NOW: i64 = 1_700_000_000;

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: "https://id.example",
            audience: "https://orders",
            leeway: 30,
            now: NOW,
        }
    }

    fn raw(v: serde_json::Value) -> String {
        v.to_string()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://id.example", "sub": "alice", "aud": "https://orders",
            "exp": NOW + 60, "iat": NOW, "jti": "j1", "client_id": "web",
            "scope": "orders.read profile",
        })
    }

    fn check(v: serde_json::Value) -> Result<AccessToken, Error> {
        check_text(raw(v))
    }

    fn check_text(json: String) -> Result<AccessToken, Error> {
        let claims = Claims::parse(&json)?;
        claims.check_jwt(&expect())?;
        let parts = claims.detach(&json);
        let kind = TokenKind::Jwt(tessera_jose::Algorithm::ES256);
        Ok(AccessToken::new(parts, kind, json))
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut v = good();
        v[key] = value;
        v
    }

    fn without(key: &str) -> serde_json::Value {
        let mut v = good();
        v.as_object_mut().expect("object").remove(key);
        v
    }

    #[test]
    fn a_good_token_yields_its_claims() {
        let t = check(good()).expect("valid");
        assert_eq!(t.subject(), "alice");
        assert_eq!(t.client_id(), "web");
        assert_eq!(t.audience(), ["https://orders"]);
        assert_eq!(t.jti(), Some("j1"));
        assert!(t.has_scope("profile"));
    }

    #[test]
    fn audience_may_be_an_array() {
        let t = check(with(
            "aud",
            serde_json::json!(["https://a", "https://orders"]),
        ))
        .expect("ok");
        assert_eq!(t.audience(), ["https://a", "https://orders"]);
        assert!(matches!(
            check(with("aud", serde_json::json!(["https://a"]))),
            Err(Error::WrongAudience)
        ));
        assert!(matches!(
            check(with("aud", serde_json::json!("https://orders/"))),
            Err(Error::WrongAudience)
        ));
        assert!(matches!(
            check(with("aud", serde_json::json!(5))),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn issuer_is_compared_exactly() {
        for iss in ["https://id.example/", "HTTPS://id.example", "https://evil"] {
            assert!(
                matches!(check(with("iss", iss.into())), Err(Error::WrongIssuer(_))),
                "{iss}"
            );
        }
    }

    #[test]
    fn expiry_honours_the_leeway_on_both_sides() {
        assert!(check(with("exp", (NOW - 29).into())).is_ok());
        assert!(matches!(
            check(with("exp", (NOW - 30).into())),
            Err(Error::Expired(_))
        ));
        assert!(check(with("nbf", (NOW + 30).into())).is_ok());
        assert!(matches!(
            check(with("nbf", (NOW + 31).into())),
            Err(Error::NotYetValid(_))
        ));
        assert!(matches!(
            check(with("iat", (NOW + 31).into())),
            Err(Error::IssuedInFuture(_))
        ));
    }

    #[test]
    fn required_claims_must_be_present() {
        for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
            match check(without(claim)) {
                Err(Error::MissingClaim(c)) => assert_eq!(c, claim),
                other => panic!("{claim}: {other:?}"),
            }
        }
        // scope is optional; a token without it has no scopes.
        assert_eq!(check(without("scope")).expect("ok").scope(), "");
    }

    #[test]
    fn claims_of_the_wrong_type_are_malformed() {
        for (k, v) in [
            ("sub", serde_json::json!(1)),
            ("exp", serde_json::json!("soon")),
            ("scope", serde_json::json!(["a"])),
            ("act", serde_json::json!("svc")),
        ] {
            assert!(matches!(check(with(k, v)), Err(Error::Malformed(_))), "{k}");
        }
        // Duplicate members are refused rather than resolved either way.
        assert!(Claims::parse(r#"{"sub":"a","sub":"b"}"#).is_err());
    }

    #[test]
    fn dates_are_whole_seconds_up_to_year_9999() {
        for claim in ["exp", "nbf", "iat"] {
            for absurd in [
                serde_json::json!(i64::MAX),
                serde_json::json!(u64::MAX),
                serde_json::json!(MAX_NUMERIC_DATE + 1),
                serde_json::json!(-1),
                serde_json::json!(i64::MIN),
                serde_json::json!(1e300),
                serde_json::json!((NOW + 10) as f64 + 0.5),
                serde_json::json!((NOW + 10) as f64),
                serde_json::from_str::<serde_json::Value>("1.7e9").expect("json"),
            ] {
                assert!(
                    matches!(check(with(claim, absurd.clone())), Err(Error::Malformed(_))),
                    "{claim}: {absurd}"
                );
            }
        }
        // The bound itself is a date: a far exp is accepted, a far nbf
        // refused for what it is.
        assert!(check(with("exp", MAX_NUMERIC_DATE.into())).is_ok());
        assert!(matches!(
            check(with("nbf", MAX_NUMERIC_DATE.into())),
            Err(Error::NotYetValid(MAX_NUMERIC_DATE))
        ));
    }

    #[test]
    fn claims_must_be_a_utf8_json_object() {
        assert!(Claims::parse(r#"  {"sub":"a"}"#).is_ok());
        for bad in ["[]", r#"["a"]"#, "5", "null", "", r#"{"sub":"a""#] {
            assert!(
                matches!(Claims::parse(bad), Err(Error::Malformed(_))),
                "{bad}"
            );
        }
        // Invalid UTF-8 in a member the guard does not read.
        let mut bytes = br#"{"sub":"a","x":""#.to_vec();
        bytes.extend_from_slice(&[0xC3, 0x28]);
        bytes.extend_from_slice(br#""}"#);
        assert!(matches!(json_text(bytes), Err(Error::Malformed(_))));
        assert_eq!(
            json_text("{\"sub\":\"\u{e9}\"}".into()).expect("utf-8"),
            "{\"sub\":\"\u{e9}\"}"
        );
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let t = check(with("sub", "al\"ice".into())).expect("ok");
        assert_eq!(t.subject(), "al\"ice");
        // Escapes anywhere a claim is read or compared: the decoded value
        // is what counts, not its spelling.
        let escaped = format!(
            r#"{{"iss":"https:\/\/id.example","sub":"\u0061lice","aud":["x","https:\/\/orders"],
               "exp":{},"iat":{NOW},"jti":"j\u00e9","client_id":"w\teb","scope":"a\u0020b"}}"#,
            NOW + 60
        );
        let t = check_text(escaped).expect("ok");
        assert_eq!(t.issuer(), Some("https://id.example"));
        assert_eq!(t.subject(), "alice");
        assert_eq!(t.audience(), ["x", "https://orders"]);
        assert_eq!(t.jti(), Some("j\u{e9}"));
        assert_eq!(t.client_id(), "w\teb");
        assert_eq!(t.scopes().collect::<Vec<_>>(), ["a", "b"]);
        // An escaped issuer or audience that decodes to something else is
        // still refused.
        let wrong = format!(
            r#"{{"iss":"https:\/\/id.example\/","sub":"a","aud":"https:\/\/orders",
               "exp":{},"iat":{NOW},"jti":"j","client_id":"w"}}"#,
            NOW + 60
        );
        assert!(
            matches!(check_text(wrong), Err(Error::WrongIssuer(i)) if i == "https://id.example/")
        );
        let wrong = format!(
            r#"{{"iss":"https://id.example","sub":"a","aud":"https:\/\/orders\/",
               "exp":{},"iat":{NOW},"jti":"j","client_id":"w"}}"#,
            NOW + 60
        );
        assert!(matches!(check_text(wrong), Err(Error::WrongAudience)));
    }

    #[test]
    fn unescaped_strings_are_read_in_place() {
        let json = raw(good());
        let parts = Claims::parse(&json).expect("parse").detach(&json);
        assert!(matches!(parts.subject, Some(Text::In(_))));
        assert!(matches!(parts.issuer, Some(Text::In(_))));
        assert!(matches!(
            parts.audience,
            Some(AudienceParts::One(Text::In(_)))
        ));
        let t = check(good()).expect("ok");
        assert_eq!(t.issuer(), Some("https://id.example"));
        assert_eq!(t.scope(), "orders.read profile");
        assert_eq!(t.claims_json(), raw(good()));
        // The result is independent of where the text was parsed.
        let copy = t.clone();
        drop(t);
        assert_eq!(copy.subject(), "alice");
        assert_eq!(copy.audience(), ["https://orders"]);
        assert_eq!(copy.audiences().collect::<Vec<_>>(), ["https://orders"]);
    }

    #[test]
    fn a_repeated_claim_is_refused_whatever_its_spelling() {
        for json in [
            r#"{"iss":"a","iss":"a"}"#,
            r#"{"aud":"a","aud":["a"]}"#,
            r#"{"exp":1,"exp":1}"#,
            r#"{"sub":"a","s\u0075b":"b"}"#,
            r#"{"act":{"sub":"a"},"act":{"sub":"a"}}"#,
        ] {
            assert!(
                matches!(Claims::parse(json), Err(Error::Malformed(_))),
                "{json}"
            );
        }
        // Unknown claims may repeat: they are not read.
        assert!(Claims::parse(r#"{"x":1,"x":2}"#).is_ok());
    }

    #[test]
    fn null_claims_count_as_absent() {
        for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
            match check(with(claim, serde_json::Value::Null)) {
                Err(Error::MissingClaim(c)) => assert_eq!(c, claim),
                other => panic!("{claim}: {other:?}"),
            }
        }
        for (k, v) in [
            ("aud", serde_json::json!([null])),
            ("aud", serde_json::json!(["https://orders", 5])),
            ("iss", serde_json::json!({})),
        ] {
            assert!(matches!(check(with(k, v)), Err(Error::Malformed(_))), "{k}");
        }
    }

    #[test]
    fn introspection_answers_need_active_true() {
        let check = |v: serde_json::Value| {
            let r = raw(v);
            let c = Claims::parse(&r)?;
            c.check_introspected(&expect())
        };
        let mut active = good();
        active["active"] = true.into();
        assert!(check(active.clone()).is_ok());
        active.as_object_mut().expect("obj").remove("iss");
        assert!(check(active.clone()).is_ok(), "iss is optional in RFC 7662");
        assert!(matches!(
            check(serde_json::json!({"active": false})),
            Err(Error::Inactive)
        ));
        assert!(matches!(check(good()), Err(Error::Inactive)));
        active["aud"] = "https://other".into();
        assert!(matches!(check(active), Err(Error::WrongAudience)));
    }

    #[test]
    fn introspection_answers_must_be_for_an_access_token() {
        let check = |token_type: serde_json::Value| {
            let mut answer = good();
            answer["active"] = true.into();
            answer["token_type"] = token_type;
            Claims::parse(&raw(answer))?.check_introspected(&expect())
        };
        // RFC 6749 §5.1: token types are case-insensitive.
        for bearer in ["Bearer", "bearer", "BEARER"] {
            assert!(check(bearer.into()).is_ok(), "{bearer}");
        }
        for other in [
            "refresh_token",
            "access_token",
            "DPoP",
            "N_A",
            "",
            "Bearer ",
        ] {
            assert!(
                matches!(check(other.into()), Err(Error::NotAnAccessToken(t)) if t == other),
                "{other}"
            );
        }
        assert!(matches!(check(5.into()), Err(Error::Malformed(_))));
        // Absent is fine: token_type is OPTIONAL in RFC 7662 §2.2.
        let mut answer = good();
        answer["active"] = true.into();
        assert!(
            Claims::parse(&raw(answer))
                .expect("parse")
                .check_introspected(&expect())
                .is_ok()
        );
    }
}
