#!/usr/bin/env python3
"""Makes client keys and client assertions (RFC 7523 §2.2) with PyJWT.

The integration tests register clients with these keys and present these
assertions to the server: an implementation we did not write signs them, so
the server's verification is checked against it, not against itself.

Usage:
    client_assertion.py keys --out DIR [--no-alg] [--no-kid] ALG...
        Makes one private key per algorithm (RS256, PS256, ES256, EdDSA) in
        DIR/<kid>.pem and prints {"jwks": <public JWK Set>, "keys": [{"kid",
        "alg", "path"}, ...]}, in the order of the algorithms.
    client_assertion.py sign SPEC
        SPEC is a JSON file holding a list of assertions to make, each
        {"claims": {...}, "alg": ALG, and one of "key": PEM path, "secret":
        text, "none": true, "forge": "pem" | "jwk" with "key"}, and optionally
        "headers": {...}. Prints the list of assertions, in order.

"forge" makes the classic algorithm-confusion forgery: HS256 keyed with the
public half of "key", as PEM ("pem") or as the public JWK's JSON ("jwk").
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGORITHMS = {
    "RS256": jwt.algorithms.RSAAlgorithm,
    "PS256": jwt.algorithms.RSAPSSAlgorithm,
    "ES256": jwt.algorithms.ECAlgorithm,
    "EdDSA": jwt.algorithms.OKPAlgorithm,
}


def new_private_key(alg):
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise SystemExit(f"unknown algorithm {alg}")


def public_jwk(alg, private_key):
    jwk = json.loads(ALGORITHMS[alg].to_jwk(private_key.public_key()))
    for member in ("d", "p", "q", "dp", "dq", "qi", "k"):
        if member in jwk:
            raise SystemExit(f"PyJWT exported a private member {member}")
    return jwk


def make_keys(args):
    os.makedirs(args.out, exist_ok=True)
    jwks, keys = [], []
    for alg in args.algs:
        private_key = new_private_key(alg)
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        path = os.path.join(args.out, f"{kid}.pem")
        with open(path, "wb") as f:
            f.write(
                private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        jwk = public_jwk(alg, private_key)
        if not args.no_alg:
            jwk["alg"] = alg
        if not args.no_kid:
            jwk["kid"] = kid
        jwk["use"] = "sig"
        jwks.append(jwk)
        keys.append({"kid": kid, "alg": alg, "path": path})
    print(json.dumps({"jwks": {"keys": jwks}, "keys": keys}))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_private(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def forge(spec):
    """HS256 keyed with the public half of an asymmetric key. PyJWT refuses
    such keys as HMAC secrets (its own defence), so the MAC is made here."""
    private_key = load_private(spec["key"])
    if spec["forge"] == "pem":
        secret = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif spec["forge"] == "jwk":
        secret = json.dumps(public_jwk(spec["alg"], private_key)).encode()
    else:
        raise SystemExit(f"unknown forgery {spec['forge']}")
    headers = {"alg": "HS256", "typ": "JWT", **spec.get("headers", {})}
    signing_input = b64(json.dumps(headers).encode()) + "." + b64(json.dumps(spec["claims"]).encode())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def sign_one(spec):
    claims, headers = spec["claims"], spec.get("headers")
    if spec.get("forge"):
        return forge(spec)
    if spec.get("none"):
        return jwt.encode(claims, None, algorithm="none", headers=headers)
    if "secret" in spec:
        return jwt.encode(claims, spec["secret"], algorithm=spec["alg"], headers=headers)
    return jwt.encode(claims, load_private(spec["key"]), algorithm=spec["alg"], headers=headers)


def sign(args):
    with open(args.spec) as f:
        specs = json.load(f)
    print(json.dumps([sign_one(spec) for spec in specs]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys")
    keys.add_argument("--out", required=True)
    keys.add_argument("--no-alg", action="store_true")
    keys.add_argument("--no-kid", action="store_true")
    keys.add_argument("algs", nargs="+", choices=sorted(ALGORITHMS))
    signer = sub.add_parser("sign")
    signer.add_argument("spec")
    args = p.parse_args()
    if args.command == "keys":
        make_keys(args)
    else:
        sign(args)


if __name__ == "__main__":
    sys.exit(main())
