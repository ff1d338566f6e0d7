//! The developer portal over HTTP, as a browser would drive it (the
//! real-browser walk-through is in `portal_browser`): sign-in, who sees and
//! changes which application, the registration form's checks, the secret
//! shown once, rotation, deletion and the trace.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestServer;
use crate::web::{Browser, PASSWORD, Page, create_user, unescape};

/// Signs `username` in to the portal; returns the browser on the portal's
/// home page.
pub async fn portal_session<'a>(server: &'a TestServer, username: &str) -> Browser<'a> {
    let mut browser = Browser::new(server);
    let login = browser.get("/portal").await;
    assert!(login.is_login(), "{}", login.describe());
    assert!(login.body.contains("the developer portal"));
    let back = browser.login(&login, username, PASSWORD).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.describe());
    assert_eq!(back.location(), Some("/portal"));
    browser
}

/// The text of the element marked `data-testid="{id}"`.
pub fn test_id(page: &Page, id: &str) -> Option<String> {
    let at = page.body.find(&format!("data-testid=\"{id}\""))?;
    let open = at + page.body[at..].find('>')? + 1;
    let close = open + page.body[open..].find('<')?;
    Some(unescape(&page.body[open..close]))
}

/// Submits the registration form; the answer is not followed.
async fn register(browser: &mut Browser<'_>, fields: &[(&str, &str)]) -> Page {
    let form = browser.get("/portal/apps/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.describe());
    let csrf = form.input("csrf").expect("csrf field");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    browser.post("/portal/apps", &all).await
}

/// Registers an application and returns its page (after the redirect).
async fn register_ok(browser: &mut Browser<'_>, fields: &[(&str, &str)]) -> (String, Page) {
    let created = register(browser, fields).await;
    assert_eq!(
        created.status,
        StatusCode::SEE_OTHER,
        "{}",
        created.describe()
    );
    let location = created.location().unwrap().to_owned();
    let page = browser.get(&location).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    let id = test_id(&page, "client-id").expect("client ID on the page");
    assert_eq!(location, format!("/portal/apps/{id}"));
    (id, page)
}

/// Posts one of an application page's forms (`action` below the app's path).
async fn post_app_form(
    browser: &mut Browser<'_>,
    id: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    let page = browser.get(&format!("/portal/apps/{id}")).await;
    let csrf = page.input("csrf").expect("csrf field");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    browser
        .post(&format!("/portal/apps/{id}{action}"), &all)
        .await
}

/// A client-credentials request with Basic authentication: status and body.
pub async fn client_credentials(
    server: &TestServer,
    id: &str,
    secret: &str,
) -> (StatusCode, Value) {
    let response = server
        .http
        .post(server.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn each_person_sees_and_changes_only_their_own_applications() {
    let server = TestServer::start().await;
    create_user(&server, "alice", None, None);
    create_user(&server, "bob", None, None);
    create_user(&server, "carol", None, None);
    server.cli(&["user", "set-admin", "carol", "--json"]);

    let mut alice = portal_session(&server, "alice").await;
    let home = alice.get("/portal").await;
    assert!(
        home.body.contains("No applications yet"),
        "{}",
        home.describe()
    );
    let (id, page) = register_ok(
        &mut alice,
        &[
            ("name", "Alice's SPA"),
            ("kind", "spa"),
            ("redirect_uris", "https://spa.example/callback"),
            ("scope", "openid profile"),
        ],
    )
    .await;
    assert!(page.body.contains("public client"), "{}", page.describe());
    assert!(
        test_id(&page, "client-secret").is_none(),
        "a single-page app has no secret"
    );
    let home = alice.get("/portal").await;
    assert!(home.body.contains(&id), "{}", home.describe());

    let mut bob = portal_session(&server, "bob").await;
    assert!(!bob.get("/portal").await.body.contains(&id));
    let page = bob.get(&format!("/portal/apps/{id}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.describe());
    // Nor can bob change it with a valid form of his own.
    let form = bob.get("/portal/apps/new").await;
    let csrf = form.input("csrf").unwrap();
    for action in ["", "/rotate", "/delete"] {
        let refused = bob
            .post(
                &format!("/portal/apps/{id}{action}"),
                &[
                    ("csrf", csrf.as_str()),
                    ("name", "taken over"),
                    ("confirm", "yes"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{action}");
    }

    let mut carol = portal_session(&server, "carol").await;
    let home = carol.get("/portal").await;
    assert!(
        home.body.contains("All applications"),
        "{}",
        home.describe()
    );
    assert!(home.body.contains(&id));
    let page = carol.get(&format!("/portal/apps/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("owner: alice"), "{}", page.describe());

    let shown = server.cli(&["client", "show", &id, "--json"]);
    assert_eq!(shown["name"], "Alice's SPA", "untouched: {shown}");
}

#[tokio::test]
async fn the_registration_form_checks_each_field_and_says_which() {
    let server = TestServer::start().await;
    create_user(&server, "alice", None, None);
    let mut alice = portal_session(&server, "alice").await;

    for bad in [
        "http://app.example/callback",
        "https://app.example/callback#fragment",
        "javascript:alert(1)",
        "data:text/html,hello",
        "vbscript:msgbox",
        "file:///etc/passwd",
        "https://app.example/call back",
        "https://*.app.example/callback",
        "/relative/callback",
        "myapp:/callback",
    ] {
        let page = register(
            &mut alice,
            &[
                ("name", "Bad"),
                ("kind", "native"),
                ("redirect_uris", bad),
                ("scope", "openid"),
            ],
        )
        .await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            page.describe()
        );
        assert!(
            page.body.contains("id=\"redirect-error\""),
            "{bad}: the message is not next to the field: {}",
            page.describe()
        );
        assert!(
            page.body.contains("value=\"Bad\""),
            "the form keeps what was typed"
        );
    }
    for good in [
        "https://app.example/callback",
        "http://127.0.0.1:8123/callback",
        "http://[::1]/callback",
        "http://localhost:5000/callback",
        "com.example.app:/callback",
    ] {
        register_ok(
            &mut alice,
            &[
                ("name", "Native"),
                ("kind", "native"),
                ("redirect_uris", good),
                ("scope", "openid"),
            ],
        )
        .await;
    }

    // Without the developer role: no service, no APIs.
    let page = register(&mut alice, &[("name", "Batch"), ("kind", "service")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("developer role"), "{}", page.describe());
    let page = register(
        &mut alice,
        &[
            ("name", "Reader"),
            ("kind", "web"),
            ("redirect_uris", "https://app.example/cb"),
            ("audiences", "https://api.example"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("developer role"), "{}", page.describe());
    let page = register(&mut alice, &[("name", ""), ("kind", "spa")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("Give the application a name"));

    // The form's own CSRF token, and nothing else, lets it through.
    let forged = alice
        .post(
            "/portal/apps",
            &[("name", "Forged"), ("kind", "spa"), ("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let listed = server.cli(&["client", "list", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "only the five good registrations: {names:?}"
    );
    assert!(names.iter().all(|n| *n == "Native"));
}

#[tokio::test]
async fn portal_access_for_developers_turns_others_away() {
    let server = TestServer::start_with(&[("TESSERA_PORTAL_ACCESS", "developers")]).await;
    create_user(&server, "alice", None, None);
    let mut alice = portal_session(&server, "alice").await;
    let home = alice.get("/portal").await;
    assert_eq!(home.status, StatusCode::FORBIDDEN, "{}", home.describe());
    assert!(home.body.contains("developer role"));
    let set = server.cli(&["user", "set-developer", "alice", "--json"]);
    assert_eq!(set["developer"], true, "{set}");
    let home = alice.get("/portal").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.describe());
    server.cli(&["user", "set-developer", "alice", "--revoke", "--json"]);
    assert_eq!(alice.get("/portal").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_secret_is_shown_once_rotated_and_ended_with_its_application() {
    let server = TestServer::start().await;
    create_user(&server, "dev", None, None);
    server.cli(&["user", "set-developer", "dev", "--json"]);
    let mut dev = portal_session(&server, "dev").await;
    let (id, page) = register_ok(&mut dev, &[("name", "Billing"), ("kind", "service")]).await;
    let secret = test_id(&page, "client-secret").expect("the secret, once");
    assert_eq!(
        client_credentials(&server, &id, &secret).await.0,
        StatusCode::OK
    );
    let again = dev.get(&format!("/portal/apps/{id}")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(test_id(&again, "client-secret").is_none(), "not on reload");
    assert!(!again.body.contains(&secret));

    let rotated = post_app_form(&mut dev, &id, "/rotate", &[]).await;
    assert_eq!(
        rotated.status,
        StatusCode::SEE_OTHER,
        "{}",
        rotated.describe()
    );
    let page = dev.get(&format!("/portal/apps/{id}")).await;
    let new_secret = test_id(&page, "client-secret").expect("the new secret, once");
    assert_ne!(new_secret, secret);
    let (status, body) = client_credentials(&server, &id, &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        client_credentials(&server, &id, &new_secret).await.0,
        StatusCode::OK
    );

    // Edits follow the registration rules.
    let refused = post_app_form(
        &mut dev,
        &id,
        "",
        &[
            ("name", "Billing"),
            ("redirect_uris", "javascript:alert(1)"),
        ],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.describe()
    );
    let saved = post_app_form(
        &mut dev,
        &id,
        "",
        &[("name", "Billing v2"), ("scope", ""), ("audiences", "")],
    )
    .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.describe());
    assert!(saved.body.contains("Saved."));
    assert_eq!(
        server.cli(&["client", "show", &id, "--json"])["name"],
        "Billing v2"
    );

    let unconfirmed = post_app_form(&mut dev, &id, "/delete", &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    let deleted = post_app_form(&mut dev, &id, "/delete", &[("confirm", "yes")]).await;
    assert_eq!(
        deleted.status,
        StatusCode::SEE_OTHER,
        "{}",
        deleted.describe()
    );
    assert_eq!(deleted.location(), Some("/portal"));
    let (status, body) = client_credentials(&server, &id, &new_secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        dev.get(&format!("/portal/apps/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_trace_shows_each_token_request_with_its_error_and_no_secret() {
    let server = TestServer::start().await;
    create_user(&server, "dev", None, None);
    server.cli(&["user", "set-developer", "dev", "--json"]);
    let mut dev = portal_session(&server, "dev").await;
    let (id, page) = register_ok(&mut dev, &[("name", "Billing"), ("kind", "service")]).await;
    let secret = test_id(&page, "client-secret").unwrap();
    assert!(page.body.contains("Nothing yet"));

    let (status, _) = client_credentials(&server, &id, "not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = client_credentials(&server, &id, &secret).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap().to_owned();
    // An unknown client leaves no trace anywhere.
    client_credentials(&server, "no-such-client", "x").await;

    let page = dev.get(&format!("/portal/apps/{id}")).await;
    let trace_at = page
        .body
        .find("data-testid=\"trace\"")
        .expect("a trace table");
    let trace = &page.body[trace_at..];
    let failed = trace
        .find("invalid_client")
        .expect("the failure, with its error");
    let succeeded = trace
        .find("issued an access token")
        .expect("the success, with what was issued");
    assert!(succeeded < failed, "newest first: {trace}");
    assert!(
        trace.contains("client authentication failed"),
        "the reason: {trace}"
    );
    assert!(trace.contains("client_credentials"));
    // Where each token request came from: the client's own server.
    assert_eq!(trace.matches("from 127.0.0.1").count(), 2, "{trace}");
    assert!(!page.body.contains(&secret), "never the secret");
    assert!(
        !page.body.contains("not-the-secret"),
        "never a wrong one either"
    );
    assert!(!page.body.contains(&token), "never a token");
}

#[tokio::test]
async fn the_token_inspector_verifies_against_the_servers_keys() {
    let server = TestServer::start().await;
    create_user(&server, "dev", None, None);
    server.cli(&["user", "set-developer", "dev", "--json"]);
    let mut dev = portal_session(&server, "dev").await;
    let (id, page) = register_ok(&mut dev, &[("name", "Billing"), ("kind", "service")]).await;
    let secret = test_id(&page, "client-secret").unwrap();
    let (_, body) = client_credentials(&server, &id, &secret).await;
    let token = body["access_token"].as_str().unwrap();

    let form = dev.get("/portal/inspect").await;
    let csrf = form.input("csrf").unwrap();
    let shown = dev
        .post("/portal/inspect", &[("csrf", &csrf), ("token", token)])
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(
        test_id(&shown, "verdict").as_deref(),
        Some("Valid"),
        "{}",
        shown.describe()
    );
    assert!(shown.body.contains(&id), "the claims: {}", shown.describe());

    // A signature of the same length with its first character changed (the
    // last one may carry only padding bits).
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{first}{}", &signature[1..]);
    let shown = dev
        .post("/portal/inspect", &[("csrf", &csrf), ("token", &forged)])
        .await;
    assert_eq!(test_id(&shown, "verdict").as_deref(), Some("Not valid"));
    // A forged token learns nothing of the server's records.
    assert!(shown.body.contains("not looked up"), "{}", shown.describe());
    assert!(!shown.body.contains("registered"), "{}", shown.describe());
}

#[tokio::test]
async fn the_trace_follows_an_authorization_request_step_by_step() {
    let server = TestServer::start().await;
    create_user(&server, "alice", None, None);
    let mut alice = portal_session(&server, "alice").await;
    let (id, _) = register_ok(
        &mut alice,
        &[
            ("name", "Photos"),
            ("kind", "spa"),
            ("redirect_uris", "https://photos.example/cb"),
            ("scope", "openid profile"),
        ],
    )
    .await;
    let authorize = |redirect_uri: &str, challenge: &str| {
        format!(
            "/oauth2/authorize?response_type=code&client_id={id}&scope=openid&state=s1\
             &redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
        )
    };
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    // An unregistered redirect URI: an error page, never a redirect.
    let page = alice
        .get(&authorize("https://evil.example/cb", challenge))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // No PKCE: an error sent back to the application.
    let page = alice
        .get(&format!(
            "/oauth2/authorize?response_type=code&client_id={id}&scope=openid\
             &redirect_uri=https%3A%2F%2Fphotos.example%2Fcb"
        ))
        .await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.describe());
    // A good request from the signed-in person: the consent page.
    let page = alice
        .get(&authorize("https://photos.example/cb", challenge))
        .await;
    assert!(page.is_consent(), "{}", page.describe());

    let page = alice.get(&format!("/portal/apps/{id}")).await;
    let trace_at = page.body.find("data-testid=\"trace\"").expect("a trace");
    let trace = unescape(&page.body[trace_at..]);
    let consent = trace
        .find("asks the person to approve")
        .expect("the consent step");
    let pkce = trace
        .find("pkce required")
        .expect("the PKCE refusal, with its reason");
    let page_error = trace.find("error page").expect("the redirect URI refusal");
    assert!(consent < pkce && pkce < page_error, "newest first: {trace}");
    assert!(trace.contains("invalid_request"), "{trace}");
    assert!(trace.contains("browser → /oauth2/authorize"), "{trace}");
}

#[tokio::test]
async fn concurrent_rotations_leave_exactly_one_working_secret() {
    let server = TestServer::start().await;
    create_user(&server, "dev", None, None);
    server.cli(&["user", "set-developer", "dev", "--json"]);
    let mut dev = portal_session(&server, "dev").await;
    let (id, _) = register_ok(&mut dev, &[("name", "Billing"), ("kind", "service")]).await;
    let page = dev.get(&format!("/portal/apps/{id}")).await;
    let csrf = page.input("csrf").unwrap();

    // Four tabs of one browser rotate at once.
    let path = format!("/portal/apps/{id}/rotate");
    let rotate = || {
        let mut tab = Browser {
            server: &server,
            cookies: dev.cookies.clone(),
            forwarded_for: None,
        };
        let (path, csrf, id) = (path.clone(), csrf.clone(), id.clone());
        async move {
            let rotated = tab.post(&path, &[("csrf", csrf.as_str())]).await;
            assert_eq!(
                rotated.status,
                StatusCode::SEE_OTHER,
                "{}",
                rotated.describe()
            );
            let page = tab.get(&format!("/portal/apps/{id}")).await;
            // None when another tab rotated again before this page loaded:
            // a secret that no longer works is not shown.
            test_id(&page, "client-secret")
        }
    };
    let (a, b, c, d) = tokio::join!(rotate(), rotate(), rotate(), rotate());
    let shown: Vec<String> = [a, b, c, d].into_iter().flatten().collect();
    assert!(
        !shown.is_empty(),
        "the last rotation's tab shows its secret"
    );
    let mut working = 0;
    for secret in &shown {
        if client_credentials(&server, &id, secret).await.0 == StatusCode::OK {
            working += 1;
        }
    }
    assert_eq!(
        working, 1,
        "exactly the last rotation's secret works: {shown:?}"
    );
}

#[tokio::test]
async fn a_secret_is_shown_only_on_its_own_applications_page() {
    let server = TestServer::start().await;
    create_user(&server, "dev", None, None);
    server.cli(&["user", "set-developer", "dev", "--json"]);
    let mut dev = portal_session(&server, "dev").await;
    let (other, _) = register_ok(&mut dev, &[("name", "Other"), ("kind", "service")]).await;
    // The next registration's secret is carried to its page; opening another
    // application's page first shows nothing and uses the carrier up.
    let created = register(&mut dev, &[("name", "Billing"), ("kind", "service")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let location = created.location().unwrap().to_owned();
    let elsewhere = dev.get(&format!("/portal/apps/{other}")).await;
    assert!(test_id(&elsewhere, "client-secret").is_none());
    let own = dev.get(&location).await;
    assert!(
        test_id(&own, "client-secret").is_none(),
        "shown nowhere once the carrier is gone: rotate for a new secret"
    );
    // A secret carried for one login session is not shown to the next one
    // in the same browser, even an admin's.
    create_user(&server, "carol", None, None);
    server.cli(&["user", "set-admin", "carol", "--json"]);
    let rotated = post_app_form(&mut dev, &other, "/rotate", &[]).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER);
    let logout = dev.get("/oauth2/logout").await;
    let csrf = logout.input("csrf").expect("a sign-out form");
    dev.post("/oauth2/logout", &[("csrf", csrf.as_str())]).await;
    let login = dev.get("/portal").await;
    let back = dev.login(&login, "carol", PASSWORD).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.describe());
    let page = dev.get(&format!("/portal/apps/{other}")).await;
    assert_eq!(page.status, StatusCode::OK, "the admin sees it");
    assert!(
        test_id(&page, "client-secret").is_none(),
        "but not dev's secret"
    );
    // A public application has no secret to rotate.
    let (spa, _) = register_ok(
        &mut dev,
        &[
            ("name", "SPA"),
            ("kind", "spa"),
            ("redirect_uris", "https://spa.example/cb"),
        ],
    )
    .await;
    let refused = post_app_form(&mut dev, &spa, "/rotate", &[]).await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_FOUND,
        "{}",
        refused.describe()
    );
    // Deleted once; the second deletion finds nothing.
    let deleted = post_app_form(&mut dev, &other, "/delete", &[("confirm", "yes")]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let form = dev.get("/portal/apps/new").await;
    let csrf = form.input("csrf").unwrap();
    let again = dev
        .post(
            &format!("/portal/apps/{other}/delete"),
            &[("csrf", csrf.as_str()), ("confirm", "yes")],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}
