"""Signs SAML 2.0 bearer assertions with Python's signxml, an implementation
independent of Tessera's, for the saml2-bearer tests over HTTP.

Reads one JSON request on stdin:

    {"cert_out": "/path/idp.pem", "issuer": "https://idp.example/saml",
     "audience": "...", "recipient": "...",
     "assertions": [{"name_id": "alice", "id": "_a1", "lifetime": 300,
                     "wrap": false, "tamper": false, "sign": true}, ...]}

writes the identity provider's certificate (PEM) to cert_out and prints

    {"assertions": ["<base64url>", ...]}

"wrap" puts the signed assertion inside the Advice of an unsigned one for
mallory (signature wrapping); "tamper" changes the NameID after signing;
"sign": false leaves the assertion unsigned.
"""

import base64
import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test IdP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def assertion(request, spec, placeholder=True):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    until = now + datetime.timedelta(seconds=spec.get("lifetime", 300))
    text = (
        f'<saml:Assertion xmlns:saml="{SAML}" ID="{spec["id"]}" Version="2.0" '
        f'IssueInstant="{stamp(now)}">'
        f'<saml:Issuer>{request["issuer"]}</saml:Issuer>'
        + (f'<ds:Signature xmlns:ds="{DS}" Id="placeholder"/>' if placeholder else "")
        + "<saml:Subject>"
        f'<saml:NameID>{spec["name_id"]}</saml:NameID>'
        f'<saml:SubjectConfirmation Method="{BEARER}">'
        f'<saml:SubjectConfirmationData NotOnOrAfter="{stamp(until)}" '
        f'Recipient="{request["recipient"]}"/>'
        "</saml:SubjectConfirmation>"
        "</saml:Subject>"
        f'<saml:Conditions NotBefore="{stamp(now - datetime.timedelta(seconds=5))}" '
        f'NotOnOrAfter="{stamp(until)}">'
        f'<saml:AudienceRestriction><saml:Audience>{request["audience"]}</saml:Audience>'
        "</saml:AudienceRestriction></saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{stamp(now - datetime.timedelta(seconds=30))}">'
        "<saml:AuthnContext><saml:AuthnContextClassRef>"
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
        "</saml:Assertion>"
    )
    return etree.fromstring(text)


def sign(element, key, cert):
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    return signer.sign(
        element, key=key, cert=cert, reference_uri="#" + element.get("ID"), id_attribute="ID"
    )


def main():
    request = json.load(sys.stdin)
    key, cert = make_key_and_cert()
    with open(request["cert_out"], "w", encoding="utf-8") as f:
        f.write(cert)
    out = []
    for spec in request["assertions"]:
        if spec.get("sign", True):
            element = sign(assertion(request, spec), key, cert)
        else:
            element = assertion(request, spec, placeholder=False)
        if spec.get("tamper"):
            element.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "mallory"
        if spec.get("wrap"):
            evil = assertion(request, {**spec, "id": "_evil", "name_id": "mallory"}, False)
            advice = etree.SubElement(evil, f"{{{SAML}}}Advice")
            advice.append(element)
            # Advice belongs before the statements; the verifier must refuse
            # the shape, not the order.
            evil.remove(advice)
            evil.insert(4, advice)
            element = evil
        data = etree.tostring(element, encoding="UTF-8")
        out.append(base64.urlsafe_b64encode(data).decode().rstrip("="))
    json.dump({"assertions": out}, sys.stdout)


if __name__ == "__main__":
    main()
