"""Makes keys and signed JWTs with PyJWT, an implementation independent of
Tessera's, for the delegation tests (jwt-bearer assertions, token exchange
with tokens of trusted issuers).

Reads one JSON request on stdin and prints one JSON answer:

    {"keys": [{"name": "idp", "alg": "ES256", "kid": "idp-1"}, ...],
     "tokens": [{"key": "idp", "claims": {...}, "headers": {...}}, ...]}

answers

    {"jwks": {"idp": {"keys": [...]}, ...}, "tokens": ["eyJ...", ...]}

A token's "key" names a key from "keys"; "kid" in "headers" overrides the
key's own (null leaves it out); "alg": "none" makes an unsigned token.
"""

import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def make_key(spec):
    alg = spec["alg"]
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    elif alg in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    else:
        raise SystemExit(f"unsupported alg {alg}")
    public.update({"kid": spec["kid"], "alg": alg, "use": "sig"})
    return private, public


def main():
    request = json.load(sys.stdin)
    keys = {}
    jwks = {}
    for spec in request.get("keys", []):
        private, public = make_key(spec)
        keys[spec["name"]] = (private, spec)
        jwks[spec["name"]] = {"keys": [public]}
    tokens = []
    for spec in request.get("tokens", []):
        headers = dict(spec.get("headers", {}))
        if spec.get("alg") == "none":
            tokens.append(jwt.encode(spec["claims"], None, algorithm="none", headers=headers))
            continue
        private, key_spec = keys[spec["key"]]
        if "kid" not in headers:
            headers["kid"] = key_spec["kid"]
        elif headers["kid"] is None:
            del headers["kid"]
        tokens.append(
            jwt.encode(spec["claims"], private, algorithm=key_spec["alg"], headers=headers)
        )
    json.dump({"jwks": jwks, "tokens": tokens}, sys.stdout)


if __name__ == "__main__":
    main()
