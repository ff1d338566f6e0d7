//! SAML 2.0 bearer assertions as authorization grants (RFC 7522): the
//! protocol-level verification, with no I/O.
//!
//! The grant parses the `assertion` parameter ([`UnverifiedAssertion::parse`]),
//! finds the identity provider by [`UnverifiedAssertion::issuer`], and verifies
//! the assertion against that provider's certificate
//! ([`UnverifiedAssertion::verify`]). What comes out ([`VerifiedAssertion`]) has
//! passed every check of RFC 7522 §3 that does not need the store: the replay
//! check (record [`VerifiedAssertion::id`] until
//! [`VerifiedAssertion::replay_until`]) and mapping the NameID to a user are
//! the grant's.
//!
//! XML signatures are verified by `bergshamra`, with the identity provider's
//! key only: whatever key or certificate the document carries in `KeyInfo` is
//! ignored. The document is parsed once, with the parser bergshamra itself
//! uses (`uppsala`), and the same parsed tree is both verified and read, so
//! the element whose signature was checked is, node for node, the element
//! whose fields are returned. On top of bergshamra, the structure is pinned
//! down before any signature is looked at, which is what defeats signature
//! wrapping (XSW): one `saml:Assertion` and it is the document element, no
//! element shares an ID with another, exactly one `ds:Signature` and it is a
//! direct child of the Assertion, with one Reference to the Assertion's ID,
//! the enveloped-signature and exclusive c14n transforms, and SHA-256 or
//! stronger throughout.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bergshamra::core::algorithm;
use bergshamra::dsig::{DsigContext, VerifyResult};
use bergshamra::keys::{Key, KeysManager, loader};
use bergshamra::xml::uppsala::{Document, NodeId, NodeKind, Parser};

use crate::clock::UnixTime;
use crate::error::{Error, Reason, bounded};

/// The largest `assertion` parameter taken, encoded.
pub const MAX_ASSERTION_LEN: usize = 64 * 1024;

const SAML_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";

/// Deeper than any assertion needs (attribute values may hold some XML).
const MAX_DEPTH: u32 = 32;

/// The attribute names that XML-DSig processors (bergshamra among them) treat
/// as IDs, in any namespace: no two elements may share a value.
const ID_ATTRIBUTES: [&str; 4] = ["ID", "Id", "id", "AssertionID"];

/// Signature methods taken: RSA PKCS#1 v1.5 and ECDSA, with SHA-256 or
/// stronger. SHA-1 (and anything else) is refused before verifying.
const SIGNATURE_METHODS: [&str; 6] = [
    algorithm::RSA_SHA256,
    algorithm::RSA_SHA384,
    algorithm::RSA_SHA512,
    algorithm::ECDSA_SHA256,
    algorithm::ECDSA_SHA384,
    algorithm::ECDSA_SHA512,
];

const DIGEST_METHODS: [&str; 3] = [algorithm::SHA256, algorithm::SHA384, algorithm::SHA512];

/// What the assertion must say to be accepted here.
#[derive(Debug, Clone, Copy)]
pub struct SamlExpectations<'a> {
    /// Values <Audience> may take: this server's issuer and token endpoint URL.
    pub audiences: &'a [String],
    /// The token endpoint URL: the bearer SubjectConfirmationData's Recipient.
    pub recipient: &'a str,
    pub now: UnixTime,
    /// Allowed clock difference in seconds (the server uses 30).
    pub leeway: i64,
}

/// An identity provider's signing certificate, parsed once (at `tessera
/// saml-idp add` time and when loaded).
///
/// Only its public key is used. The certificate's validity period and issuer
/// are not checked: the certificate is configured here, not presented, so it
/// is trusted as a key, as SAML metadata keys are.
#[derive(Clone)]
pub struct IdpCertificate {
    key: Key,
}

impl fmt::Debug for IdpCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpCertificate")
            .field("key_algorithm", &self.key_algorithm())
            .finish()
    }
}

impl IdpCertificate {
    /// One PEM `CERTIFICATE` block holding an X.509 certificate with an RSA
    /// (2048 bits or more) or EC P-256/P-384/P-521 public key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pem = pem.trim();
        if pem.is_empty() {
            return Err("the certificate is empty".into());
        }
        if !pem.starts_with("-----BEGIN CERTIFICATE-----") {
            return Err(
                "not a PEM certificate: expected a block starting with -----BEGIN CERTIFICATE-----"
                    .into(),
            );
        }
        if pem.matches("-----BEGIN ").count() > 1 {
            return Err(
                "more than one PEM block: give the identity provider's signing certificate alone"
                    .into(),
            );
        }
        let key = loader::load_x509_cert_pem(pem.as_bytes()).map_err(|e| match e {
            bergshamra::Error::Key(_) | bergshamra::Error::UnsupportedAlgorithm(_) => {
                format!("the certificate's public key is not supported: {e}")
            }
            _ => format!("not a valid X.509 certificate: {e}"),
        })?;
        match key.algorithm_name() {
            "RSA" | "EC-P256" | "EC-P384" | "EC-P521" => Ok(IdpCertificate { key }),
            other => Err(format!(
                "the certificate's {other} key is not supported: SAML signatures are verified \
                 with RSA or ECDSA (P-256, P-384, P-521) keys"
            )),
        }
    }

    /// `RSA`, `EC-P256`, `EC-P384` or `EC-P521`.
    pub fn key_algorithm(&self) -> &'static str {
        self.key.algorithm_name()
    }

    /// A verification context trusting this key alone: `KeyInfo` in the
    /// document only orders trusted keys, never adds one (bergshamra's
    /// `trusted_keys_only`); references must sit where an enveloped
    /// signature's can (`strict_verification`); every reference digest must
    /// be computed here.
    fn dsig_context(&self) -> DsigContext {
        let mut keys = KeysManager::new();
        keys.add_key(self.key.clone());
        DsigContext::new(keys)
            .with_trusted_keys_only(true)
            .with_strict_verification(true)
            .with_require_reference_digests(true)
            .with_insecure(false)
    }
}

/// The assertion parsed but NOT yet verified: only its Issuer may be read, to
/// find the IdP.
#[derive(Clone)]
pub struct UnverifiedAssertion {
    xml: String,
    id: String,
    issuer: String,
}

impl fmt::Debug for UnverifiedAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedAssertion")
            .field("issuer", &bounded(&self.issuer))
            .field("id", &bounded(&self.id))
            .field("len", &self.xml.len())
            .finish()
    }
}

/// What a verified assertion says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The Assertion's ID attribute (recorded against replay).
    pub id: String,
    pub issuer: String,
    /// The Subject's NameID text, whole.
    pub name_id: String,
    /// Until when the assertion could be presented: the earliest of
    /// Conditions@NotOnOrAfter and the bearer SubjectConfirmationData@NotOnOrAfter.
    ///
    /// The verifier still accepts it up to `leeway` seconds later: record the
    /// ID against replay until [`replay_until`](Self::replay_until), not this.
    pub not_on_or_after: UnixTime,
    /// How long the assertion's ID must stay recorded against replay (SAML
    /// Profiles §4.1.4.5): `not_on_or_after` plus the leeway, the first
    /// instant at which this verifier refuses the assertion as expired.
    pub replay_until: UnixTime,
    /// AuthnStatement@AuthnInstant, when present (the latest, if several).
    pub authn_instant: Option<UnixTime>,
}

fn malformed(description: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(Reason::AssertionMalformed, description)
}

