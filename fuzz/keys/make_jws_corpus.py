#!/usr/bin/env python3
"""Keys and seed tokens of the `jws_verify` fuzz target.

The tokens are made here by implementations independent of Tessera:
`cryptography` for the keys and signatures, PyJWT where it can make the
token at all. They are seeds only: the fuzz target reads them from
fuzz/corpus/jws_verify/, and its own invariants do not depend on them.

The keys are for fuzzing only and protect nothing. Regenerating them makes
new keys (the RSA key cannot be drawn from a seed), so every seed changes
too; the fuzz target loads whatever keys are in this directory:

    python3 -m venv /tmp/jws-venv
    /tmp/jws-venv/bin/pip install -r scripts/requirements-test.txt
    /tmp/jws-venv/bin/python fuzz/keys/make_jws_corpus.py

Files written:

- fuzz/keys/es256.pem, rsa.pem, ed25519.pem: PKCS#8 private keys (the RSA
  key serves RS256 and PS256); the HS256 secret is HS256_SECRET below,
  repeated in the fuzz target.
- fuzz/corpus/jws_verify/*.jwt: one valid token per algorithm, and tokens
  that must be refused (alg none, algorithm confusion, crit, b64, padding,
  a payload that is not an object, DER ECDSA signatures...).
"""

import base64
import hashlib
import hmac
import json
import os

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus", "jws_verify")
HS256_SECRET = b"tessera-fuzz-hs256-secret-not-a-real-key"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

CLAIMS = {
    "iss": "https://issuer.example",
    "sub": "alice",
    "aud": "https://api.example",
    "iat": 1800000000,
    "exp": 1800000300,
    "jti": "j-1",
    "scope": "openid api:read",
}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem_private(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def raw_token(header, payload, sign):
    """A token over exactly these header and payload bytes."""
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    return f"{signing_input.decode()}.{b64(sign(signing_input))}"


def es256_raw(key):
    def sign(data):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def main():
    es_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    for name, key in [("es256", es_key), ("rsa", rsa_key), ("ed25519", ed_key)]:
        with open(os.path.join(HERE, f"{name}.pem"), "wb") as f:
            f.write(pem_private(key))

    os.makedirs(CORPUS, exist_ok=True)
    for old in os.listdir(CORPUS):
        os.remove(os.path.join(CORPUS, old))

    def write(name, token):
        with open(os.path.join(CORPUS, name + ".jwt"), "w") as f:
            f.write(token)

    claims = json.dumps(CLAIMS, separators=(",", ":")).encode()
    keys = {
        "ES256": es_key,
        "RS256": rsa_key,
        "PS256": rsa_key,
        "EdDSA": ed_key,
        "HS256": HS256_SECRET,
    }
    for alg, key in keys.items():
        headers = {"typ": "at+jwt", "kid": f"fuzz-{alg.lower()}"}
        write(f"valid-{alg.lower()}", jwt.encode(CLAIMS, key, algorithm=alg, headers=headers))
    write("valid-rs256-typ-jwt", jwt.encode(CLAIMS, rsa_key, algorithm="RS256"))

    rs256 = lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    ps256 = lambda data: rsa_key.sign(
        data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    eddsa = ed_key.sign
    es256 = es256_raw(es_key)

    none_header = b64(b'{"alg":"none"}')
    write("alg-none", f"{none_header}.{b64(claims)}.")
    # Algorithm confusion: HS256 keyed with the RSA public key, as a verifier
    # that takes the algorithm from the header would check it.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write(
        "confusion-hs256-rsa-public-key",
        raw_token(
            b'{"alg":"HS256","typ":"at+jwt"}',
            claims,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
    )
    write("confusion-ps256-signature-as-rs256", raw_token(b'{"alg":"RS256"}', claims, ps256))
    write("confusion-rs256-signature-as-ps256", raw_token(b'{"alg":"PS256"}', claims, rs256))
    write("crit-exp", raw_token(b'{"alg":"ES256","crit":["exp"],"exp":1}', claims, es256))
    write("b64-false", raw_token(b'{"alg":"EdDSA","b64":false,"crit":["b64"]}', claims, eddsa))
    write("header-escaped", raw_token(rb'{"\u0061lg":"Ed\u0044SA","kid":"k\"1"}', claims, eddsa))
    write("header-duplicate-alg", raw_token(b'{"alg":"EdDSA","alg":"EdDSA"}', claims, eddsa))
    write("header-kid-null", raw_token(b'{"alg":"EdDSA","kid":null}', claims, eddsa))
    write("payload-array", raw_token(b'{"alg":"EdDSA"}', b"[1,2]", eddsa))
    write("payload-not-utf8", raw_token(b'{"alg":"HS256"}', b'{"sub":"\xc3\x28"}', lambda d: hmac.new(HS256_SECRET, d, hashlib.sha256).digest()))
    write("payload-empty", raw_token(b'{"alg":"ES256"}', b"", es256))
    # ECDSA: a DER signature (the JOSE form is r || s), and the high-S twin.
    es_header = b64(b'{"alg":"ES256"}')
    es_input = f"{es_header}.{b64(claims)}"
    der = es_key.sign(es_input.encode(), ec.ECDSA(hashes.SHA256()))
    write("es256-der-signature", f"{es_input}.{b64(der)}")
    r, s = decode_dss_signature(der)
    high_s = r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")
    write("es256-high-s", f"{es_input}.{b64(high_s)}")
    valid = jwt.encode(CLAIMS, es_key, algorithm="ES256")
    write("es256-padded-signature", valid + "==")
    write("four-parts", valid + ".e30")
    write("truncated-signature", valid[:-4])


if __name__ == "__main__":
    main()
