//! The command line as a newcomer meets it: IDs that look like options, the
//! registration rules, `client update`, commands run from the wrong directory,
//! and databases or key files that are missing.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{BIN, TempDir, TestServer, example, free_port};
use crate::web::create_user;

/// `tessera ARGS` in `dir` with none of the caller's Tessera settings.
fn tessera_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("TESSERA_CONFIG")
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_LISTEN")
        .env_remove("TESSERA_KEY_ENCRYPTION_KEY")
        .env_remove("TESSERA_KEY_ENCRYPTION_KEY_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run tessera")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A CLI call that must fail; returns its stderr.
fn refused(server: &TestServer, args: &[&str]) -> String {
    let out = server.cli_output(args);
    assert!(
        !out.status.success(),
        "tessera {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(&out)
}

#[tokio::test]
async fn ids_that_start_with_a_dash_work_in_every_command() {
    let server = TestServer::start().await;
    create_user(&server, "carol", None, None);
    let id = "-dash-service";
    let created = server.cli(&[
        "client",
        "create",
        "--name",
        "dash",
        "--id",
        id,
        "--grant",
        "client_credentials",
        "--scope",
        "a b",
        "--json",
    ]);
    assert_eq!(created["client_id"], id);
    let secret = created["client_secret"].as_str().unwrap().to_owned();

    assert_eq!(
        server.cli(&["client", "show", id, "--json"])["client_id"],
        id
    );
    let updated = server.cli(&["client", "update", id, "--remove-scope", "b", "--json"]);
    crate::common::catalog_settles().await;
    assert_eq!(updated["scope"], "a");
    let rotated = server.cli(&["client", "rotate-secret", id, "--json"]);
    crate::common::catalog_settles().await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);

    let (status, body) = server
        .token_response(id, &new_secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let inspected = server.cli(&["token", "inspect", token, "--json"]);
    assert_eq!(inspected["claims"]["client_id"], id, "{inspected}");

    assert_eq!(
        server.cli(&[
            "consent", "list", "--user", "carol", "--client", id, "--json"
        ]),
        json!([])
    );
    let withdrawn = server.cli(&[
        "consent", "revoke", "--user", "carol", "--client", id, "--json",
    ]);
    assert_eq!(withdrawn["withdrawn"], 0, "{withdrawn}");
    assert_eq!(
        server.cli(&["client", "delete", id, "--json"]),
        json!({"client_id": id, "deleted": true})
    );
    crate::common::catalog_settles().await;
    assert!(refused(&server, &["client", "show", id]).contains("no client"));

    // The device example takes such an ID too: it gets as far as showing the code.
    let tv = "-dash-tv";
    server.cli(&[
        "client",
        "create",
        "--name",
        "tv",
        "--id",
        tv,
        "--public",
        "--grant",
        "device_code",
        "--scope",
        "openid",
        "--json",
    ]);
    let mut child = Command::new(example("device_login"))
        .args([
            "--issuer",
            &server.issuer,
            "--client-id",
            tv,
            "--scope",
            "openid",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start device_login");
    let stderr_pipe = child.stderr.take().unwrap();
    let first_line = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stderr_pipe)
                .read_line(&mut line)
                .map(|_| line)
        }),
    )
    .await
    .expect("device_login printed nothing")
    .unwrap()
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first_line.starts_with("To sign in, open") && first_line.contains("enter the code"),
        "{first_line}"
    );
}