fn signature_invalid(description: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(Reason::AssertionSignatureInvalid, description)
}

fn claims_invalid(description: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(Reason::AssertionClaimsInvalid, description)
}

fn expired(description: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(Reason::AssertionExpired, description)
}

fn audience_mismatch(description: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(Reason::AssertionAudienceMismatch, description)
}

impl UnverifiedAssertion {
    /// `encoded` is the `assertion` form parameter: base64url (RFC 7522 §2.1),
    /// with or without `=` padding; the standard alphabet (`+`, `/`) and
    /// whitespace are refused.
    pub fn parse(encoded: &str) -> Result<Self, Error> {
        if encoded.len() > MAX_ASSERTION_LEN {
            return Err(malformed("the assertion is larger than 64 KiB"));
        }
        if encoded.is_empty() {
            return Err(malformed("the assertion is empty"));
        }
        let bytes = base64url()
            .decode(encoded)
            .map_err(|_| malformed("the assertion is not base64url-encoded (RFC 7522 §2.1)"))?;
        let text = check_document(&bytes)?;
        let doc = parse_xml(text)?;
        let structure = Structure::read(&doc)?;
        Ok(UnverifiedAssertion {
            id: structure.id,
            issuer: structure.issuer,
            xml: text.to_owned(),
        })
    }

    /// The Issuer's entity ID, as written. Unverified: use it only to find
    /// the identity provider whose certificate [`verify`](Self::verify) takes.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The Assertion's ID, as written. Unverified: for logs only.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Verifies the signature with `certificate` (the key of the identity
    /// provider named by [`issuer`](Self::issuer), and only that key), then
    /// the assertion's conditions, subject and bearer confirmation.
    pub fn verify(
        &self,
        certificate: &IdpCertificate,
        expect: &SamlExpectations<'_>,
    ) -> Result<VerifiedAssertion, Error> {
        // The same text, parsed as in `parse`: the tree verified below is the
        // tree read below.
        let doc = parse_xml(&self.xml)?;
        let structure = Structure::read(&doc)?;
        check_signature_form(&doc, &structure)?;
        verify_signature(&doc, &structure, certificate, &self.xml)?;

        // From here on, everything is read under `structure.assertion`, the
        // node the signature was just checked to cover.
        let assertion = structure.assertion;

        // RFC 7522 §3 item 1: the caller chose the key by this issuer.
        if structure.issuer != self.issuer {
            return Err(Error::new(
                Reason::AssertionUntrusted,
                "the assertion's Issuer is not the identity provider whose key verified it",
            ));
        }

        let now = expect.now;
        let leeway = expect.leeway.max(0);
        let earliest = now.saturating_sub(leeway);
        let latest = now.saturating_add(leeway);

        let issue_instant = instant_attr(&doc, assertion, "IssueInstant", "Assertion")?
            .ok_or_else(|| malformed("the Assertion has no IssueInstant"))?;
        if issue_instant > latest {
            return Err(expired("the assertion's IssueInstant is in the future"));
        }

        let conditions_not_on_or_after = check_conditions(&doc, assertion, expect, earliest)?;
        let (name_id, confirmation_not_on_or_after) =
            check_subject(&doc, assertion, expect, earliest)?;
        let authn_instant = authn_instant(&doc, assertion, latest)?;

        let not_on_or_after = conditions_not_on_or_after.min(confirmation_not_on_or_after);
        Ok(VerifiedAssertion {
            id: structure.id,
            issuer: structure.issuer,
            name_id,
            not_on_or_after,
            replay_until: not_on_or_after.saturating_add(leeway),
            authn_instant,
        })
    }
}

/// Base64url, padding optional (RFC 7522 §2.1 says base64url; some senders
/// pad), no whitespace, canonical trailing bits.
fn base64url() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Refuses, before any parser sees it, what could make a parser expand
/// entities or fetch anything: a DTD (`<!DOCTYPE`), entity or other markup
/// declarations, and processing instructions other than the XML declaration.
/// Only comments and CDATA sections may start with `<!`.
fn check_document(bytes: &[u8]) -> Result<&str, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("the assertion is not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (at, _) in text.match_indices("<!") {
        let rest = text.get(at + 2..).unwrap_or("");
        if !(rest.starts_with("--") || rest.starts_with("[CDATA[")) {
            return Err(malformed(
                "the assertion holds a DTD or a markup declaration (<!DOCTYPE, <!ENTITY): refused",
            ));
        }
    }
    for (at, _) in text.match_indices("<?") {
        let declaration = at == 0
            && text
                .strip_prefix("<?xml")
                .and_then(|rest| rest.chars().next())
                .is_some_and(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if !declaration {
            return Err(malformed(
                "the assertion holds a processing instruction: refused",
            ));
        }
    }
    Ok(text)
}

/// Parses with DTDs and entity declarations forbidden (already refused by
/// [`check_document`]; this is the second lock) and a small depth limit.
fn parse_xml(text: &str) -> Result<Document<'_>, Error> {
    let doc = Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .with_max_depth(MAX_DEPTH)
        .parse(text)
        .map_err(|e| {
            malformed(format!(
                "the assertion is not well-formed XML: {}",
                bounded(&e.to_string())
            ))
        })?;
    if let Some(declaration) = &doc.xml_declaration {
        if declaration.version != "1.0" {
            return Err(malformed("the assertion must be XML 1.0"));
        }
        if let Some(encoding) = &declaration.encoding
            && !encoding.eq_ignore_ascii_case("UTF-8")
        {
            return Err(malformed("the assertion must be encoded in UTF-8"));
        }
    }
    Ok(doc)
}

/// Where the parts that matter sit in a document that has the shape of a
/// signed SAML 2.0 assertion.
struct Structure {
    assertion: NodeId,
    signature: NodeId,
    id: String,
    issuer: String,
}

impl Structure {
    /// Checks the shape that rules out signature wrapping, before any
    /// signature is looked at: no shared IDs, one Assertion and it is the
    /// document element, one Signature and it is the Assertion's child.
    fn read(doc: &Document<'_>) -> Result<Self, Error> {
        check_unique_ids(doc)?;

        // One assertion in the whole document: a second one (nested in
        // Advice, wrapped around or beside the signed one) is how signature
        // wrapping makes a reader consume what the signature did not cover.
        // Counted by local name in any namespace, encrypted ones included.
        let assertions = elements(doc)
            .filter(|&n| {
                doc.element(n).is_some_and(|e| {
                    matches!(&*e.name.local_name, "Assertion" | "EncryptedAssertion")
                })
            })
            .count();
        if assertions == 0 {
            return Err(malformed("the document holds no saml:Assertion"));
        }
        if assertions > 1 {
            return Err(signature_invalid(
                "the document holds more than one assertion (nested or wrapped assertions are refused)",
            ));
        }
        let assertion = doc
            .document_element()
            .filter(|&n| is(doc, n, SAML_NS, "Assertion"))
            .ok_or_else(|| malformed("the document element must be a SAML 2.0 saml:Assertion"))?;
        if unqualified_attr(doc, assertion, "Version") != Some("2.0") {
            return Err(malformed("the Assertion must have Version=\"2.0\""));
        }
        let id = unqualified_attr(doc, assertion, "ID")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("the Assertion has no ID"))?
            .to_owned();
        // An ID is an NCName (SAML Core §1.3.4, xs:ID). Anything else could
        // read as more than a name in the Reference URI "#" + ID (such as
        // "#xpointer(id('other'))", which resolves to another element).
        if !is_ncname(&id) {
            return Err(malformed("the Assertion's ID is not an XML name (xs:ID)"));
        }

