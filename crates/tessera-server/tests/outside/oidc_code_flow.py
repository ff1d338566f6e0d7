#!/usr/bin/env python3
"""Runs the OpenID Connect code flow against a running Tessera server as a
third-party relying party would.

Authlib builds the authorization request (PKCE S256, state, nonce), a
requests.Session plays the browser through the login and consent pages,
Authlib exchanges the code (client_secret_basic), and the ID token is
validated twice, by Authlib's OIDC claims classes over joserfc and by PyJWT,
both with keys from the published JWKS: signature, iss, aud, exp, iat, nonce,
azp and at_hash (also computed here). /userinfo must agree with the ID token.

Usage:
    oidc_code_flow.py --issuer URL --client-id ID --redirect-uri URI
        --username NAME [--expect-alg ALG] [--expect-name NAME]
        [--expect-email EMAIL] [--scope "openid ..."]

CLIENT_SECRET and PASSWORD come from the environment (TESSERA_CLIENT_SECRET,
TESSERA_PASSWORD); ISSUER, CLIENT_ID, REDIRECT_URI and USERNAME may too
(TESSERA_ISSUER, ...). Generated IDs may start with "-": pass them as
--name=value.

Prints a JSON summary on success; on failure prints "FAILED: ..." to stderr
and exits with status 1.
"""

import argparse
import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
import time
import traceback
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