#[tokio::test]
async fn client_create_applies_the_registration_rules() {
    let server = TestServer::start().await;
    let code = ["--grant", "authorization_code", "--scope", "openid"];
    for (uri, why) in [
        ("javascript:alert(1)", "javascript"),
        ("data:text/html,hi", "data"),
        ("file:///etc/passwd", "file"),
        ("https://*.example.com/cb", "wildcard"),
        ("https://app.example.com/*", "wildcard"),
        ("http://app.example.com/cb", "https"),
        ("https://app.example.com/cb#x", "fragment"),
        ("https://app.example.com/a b", "whitespace"),
        ("myapp://cb", "reverse domain"),
        ("/relative", "absolute"),
    ] {
        let mut args = vec!["client", "create", "--name", "bad", "--redirect-uri", uri];
        args.extend_from_slice(&code);
        let message = refused(&server, &args);
        assert!(message.contains(why), "{uri}: {message}");
    }
    for args in [
        vec!["--grant", "authorization_code"],
        vec!["--grant", "implicit", "--scope", "openid"],
    ] {
        let mut all = vec!["client", "create", "--name", "bad"];
        all.extend_from_slice(&args);
        assert!(refused(&server, &all).contains("needs at least one redirect URI"));
    }
    let message = refused(
        &server,
        &[
            "client",
            "create",
            "--name",
            "bad",
            "--grant",
            "client_credentials",
            "--post-logout-redirect-uri",
            "javascript:alert(1)",
        ],
    );
    assert!(message.contains("post-logout redirect URI"), "{message}");
    assert_eq!(
        server.cli(&["client", "list", "--json"]),
        json!([]),
        "nothing was written"
    );

    // What the rules allow.
    for uri in [
        "https://app.example.com/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
        "http://localhost:3000/cb",
        "com.example.app:/oauth2redirect",
    ] {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "ok",
            "--redirect-uri",
            uri,
            "--json",
        ];
        args.extend_from_slice(&code);
        server.cli(&args);
    }
}