        // Exactly one ds:Signature in the document, a direct child of the
        // Assertion (enveloped): not in Advice, Subject, an Object, anywhere
        // else.
        let signatures: Vec<NodeId> = elements(doc)
            .filter(|&n| is(doc, n, DSIG_NS, "Signature"))
            .collect();
        let signature = match signatures.as_slice() {
            [] => {
                return Err(signature_invalid(
                    "the assertion is not signed (RFC 7522 §3 item 8)",
                ));
            }
            [one] => *one,
            _ => {
                return Err(signature_invalid(
                    "the document holds more than one signature",
                ));
            }
        };
        if doc.parent(signature) != Some(assertion) {
            return Err(signature_invalid(
                "the signature must be a direct child of the Assertion (enveloped)",
            ));
        }

        let mut issuer = None;
        let mut seen = HashSet::new();
        for (position, child) in child_elements(doc, assertion).enumerate() {
            let Some(element) = doc.element(child) else {
                continue;
            };
            let name = &*element.name.local_name;
            let namespace = element.name.namespace_uri.as_deref().unwrap_or("");
            let known = match (namespace, name) {
                (SAML_NS, "Issuer") => {
                    if position != 0 {
                        return Err(malformed(
                            "the Issuer must be the Assertion's first element",
                        ));
                    }
                    issuer = Some(child);
                    true
                }
                (DSIG_NS, "Signature") => true,
                (SAML_NS, "Subject" | "Conditions" | "Advice") => {
                    if !seen.insert(name.to_owned()) {
                        return Err(malformed(format!("the Assertion has more than one {name}")));
                    }
                    true
                }
                (
                    SAML_NS,
                    "AuthnStatement"
                    | "AttributeStatement"
                    | "AuthzDecisionStatement"
                    | "Statement",
                ) => true,
                _ => false,
            };
            if !known {
                return Err(malformed(format!(
                    "unexpected element {} in the Assertion",
                    bounded(name)
                )));
            }
        }

        let issuer_node = issuer.ok_or_else(|| malformed("the Assertion has no Issuer"))?;
        let issuer =
            plain_text(doc, issuer_node).map_err(|what| malformed(format!("the Issuer {what}")))?;
        if issuer.is_empty() {
            return Err(malformed("the Issuer is empty"));
        }
        if let Some(format) = unqualified_attr(doc, issuer_node, "Format")
            && format != ENTITY_FORMAT
        {
            return Err(claims_invalid(
                "the Issuer's Format must be urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
            ));
        }

        Ok(Structure {
            assertion,
            signature,
            id,
            issuer,
        })
    }
}

/// No two ID-like attributes (any of [`ID_ATTRIBUTES`], in any namespace,
/// `xml:id` included) with one value, and none twice on one element: an ID
/// must name one node, the one the reference resolves to and the one read.
fn check_unique_ids(doc: &Document<'_>) -> Result<(), Error> {
    let mut ids = HashSet::new();
    for node in elements(doc) {
        let Some(element) = doc.element(node) else {
            continue;
        };
        let mut on_element = 0;
        for attribute in &element.attributes {
            if !ID_ATTRIBUTES.contains(&&*attribute.name.local_name) {
                continue;
            }
            on_element += 1;
            if on_element > 1 {
                return Err(signature_invalid(
                    "an element has more than one ID attribute",
                ));
            }
            if !ids.insert(&*attribute.value) {
                return Err(signature_invalid(format!(
                    "more than one element has the ID {}",
                    bounded(&attribute.value)
                )));
            }
        }
    }
    Ok(())
}

/// The signature's own form, before any cryptography: what is signed (the
/// Assertion, by its ID), how (enveloped-signature then exclusive c14n,
/// XML-DSig §6.6.4 and Exc-C14N), and with which algorithms (SHA-256 or
/// stronger; no SHA-1, no HMAC). Nothing else (no `ds:Object`, no second
/// Reference, no XPath or XSLT transform) is taken.
fn check_signature_form(doc: &Document<'_>, structure: &Structure) -> Result<(), Error> {
    let invalid = signature_invalid;
    let mut parts = child_elements(doc, structure.signature);
    let signed_info = parts
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "SignedInfo"))
        .ok_or_else(|| invalid("the signature's first element must be ds:SignedInfo"))?;
    parts
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "SignatureValue"))
        .ok_or_else(|| invalid("the signature has no ds:SignatureValue after ds:SignedInfo"))?;
    if let Some(extra) = parts.next() {
        if !is(doc, extra, DSIG_NS, "KeyInfo") {
            return Err(invalid(
                "the signature holds more than SignedInfo, SignatureValue and KeyInfo (a ds:Object?)",
            ));
        }
        if parts.next().is_some() {
            return Err(invalid(
                "the signature holds more than SignedInfo, SignatureValue and KeyInfo (a ds:Object?)",
            ));
        }
    }

    let mut info = child_elements(doc, signed_info);
    let c14n = info
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "CanonicalizationMethod"))
        .ok_or_else(|| invalid("SignedInfo has no CanonicalizationMethod"))?;
    if algorithm_of(doc, c14n) != Some(algorithm::EXC_C14N) {
        return Err(invalid(
            "SignedInfo must be canonicalized with exclusive c14n (http://www.w3.org/2001/10/xml-exc-c14n#)",
        ));
    }
    only_inclusive_namespaces(doc, c14n)?;

    let method = info
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "SignatureMethod"))
        .ok_or_else(|| invalid("SignedInfo has no SignatureMethod"))?;
    let method_uri = algorithm_of(doc, method).unwrap_or("");
    if !SIGNATURE_METHODS.contains(&method_uri) {
        return Err(signature_invalid(if method_uri.contains("sha1") {
            "SHA-1 signatures are not accepted: sign with RSA-SHA256 or stronger".to_owned()
        } else {
            format!(
                "signature method {} is not accepted: sign with RSA-SHA256 (or RSA-SHA384/512, ECDSA-SHA256/384/512)",
                bounded(method_uri)
            )
        }));
    }
    if child_elements(doc, method).next().is_some() {
        return Err(invalid("SignatureMethod takes no parameters here"));
    }

    let reference = info
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "Reference"))
        .ok_or_else(|| invalid("SignedInfo has no Reference"))?;
    if info.next().is_some() {
        return Err(invalid("the signature must have exactly one Reference"));
    }
    let expected_uri = format!("#{}", structure.id);
    if unqualified_attr(doc, reference, "URI") != Some(expected_uri.as_str()) {
        return Err(invalid(
            "the signature's Reference must point to the Assertion's own ID",
        ));
    }

    let mut reference_parts = child_elements(doc, reference);
    let transforms = reference_parts
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "Transforms"))
        .ok_or_else(|| invalid("the Reference has no Transforms"))?;
    let mut steps = child_elements(doc, transforms);
    let enveloped = steps.next().filter(|&n| {
        is(doc, n, DSIG_NS, "Transform")
            && algorithm_of(doc, n) == Some(algorithm::ENVELOPED_SIGNATURE)
            && child_elements(doc, n).next().is_none()
    });
    let exclusive = steps.next().filter(|&n| {
        is(doc, n, DSIG_NS, "Transform") && algorithm_of(doc, n) == Some(algorithm::EXC_C14N)
    });
    match (enveloped, exclusive, steps.next()) {
        (Some(_), Some(exclusive), None) => only_inclusive_namespaces(doc, exclusive)?,
        _ => {
            return Err(invalid(
                "the Reference's transforms must be enveloped-signature then exclusive c14n",
            ));
        }
    }

    let digest = reference_parts
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "DigestMethod"))
        .ok_or_else(|| invalid("the Reference has no DigestMethod"))?;
    let digest_uri = algorithm_of(doc, digest).unwrap_or("");
    if !DIGEST_METHODS.contains(&digest_uri) {
        return Err(signature_invalid(if digest_uri.contains("sha1") {
            "SHA-1 digests are not accepted: use SHA-256 or stronger".to_owned()
        } else {
            format!(
                "digest method {} is not accepted: use SHA-256 or stronger",
                bounded(digest_uri)
            )
        }));
    }
    reference_parts
        .next()
        .filter(|&n| is(doc, n, DSIG_NS, "DigestValue"))
        .ok_or_else(|| invalid("the Reference has no DigestValue"))?;
    if reference_parts.next().is_some() {
        return Err(invalid("the Reference holds unexpected elements"));
    }
    Ok(())
}

