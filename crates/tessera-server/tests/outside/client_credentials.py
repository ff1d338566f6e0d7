#!/usr/bin/env python3
"""Checks a running Tessera server with third-party OAuth and JOSE libraries.

A client-credentials client gets tokens through Authlib (client_secret_basic,
then client_secret_post), verifies them with PyJWT against the server's JWKS
(RFC 9068: typ at+jwt and the required claims), introspects them (RFC 7662)
and revokes them (RFC 7009).

Usage:
    client_credentials.py --issuer URL --client-id ID --client-secret SECRET
        [--scope "a b"] [--audience URI] [--expect-alg ALG] [--expect-kid KID]

ISSUER, CLIENT_ID, CLIENT_SECRET and SCOPE may also come from the environment
(TESSERA_ISSUER, TESSERA_CLIENT_ID, TESSERA_CLIENT_SECRET, TESSERA_SCOPE).
Generated IDs and key IDs may start with "-": pass them as --name=value.

Prints a JSON summary on success; on failure prints "FAILED: ..." to stderr
and exits with status 1.
"""

import argparse
import base64
import json
import os
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session

TIMEOUT = 10
# RFC 9068 §2.2 (scope is there whenever one was granted).
REQUIRED_CLAIMS = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def parse_args():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", default=env("TESSERA_ISSUER"))
    p.add_argument("--client-id", default=env("TESSERA_CLIENT_ID"))
    p.add_argument("--client-secret", default=env("TESSERA_CLIENT_SECRET"))
    p.add_argument("--scope", default=env("TESSERA_SCOPE", ""))
    p.add_argument(
        "--audience",
        help="request a token for this resource (RFC 8707); default: the issuer",
    )
    p.add_argument("--expect-alg", help="the algorithm the token must be signed with")
    p.add_argument("--expect-kid", help="the key ID the token must be signed with")
    args = p.parse_args()
    for name in ("issuer", "client_id", "client_secret"):
        if not getattr(args, name):
            p.error(f"--{name.replace('_', '-')} (or TESSERA_{name.upper()}) is required")
    return args