#[tokio::test]
async fn client_update_changes_each_setting_under_the_same_rules() {
    let server = TestServer::start().await;
    server.cli(&[
        "resource",
        "create",
        "--audience",
        "https://orders.example",
        "--json",
    ]);
    let (id, secret) = server.client(&["--grant", "client_credentials", "--scope", "orders.read"]);
    let show = || server.cli(&["client", "show", &id, "--json"]);
    let before = show();

    let after = server.cli(&[
        "client",
        "update",
        &id,
        "--name",
        "billing",
        "--add-grant",
        "authorization_code",
        "--add-grant",
        "refresh_token",
        "--add-redirect-uri",
        "https://billing.example/cb",
        "--add-redirect-uri",
        "http://127.0.0.1/cb",
        "--add-post-logout-redirect-uri",
        "https://billing.example/bye",
        "--add-scope",
        "orders.write openid",
        "--add-audience",
        "https://orders.example",
        "--token-format",
        "reference",
        "--access-token-ttl",
        "120",
        "--auth-method",
        "client_secret_post",
        "--introspection",
        "own",
        "--id-token-alg",
        "RS256",
        "--json",
    ]);
    crate::common::catalog_settles().await;
    assert_eq!(after, show(), "update prints what is stored");
    assert_eq!(after["name"], "billing");
    assert_eq!(
        after["grants"],
        json!(["client_credentials", "authorization_code", "refresh_token"])
    );
    assert_eq!(
        after["redirect_uris"],
        json!(["https://billing.example/cb", "http://127.0.0.1/cb"])
    );
    assert_eq!(
        after["post_logout_redirect_uris"],
        json!(["https://billing.example/bye"])
    );
    assert_eq!(after["scope"], "openid orders.read orders.write");
    assert_eq!(after["audiences"], json!(["https://orders.example"]));
    assert_eq!(after["token_format"], "reference");
    assert_eq!(after["access_token_ttl"], 120);
    assert_eq!(after["auth_method"], "client_secret_post");
    assert_eq!(after["introspection"], "own");
    assert_eq!(after["id_token_alg"], "RS256");
    assert_eq!(after["created_at"], before["created_at"]);

    // The running server follows at once: the audience, the lifetime and the
    // auth method are in force.
    let (status, body) = server
        .post_form(
            "/oauth2/token",
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "only client_secret_post now: {body}"
    );
    let r = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", "orders.read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 120, "{body}");
    assert!(
        !body["access_token"].as_str().unwrap().contains('.'),
        "a reference token"
    );

    // And back; options return to the server's defaults.
    let reverted = server.cli(&[
        "client",
        "update",
        &id,
        "--remove-grant",
        "authorization_code",
        "--remove-grant",
        "refresh_token",
        "--remove-redirect-uri",
        "https://billing.example/cb",
        "--remove-redirect-uri",
        "http://127.0.0.1/cb",
        "--remove-post-logout-redirect-uri",
        "https://billing.example/bye",
        "--scope",
        "orders.read",
        "--remove-audience",
        "https://orders.example",
        "--token-format",
        "default",
        "--access-token-ttl",
        "default",
        "--auth-method",
        "any",
        "--introspection",
        before["introspection"].as_str().unwrap(),
        "--id-token-alg",
        "default",
        "--name",
        before["name"].as_str().unwrap(),
        "--json",
    ]);
    crate::common::catalog_settles().await;
    assert_eq!(reverted, before);

    // Refused changes write nothing.
    for (args, why) in [
        (
            vec!["--remove-redirect-uri", "https://nowhere.example/cb"],
            "no redirect URI",
        ),
        (vec!["--remove-grant", "password"], "no grant"),
        (
            vec!["--add-grant", "implicit"],
            "needs at least one redirect URI",
        ),
        (
            vec!["--add-redirect-uri", "javascript:alert(1)"],
            "javascript",
        ),
        (vec!["--add-audience", "not a uri"], "audience"),
        (vec!["--access-token-ttl", "0"], "positive"),
        (vec!["--access-token-ttl", "soon"], "seconds"),
        (vec!["--auth-method", "none"], "cannot become public"),
        (vec!["--id-token-alg", "HS256"], "asymmetric"),
    ] {
        let mut all = vec!["client", "update", id.as_str()];
        all.extend_from_slice(&args);
        let message = refused(&server, &all);
        assert!(message.contains(why), "{args:?}: {message}");
        assert_eq!(show(), before, "{args:?} changed the client");
    }
    assert!(
        refused(
            &server,
            &["client", "update", "no-such-client", "--name", "x"]
        )
        .contains("no client")
    );

    // A public client stays public.
    let (public, _) = server.client(&["--public", "--grant", "device_code"]);
    let message = refused(
        &server,
        &[
            "client",
            "update",
            &public,
            "--auth-method",
            "client_secret_basic",
        ],
    );
    assert!(message.contains("public client"), "{message}");
    let message = refused(&server, &["client", "update", &public, "--no-pkce"]);
    assert!(message.contains("PKCE"), "{message}");
}