/// An exclusive c14n method or transform may carry an InclusiveNamespaces
/// PrefixList (Exc-C14N §3), nothing else.
fn only_inclusive_namespaces(doc: &Document<'_>, node: NodeId) -> Result<(), Error> {
    let mut children = child_elements(doc, node);
    match (children.next(), children.next()) {
        (None, _) => Ok(()),
        (Some(n), None) if is(doc, n, EXC_C14N_NS, "InclusiveNamespaces") => Ok(()),
        _ => Err(signature_invalid(
            "exclusive c14n takes an InclusiveNamespaces element only",
        )),
    }
}

/// Runs bergshamra on the parsed tree, with the identity provider's key
/// alone, then checks that what it reports verified is this Assertion.
fn verify_signature(
    doc: &Document<'_>,
    structure: &Structure,
    certificate: &IdpCertificate,
    xml: &str,
) -> Result<(), Error> {
    let context = certificate.dsig_context();
    let result = bergshamra::dsig::verify::verify_document_with_source(&context, doc, Some(xml));
    match result {
        Ok(VerifyResult::Valid {
            signature_node,
            references,
            ..
        }) => {
            // Not taken on trust: the signature bergshamra verified must be
            // the one found above, with one reference, to the Assertion's
            // ID, resolved to the very node read from here on, its digest
            // computed here.
            let expected_uri = format!("#{}", structure.id);
            let covers_assertion = signature_node == structure.signature
                && matches!(references.as_slice(), [only]
                    if only.uri == expected_uri
                        && only.resolved_node == Some(structure.assertion)
                        && only.digest_verified);
            if covers_assertion {
                Ok(())
            } else {
                Err(signature_invalid(
                    "the signature does not cover the assertion",
                ))
            }
        }
        Ok(VerifyResult::Invalid { reason }) => {
            tracing::debug!(%reason, "SAML assertion signature refused");
            if reason.starts_with("signature value verification failed") {
                Err(Error::new(
                    Reason::AssertionUntrusted,
                    "the assertion was not signed with the identity provider's key",
                ))
            } else if reason.starts_with("Reference digest failed") {
                Err(signature_invalid(
                    "the assertion was changed after it was signed (digest mismatch)",
                ))
            } else {
                Err(signature_invalid(
                    "the assertion's signature does not verify",
                ))
            }
        }
        Err(error) => {
            tracing::debug!(%error, "SAML assertion signature refused");
            Err(match error {
                bergshamra::Error::Key(_) | bergshamra::Error::KeyNotFound(_) => Error::new(
                    Reason::AssertionUntrusted,
                    "the identity provider's key cannot verify this signature (another key type?)",
                ),
                _ => signature_invalid(format!(
                    "the assertion's signature cannot be verified: {}",
                    bounded(&error.to_string())
                )),
            })
        }
    }
}

/// Conditions (SAML Core §2.5.1, RFC 7522 §3 items 2, 4 and 10): the time
/// window, with NotOnOrAfter required, and every AudienceRestriction naming
/// this server. Returns Conditions@NotOnOrAfter.
fn check_conditions(
    doc: &Document<'_>,
    assertion: NodeId,
    expect: &SamlExpectations<'_>,
    earliest: UnixTime,
) -> Result<UnixTime, Error> {
    // RFC 7522 §3 item 4 lets the expiry be on either Conditions or the
    // bearer confirmation; here both are required, and the earlier wins.
    let no_expiry = || {
        expired("the assertion has no Conditions NotOnOrAfter: it must expire (RFC 7522 §3 item 4)")
    };
    let conditions = child_elements(doc, assertion)
        .find(|&n| is(doc, n, SAML_NS, "Conditions"))
        .ok_or_else(no_expiry)?;
    let not_on_or_after =
        instant_attr(doc, conditions, "NotOnOrAfter", "Conditions")?.ok_or_else(no_expiry)?;
    if let Some(not_before) = instant_attr(doc, conditions, "NotBefore", "Conditions")?
        && not_before > expect.now.saturating_add(expect.leeway.max(0))
    {
        return Err(expired(
            "the assertion is not valid yet (Conditions NotBefore)",
        ));
    }
    if not_on_or_after <= earliest {
        return Err(expired(
            "the assertion has expired (Conditions NotOnOrAfter)",
        ));
    }

    let mut restrictions = 0;
    let mut one_time_use = 0;
    let mut proxy_restriction = 0;
    for condition in child_elements(doc, conditions) {
        let name = doc
            .element(condition)
            .map(|e| (&*e.name.local_name, e.name.namespace_uri.as_deref()))
            .unwrap_or(("", None));
        match name {
            ("AudienceRestriction", Some(SAML_NS)) => {
                restrictions += 1;
                check_audience_restriction(doc, condition, expect.audiences)?;
            }
            // The ID is recorded against replay anyway (SAML Core §2.5.1.5).
            ("OneTimeUse", Some(SAML_NS)) => one_time_use += 1,
            // Limits what a relying party that issues assertions of its own
            // may do with this one (§2.5.1.6): nothing this server does.
            ("ProxyRestriction", Some(SAML_NS)) => proxy_restriction += 1,
            (other, _) => {
                return Err(claims_invalid(format!(
                    "unknown condition {} (RFC 7522 §3 item 10)",
                    bounded(other)
                )));
            }
        }
    }
    if one_time_use > 1 || proxy_restriction > 1 {
        return Err(claims_invalid(
            "OneTimeUse and ProxyRestriction may appear once each (SAML Core §2.5.1)",
        ));
    }
    if restrictions == 0 {
        return Err(audience_mismatch(
            "the assertion has no AudienceRestriction naming this server (RFC 7522 §3 item 2)",
        ));
    }
    Ok(not_on_or_after)
}

/// One AudienceRestriction: at least one of its Audiences is this server
/// (SAML Core §2.5.1.4: the Audiences of one restriction are alternatives,
/// separate restrictions must all hold).
fn check_audience_restriction(
    doc: &Document<'_>,
    restriction: NodeId,
    accepted: &[String],
) -> Result<(), Error> {
    let mut audiences = Vec::new();
    for child in child_elements(doc, restriction) {
        if !is(doc, child, SAML_NS, "Audience") {
            return Err(claims_invalid(
                "an AudienceRestriction holds something other than Audience",
            ));
        }
        let audience =
            plain_text(doc, child).map_err(|what| claims_invalid(format!("an Audience {what}")))?;
        if accepted.contains(&audience) {
            return Ok(());
        }
        audiences.push(audience);
    }
    let shown: Vec<&str> = audiences.iter().map(String::as_str).collect();
    Err(audience_mismatch(format!(
        "the assertion is not addressed to this server (Audience: {})",
        crate::error::bounded_list(&shown)
    )))
}

