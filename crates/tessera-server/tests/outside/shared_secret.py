#!/usr/bin/env python3
"""Checks HS256 access tokens of a Tessera resource with third-party libraries.

A resource registered with `tessera resource create --signing-alg HS256`
shares a secret with the server. A client-credentials client gets a token for
it through Authlib; PyJWT verifies it with the secret as printed (its
characters are the key) and refuses it with any other; the JWKS never shows
the secret; introspection (RFC 7662) says the token is active. With an old
token (signed before a rotation), PyJWT must refuse it under the current
secret and introspection must say it is inactive.

Usage:
    shared_secret.py --issuer URL --client-id ID --audience URI [--expect-kid KID]

The secrets come from the environment, out of the process list:
TESSERA_CLIENT_SECRET, TESSERA_SHARED_SECRET, and optionally
TESSERA_OLD_TOKEN. Generated IDs may start with "-": pass them as --name=value.

Prints a JSON summary on success; on failure prints "FAILED: ..." to stderr
and exits with status 1.
"""

import argparse
import json
import os
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session

TIMEOUT = 10


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--expect-kid")
    args = p.parse_args()
    args.client_secret = os.environ.get("TESSERA_CLIENT_SECRET")
    args.shared_secret = os.environ.get("TESSERA_SHARED_SECRET")
    args.old_token = os.environ.get("TESSERA_OLD_TOKEN")
    for name in ("client_secret", "shared_secret"):
        if not getattr(args, name):
            p.error(f"TESSERA_{name.upper()} is required")
    return args


def get_json(url):
    r = requests.get(url, timeout=TIMEOUT)
    check(r.status_code == 200, f"GET {url}: HTTP {r.status_code}: {r.text[:300]}")
    return r


def fetch_token(meta, args):
    session = OAuth2Session(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_endpoint_auth_method="client_secret_basic",
    )
    try:
        token = session.fetch_token(
            meta["token_endpoint"],
            grant_type="client_credentials",
            resource=args.audience,
            timeout=TIMEOUT,
        )
    except Exception as e:  # Authlib raises OAuthError with the server's error
        raise CheckFailed(f"token request failed: {e}") from e
    check(str(token.get("token_type", "")).lower() == "bearer", f"token_type {token.get('token_type')!r}")
    return token["access_token"]


def decode(token, args, secret):
    return jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience=args.audience,
        issuer=args.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )


def introspect(meta, args, token):
    r = requests.post(
        meta["introspection_endpoint"],
        data={"token": token, "token_type_hint": "access_token"},
        auth=(args.client_id, args.client_secret),
        timeout=TIMEOUT,
    )
    check(r.status_code == 200, f"introspection: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()


def run(args):
    meta = get_json(args.issuer.rstrip("/") + "/.well-known/openid-configuration").json()
    check(meta.get("issuer") == args.issuer, f"discovery issuer {meta.get('issuer')!r}")

    # The secret is the resource's and the server's alone: never published.
    jwks_response = get_json(meta["jwks_uri"])
    check(args.shared_secret not in jwks_response.text, "the shared secret is in the JWKS")
    keys = jwks_response.json()["keys"]
    check(
        all(k.get("kty") != "oct" and k.get("alg") != "HS256" for k in keys),
        f"the JWKS publishes a symmetric key: {keys}",
    )

    token = fetch_token(meta, args)
    header = jwt.get_unverified_header(token)
    check(header.get("alg") == "HS256", f"alg {header.get('alg')!r}, not HS256")
    check(header.get("typ") == "at+jwt", f"typ {header.get('typ')!r}, not at+jwt")
    kid = header.get("kid")
    check(kid and kid not in {k.get("kid") for k in keys}, f"kid {kid!r} is missing or in the JWKS")
    if args.expect_kid:
        check(kid == args.expect_kid, f"kid {kid!r}, expected {args.expect_kid!r}")

    try:
        claims = decode(token, args, args.shared_secret)
    except jwt.PyJWTError as e:
        raise CheckFailed(f"PyJWT rejected the token: {type(e).__name__}: {e}") from e
    check(claims["client_id"] == args.client_id, f"client_id claim {claims['client_id']!r}")
    check(claims["sub"] == args.client_id, f"sub claim {claims['sub']!r}")
    check(claims["aud"] == args.audience, f"aud claim {claims['aud']!r}")
    try:
        decode(token, args, "x" * len(args.shared_secret))
        raise CheckFailed("the token verified with another secret")
    except jwt.InvalidSignatureError:
        pass

    body = introspect(meta, args, token)
    check(body.get("active") is True, f"a fresh token is not active: {body}")
    check(body.get("jti") == claims["jti"], f"introspection jti {body.get('jti')!r}")

    summary = {"ok": True, "token": token, "kid": kid, "claims": sorted(claims)}
    if args.old_token:
        try:
            decode(args.old_token, args, args.shared_secret)
            raise CheckFailed("a token signed before the rotation verified with the new secret")
        except jwt.InvalidSignatureError:
            pass
        body = introspect(meta, args, args.old_token)
        check(body == {"active": False}, f"the old token introspects as {body}")
        summary["old_token_refused"] = True
    return summary


def main():
    args = parse_args()
    try:
        summary = run(args)
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except requests.RequestException as e:
        print(f"FAILED: HTTP error talking to {args.issuer}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