def get_json(url):
    r = requests.get(url, timeout=TIMEOUT)
    check(r.status_code == 200, f"GET {url}: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()


def discover(issuer):
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    meta = get_json(url)
    # OIDC Discovery §4.3 / RFC 8414 §3.3: the issuer must match exactly.
    check(meta.get("issuer") == issuer, f"discovery issuer {meta.get('issuer')!r} != {issuer!r}")
    for key in ("jwks_uri", "token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        check(isinstance(meta.get(key), str) and meta[key], f"discovery has no {key}")
    check(
        "client_credentials" in meta.get("grant_types_supported", []),
        "discovery does not list the client_credentials grant",
    )
    return meta


def check_jwks(jwks_uri):
    jwks = get_json(jwks_uri)
    keys = jwks.get("keys")
    check(isinstance(keys, list) and keys, "the JWKS has no keys")
    for k in keys:
        kid = k.get("kid")
        check(kid, f"a JWK has no kid: {k}")
        check(k.get("alg") and k["alg"] != "none", f"JWK {kid} has no usable alg")
        check(k.get("use") == "sig", f"JWK {kid} has use {k.get('use')!r}, not sig")
        leaked = PRIVATE_JWK_MEMBERS & set(k)
        check(not leaked, f"JWK {kid} publishes private members {sorted(leaked)}")
    return {k["kid"]: k for k in keys}


class RequestLog:
    """Remembers what Authlib sent, to prove which client authentication it used."""

    def __init__(self):
        self.requests = []

    def __call__(self, response, *args, **kwargs):
        self.requests.append(response.request)


def fetch_token(meta, args, method):
    session = OAuth2Session(
        client_id=args.client_id,
        client_secret=args.client_secret,
        scope=args.scope or None,
        token_endpoint_auth_method=method,
    )
    log = RequestLog()
    session.hooks["response"].append(log)
    extra = {"resource": args.audience} if args.audience else {}
    try:
        token = session.fetch_token(
            meta["token_endpoint"], grant_type="client_credentials", timeout=TIMEOUT, **extra
        )
    except Exception as e:  # Authlib raises OAuthError with the server's error
        raise CheckFailed(f"{method}: token request failed: {e}") from e

    sent = log.requests[-1]
    body = sent.body.decode() if isinstance(sent.body, bytes) else (sent.body or "")
    if method == "client_secret_basic":
        check(
            sent.headers.get("Authorization", "").startswith("Basic "),
            "Authlib did not send HTTP Basic credentials",
        )
        check("client_secret=" not in body, "client_secret_basic also sent the secret in the body")
    else:
        check("Authorization" not in sent.headers, "client_secret_post sent an Authorization header")
        check("client_secret=" in body, "client_secret_post did not send the secret in the body")

    check(
        str(token.get("token_type", "")).lower() == "bearer",
        f"{method}: token_type {token.get('token_type')!r}",
    )
    check(
        isinstance(token.get("expires_in"), int) and token["expires_in"] > 0,
        f"{method}: expires_in {token.get('expires_in')!r}",
    )
    # RFC 6749 §4.4.3: no refresh token for client credentials.
    check("refresh_token" not in token, f"{method}: a refresh token was issued")
    if args.scope:
        check(
            set(str(token.get("scope", args.scope)).split()) == set(args.scope.split()),
            f"{method}: granted scope {token.get('scope')!r}, asked for {args.scope!r}",
        )
    return session, token["access_token"]


def verify(access_token, meta, jwks_by_kid, args):
    header = jwt.get_unverified_header(access_token)
    # RFC 9068 §2.1 and §4: the typ header tells access tokens from other JWTs.
    check(header.get("typ") == "at+jwt", f"typ header is {header.get('typ')!r}, not at+jwt")
    kid = header.get("kid")
    check(kid, "the token has no kid header")
    check(kid in jwks_by_kid, f"kid {kid} is not in the JWKS")
    if args.expect_kid:
        check(kid == args.expect_kid, f"signed with kid {kid}, expected {args.expect_kid}")

    jwk_client = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False, timeout=TIMEOUT)
    signing_key = jwk_client.get_signing_key_from_jwt(access_token)
    # The accepted algorithm comes from the key, never from the token header.
    alg = jwks_by_kid[kid]["alg"]
    check(header.get("alg") == alg, f"header alg {header.get('alg')!r} != JWK alg {alg!r}")
    if args.expect_alg:
        check(alg == args.expect_alg, f"signed with {alg}, expected {args.expect_alg}")

    audience = args.audience or args.issuer
    try:
        claims = jwt.decode(
            access_token,
            signing_key.key,
            algorithms=[alg],
            audience=audience,
            issuer=args.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
    except jwt.PyJWTError as e:
        raise CheckFailed(f"PyJWT rejected the token: {type(e).__name__}: {e}") from e

    missing = [c for c in REQUIRED_CLAIMS if c not in claims]
    check(not missing, f"RFC 9068 claims missing: {missing}")
    check(claims["client_id"] == args.client_id, f"client_id claim is {claims['client_id']!r}")
    # An app token's subject is the client itself (RFC 9068 §2.2).
    check(claims["sub"] == args.client_id, f"sub claim is {claims['sub']!r}")
    check(claims["exp"] > claims["iat"], "exp is not after iat")
    if args.scope:
        check(
            set(claims.get("scope", "").split()) == set(args.scope.split()),
            f"scope claim {claims.get('scope')!r}, asked for {args.scope!r}",
        )

    # The same library must refuse a forged signature and a foreign audience.
    head, payload, sig = access_token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    forged = ".".join([head, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])
    try:
        jwt.decode(forged, signing_key.key, algorithms=[alg], audience=audience, issuer=args.issuer)
        raise CheckFailed("a token with an altered signature verified")
    except jwt.InvalidSignatureError:
        pass
    try:
        jwt.decode(
            access_token,
            signing_key.key,
            algorithms=[alg],
            audience="https://someone-else.example",
            issuer=args.issuer,
        )
        raise CheckFailed("a token verified for an audience it was not issued for")
    except jwt.InvalidAudienceError:
        pass
    return alg, kid, claims


def introspect(meta, args, access_token):
    r = requests.post(
        meta["introspection_endpoint"],
        data={"token": access_token, "token_type_hint": "access_token"},
        auth=(args.client_id, args.client_secret),
        timeout=TIMEOUT,
    )
    check(r.status_code == 200, f"introspection: HTTP {r.status_code}: {r.text[:300]}")
    check(
        r.headers.get("Content-Type", "").startswith("application/json"),
        f"introspection Content-Type {r.headers.get('Content-Type')!r}",
    )
    body = r.json()
    check(isinstance(body.get("active"), bool), f"introspection without a boolean active: {body}")
    return body


def revoke_with_authlib(session, meta, access_token):
    r = session.revoke_token(
        meta["revocation_endpoint"],
        token=access_token,
        token_type_hint="access_token",
        timeout=TIMEOUT,
    )
    check(r.status_code == 200, f"revocation (Authlib): HTTP {r.status_code}: {r.text[:300]}")


def revoke_with_post_credentials(meta, args, access_token):
    r = requests.post(
        meta["revocation_endpoint"],
        data={
            "token": access_token,
            "client_id": args.client_id,
            "client_secret": args.client_secret,
        },
        timeout=TIMEOUT,
    )
    check(r.status_code == 200, f"revocation (client_secret_post): HTTP {r.status_code}: {r.text[:300]}")


def run(args):
    meta = discover(args.issuer)
    jwks_by_kid = check_jwks(meta["jwks_uri"])
    summary = {
        "issuer": args.issuer,
        "jwks_uri": meta["jwks_uri"],
        "token_endpoint": meta["token_endpoint"],
        "jwks_kids": sorted(jwks_by_kid),
        "tokens": [],
    }
    issued = []
    for method in ("client_secret_basic", "client_secret_post"):
        session, access_token = fetch_token(meta, args, method)
        alg, kid, claims = verify(access_token, meta, jwks_by_kid, args)
        body = introspect(meta, args, access_token)
        check(body["active"] is True, f"{method}: a fresh token is not active: {body}")
        for claim in ("client_id", "sub", "exp", "iat", "jti", "iss"):
            check(
                body.get(claim) == claims[claim],
                f"{method}: introspection {claim} {body.get(claim)!r} != JWT {claims[claim]!r}",
            )
        issued.append((method, session, access_token))
        summary["tokens"].append(
            {
                "auth_method": method,
                "alg": alg,
                "kid": kid,
                "claims": sorted(claims),
                "scope": claims.get("scope"),
                "aud": claims["aud"],
                "active": True,
            }
        )

    # One token through Authlib's RFC 7009 support, the other by hand.
    (_, basic_session, basic_token), (_, _, post_token) = issued
    revoke_with_authlib(basic_session, meta, basic_token)
    revoke_with_post_credentials(meta, args, post_token)
    for (method, _, access_token), entry in zip(issued, summary["tokens"]):
        body = introspect(meta, args, access_token)
        check(body == {"active": False}, f"{method}: revoked token introspects as {body}")
        entry["active_after_revocation"] = False

    # A token must be distinct per request (fresh jti).
    check(len({t for _, _, t in issued}) == len(issued), "two requests returned the same token")
    summary["ok"] = True
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
    except jwt.PyJWTError as e:
        print(f"FAILED: PyJWT: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