/// Subject (RFC 7522 §3 items 3 and 5, SAML Profiles §4.1.4.2): the NameID,
/// whole, and at least one bearer confirmation for this token endpoint, in
/// time. Returns the NameID and the latest NotOnOrAfter among the bearer
/// confirmations that hold.
fn check_subject(
    doc: &Document<'_>,
    assertion: NodeId,
    expect: &SamlExpectations<'_>,
    earliest: UnixTime,
) -> Result<(String, UnixTime), Error> {
    let subject = child_elements(doc, assertion)
        .find(|&n| is(doc, n, SAML_NS, "Subject"))
        .ok_or_else(|| claims_invalid("the assertion has no Subject (RFC 7522 §3 item 3)"))?;

    let mut name_id = None;
    let mut confirmations = Vec::new();
    for child in child_elements(doc, subject) {
        let Some(element) = doc.element(child) else {
            continue;
        };
        match (
            &*element.name.local_name,
            element.name.namespace_uri.as_deref(),
        ) {
            ("NameID", Some(SAML_NS)) => {
                if name_id.replace(child).is_some() {
                    return Err(claims_invalid("the Subject has more than one NameID"));
                }
            }
            ("BaseID" | "EncryptedID", Some(SAML_NS)) => {
                return Err(claims_invalid(
                    "the Subject must identify the user with a plain NameID",
                ));
            }
            ("SubjectConfirmation", Some(SAML_NS)) => confirmations.push(child),
            (other, _) => {
                return Err(claims_invalid(format!(
                    "unexpected element {} in the Subject",
                    bounded(other)
                )));
            }
        }
    }
    let name_id = name_id.ok_or_else(|| claims_invalid("the Subject has no NameID"))?;
    // The whole text, or nothing: a comment or an element inside the NameID
    // would let a reader that stops at the first text node see a prefix of
    // what was signed (comments are outside exclusive c14n).
    let name_id = plain_text(doc, name_id).map_err(|what| {
        claims_invalid(format!(
            "the NameID {what}: it must be plain text, read whole"
        ))
    })?;
    if name_id.trim().is_empty() {
        return Err(claims_invalid("the NameID is empty"));
    }

    let mut accepted: Option<UnixTime> = None;
    let mut first_error = None;
    let mut bearers = 0;
    for confirmation in confirmations {
        if unqualified_attr(doc, confirmation, "Method") != Some(BEARER) {
            continue;
        }
        bearers += 1;
        match check_bearer_confirmation(doc, confirmation, expect, earliest) {
            Ok(not_on_or_after) => {
                accepted = Some(accepted.map_or(not_on_or_after, |a| a.max(not_on_or_after)));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (accepted, first_error) {
        (Some(not_on_or_after), _) => Ok((name_id, not_on_or_after)),
        (None, Some(error)) => Err(error),
        (None, None) => {
            debug_assert_eq!(bearers, 0);
            Err(claims_invalid(
                "the Subject has no bearer SubjectConfirmation (RFC 7522 §3 item 5)",
            ))
        }
    }
}

/// A bearer SubjectConfirmation's data (SAML Profiles §4.1.4.2, RFC 7522 §3
/// item 5): Recipient is the token endpoint, NotOnOrAfter is there and not
/// past, NotBefore is absent. Returns its NotOnOrAfter.
fn check_bearer_confirmation(
    doc: &Document<'_>,
    confirmation: NodeId,
    expect: &SamlExpectations<'_>,
    earliest: UnixTime,
) -> Result<UnixTime, Error> {
    let mut data = child_elements(doc, confirmation)
        .filter(|&n| is(doc, n, SAML_NS, "SubjectConfirmationData"));
    let Some(data) = data.next().filter(|_| data.next().is_none()) else {
        return Err(claims_invalid(
            "a bearer SubjectConfirmation must have one SubjectConfirmationData",
        ));
    };
    if unqualified_attr(doc, data, "NotBefore").is_some() {
        return Err(claims_invalid(
            "a bearer SubjectConfirmationData must not have NotBefore (SAML Profiles §4.1.4.2)",
        ));
    }
    match unqualified_attr(doc, data, "Recipient") {
        Some(recipient) if recipient == expect.recipient => {}
        Some(recipient) => {
            return Err(audience_mismatch(format!(
                "the bearer confirmation's Recipient {} is not this token endpoint",
                bounded(recipient)
            )));
        }
        None => {
            return Err(audience_mismatch(
                "the bearer confirmation has no Recipient (RFC 7522 §3 item 5)",
            ));
        }
    }
    let not_on_or_after = instant_attr(doc, data, "NotOnOrAfter", "SubjectConfirmationData")?
        .ok_or_else(|| {
            expired("the bearer confirmation has no NotOnOrAfter (RFC 7522 §3 item 5)")
        })?;
    if not_on_or_after <= earliest {
        return Err(expired(
            "the assertion has expired (SubjectConfirmationData NotOnOrAfter)",
        ));
    }
    Ok(not_on_or_after)
}

/// The latest AuthnStatement@AuthnInstant, refused in the future.
fn authn_instant(
    doc: &Document<'_>,
    assertion: NodeId,
    latest: UnixTime,
) -> Result<Option<UnixTime>, Error> {
    let mut instant: Option<UnixTime> = None;
    for statement in
        child_elements(doc, assertion).filter(|&n| is(doc, n, SAML_NS, "AuthnStatement"))
    {
        let at = instant_attr(doc, statement, "AuthnInstant", "AuthnStatement")?
            .ok_or_else(|| malformed("an AuthnStatement has no AuthnInstant"))?;
        if at > latest {
            return Err(claims_invalid("the AuthnInstant is in the future"));
        }
        instant = Some(instant.map_or(at, |i| i.max(at)));
    }
    Ok(instant)
}

// --- Tree helpers ---------------------------------------------------------

/// Every element of the document, in document order.
fn elements<'d>(doc: &'d Document<'_>) -> impl Iterator<Item = NodeId> + 'd {
    doc.descendants(doc.root())
        .into_iter()
        .filter(|&n| doc.element(n).is_some())
}

fn child_elements<'d>(doc: &'d Document<'_>, node: NodeId) -> impl Iterator<Item = NodeId> + 'd {
    doc.children_iter(node)
        .filter(|&n| doc.element(n).is_some())
}

fn is(doc: &Document<'_>, node: NodeId, namespace: &str, local_name: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.name.matches(Some(namespace), local_name))
}

/// An XML NCName: a letter or `_`, then letters, digits, `_`, `-`, `.`
/// (non-ASCII letters taken as the XML name rules do, without the finer
/// ranges).
fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '\u{b7}'))
}

/// An attribute without a namespace (SAML's and XML-DSig's own attributes).
fn unqualified_attr<'d>(doc: &'d Document<'_>, node: NodeId, name: &str) -> Option<&'d str> {
    doc.element(node)?
        .attributes
        .iter()
        .find(|a| a.name.namespace_uri.is_none() && *a.name.local_name == *name)
        .map(|a| &*a.value)
}

