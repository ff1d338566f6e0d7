//! SAML 2.0 bearer assertions (RFC 7522): `UnverifiedAssertion::parse`,
//! `issuer()`, `id()`, then `verify` with each of three fixed certificates,
//! the identity provider's RSA and EC ones and an unrelated provider's, at
//! the time the test fixtures of tessera-core were issued for.
//!
//! Three input forms:
//!
//! - an XML document (the seed corpus: its first non-blank character is
//!   `<`), base64url-encoded here (padded when its length is odd);
//! - anything else as text: the `assertion` parameter as sent;
//! - a first byte below 0x09, then structured data (`arbitrary`): a signed
//!   fixture of tessera-core edited at element boundaries, in text nodes and
//!   attribute values (comments, CDATA, character references, a copy of the
//!   signature, an unsigned assertion for another user, wrapping...), which
//!   is how signature wrapping is tried.
//!
//! Checked: no panic; a parsed assertion has a non-empty issuer and ID;
//! a verified one has the issuer and ID it was parsed with, a non-empty
//! NameID, an expiry in the future and `replay_until` past it by the
//! leeway; at most one certificate verifies a document; and whatever
//! verifies says what the identity providers signed in the fixtures
//! (`make_fixtures.py`): the fixture's ID, issuer, times and NameID, since
//! the fuzzer has no key to sign anything else.

#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use tessera_core::saml::{IdpCertificate, SamlExpectations, UnverifiedAssertion};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            "../../crates/tessera-core/tests/fixtures/saml/",
            $name
        ))
    };
}

/// What the fixtures say (tests/fixtures/saml/make_fixtures.py).
const IDP: &str = "https://idp.example.com/saml";
const ASSERTION_ID: &str = "_5f0c9a2e7b3d4c18a6e2f9b1d0c8e7a4";
/// The NameIDs the identity provider signed: the usual one, and the one
/// `nameid-comment.xml` signed (a comment inside it is outside the
/// signature, so the signed text is the two halves together).
const SIGNED_NAME_IDS: [&str; 2] = ["alice@example.com", "alice@example.com.evil.example"];
/// 2026-01-01T00:00:00Z, when the fixtures were issued.
const ISSUED: i64 = 1_767_225_600;
const NOW: i64 = ISSUED + 60;
const LEEWAY: i64 = 30;
const TOKEN_ENDPOINT: &str = "https://tessera.example.com/token";

/// Signed documents to edit.
const BASES: [&str; 5] = [
    fixture!("good.xml"),
    fixture!("good-ecdsa.xml"),
    fixture!("nameid-comment.xml"),
    fixture!("other-key.xml"),
    fixture!("xsw-advice.xml"),
];

struct Setup {
    certificates: Vec<(&'static str, IdpCertificate)>,
    audiences: Vec<String>,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let certificate = |name, pem| {
        (
            name,
            IdpCertificate::from_pem(pem).unwrap_or_else(|e| panic!("{name}: {e}")),
        )
    };
    Setup {
        certificates: vec![
            certificate("idp-cert.pem", fixture!("idp-cert.pem")),
            certificate("idp-ec-cert.pem", fixture!("idp-ec-cert.pem")),
            certificate("other-idp-cert.pem", fixture!("other-idp-cert.pem")),
        ],
        audiences: vec![
            "https://tessera.example.com".to_owned(),
            TOKEN_ENDPOINT.to_owned(),
        ],
    }
});

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&first, rest)) if first < 0x09 => {
            let Ok(edits) = Edits::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            check(&encode(edits.apply().as_bytes()));
        }
        _ => {
            let text = String::from_utf8_lossy(data);
            let document = text
                .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
                .starts_with('<');
            if document {
                check(&encode(data));
            } else {
                check(&text);
            }
        }
    }
});

fn encode(xml: &[u8]) -> String {
    if xml.len() % 2 == 1 {
        URL_SAFE.encode(xml)
    } else {
        URL_SAFE_NO_PAD.encode(xml)
    }
}

