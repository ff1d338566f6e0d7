#!/usr/bin/env python3
"""Checks Tessera's token exchange (RFC 8693) with third-party libraries.

Authlib's OAuth2Session, the client a Python service would use, asks for a
token exchange with client_secret_basic, passing the RFC 8693 parameters as
its generic grant's body. PyJWT then verifies the issued token against the
server's JWKS: RFC 9068 typ, the subject kept, the audience asked for, and
the act claim naming the client (RFC 8693 §4.1).

Usage:
    token_exchange.py --issuer URL --client-id ID --subject-token TOKEN
        --audience URI [--expect-sub SUB]

The client secret comes from TESSERA_CLIENT_SECRET, the subject token may come
from TESSERA_SUBJECT_TOKEN (out of the process list). Prints a JSON summary
on success; on failure prints "FAILED: ..." to stderr and exits with status 1.
"""

import argparse
import json
import os
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session

TIMEOUT = 10
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--subject-token", default=os.environ.get("TESSERA_SUBJECT_TOKEN"))
    p.add_argument("--audience", required=True)
    p.add_argument("--expect-sub")
    args = p.parse_args()
    secret = os.environ["TESSERA_CLIENT_SECRET"]

    meta = requests.get(
        args.issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=TIMEOUT
    ).json()
    check(meta.get("issuer") == args.issuer, "discovery issuer mismatch")
    check(
        TOKEN_EXCHANGE in meta.get("grant_types_supported", []),
        "discovery does not list token exchange",
    )

    session = OAuth2Session(
        args.client_id, secret, token_endpoint_auth_method="client_secret_basic"
    )
    token = session.fetch_token(
        meta["token_endpoint"],
        grant_type=TOKEN_EXCHANGE,
        subject_token=args.subject_token,
        subject_token_type=ACCESS_TOKEN,
        audience=args.audience,
        timeout=TIMEOUT,
    )
    check(token.get("issued_token_type") == ACCESS_TOKEN, f"issued_token_type: {token}")
    check(token.get("token_type", "").lower() == "bearer", f"token_type: {token}")

    jwks = jwt.PyJWKClient(meta["jwks_uri"])
    access = token["access_token"]
    header = jwt.get_unverified_header(access)
    check(header.get("typ") == "at+jwt", f"typ {header.get('typ')!r}")
    key = jwks.get_signing_key_from_jwt(access)
    claims = jwt.decode(
        access,
        key.key,
        algorithms=[header["alg"]],
        audience=args.audience,
        issuer=args.issuer,
        options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]},
    )
    check(claims.get("act") == {"sub": args.client_id}, f"act: {claims.get('act')!r}")
    check(claims.get("client_id") == args.client_id, f"client_id: {claims.get('client_id')!r}")
    if args.expect_sub:
        check(claims["sub"] == args.expect_sub, f"sub {claims['sub']!r}")
    json.dump(
        {
            "issued_token_type": token["issued_token_type"],
            "sub": claims["sub"],
            "aud": claims["aud"],
            "act": claims["act"],
            "alg": header["alg"],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    try:
        main()
    except (CheckFailed, Exception) as e:  # noqa: BLE001 - report every failure alike
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