fn algorithm_of<'d>(doc: &'d Document<'_>, node: NodeId) -> Option<&'d str> {
    unqualified_attr(doc, node, "Algorithm")
}

/// All the text of an element whose content must be text only; `Err` says
/// what else it holds (a comment, an element, a processing instruction).
fn plain_text(doc: &Document<'_>, node: NodeId) -> Result<String, &'static str> {
    let mut text = String::new();
    for child in doc.children_iter(node) {
        match doc.node_kind(child) {
            Some(NodeKind::Text(t) | NodeKind::CData(t)) => text.push_str(t),
            Some(NodeKind::Comment(_)) => return Err("holds a comment"),
            Some(NodeKind::Element(_)) => return Err("holds an element"),
            _ => return Err("holds something other than text"),
        }
    }
    Ok(text)
}

/// An xs:dateTime attribute, if present; present but not UTC xs:dateTime is
/// malformed.
fn instant_attr(
    doc: &Document<'_>,
    node: NodeId,
    name: &'static str,
    owner: &'static str,
) -> Result<Option<UnixTime>, Error> {
    match unqualified_attr(doc, node, name) {
        None => Ok(None),
        Some(value) => parse_instant(value).map(Some).ok_or_else(|| {
            malformed(format!(
                "{owner} {name} is not an xs:dateTime in UTC (like 2026-01-01T00:00:00Z): {}",
                bounded(value)
            ))
        }),
    }
}

/// `YYYY-MM-DDThh:mm:ss[.f+]Z`, the UTC form SAML requires of every time
/// (SAML Core §1.3.3). Fractional seconds are dropped. No other offset, no
/// leap second, year 0001 to 9999.
fn parse_instant(value: &str) -> Option<UnixTime> {
    let bytes = value.as_bytes();
    let (main, rest) = (bytes.get(..19)?, bytes.get(19..)?);
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = main.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if main.get(4) != Some(&b'-')
        || main.get(7) != Some(&b'-')
        || main.get(10) != Some(&b'T')
        || main.get(13) != Some(&b':')
        || main.get(16) != Some(&b':')
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let rest = match rest.strip_prefix(b".") {
        Some(fraction) => {
            let digits_len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits_len == 0 {
                return None;
            }
            fraction.get(digits_len..)?
        }
        None => rest,
    };
    if rest != b"Z" {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1 || day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    //! The assertions come from `tests/fixtures/saml/make_fixtures.py`, made
    //! and signed by Python's signxml; see that script for what each one is.

    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/saml/", $name))
        };
    }

    const IDP: &str = "https://idp.example.com/saml";
    const ISSUER: &str = "https://tessera.example.com";
    const TOKEN_ENDPOINT: &str = "https://tessera.example.com/token";
    const ASSERTION_ID: &str = "_5f0c9a2e7b3d4c18a6e2f9b1d0c8e7a4";
    /// 2026-01-01T00:00:00Z, when the fixtures were issued.
    const ISSUED: UnixTime = 1_767_225_600;
    /// 2026-01-01T00:01:00Z.
    const NOW: UnixTime = ISSUED + 60;
    const LEEWAY: i64 = 30;

    fn idp_cert() -> IdpCertificate {
        IdpCertificate::from_pem(fixture!("idp-cert.pem")).expect("IdP certificate")
    }

    fn other_idp_cert() -> IdpCertificate {
        IdpCertificate::from_pem(fixture!("other-idp-cert.pem")).expect("other certificate")
    }

    fn ec_cert() -> IdpCertificate {
        IdpCertificate::from_pem(fixture!("idp-ec-cert.pem")).expect("EC certificate")
    }

    fn encode(xml: &str) -> String {
        URL_SAFE_NO_PAD.encode(xml)
    }

    fn audiences() -> Vec<String> {
        vec![ISSUER.to_owned(), TOKEN_ENDPOINT.to_owned()]
    }

    fn check(
        xml: &str,
        cert: &IdpCertificate,
        audiences: &[String],
        recipient: &str,
        now: UnixTime,
    ) -> Result<VerifiedAssertion, Error> {
        let assertion = UnverifiedAssertion::parse(&encode(xml))?;
        assertion.verify(
            cert,
            &SamlExpectations {
                audiences,
                recipient,
                now,
                leeway: LEEWAY,
            },
        )
    }

    fn verify_at(xml: &str, now: UnixTime) -> Result<VerifiedAssertion, Error> {
        check(xml, &idp_cert(), &audiences(), TOKEN_ENDPOINT, now)
    }

    fn verify(xml: &str) -> Result<VerifiedAssertion, Error> {
        verify_at(xml, NOW)
    }

    #[track_caller]
    fn refused(result: Result<VerifiedAssertion, Error>) -> Error {
        match result {
            Ok(verified) => panic!("accepted: {verified:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn the_good_assertion_verifies() {
        let verified = verify(fixture!("good.xml")).expect("good.xml verifies");
        assert_eq!(
            verified,
            VerifiedAssertion {
                id: ASSERTION_ID.to_owned(),
                issuer: IDP.to_owned(),
                name_id: "alice@example.com".to_owned(),
                // The bearer confirmation's 00:04:00, before Conditions' 00:05:00.
                not_on_or_after: ISSUED + 240,
                replay_until: ISSUED + 240 + LEEWAY,
                // 2025-12-31T23:59:00Z
                authn_instant: Some(ISSUED - 60),
            }
        );
    }

    #[test]
    fn the_issuer_is_readable_before_verifying() {
        let assertion = UnverifiedAssertion::parse(&encode(fixture!("good.xml"))).expect("parses");
        assert_eq!(assertion.issuer(), IDP);
        assert_eq!(assertion.id(), ASSERTION_ID);
        let debug = format!("{assertion:?}");
        assert!(!debug.contains("SignatureValue"), "{debug}");
    }

    #[test]
    fn an_ecdsa_signature_verifies_with_the_ec_certificate_only() {
        let xml = fixture!("good-ecdsa.xml");
        let verified = check(xml, &ec_cert(), &audiences(), TOKEN_ENDPOINT, NOW).expect("ECDSA");
        assert_eq!(verified.name_id, "alice@example.com");
        let error = refused(check(xml, &idp_cert(), &audiences(), TOKEN_ENDPOINT, NOW));
        assert_eq!(error.reason, Reason::AssertionUntrusted, "{error:?}");
        let error = refused(check(
            fixture!("good.xml"),
            &ec_cert(),
            &audiences(),
            TOKEN_ENDPOINT,
            NOW,
        ));
        assert_eq!(error.reason, Reason::AssertionUntrusted, "{error:?}");
    }

    #[test]
    fn another_identity_providers_certificate_does_not_verify_it() {
        let error = refused(check(
            fixture!("good.xml"),
            &other_idp_cert(),
            &audiences(),
            TOKEN_ENDPOINT,
            NOW,
        ));
        assert_eq!(error.reason, Reason::AssertionUntrusted, "{error:?}");
    }

    #[test]
    fn base64url_with_or_without_padding_but_nothing_else() {
        let xml = fixture!("good.xml");
        // The fixture's length makes padding appear (1 or 2 '=').
        assert_ne!(xml.len() % 3, 0);
        for encoded in [URL_SAFE_NO_PAD.encode(xml), URL_SAFE.encode(xml)] {
            UnverifiedAssertion::parse(&encoded).expect("base64url");
        }
        let standard = STANDARD.encode(xml);
        assert!(standard.contains(['+', '/']), "the test needs + or /");
        let error = UnverifiedAssertion::parse(&standard).expect_err("standard base64");
        assert_eq!(error.reason, Reason::AssertionMalformed);
        let wrapped = URL_SAFE_NO_PAD.encode(xml);
        let wrapped = format!("{}\n{}", &wrapped[..76], &wrapped[76..]);
        let error = UnverifiedAssertion::parse(&wrapped).expect_err("line break");
        assert_eq!(error.reason, Reason::AssertionMalformed);
        let error = UnverifiedAssertion::parse("").expect_err("empty");
        assert_eq!(error.reason, Reason::AssertionMalformed);
    }

    #[test]
    fn more_than_64_kib_is_refused_before_decoding() {
        let error =
            UnverifiedAssertion::parse(&"A".repeat(MAX_ASSERTION_LEN + 1)).expect_err("too large");
        assert_eq!(error.reason, Reason::AssertionMalformed);
        assert!(error.description.contains("64 KiB"), "{error:?}");
        // At the bound, the content decides.
        let error = UnverifiedAssertion::parse(&"A".repeat(MAX_ASSERTION_LEN)).expect_err("junk");
        assert!(!error.description.contains("64 KiB"), "{error:?}");
    }

    #[test]
    fn time_moves_the_verdict() {
        let good = fixture!("good.xml");
        // The bearer confirmation's NotOnOrAfter is 00:04:00, the leeway 30 s.
        assert!(verify_at(good, ISSUED + 240 + LEEWAY - 1).is_ok());
        for now in [ISSUED + 240 + LEEWAY, ISSUED + 300, ISSUED + 86_400] {
            let error = refused(verify_at(good, now));
            assert_eq!(error.reason, Reason::AssertionExpired, "{now}: {error:?}");
        }
        // Conditions' NotBefore (and IssueInstant) is 00:00:00.
        assert!(verify_at(good, ISSUED - LEEWAY).is_ok());
        let error = refused(verify_at(good, ISSUED - LEEWAY - 1));
        assert_eq!(error.reason, Reason::AssertionExpired, "{error:?}");
    }

    #[test]
    fn the_audience_and_recipient_must_be_this_server() {
        let good = fixture!("good.xml");
        // The fixture's Audience is the issuer URL; the token endpoint alone
        // is not it.
        let error = refused(check(
            good,
            &idp_cert(),
            &[TOKEN_ENDPOINT.to_owned()],
            TOKEN_ENDPOINT,
            NOW,
        ));
        assert_eq!(error.reason, Reason::AssertionAudienceMismatch, "{error:?}");
        assert!(check(good, &idp_cert(), &[ISSUER.to_owned()], TOKEN_ENDPOINT, NOW).is_ok());
        let error = refused(check(
            good,
            &idp_cert(),
            &audiences(),
            "https://tessera.example.com/other",
            NOW,
        ));
        assert_eq!(error.reason, Reason::AssertionAudienceMismatch, "{error:?}");
    }

    /// Every fixture but the good ones, and why it is refused.
    const REFUSED: &[(&str, &str, Reason)] = &[
        // Signatures.
        (
            "tampered-nameid.xml",
            fixture!("tampered-nameid.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "other-key.xml",
            fixture!("other-key.xml"),
            Reason::AssertionUntrusted,
        ),
        (
            "keyinfo-attacker-cert.xml",
            fixture!("keyinfo-attacker-cert.xml"),
            Reason::AssertionUntrusted,
        ),
        (
            "keyinfo-attacker-keyvalue.xml",
            fixture!("keyinfo-attacker-keyvalue.xml"),
            Reason::AssertionUntrusted,
        ),
        (
            "unsigned.xml",
            fixture!("unsigned.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "sha1.xml",
            fixture!("sha1.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "sha1-digest.xml",
            fixture!("sha1-digest.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "inclusive-c14n.xml",
            fixture!("inclusive-c14n.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        // Signature wrapping.
        (
            "xsw-advice.xml",
            fixture!("xsw-advice.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "xsw-evil-wraps-signed.xml",
            fixture!("xsw-evil-wraps-signed.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "xsw-response-sibling.xml",
            fixture!("xsw-response-sibling.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "xsw-signature-object.xml",
            fixture!("xsw-signature-object.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "xsw-reference-sibling.xml",
            fixture!("xsw-reference-sibling.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "duplicate-id.xml",
            fixture!("duplicate-id.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "duplicate-id-inside.xml",
            fixture!("duplicate-id-inside.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "signature-in-subject.xml",
            fixture!("signature-in-subject.xml"),
            Reason::AssertionSignatureInvalid,
        ),
        (
            "signature-enveloping.xml",
            fixture!("signature-enveloping.xml"),
            Reason::AssertionMalformed,
        ),
        // Content.
        (
            "nameid-comment.xml",
            fixture!("nameid-comment.xml"),
            Reason::AssertionClaimsInvalid,
        ),
        (
            "wrong-audience.xml",
            fixture!("wrong-audience.xml"),
            Reason::AssertionAudienceMismatch,
        ),
        (
            "no-audience.xml",
            fixture!("no-audience.xml"),
            Reason::AssertionAudienceMismatch,
        ),
        (
            "audience-second-restriction.xml",
            fixture!("audience-second-restriction.xml"),
            Reason::AssertionAudienceMismatch,
        ),
        (
            "wrong-recipient.xml",
            fixture!("wrong-recipient.xml"),
            Reason::AssertionAudienceMismatch,
        ),
        (
            "missing-not-on-or-after.xml",
            fixture!("missing-not-on-or-after.xml"),
            Reason::AssertionExpired,
        ),
        (
            "no-bearer.xml",
            fixture!("no-bearer.xml"),
            Reason::AssertionClaimsInvalid,
        ),
        (
            "bearer-not-before.xml",
            fixture!("bearer-not-before.xml"),
            Reason::AssertionClaimsInvalid,
        ),
        // DTDs.
        (
            "dtd-billion-laughs.xml",
            fixture!("dtd-billion-laughs.xml"),
            Reason::AssertionMalformed,
        ),
        (
            "dtd-xxe.xml",
            fixture!("dtd-xxe.xml"),
            Reason::AssertionMalformed,
        ),
    ];

    #[test]
    fn every_attack_fixture_is_refused_for_its_reason() {
        let mut wrong = Vec::new();
        for (name, xml, reason) in REFUSED {
            match verify(xml) {
                Ok(verified) => wrong.push(format!("{name}: accepted {verified:?}")),
                Err(error) if error.reason != *reason => {
                    wrong.push(format!("{name}: {error:?}, not {reason:?}"))
                }
                Err(error) => {
                    assert!(error.description.len() < 400, "{name}: {error:?}");
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn a_comment_in_the_nameid_is_refused_not_read_as_a_prefix() {
        let error = refused(verify(fixture!("nameid-comment.xml")));
        assert!(error.description.contains("comment"), "{error:?}");
        assert!(
            !error.description.contains("alice@example.com"),
            "{error:?}"
        );
    }

    #[test]
    fn dtds_are_refused_before_parsing() {
        for xml in [fixture!("dtd-billion-laughs.xml"), fixture!("dtd-xxe.xml")] {
            let error = UnverifiedAssertion::parse(&encode(xml)).expect_err("DTD");
            assert!(error.description.contains("DTD"), "{error:?}");
        }
        let good = fixture!("good.xml");
        let body = good.split_once("?>").map_or(good, |(_, body)| body);
        for refused in [
            format!("<!doctype x>{body}"),
            format!("<?xml version=\"1.0\"?><?xml-stylesheet href=\"x\"?>{body}"),
            format!("<?xml-stylesheet href=\"x\"?>{body}"),
            format!(" <?xml version=\"1.0\"?>{body}"),
            format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{body}"),
            format!("<?xml version=\"1.1\"?>{body}"),
        ] {
            let error = UnverifiedAssertion::parse(&encode(&refused)).expect_err(&refused);
            assert_eq!(error.reason, Reason::AssertionMalformed, "{refused}");
        }
        // Without an XML declaration, or with a BOM, it still verifies.
        assert!(verify(body).is_ok());
        assert!(verify(&format!("\u{feff}{body}")).is_ok());
    }

    #[test]
    fn not_utf8_is_refused() {
        let mut bytes = fixture!("good.xml").as_bytes().to_vec();
        bytes.push(0xff);
        let error =
            UnverifiedAssertion::parse(&URL_SAFE_NO_PAD.encode(&bytes)).expect_err("latin-1");
        assert_eq!(error.reason, Reason::AssertionMalformed);
        assert!(error.description.contains("UTF-8"), "{error:?}");
    }

    #[test]
    fn the_document_must_be_one_saml_2_assertion() {
        let good = fixture!("good.xml");
        let body = good.split_once("?>").map_or(good, |(_, body)| body);
        let cases = [
            (
                format!(
                    "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">{body}</samlp:Response>"
                ),
                Reason::AssertionMalformed,
            ),
            (
                body.replace("Version=\"2.0\"", "Version=\"2.1\""),
                Reason::AssertionMalformed,
            ),
            (
                body.replace(&format!("ID=\"{ASSERTION_ID}\""), "Nothing=\"x\""),
                Reason::AssertionMalformed,
            ),
            (
                body.replace(SAML_NS, "urn:oasis:names:tc:SAML:1.0:assertion"),
                Reason::AssertionMalformed,
            ),
            (
                body.replace(ASSERTION_ID, "xpointer(id('_other'))"),
                Reason::AssertionMalformed,
            ),
            (
                body.replace(ASSERTION_ID, "1abc"),
                Reason::AssertionMalformed,
            ),
            ("<x/>".to_owned(), Reason::AssertionMalformed),
            ("not xml".to_owned(), Reason::AssertionMalformed),
        ];
        for (xml, reason) in cases {
            let error = refused(verify(&xml));
            assert_eq!(error.reason, reason, "{xml}: {error:?}");
        }
    }

    /// The fact for the release notes: on its own, with its strictest
    /// settings (trusted keys only, strict reference positions), bergshamra
    /// 0.11.1 reports these wrapped documents as validly signed. Its verdict
    /// is right about the bytes it hashed, but the element a naive reader
    /// consumes is not the one signed; only the checks above refuse them.
    #[test]
    fn what_bergshamra_alone_says_of_the_wrapping_fixtures() {
        let cert = idp_cert();
        let verdict = |xml: &str| match bergshamra::dsig::verify::verify(&cert.dsig_context(), xml)
        {
            Ok(VerifyResult::Valid { .. }) => "valid",
            Ok(VerifyResult::Invalid { .. }) => "invalid",
            Err(_) => "error",
        };
        let cases = [
            ("xsw-advice.xml", fixture!("xsw-advice.xml"), "valid"),
            (
                "xsw-evil-wraps-signed.xml",
                fixture!("xsw-evil-wraps-signed.xml"),
                "valid",
            ),
            (
                "xsw-response-sibling.xml",
                fixture!("xsw-response-sibling.xml"),
                "valid",
            ),
            (
                "xsw-reference-sibling.xml",
                fixture!("xsw-reference-sibling.xml"),
                "valid",
            ),
            (
                "signature-in-subject.xml",
                fixture!("signature-in-subject.xml"),
                "valid",
            ),
            (
                "nameid-comment.xml",
                fixture!("nameid-comment.xml"),
                "valid",
            ),
            // The enveloped-signature transform cuts the Signature, and with
            // it the Assertion inside its Object, out of what is digested.
            (
                "xsw-signature-object.xml",
                fixture!("xsw-signature-object.xml"),
                "invalid",
            ),
            (
                "signature-enveloping.xml",
                fixture!("signature-enveloping.xml"),
                "invalid",
            ),
            ("duplicate-id.xml", fixture!("duplicate-id.xml"), "error"),
            (
                "duplicate-id-inside.xml",
                fixture!("duplicate-id-inside.xml"),
                "error",
            ),
            (
                "keyinfo-attacker-cert.xml",
                fixture!("keyinfo-attacker-cert.xml"),
                "invalid",
            ),
            (
                "keyinfo-attacker-keyvalue.xml",
                fixture!("keyinfo-attacker-keyvalue.xml"),
                "invalid",
            ),
        ];
        let seen: Vec<(&str, &str)> = cases.iter().map(|(n, x, _)| (*n, verdict(x))).collect();
        let expected: Vec<(&str, &str)> = cases.iter().map(|(n, _, v)| (*n, *v)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn certificates() {
        assert_eq!(idp_cert().key_algorithm(), "RSA");
        assert_eq!(ec_cert().key_algorithm(), "EC-P256");
        let pem = fixture!("idp-cert.pem");
        assert!(IdpCertificate::from_pem(&format!("\n  {pem}\n")).is_ok());
        for (bad, says) in [
            ("", "empty"),
            ("hello", "not a PEM certificate"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                "not a PEM certificate",
            ),
            (&format!("{pem}{pem}"), "more than one"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                "not a valid X.509 certificate",
            ),
        ] {
            let error = IdpCertificate::from_pem(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant("2026-01-01T00:00:00Z"), Some(ISSUED));
        assert_eq!(parse_instant("2026-01-01T00:00:00.999Z"), Some(ISSUED));
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("2024-02-29T12:34:56Z"), Some(1_709_210_096));
        assert_eq!(parse_instant("0001-01-01T00:00:00Z"), Some(-62_135_596_800));
        assert_eq!(parse_instant("9999-12-31T23:59:59Z"), Some(253_402_300_799));
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00z",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.5",
            "2026-01-01T00:00:00ZZ",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "+2026-01-01T00:00:00Z",
            "2026-1-01T00:00:00Z",
            "２０２６-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    /// No input makes it panic: every prefix of the good assertion and of a
    /// wrapping one, and single-byte changes all over the good one.
    #[test]
    fn no_input_panics() {
        let cert = idp_cert();
        let audiences = audiences();
        let expect = SamlExpectations {
            audiences: &audiences,
            recipient: TOKEN_ENDPOINT,
            now: NOW,
            leeway: LEEWAY,
        };
        let try_one = |bytes: &[u8]| {
            if let Ok(assertion) = UnverifiedAssertion::parse(&URL_SAFE_NO_PAD.encode(bytes)) {
                let _ = assertion.verify(&cert, &expect);
            }
        };
        for xml in [fixture!("good.xml"), fixture!("xsw-signature-object.xml")] {
            let bytes = xml.as_bytes();
            for end in (0..bytes.len()).step_by(13) {
                try_one(&bytes[..end]);
            }
        }
        let good = fixture!("good.xml").as_bytes();
        for at in (0..good.len()).step_by(17) {
            for replacement in [b'<', b'>', b'"', b'x', b'&', 0] {
                let mut changed = good.to_vec();
                changed[at] = replacement;
                try_one(&changed);
            }
        }
    }
}