fn check(encoded: &str) {
    let setup = &*SETUP;
    let Ok(assertion) = UnverifiedAssertion::parse(encoded) else {
        return;
    };
    assert!(!assertion.issuer().is_empty());
    assert!(!assertion.id().is_empty());
    let _ = format!("{assertion:?}");

    let expect = SamlExpectations {
        audiences: &setup.audiences,
        recipient: TOKEN_ENDPOINT,
        now: NOW,
        leeway: LEEWAY,
    };
    let mut verified_by = Vec::new();
    for (name, certificate) in &setup.certificates {
        let Ok(verified) = assertion.verify(certificate, &expect) else {
            continue;
        };
        verified_by.push(*name);
        assert_eq!(verified.issuer, assertion.issuer());
        assert_eq!(verified.id, assertion.id());
        assert!(!verified.issuer.is_empty() && !verified.id.is_empty());
        assert!(!verified.name_id.trim().is_empty());
        assert!(verified.not_on_or_after > NOW - LEEWAY);
        assert_eq!(verified.replay_until, verified.not_on_or_after + LEEWAY);
        assert!(verified.authn_instant.is_none_or(|at| at <= NOW + LEEWAY));

        // What the fuzzer cannot have signed.
        assert_eq!(verified.id, ASSERTION_ID, "{verified:?}");
        assert_eq!(verified.issuer, IDP, "{verified:?}");
        assert!(
            SIGNED_NAME_IDS.contains(&verified.name_id.as_str()),
            "verified a NameID nobody signed: {verified:?}"
        );
        // The bearer confirmation's 00:04:00, before Conditions' 00:05:00.
        assert_eq!(verified.not_on_or_after, ISSUED + 240, "{verified:?}");
        assert_eq!(verified.authn_instant, Some(ISSUED - 60), "{verified:?}");
    }
    assert!(verified_by.len() <= 1, "verified by {verified_by:?}");
}

// --- Structured input ----------------------------------------------------

/// XML to insert.
#[derive(Arbitrary, Debug)]
enum Snippet {
    Comment,
    Cdata(String),
    CharReference,
    Whitespace,
    Text(String),
    /// An unsigned assertion for another user.
    EvilAssertion,
    /// The document's own `ds:Signature`, copied.
    Signature,
    /// The document's own `saml:Subject`, with another NameID.
    EvilSubject,
    EmptyElement(String),
    NamespaceWrapperOpen,
    NamespaceWrapperClose,
    Advice,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Edit {
    /// At the start of the n-th tag.
    Insert(u16, Snippet),
    /// From the start of the n-th tag to the start of the m-th after it.
    RemoveTags(u16, u8),
    /// The n-th text node's content.
    ReplaceText(u16, String),
    /// The n-th attribute value.
    ReplaceAttribute(u16, String),
    /// Bytes at a position.
    RemoveBytes(u16, u8),
    InsertBytes(u16, String),
    /// The whole document inside a `samlp:Response`.
    WrapInResponse,
    /// A namespace prefix redefined on the document element.
    RedefinePrefix(bool),
}

#[derive(Arbitrary, Debug)]
struct Edits {
    base: u8,
    edits: Vec<Edit>,
}

/// Byte offsets of each `<`.
fn tags(doc: &str) -> Vec<usize> {
    doc.match_indices('<').map(|(i, _)| i).collect()
}

fn element<'d>(doc: &'d str, open: &str, close: &str) -> &'d str {
    let Some(start) = doc.find(open) else {
        return "";
    };
    match doc[start..].find(close) {
        Some(end) => &doc[start..start + end + close.len()],
        None => "",
    }
}

