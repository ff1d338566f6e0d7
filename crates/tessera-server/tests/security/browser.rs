//! RFC 9700 §4.4 (mix-up), §4.7 (cross-site request forgery) and §4.16
//! (clickjacking): authorization responses name their issuer, every form
//! needs its own CSRF token and interaction, and no page may be framed.

use reqwest::StatusCode;

use crate::flows::*;
use crate::web::{Browser, PASSWORD, Page, create_user};

#[tokio::test]
async fn login_and_consent_forms_need_their_csrf_token() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let request = Authz::code(&client.0, &Pkce::new());
    let login = browser.authorize(&request).await;
    let csrf = login.input("csrf").unwrap();
    let interaction = login.input("interaction").unwrap();
    let credentials = [
        ("interaction", interaction.as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
    ];

    let without = browser.post("/login", &credentials).await;
    assert_error_page(&without, StatusCode::FORBIDDEN);
    assert!(without.set_cookie("tessera_session").is_none());
    let forged = "A".repeat(csrf.len());
    let mut form = credentials.to_vec();
    form.push(("csrf", forged.as_str()));
    let wrong = browser.post("/login", &form).await;
    assert_error_page(&wrong, StatusCode::FORBIDDEN);
    assert!(wrong.set_cookie("tessera_session").is_none());

    // An interaction altered in the browser is refused before any password check.
    let middle = interaction.len() / 2;
    let flipped = if &interaction[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let altered = format!(
        "{}{flipped}{}",
        &interaction[..middle],
        &interaction[middle + 1..]
    );
    let page = browser
        .post(
            "/login",
            &[
                ("csrf", csrf.as_str()),
                ("interaction", altered.as_str()),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    assert!(page.set_cookie("tessera_session").is_none());

    // The right token from another browser (no matching cookie): login CSRF.
    let mut stranger = Browser::new(&server);
    let mut form = credentials.to_vec();
    form.push(("csrf", csrf.as_str()));
    let cross = stranger.post("/login", &form).await;
    assert_error_page(&cross, StatusCode::FORBIDDEN);
    assert!(cross.set_cookie("tessera_session").is_none());
    assert!(!browser.cookies.contains_key("tessera_session"));

    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    let interaction = consent.input("interaction").unwrap();
    let page = browser
        .post(
            "/consent",
            &[("interaction", &interaction), ("decision", "approve")],
        )
        .await;
    assert_error_page(&page, StatusCode::FORBIDDEN);
    let page = browser
        .post(
            "/consent",
            &[
                ("csrf", &forged),
                ("interaction", &interaction),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_error_page(&page, StatusCode::FORBIDDEN);

    // Nothing was approved.
    let silent = request.set("prompt", "none");
    let page = browser.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "consent_required");
}

#[tokio::test]
async fn a_step_up_login_page_cannot_be_posted_to_consent() {
    let (server, client) = signed_in().await;
    let mut browser = Browser::new(&server);
    tokens_for(&server, &mut browser, &client, SCOPES).await;
    for (name, value) in [("prompt", "login"), ("max_age", "0")] {
        let pkce = Pkce::new();
        let request = Authz::code(&client.0, &pkce).set(name, value);
        let login = browser.authorize(&request).await;
        assert!(login.is_login(), "{name}={value}: {}", login.describe());
        // The login page's fields, posted to the consent form instead.
        let page = browser
            .post(
                "/consent",
                &[
                    ("csrf", login.input("csrf").unwrap().as_str()),
                    ("interaction", login.input("interaction").unwrap().as_str()),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_error_page(&page, StatusCode::BAD_REQUEST);
        // The honest way still works, with a new auth_time.
        let page = browser.login(&login, "alice", PASSWORD).await;
        let code = code_of(&server, &page, &request);
        let (status, body) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn a_consent_page_cannot_be_posted_to_login_nor_used_by_another_session() {
    let (server, client) = signed_in().await;
    create_user(&server, "bob", None, None);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);
    let login = browser.authorize(&request).await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    let fields = |page: &Page| {
        (
            page.input("csrf").unwrap(),
            page.input("interaction").unwrap(),
        )
    };
    let (csrf, interaction) = fields(&consent);
    // The consent page's interaction at the login form: refused before any
    // password is checked.
    let page = browser
        .post(
            "/login",
            &[
                ("csrf", csrf.as_str()),
                ("interaction", interaction.as_str()),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);

    // Bob signs in on the same browser; alice's consent page no longer counts.
    let other = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()).set("prompt", "login"))
        .await;
    let bobs = browser.login(&other, "bob", PASSWORD).await;
    assert!(bobs.is_consent(), "{}", bobs.describe());
    let (csrf, _) = fields(&bobs);
    let page = browser
        .post(
            "/consent",
            &[
                ("csrf", csrf.as_str()),
                ("interaction", interaction.as_str()),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
}

/// RFC 9207 / RFC 9700 §4.4.2: every authorization response names the
/// issuer, successes and errors alike, in the query, the fragment and a
/// form_post page, so a client talking to several servers can tell which one
/// answered; discovery says so.
#[tokio::test]
async fn every_authorization_response_names_its_issuer() {
    let (server, _) = start_with_alice().await;
    let client = create_client(
        &server,
        "Hybrid",
        &[
            "--grant",
            "authorization_code",
            "--grant",
            "implicit",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
        ],
    );
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let mut browser = Browser::new(&server);

    // A code, in the query (code_of checks iss).
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);
    let page = browser.sign_in_and_approve(&request, "alice").await;
    code_of(&server, &page, &request);

    // An error sent back to the client: invalid scope, in the query.
    let bad_scope = Authz::code(&client.0, &pkce).set("scope", "openid launch_missiles");
    let page = browser.authorize(&bad_scope).await;
    assert_error_redirect(&server, &page, &bad_scope, "invalid_scope");

    // Implicit: tokens and errors in the fragment.
    let implicit = Authz::code(&client.0, &pkce)
        .set("response_type", "id_token token")
        .without("code_challenge")
        .without("code_challenge_method");
    let fragment = redirect_fragment(&browser.authorize(&implicit).await, REDIRECT);
    assert!(fragment.contains_key("access_token"), "{fragment:?}");
    assert_eq!(fragment["iss"], server.issuer);
    let fragment = redirect_fragment(
        &browser
            .authorize(&implicit.clone().set("scope", "openid launch_missiles"))
            .await,
        REDIRECT,
    );
    assert_eq!(fragment["error"], "invalid_scope", "{fragment:?}");
    assert_eq!(fragment["iss"], server.issuer);

    // form_post: the self-submitting form carries it too, and so does a
    // refusal (prompt=none for a consent not yet given is one).
    let page = browser
        .authorize(&Authz::code(&client.0, &pkce).set("response_mode", "form_post"))
        .await;
    assert_eq!(page.input("iss").as_deref(), Some(server.issuer.as_str()));
    assert!(page.input("code").is_some(), "{}", page.describe());
    let mut stranger = Browser::new(&server);
    let page = stranger
        .authorize(
            &Authz::code(&client.0, &pkce)
                .set("response_mode", "form_post")
                .set("prompt", "none"),
        )
        .await;
    assert_eq!(page.input("error").as_deref(), Some("login_required"));
    assert_eq!(page.input("iss").as_deref(), Some(server.issuer.as_str()));
}

/// RFC 9700 §4.16: no page a person acts on may be framed, so that another
/// site cannot overlay it and steer clicks: the login, consent, device,
/// logout and portal pages and the error page all forbid framing twice over
/// (`X-Frame-Options` for older browsers, CSP `frame-ancestors` for the rest).
#[tokio::test]
async fn no_page_may_be_framed() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);

    let mut pages = Vec::new();
    let login = browser.authorize(&request).await;
    assert!(login.is_login(), "{}", login.describe());
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    pages.push(("login", login));
    pages.push(("consent", consent));
    pages.push(("device entry", browser.get("/device").await));
    pages.push(("logout confirmation", browser.get("/oauth2/logout").await));
    pages.push((
        "error page",
        browser
            .authorize(&request.clone().set("client_id", "no-such-client"))
            .await,
    ));
    let mut developer = Browser::new(&server);
    let portal_login = developer.get("/portal").await;
    assert!(portal_login.is_login(), "{}", portal_login.describe());
    developer.login(&portal_login, "alice", PASSWORD).await;
    pages.push(("portal sign-in", portal_login));
    pages.push(("portal", developer.get("/portal").await));
    pages.push(("portal form", developer.get("/portal/apps/new").await));

    for (name, page) in pages {
        assert_page_headers(&page);
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{name}");
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{name}: {csp}");
    }
}

/// RFC 9700 §4.7 for the developer portal: each form needs the CSRF token of
/// the page it came from, in the session it was issued to; a forged or
/// borrowed one changes nothing.
#[tokio::test]
async fn portal_forms_need_their_own_csrf_token() {
    let (server, _) = start_with_alice().await;
    create_user(&server, "mallory", None, None);
    let sign_in = |username: &'static str| {
        let server = &server;
        async move {
            let mut browser = Browser::new(server);
            let login = browser.get("/portal").await;
            browser.login(&login, username, PASSWORD).await;
            browser
        }
    };
    let mut alice = sign_in("alice").await;
    let mut mallory = sign_in("mallory").await;
    let form = alice.get("/portal/apps/new").await;
    let csrf = form.input("csrf").expect("csrf field");
    let created = alice
        .post(
            "/portal/apps",
            &[
                ("csrf", &csrf),
                ("name", "Album"),
                ("kind", "spa"),
                ("redirect_uris", "https://album.example/cb"),
            ],
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::SEE_OTHER,
        "{}",
        created.describe()
    );
    let app_path = created.location().unwrap().to_owned();
    let app_page = alice.get(&app_path).await;
    let alices_csrf = app_page.input("csrf").expect("csrf field");
    let malloys_csrf = mallory
        .get("/portal/apps/new")
        .await
        .input("csrf")
        .expect("csrf field");

    for (action, fields) in [
        ("/delete", vec![]),
        ("/rotate", vec![]),
        (
            "",
            vec![
                ("name", "Hijacked"),
                ("redirect_uris", "https://evil.example/cb"),
            ],
        ),
    ] {
        for token in [None, Some("forged"), Some(malloys_csrf.as_str())] {
            let mut form: Vec<(&str, &str)> = fields.clone();
            if let Some(token) = token {
                form.push(("csrf", token));
            }
            let page = alice.post(&format!("{app_path}{action}"), &form).await;
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{action} with {token:?}: {}",
                page.describe()
            );
        }
    }
    // Nothing changed: the application is there, named as before.
    let page = alice.get(&app_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    assert!(page.body.contains("Album") && !page.body.contains("Hijacked"));
    // The page's own token still works.
    let renamed = alice
        .post(
            &app_path,
            &[
                ("csrf", &alices_csrf),
                ("name", "Album 2"),
                ("redirect_uris", "https://album.example/cb"),
            ],
        )
        .await;
    assert!(
        renamed.status.is_redirection() || renamed.status == StatusCode::OK,
        "{}",
        renamed.describe()
    );
}

/// RFC 9700 §4.12: the answer to a form that carried a password or a
/// decision redirects with 303 (or 302), never 307 or 308, which would make
/// the browser send the form, password included, on to the client. And §4.2:
/// no page gives its address to the next site in `Referer`.
#[tokio::test]
async fn forms_are_answered_without_resending_them_or_leaking_the_address() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let login = browser.authorize(&Authz::code(&client.0, &pkce)).await;
    assert_eq!(login.header("referrer-policy"), Some("no-referrer"));
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert_eq!(consent.header("referrer-policy"), Some("no-referrer"));
    let answered = browser.decide(&consent, "approve").await;
    // Consent given, a sign-in in another browser answers with the redirect
    // to the client itself.
    let mut fresh = Browser::new(&server);
    let login = fresh.authorize(&Authz::code(&client.0, &pkce)).await;
    let signed_in = fresh.login(&login, "alice", PASSWORD).await;
    let mut portal = Browser::new(&server);
    let login = portal.get("/portal").await;
    let portal_signed_in = portal.login(&login, "alice", PASSWORD).await;
    for (what, page) in [
        ("consent", answered),
        ("login straight to the client", signed_in),
        ("portal login", portal_signed_in),
    ] {
        assert!(
            page.status == StatusCode::SEE_OTHER || page.status == StatusCode::FOUND,
            "{what}: {}",
            page.describe()
        );
    }
}