#[test]
fn commands_away_from_the_database_refuse_instead_of_creating_one() {
    let dir = TempDir::new("elsewhere");
    for args in [
        &["client", "list"][..],
        &["client", "show", "x"],
        &["token", "inspect", "eyJ.e30.x"],
        &["keys", "list"],
        &["user", "list"],
        &["resource", "list"],
    ] {
        let out = tessera_in(dir.path(), args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let message = stderr(&out);
        let expected_path = dir.path().join("tessera.db");
        assert!(
            message.contains(&expected_path.display().to_string())
                && message.contains("--config")
                && message.contains("TESSERA_DATABASE_URL"),
            "{args:?}: {message}"
        );
        assert_eq!(
            files_in(dir.path()),
            Vec::<String>::new(),
            "{args:?} wrote something"
        );
    }

    // A file that is not a Tessera database is not made into one.
    std::fs::write(dir.path().join("tessera.db"), b"").unwrap();
    let message = stderr(&tessera_in(dir.path(), &["client", "list"], &[]));
    assert!(message.contains("not a Tessera database"), "{message}");
    std::fs::remove_file(dir.path().join("tessera.db")).unwrap();

    // `migrate` creates it; then the commands work, but without the key file
    // the key commands still refuse, and create no key.
    assert!(tessera_in(dir.path(), &["migrate"], &[]).status.success());
    let out = tessera_in(dir.path(), &["client", "list", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = tessera_in(dir.path(), &["keys", "list"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tessera.db.kek"), "{}", stderr(&out));
    assert!(!dir.path().join("tessera.db.kek").exists());
}

#[test]
fn an_empty_sqlite_path_is_refused_before_anything_is_written() {
    let dir = TempDir::new("empty-url");
    for url in ["sqlite://", "sqlite:"] {
        for args in [&["serve"][..], &["client", "list"]] {
            let out = tessera_in(dir.path(), args, &[("TESSERA_DATABASE_URL", url)]);
            assert!(!out.status.success());
            assert!(
                stderr(&out).contains("names no file"),
                "{url} {args:?}: {}",
                stderr(&out)
            );
        }
    }
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_database_copied_without_its_key_file_leaves_no_stray_key() {
    let mut server = TestServer::start_on_sqlite(&[]).await;
    server.stop();
    let copy = TempDir::new("copied");
    for name in files_in(server.dir.path()) {
        if name.starts_with("tessera.db") && !name.ends_with(".kek") {
            std::fs::copy(server.dir.path().join(&name), copy.path().join(&name)).unwrap();
        }
    }
    let before = files_in(copy.path());
    let port = free_port().to_string();
    let out = tessera_in(
        copy.path(),
        &["serve"],
        &[("TESSERA_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("signing key") && message.contains("tessera.db.kek"),
        "{message}"
    );
    assert!(
        !copy.path().join("tessera.db.kek").exists(),
        "a stray key file was written"
    );
    assert_eq!(
        files_in(copy.path())
            .into_iter()
            .filter(|n| !n.ends_with("-shm") && !n.ends_with("-wal"))
            .collect::<Vec<_>>(),
        before
            .into_iter()
            .filter(|n| !n.ends_with("-shm") && !n.ends_with("-wal"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn database_errors_name_the_place_and_the_cause() {
    let dir = TempDir::new("db-errors");
    let missing_dir = dir.path().join("no-such-dir");
    let url = format!("sqlite://{}/tessera.db", missing_dir.display());
    let out = tessera_in(dir.path(), &["migrate"], &[("TESSERA_DATABASE_URL", &url)]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            "the directory {} does not exist",
            missing_dir.display()
        )),
        "{message}"
    );

    // Nothing listens on this port.
    let port = free_port();
    let url = format!("postgres://tessera@127.0.0.1:{port}/tessera");
    let out = tessera_in(dir.path(), &["migrate"], &[("TESSERA_DATABASE_URL", &url)]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{port}"))
            && message.contains(" s"),
        "{message}"
    );
    assert!(!message.contains("pool timed out"), "{message}");
}

/// `--kind` sets a new client's grants and whether it gets a secret, and the
/// rules then hold it to that kind.
#[tokio::test]
async fn client_create_by_kind_gets_the_kinds_defaults_and_rules() {
    let server = TestServer::start().await;
    let spa = server.cli(&[
        "client",
        "create",
        "--name",
        "Shop front",
        "--kind",
        "spa",
        "--redirect-uri",
        "https://shop.example/cb",
        "--json",
    ]);
    assert!(
        spa.get("client_secret").is_none(),
        "a SPA got a secret: {spa}"
    );
    let shown = server.cli(&[
        "client",
        "show",
        spa["client_id"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(shown["kind"], "spa");
    assert_eq!(shown["type"], "public");
    assert_eq!(
        shown["grants"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(shown["require_pkce"], true);

    let service = server.cli(&[
        "client", "create", "--name", "Billing", "--kind", "service", "--json",
    ]);
    assert!(service["client_secret"].is_string(), "{service}");
    let shown = server.cli(&[
        "client",
        "show",
        service["client_id"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(shown["grants"], serde_json::json!(["client_credentials"]));
    let (status, _) = server
        .token_response(
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str().unwrap(),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200);

    let device = server.cli(&[
        "client", "create", "--name", "TV", "--kind", "device", "--json",
    ]);
    let shown = server.cli(&[
        "client",
        "show",
        device["client_id"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(shown["type"], "public");
    assert_eq!(
        shown["grants"],
        serde_json::json!([
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token"
        ])
    );

    // Private-use schemes are for native apps only.
    server.cli(&[
        "client",
        "create",
        "--name",
        "Desktop",
        "--kind",
        "native",
        "--redirect-uri",
        "com.example.app:/cb",
        "--json",
    ]);
    for (args, why) in [
        (
            vec!["--kind", "web", "--redirect-uri", "com.example.app:/cb"],
            "native apps",
        ),
        (
            vec![
                "--kind",
                "service",
                "--redirect-uri",
                "https://a.example/cb",
            ],
            "no redirect URIs",
        ),
        (
            vec![
                "--kind",
                "web",
                "--public",
                "--redirect-uri",
                "https://a.example/cb",
            ],
            "confidential",
        ),
        (
            vec![
                "--kind",
                "spa",
                "--auth-method",
                "client_secret_basic",
                "--redirect-uri",
                "https://a.example/cb",
            ],
            "public",
        ),
        (vec!["--kind", "phone"], "client kind"),
    ] {
        let mut all = vec!["client", "create", "--name", "bad"];
        all.extend_from_slice(&args);
        let message = refused(&server, &all);
        assert!(message.contains(why), "{args:?}: {message}");
    }
}

/// `client try` prints requests that work as printed: the client-credentials
/// command, run by the shell with the secret in `CLIENT_SECRET`, returns a
/// token; the code flow's URL carries the challenge of the verifier its
/// exchange sends.
#[tokio::test]
async fn client_try_prints_requests_that_run_as_shown() {
    let server = TestServer::start().await;
    let service = server.cli(&[
        "client",
        "create",
        "--name",
        "Billing",
        "--kind",
        "service",
        "--scope",
        "invoices.read invoices.write",
        "--json",
    ]);
    let id = service["client_id"].as_str().unwrap();
    let ready = server.cli(&["client", "try", id, "--json"]);
    let grants = ready.as_array().unwrap();
    assert_eq!(grants.len(), 1, "{ready}");
    assert_eq!(grants[0]["grant"], "client_credentials");
    let command = grants[0]["steps"][0]["run"].as_str().unwrap();
    assert!(!command.contains(service["client_secret"].as_str().unwrap()));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CLIENT_SECRET", service["client_secret"].as_str().unwrap())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(token["access_token"].is_string(), "{token}");
    assert_eq!(token["scope"], "invoices.read invoices.write");

    let spa = server.cli(&[
        "client",
        "create",
        "--name",
        "Front",
        "--kind",
        "spa",
        "--scope",
        "openid profile",
        "--redirect-uri",
        "https://front.example/cb",
        "--json",
    ]);
    let ready = server.cli(&[
        "client",
        "try",
        spa["client_id"].as_str().unwrap(),
        "--json",
    ]);
    let grants: Vec<&str> = ready
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grant"].as_str().unwrap())
        .collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
    let steps = &ready[0]["steps"];
    let url = url::Url::parse(steps[0]["open"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        server.url("/oauth2/authorize")
    );
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], spa["client_id"].as_str().unwrap());
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "openid profile");
    assert!(query.contains_key("nonce"));
    let exchange = steps[1]["run"].as_str().unwrap();
    let verifier = exchange
        .split("code_verifier=")
        .nth(1)
        .unwrap()
        .split(['\'', ' '])
        .next()
        .unwrap();
    assert!(
        tessera_core::pkce::verify(verifier, &query["code_challenge"]),
        "{exchange}"
    );
    // A public client names itself; it has no secret to send.
    assert!(exchange.contains(&format!(
        "-d client_id={}",
        spa["client_id"].as_str().unwrap()
    )));
    assert!(!exchange.contains("CLIENT_SECRET"));
}