TIMEOUT = 10
# Allowed clock difference between this process and the server.
LEEWAY = 60
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
# OIDC Core §3.1.3.6: at_hash uses the hash of the ID token's alg. Ed25519 has
# no such hash in its name; SHA-512 is what it uses internally and what
# relying parties (Authlib among them) use.
HALF_HASH = {
    "RS256": hashlib.sha256,
    "PS256": hashlib.sha256,
    "ES256": hashlib.sha256,
    "RS384": hashlib.sha384,
    "PS384": hashlib.sha384,
    "ES384": hashlib.sha384,
    "RS512": hashlib.sha512,
    "PS512": hashlib.sha512,
    "ES512": hashlib.sha512,
    "EdDSA": hashlib.sha512,
}


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
    p.add_argument("--redirect-uri", default=env("TESSERA_REDIRECT_URI"))
    p.add_argument("--username", default=env("TESSERA_USERNAME"))
    p.add_argument("--password", default=env("TESSERA_PASSWORD"))
    p.add_argument("--scope", default=env("TESSERA_SCOPE", "openid profile email"))
    p.add_argument("--expect-alg", help="the algorithm the ID token must be signed with")
    p.add_argument("--expect-name", help="the user's expected name claim")
    p.add_argument("--expect-email", help="the user's expected email claim")
    args = p.parse_args()
    for name in ("issuer", "client_id", "client_secret", "redirect_uri", "username", "password"):
        if not getattr(args, name):
            p.error(f"--{name.replace('_', '-')} (or TESSERA_{name.upper()}) is required")
    if "openid" not in args.scope.split():
        p.error(f"--scope {args.scope!r} has no openid")
    return args


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def half_hash(alg, value):
    hash_fn = HALF_HASH.get(alg)
    check(hash_fn is not None, f"no at_hash hash known for alg {alg!r}")
    digest = hash_fn(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def forge_signature(token):
    """The token with one bit of its signature flipped."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return ".".join([head, payload, b64url(bytes(raw))])


def get_json(url):
    r = requests.get(url, timeout=TIMEOUT)
    check(r.status_code == 200, f"GET {url}: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()


def discover(issuer):
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    meta = get_json(url)
    # OIDC Discovery §4.3: the issuer must be identical to the one used.
    check(meta.get("issuer") == issuer, f"discovery issuer {meta.get('issuer')!r} != {issuer!r}")
    # OIDC Discovery §3: REQUIRED (userinfo_endpoint RECOMMENDED, but this
    # flow uses it).
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        check(isinstance(meta.get(key), str) and meta[key], f"discovery has no {key}")
    for key in (
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ):
        check(
            isinstance(meta.get(key), list) and meta[key],
            f"discovery {key} is {meta.get(key)!r}, not a non-empty list",
        )
    check("code" in meta["response_types_supported"], "discovery does not list response type code")
    check(
        set(meta["subject_types_supported"]) <= {"public", "pairwise"},
        f"unknown subject types {meta['subject_types_supported']}",
    )
    # OIDC Discovery §3: RS256 MUST be included.
    check(
        "RS256" in meta["id_token_signing_alg_values_supported"],
        f"RS256 missing from id_token_signing_alg_values_supported "
        f"{meta['id_token_signing_alg_values_supported']}",
    )
    check(
        "S256" in meta.get("code_challenge_methods_supported", []),
        "S256 missing from code_challenge_methods_supported "
        f"{meta.get('code_challenge_methods_supported')!r}",
    )
    return meta


def fetch_jwks(jwks_uri):
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
    check(len({k["kid"] for k in keys}) == len(keys), "two JWKs share a kid")
    return jwks


def hidden_input(page, name):
    """The value of <input type="hidden" name=NAME value=...> in the page."""
    for tag in re.findall(r"<input\b[^>]*>", page, re.IGNORECASE):
        attrs = {
            k.lower(): html.unescape(v)
            for k, v in re.findall(r'([A-Za-z_:-]+)\s*=\s*"([^"]*)"', tag)
        }
        if attrs.get("name") == name and attrs.get("type", "").lower() == "hidden":
            check(attrs.get("value"), f"hidden input {name} is empty")
            return attrs["value"]
    raise CheckFailed(f"the page has no hidden input {name!r}: {page[:500]}")


def form_action(page, default):
    m = re.search(r'<form\b[^>]*\baction\s*=\s*"([^"]*)"', page, re.IGNORECASE)
    return html.unescape(m.group(1)) if m else default


def page_message(page):
    """The error message of one of the server's pages, else the page's start."""
    m = re.search(r'role="alert"[^>]*>([^<]*)<', page)
    return html.unescape(m.group(1)).strip() if m else page[:500]


def expect_page(r, what):
    check(
        r.status_code == 200,
        f"{what}: HTTP {r.status_code} (Location {r.headers.get('Location')!r}): {page_message(r.text)}",
    )
    check(
        r.headers.get("Content-Type", "").startswith("text/html"),
        f"{what}: Content-Type {r.headers.get('Content-Type')!r}",
    )
    return r.text


def play_browser(auth_url, args):
    """Signs in and consents like a browser; returns the redirect's Location,
    its status and whether a consent page was shown."""
    browser = requests.Session()
    browser.headers["User-Agent"] = "oidc-code-flow-check"
    # Redirects are never followed: every hop is checked, and the last one
    # points at a redirect URI nothing listens on.
    r = browser.get(auth_url, allow_redirects=False, timeout=TIMEOUT)
    page = expect_page(r, "authorization request (login page)")
    check('name="password"' in page, f"the authorization endpoint did not show a login form: {page[:500]}")

    login_url = urljoin(r.url, form_action(page, "/login"))
    check(urlsplit(login_url).path.endswith("/login"), f"login form posts to {login_url}")
    r = browser.post(
        login_url,
        data={
            "csrf": hidden_input(page, "csrf"),
            "interaction": hidden_input(page, "interaction"),
            "username": args.username,
            "password": args.password,
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    # A consent the user gave earlier answers the client right away
    # (OIDC Core §3.1.2.4 leaves that to the provider).
    if r.status_code in (302, 303):
        return r.headers.get("Location"), r.status_code, False
    page = expect_page(r, "login (consent page)")
    check('name="password"' not in page, f"login refused: {page_message(page)}")
    check('value="approve"' in page, f"login did not lead to a consent form: {page[:500]}")

    consent_url = urljoin(r.url, form_action(page, "/consent"))
    check(urlsplit(consent_url).path.endswith("/consent"), f"consent form posts to {consent_url}")
    r = browser.post(
        consent_url,
        data={
            "csrf": hidden_input(page, "csrf"),
            "interaction": hidden_input(page, "interaction"),
            "decision": "approve",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    # RFC 9700 §4.11: 303 after a form POST; 302 is what RFC 6749 shows.
    check(
        r.status_code in (302, 303),
        f"consent: HTTP {r.status_code}, expected a redirect: {page_message(r.text)}",
    )
    return r.headers.get("Location"), r.status_code, True


def check_authorization_response(location, args, state, meta):
    got, want = urlsplit(location), urlsplit(args.redirect_uri)
    check(
        (got.scheme, got.netloc, got.path) == (want.scheme, want.netloc, want.path),
        f"redirected to {location}, not to {args.redirect_uri}",
    )
    check(not got.fragment, f"response_mode query expected, got a fragment: {location}")
    params = parse_qs(got.query, keep_blank_values=True)
    check(all(len(v) == 1 for v in params.values()), f"repeated parameters in {location}")
    params = {k: v[0] for k, v in params.items()}
    check("error" not in params, f"authorization error: {params}")
    check(params.get("code"), f"no code in {location}")
    # RFC 6749 §4.1.2: state returned exactly.
    check(params.get("state") == state, f"state {params.get('state')!r} != {state!r}")
    # RFC 9207 §2: iss is the issuer identifier; §3: required once advertised.
    if meta.get("authorization_response_iss_parameter_supported"):
        check("iss" in params, f"iss advertised but missing from {location}")
    check(params.get("iss") == args.issuer, f"iss {params.get('iss')!r} != {args.issuer!r}")
    return params


class RequestLog:
    """Remembers Authlib's exchanges, to prove which client authentication it
    used and to see the response headers it does not return."""

    def __init__(self):
        self.responses = []

    def __call__(self, response, *args, **kwargs):
        self.responses.append(response)


def exchange_code(rp, meta, location, state, code_verifier, args):
    log = RequestLog()
    rp.hooks["response"].append(log)
    try:
        token = rp.fetch_token(
            meta["token_endpoint"],
            authorization_response=location,
            state=state,
            code_verifier=code_verifier,
            timeout=TIMEOUT,
        )
    except Exception as e:  # Authlib raises OAuthError with the server's error
        raise CheckFailed(f"token request failed: {type(e).__name__}: {e}") from e
    finally:
        rp.hooks["response"].remove(log)

    # RFC 6749 §5.1: responses with tokens must not be cached.
    answer = log.responses[-1]
    check(
        "no-store" in answer.headers.get("Cache-Control", ""),
        f"token response Cache-Control {answer.headers.get('Cache-Control')!r}",
    )
    sent = answer.request
    body = sent.body.decode() if isinstance(sent.body, bytes) else (sent.body or "")
    check(
        sent.headers.get("Authorization", "").startswith("Basic "),
        "Authlib did not send HTTP Basic credentials",
    )
    check("client_secret=" not in body, "client_secret_basic also sent the secret in the body")
    check("code_verifier=" in body, "Authlib did not send the code_verifier")

    check(str(token.get("token_type", "")).lower() == "bearer", f"token_type {token.get('token_type')!r}")
    check(token.get("access_token"), "no access_token in the token response")
    # OIDC Core §3.1.3.3: an ID token comes with every openid code exchange.
    check(token.get("id_token"), f"no id_token in the token response: {sorted(token)}")
    check(
        isinstance(token.get("expires_in"), int) and token["expires_in"] > 0,
        f"expires_in {token.get('expires_in')!r}",
    )
    if "scope" in token:
        check(
            set(token["scope"].split()) == set(args.scope.split()),
            f"granted scope {token['scope']!r}, asked for {args.scope!r}",
        )
    return token


def check_header(id_token, jwks, args):
    header = jwt.get_unverified_header(id_token)
    alg, kid = header.get("alg"), header.get("kid")
    check(alg and alg != "none", f"ID token alg {alg!r}")
    # RFC 9068 §4: an ID token must not be mistaken for an access token.
    check(header.get("typ") in (None, "JWT"), f"ID token typ {header.get('typ')!r}")
    check(kid, "the ID token has no kid header")
    jwk = next((k for k in jwks["keys"] if k["kid"] == kid), None)
    check(jwk is not None, f"the ID token's kid {kid} is not in the JWKS")
    check(jwk["alg"] == alg, f"ID token alg {alg} but its JWK says {jwk['alg']}")
    if args.expect_alg:
        check(alg == args.expect_alg, f"ID token signed with {alg}, expected {args.expect_alg}")
    return header, jwk


def validate_with_authlib(id_token, access_token, jwks, jwk, nonce, args):
    """Authlib's code-flow ID token rules (OIDC Core §3.1.3.7), as its own
    OpenIDMixin.parse_id_token applies them, but with every claim required."""
    key_set = KeySet.import_key_set(jwks)
    registry = JWSRegistry(algorithms=[jwk["alg"]], strict_check_header=False)
    try:
        decoded = jose_jwt.decode(id_token, key=key_set, registry=registry)
    except JoseError as e:
        raise CheckFailed(f"joserfc rejected the ID token: {type(e).__name__}: {e}") from e
    try:
        jose_jwt.decode(forge_signature(id_token), key=key_set, registry=registry)
        raise CheckFailed("joserfc verified an ID token with an altered signature")
    except BadSignatureError:
        pass

    essential = {"essential": True}
    options = {
        "iss": {"essential": True, "value": args.issuer},
        "aud": {"essential": True, "value": args.client_id},
        "sub": essential,
        "exp": essential,
        "iat": essential,
        "auth_time": essential,
        "nonce": {"essential": True, "value": nonce},
        "azp": {"essential": True, "value": args.client_id},
        "at_hash": essential,
    }
    params = {"nonce": nonce, "client_id": args.client_id, "access_token": access_token}
    claims = CodeIDToken(decoded.claims, decoded.header, options, params)
    try:
        claims.validate(leeway=LEEWAY)
    except JoseError as e:
        raise CheckFailed(f"Authlib rejected the ID token: {type(e).__name__}: {e}") from e

    # The same validation must refuse a wrong nonce and a wrong access token.
    for what, bad in (
        ("nonce", dict(params, nonce=nonce + "x")),
        ("at_hash", dict(params, access_token=access_token + "x")),
    ):
        bad_options = dict(options, nonce={"essential": True, "value": bad["nonce"]})
        try:
            CodeIDToken(decoded.claims, decoded.header, bad_options, bad).validate(leeway=LEEWAY)
        except JoseError:
            continue
        raise CheckFailed(f"Authlib accepted the ID token with a wrong {what}")
    return dict(claims)


def validate_with_pyjwt(id_token, access_token, meta, jwk, nonce, args):
    jwk_client = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False, timeout=TIMEOUT)
    signing_key = jwk_client.get_signing_key_from_jwt(id_token)
    # The accepted algorithm comes from the key, never from the token header.
    alg = signing_key.algorithm_name or jwk["alg"]
    check(alg == jwk["alg"], f"PyJWT reads alg {alg} from the JWK, the JWKS says {jwk['alg']}")
    decode = dict(
        key=signing_key.key,
        algorithms=[alg],
        audience=args.client_id,
        issuer=args.issuer,
        leeway=LEEWAY,
    )
    try:
        claims = jwt.decode(
            id_token,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            **decode,
        )
    except jwt.PyJWTError as e:
        raise CheckFailed(f"PyJWT rejected the ID token: {type(e).__name__}: {e}") from e

    # OIDC Core §3.1.3.7 steps the library leaves to the relying party.
    check(claims.get("nonce") == nonce, f"nonce {claims.get('nonce')!r} != {nonce!r}")
    check(claims.get("azp") == args.client_id, f"azp {claims.get('azp')!r} != {args.client_id!r}")
    check(isinstance(claims.get("sub"), str) and claims["sub"], f"sub {claims.get('sub')!r}")
    check(len(claims["sub"]) <= 255, "sub is longer than 255 ASCII characters (OIDC Core §2)")
    now = time.time()
    check(claims["iat"] <= now + LEEWAY, f"iat {claims['iat']} is in the future (now {now:.0f})")
    check(claims["iat"] >= now - 300, f"iat {claims['iat']} is stale (now {now:.0f})")
    check(claims["exp"] > claims["iat"], "exp is not after iat")
    auth_time = claims.get("auth_time")
    check(isinstance(auth_time, int), f"auth_time {auth_time!r}")
    check(auth_time <= claims["iat"], f"auth_time {auth_time} is after iat {claims['iat']}")

    # OIDC Core §3.1.3.8: at_hash from the access token with the alg's hash.
    at_hash = claims.get("at_hash")
    check(at_hash, "the ID token has no at_hash")
    digest = jwt.get_algorithm_by_name(alg).compute_hash_digest(access_token.encode("ascii"))
    by_pyjwt = b64url(digest[: len(digest) // 2])
    by_hand = half_hash(alg, access_token)
    check(by_pyjwt == by_hand, f"PyJWT's half hash {by_pyjwt} != hashlib's {by_hand}")
    check(at_hash == by_hand, f"at_hash {at_hash} != {by_hand} computed from the access token")

    # The same library must refuse a forged signature and a foreign audience.
    try:
        jwt.decode(forge_signature(id_token), **decode)
        raise CheckFailed("an ID token with an altered signature verified")
    except jwt.InvalidSignatureError:
        pass
    try:
        jwt.decode(id_token, **dict(decode, audience="someone-else"))
        raise CheckFailed("an ID token verified for another client")
    except jwt.InvalidAudienceError:
        pass
    return claims


def check_userinfo(rp, meta, id_claims, args):
    # The session holds the token since fetch_token: Authlib sends the bearer.
    r = rp.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
    check(r.status_code == 200, f"userinfo: HTTP {r.status_code}: {r.text[:300]}")
    check(
        r.headers.get("Content-Type", "").startswith("application/json"),
        f"userinfo Content-Type {r.headers.get('Content-Type')!r}",
    )
    info = r.json()
    # OIDC Core §5.3.2: sub must match the ID token's, else the response is unusable.
    check(
        info.get("sub") == id_claims["sub"],
        f"userinfo sub {info.get('sub')!r} != ID token sub {id_claims['sub']!r}",
    )
    scopes = set(args.scope.split())
    if "profile" in scopes:
        check(
            info.get("preferred_username") == args.username,
            f"preferred_username {info.get('preferred_username')!r} != {args.username!r}",
        )
        if args.expect_name:
            check(info.get("name") == args.expect_name, f"name {info.get('name')!r} != {args.expect_name!r}")
    if "email" in scopes and args.expect_email:
        check(info.get("email") == args.expect_email, f"email {info.get('email')!r} != {args.expect_email!r}")
        check(
            isinstance(info.get("email_verified"), bool),
            f"email_verified {info.get('email_verified')!r} is not a boolean",
        )
    # Claims the ID token also carries must say the same thing.
    for claim, value in info.items():
        if claim in id_claims:
            check(id_claims[claim] == value, f"{claim}: ID token {id_claims[claim]!r}, userinfo {value!r}")

    # RFC 6750 §3.1: a bad token gets 401 with a Bearer challenge.
    r = requests.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": "Bearer " + rp.token["access_token"] + "x"},
        timeout=TIMEOUT,
    )
    check(r.status_code == 401, f"userinfo with a wrong token: HTTP {r.status_code}")
    check(
        r.headers.get("WWW-Authenticate", "").startswith("Bearer"),
        f"userinfo with a wrong token: WWW-Authenticate {r.headers.get('WWW-Authenticate')!r}",
    )
    return info


def check_code_replay(meta, location, state, code_verifier, args):
    """RFC 6749 §4.1.2: a code works once."""
    rp = OAuth2Session(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uri=args.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    try:
        rp.fetch_token(
            meta["token_endpoint"],
            authorization_response=location,
            state=state,
            code_verifier=code_verifier,
            timeout=TIMEOUT,
        )
    except Exception as e:
        check(getattr(e, "error", None) == "invalid_grant", f"code replay: {type(e).__name__}: {e}")
        return
    raise CheckFailed("the same authorization code was exchanged twice")


def run(args):
    # OIDC Core Appendix A.3: pins the hand-made at_hash before trusting it.
    check(
        half_hash("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y") == "77QmUPtjPfzWtF2AnpK9RQ",
        "the local at_hash computation disagrees with OIDC Core Appendix A.3",
    )
    meta = discover(args.issuer)
    jwks = fetch_jwks(meta["jwks_uri"])

    rp = OAuth2Session(
        client_id=args.client_id,
        client_secret=args.client_secret,
        scope=args.scope,
        redirect_uri=args.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    state = secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(24)
    code_verifier = generate_token(64)
    auth_url, returned_state = rp.create_authorization_url(
        meta["authorization_endpoint"], state=state, code_verifier=code_verifier, nonce=nonce
    )
    check(returned_state == state, "Authlib changed the state")
    sent = {k: v[0] for k, v in parse_qs(urlsplit(auth_url).query).items()}
    check(sent.get("code_challenge_method") == "S256", f"Authlib sent no S256 challenge: {auth_url}")
    check(sent.get("nonce") == nonce, f"Authlib did not send the nonce: {auth_url}")

    location, redirect_status, consent_shown = play_browser(auth_url, args)
    check(location, f"the HTTP {redirect_status} answer has no Location")
    response = check_authorization_response(location, args, state, meta)

    token = exchange_code(rp, meta, location, state, code_verifier, args)
    id_token, access_token = token["id_token"], token["access_token"]
    header, jwk = check_header(id_token, jwks, args)
    by_authlib = validate_with_authlib(id_token, access_token, jwks, jwk, nonce, args)
    by_pyjwt = validate_with_pyjwt(id_token, access_token, meta, jwk, nonce, args)
    check(by_authlib == by_pyjwt, f"Authlib and PyJWT decoded different claims: {by_authlib} vs {by_pyjwt}")

    info = check_userinfo(rp, meta, by_pyjwt, args)
    check_code_replay(meta, location, state, code_verifier, args)

    return {
        "ok": True,
        "issuer": args.issuer,
        "client_id": args.client_id,
        "authorization": {
            "redirect_status": redirect_status,
            "consent_shown": consent_shown,
            "response_params": sorted(response),
            "iss": response["iss"],
        },
        "token_response": sorted(token),
        "id_token": {
            "alg": header["alg"],
            "kid": header["kid"],
            "typ": header.get("typ"),
            "claims": sorted(by_pyjwt),
            "sub": by_pyjwt["sub"],
            "aud": by_pyjwt["aud"],
            "azp": by_pyjwt["azp"],
            "nonce_matches": True,
            "at_hash_matches": True,
            "validated_by": ["authlib+joserfc", "pyjwt"],
        },
        "userinfo": info,
        "code_replay_refused": True,
    }


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
    except (jwt.PyJWTError, JoseError) as e:
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a malformed answer the checks did not foresee
        traceback.print_exc()
        print(f"FAILED: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