fn floor_boundary(doc: &str, mut i: usize) -> usize {
    i = i.min(doc.len());
    while !doc.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl Edits {
    fn apply(&self) -> String {
        let base = BASES[usize::from(self.base) % BASES.len()];
        let mut doc = base.to_owned();
        for edit in self.edits.iter().take(4) {
            self.apply_one(&mut doc, edit);
        }
        doc
    }

    fn apply_one(&self, doc: &mut String, edit: &Edit) {
        let tags = tags(doc);
        let nth_tag = |n: &u16| -> usize {
            if tags.is_empty() {
                doc.len()
            } else {
                tags[usize::from(*n) % tags.len()]
            }
        };
        match edit {
            Edit::Insert(n, snippet) => {
                let at = nth_tag(n);
                let text = snippet_text(doc, snippet);
                doc.insert_str(at, &text);
            }
            Edit::RemoveTags(n, count) => {
                if tags.is_empty() {
                    return;
                }
                let first = usize::from(*n) % tags.len();
                let start = tags[first];
                let end = tags
                    .get(first + 1 + usize::from(*count) % 8)
                    .copied()
                    .unwrap_or(doc.len());
                doc.replace_range(start..end, "");
            }
            Edit::ReplaceText(n, text) => {
                // Text nodes: between a `>` and the next `<`.
                let nodes: Vec<(usize, usize)> = doc
                    .match_indices('>')
                    .filter_map(|(i, _)| {
                        let end = doc[i + 1..].find('<')? + i + 1;
                        Some((i + 1, end))
                    })
                    .collect();
                if let Some(&(start, end)) = nodes.get(usize::from(*n) % nodes.len().max(1)) {
                    doc.replace_range(start..end, &escape(text));
                }
            }
            Edit::ReplaceAttribute(n, value) => {
                let quotes: Vec<usize> = doc.match_indices("=\"").map(|(i, _)| i + 2).collect();
                if let Some(&start) = quotes.get(usize::from(*n) % quotes.len().max(1))
                    && let Some(len) = doc[start..].find('"')
                {
                    doc.replace_range(start..start + len, &escape(value));
                }
            }
            Edit::RemoveBytes(at, len) => {
                let start = floor_boundary(doc, usize::from(*at));
                let end = floor_boundary(doc, start + usize::from(*len));
                doc.replace_range(start..end, "");
            }
            Edit::InsertBytes(at, text) => {
                let at = floor_boundary(doc, usize::from(*at));
                doc.insert_str(at, text);
            }
            Edit::WrapInResponse => {
                let body = doc
                    .find("?>")
                    .map_or(doc.as_str(), |end| &doc[end + 2..])
                    .to_owned();
                *doc = format!(
                    "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
                     ID=\"_response\" Version=\"2.0\">{body}</samlp:Response>"
                );
            }
            Edit::RedefinePrefix(ds) => {
                let (prefix, uri) = if *ds {
                    ("ds", "urn:example:evil")
                } else {
                    ("saml", "urn:oasis:names:tc:SAML:2.0:protocol")
                };
                if let Some(at) = doc.find("<saml:Assertion ") {
                    let at = at + "<saml:Assertion ".len();
                    doc.insert_str(at, &format!("xmlns:{prefix}=\"{uri}\" "));
                }
            }
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

fn snippet_text(doc: &str, snippet: &Snippet) -> String {
    match snippet {
        Snippet::Comment => "<!---->".into(),
        Snippet::Cdata(text) => format!("<![CDATA[{}]]>", text.replace("]]>", "")),
        Snippet::CharReference => "&#97;".into(),
        Snippet::Whitespace => "\n  ".into(),
        Snippet::Text(text) => escape(text),
        Snippet::EvilAssertion => concat!(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_evil\" ",
            "Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\">",
            "<saml:Issuer>https://idp.example.com/saml</saml:Issuer>",
            "<saml:Subject><saml:NameID>mallory@example.com</saml:NameID>",
            "<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">",
            "<saml:SubjectConfirmationData NotOnOrAfter=\"2026-01-01T00:04:00Z\" ",
            "Recipient=\"https://tessera.example.com/token\"/></saml:SubjectConfirmation>",
            "</saml:Subject><saml:Conditions NotOnOrAfter=\"2026-01-01T00:05:00Z\">",
            "<saml:AudienceRestriction><saml:Audience>https://tessera.example.com</saml:Audience>",
            "</saml:AudienceRestriction></saml:Conditions></saml:Assertion>"
        )
        .into(),
        Snippet::Signature => element(doc, "<ds:Signature", "</ds:Signature>").into(),
        Snippet::EvilSubject => element(doc, "<saml:Subject>", "</saml:Subject>")
            .replace("alice@example.com", "mallory@example.com"),
        Snippet::EmptyElement(name) => {
            let name: String = name
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ':')
                .take(24)
                .collect();
            if name.is_empty() {
                "<x/>".into()
            } else {
                format!("<{name}/>")
            }
        }
        Snippet::NamespaceWrapperOpen => {
            "<saml:Advice xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">".into()
        }
        Snippet::NamespaceWrapperClose => "</saml:Advice>".into(),
        Snippet::Advice => "<saml:Advice></saml:Advice>".into(),
        Snippet::Raw(text) => text.clone(),
    }
}
