//! `tessera user …` and `tessera consent …` against a running server's database.

use std::io::{Read as _, Write as _};
use std::process::{Child, ChildStdin, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_core::scope::Scope;
use tessera_core::store::{Consent, RefreshState, RefreshToken, Store};
use tessera_core::{Clock, SystemClock};

use crate::common::TestServer;

/// Runs `tessera ARGS` with `stdin` piped in.
fn run_with_stdin(server: &TestServer, args: &[&str], stdin: &str) -> Output {
    let mut child = server
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    // A command that fails before reading closes the pipe: not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// A command that must succeed and print JSON.
fn ok_json(server: &TestServer, args: &[&str], stdin: &str) -> Value {
    let out = run_with_stdin(server, args, stdin);
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tessera {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A command that must fail with status 1; returns its stderr.
fn fails(server: &TestServer, args: &[&str], stdin: &str) -> String {
    let out = run_with_stdin(server, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "tessera {args:?} should fail: stdout {} stderr {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

async fn store(server: &TestServer) -> std::sync::Arc<dyn Store> {
    tessera_store::connect(&server.database_url).await.unwrap()
}

#[tokio::test]
async fn users_are_created_listed_changed_and_deleted() {
    let server = TestServer::start().await;
    let create = [
        "user",
        "create",
        "--username",
        "Alice",
        "--email",
        "alice@example.com",
        "--name",
        "Alice Liddell",
        "--password-stdin",
        "--json",
    ];
    let created = ok_json(&server, &create, "correct horse battery\n");
    let sub = created["sub"].as_str().unwrap().to_owned();
    assert!(sub.len() >= 22, "a 128-bit random sub: {sub}");
    assert_eq!(created["username"], "Alice");

    let db = store(&server).await;
    let stored = db.user(&sub).await.unwrap().unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$"),
        "{}",
        stored.password_hash
    );
    assert!(tessera_core::password::verify(
        "correct horse battery",
        &stored.password_hash
    ));

    // Taken usernames and emails, whatever their case.
    let mut args = create;
    args[3] = "aLICE";
    args[5] = "other@example.com";
    let err = fails(&server, &args, "correct horse battery\n");
    assert!(err.contains("already taken"), "{err}");
    args[3] = "bob";
    args[5] = "ALICE@example.COM";
    let err = fails(&server, &args, "correct horse battery\n");
    assert!(err.contains("already taken"), "{err}");
    // A username that is another user's email would make sign-in ambiguous.
    let err = fails(
        &server,
        &[
            "user",
            "create",
            "--username",
            "alice@example.com",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(err.contains("already taken"), "{err}");

    // Bad input is refused before anything is stored.
    let bob = ["user", "create", "--username", "bob", "--password-stdin"];
    let err = fails(&server, &bob, "short\n");
    assert!(err.contains("at least 8"), "{err}");
    let err = fails(&server, &bob, "\n");
    assert!(err.contains("no password"), "{err}");
    let err = fails(&server, &bob, "");
    assert!(err.contains("no password"), "{err}");
    let err = fails(
        &server,
        &["user", "create", "--username", "bob"],
        "correct horse battery\n",
    );
    assert!(err.contains("--password-stdin"), "{err}");
    let err = fails(
        &server,
        &["user", "create", "--username", "b ob", "--password-stdin"],
        "correct horse battery\n",
    );
    assert!(err.contains("username"), "{err}");
    let err = fails(
        &server,
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--email",
            "bob.example.com",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(err.contains("email"), "{err}");

    // The list shows the one user, never a hash.
    let list = ok_json(&server, &["user", "list", "--json"], "");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let mut listed = list[0].clone();
    assert!(listed["created_at"].as_str().unwrap().ends_with('Z'));
    listed.as_object_mut().unwrap().remove("created_at");
    assert_eq!(
        listed,
        json!({
            "sub": sub,
            "username": "Alice",
            "email": "alice@example.com",
            "name": "Alice Liddell",
            "developer": false,
            "admin": false,
        })
    );
    assert!(!list.to_string().contains("$argon2"));
    let text = server.cli_output(&["user", "list"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("Alice") && !text.contains("$argon2"),
        "{text}"
    );

    // A new password, by username in any case; a weak one changes nothing.
    let err = fails(
        &server,
        &["user", "set-password", "alice", "--password-stdin"],
        "short\n",
    );
    assert!(err.contains("at least 8"), "{err}");
    let changed = ok_json(
        &server,
        &[
            "user",
            "set-password",
            "alice",
            "--password-stdin",
            "--json",
        ],
        "a new pass phrase\r\n",
    );
    assert_eq!(changed["sub"], sub.as_str());
    let stored = db.user(&sub).await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(tessera_core::password::verify(
        "a new pass phrase",
        &stored.password_hash
    ));
    assert!(!tessera_core::password::verify(
        "correct horse battery",
        &stored.password_hash
    ));
    fails(
        &server,
        &["user", "set-password", "nobody", "--password-stdin"],
        "a new pass phrase\n",
    );

    // Deleted by email; then gone.
    let deleted = ok_json(
        &server,
        &["user", "delete", "Alice@Example.com", "--json"],
        "",
    );
    assert_eq!(
        deleted,
        json!({"sub": sub, "username": "Alice", "deleted": true})
    );
    assert_eq!(ok_json(&server, &["user", "list", "--json"], ""), json!([]));
    let err = fails(&server, &["user", "delete", "alice", "--json"], "");
    assert!(err.contains("no user"), "{err}");
    assert!(db.user(&sub).await.unwrap().is_none());
}

#[tokio::test]
async fn consent_is_listed_and_withdrawn_with_its_refresh_tokens() {
    let server = TestServer::start().await;
    let sub = ok_json(
        &server,
        &[
            "user",
            "create",
            "--username",
            "carol",
            "--password-stdin",
            "--json",
        ],
        "correct horse battery\n",
    )["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let (client_id, _) = server.client(&[]);

    assert_eq!(
        server.cli(&["consent", "list", "--user", "carol", "--json"]),
        json!([])
    );
    let revoked = server.cli(&["consent", "revoke", "--user", "carol", "--json"]);
    assert_eq!(revoked["withdrawn"], 0, "{revoked}");
    assert_eq!(revoked["client_id"], Value::Null);
    let err = fails(&server, &["consent", "list", "--user", "nobody"], "");
    assert!(err.contains("no user"), "{err}");

    // What the authorization endpoint and the code exchange would have stored.
    let db = store(&server).await;
    let now = SystemClock.now();
    let scope = Scope::parse("openid offline_access").unwrap();
    db.save_consent(&Consent {
        user_id: sub.clone(),
        client_id: client_id.clone(),
        scopes: scope.clone(),
        granted_at: now,
    })
    .await
    .unwrap();
    db.insert_refresh_token(&RefreshToken {
        jti: "rt-1".into(),
        family_id: "family-1".into(),
        client_id: client_id.clone(),
        user_id: sub.clone(),
        scope: scope.clone(),
        audiences: vec![],
        auth_time: now,
        sid: None,
        offline: true,
        issued_at: now,
        expires_at: now + 3600,
        family_expires_at: now + 86_400,
        access_jti: None,
        access_expires_at: None,
        rotated_at: None,
        revoked: false,
        successor_jti: None,
        token_digest: None,
    })
    .await
    .unwrap();

    let list = server.cli(&["consent", "list", "--user", "CAROL", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["client_id"], client_id.as_str());
    assert_eq!(list[0]["scope"], "offline_access openid");
    assert!(list[0]["granted_at"].as_str().unwrap().ends_with('Z'));
    let filtered = server.cli(&[
        "consent", "list", "--user", "carol", "--client", &client_id, "--json",
    ]);
    assert_eq!(filtered, list);
    let other = server.cli(&[
        "consent", "list", "--user", "carol", "--client", "other", "--json",
    ]);
    assert_eq!(other, json!([]));

    // Another client's withdrawal leaves this one alone.
    let revoked = server.cli(&[
        "consent", "revoke", "--user", "carol", "--client", "other", "--json",
    ]);
    assert_eq!(revoked["withdrawn"], 0);
    assert_eq!(
        server.cli(&["consent", "list", "--user", "carol", "--json"]),
        list
    );

    let revoked = server.cli(&[
        "consent", "revoke", "--user", "carol", "--client", &client_id, "--json",
    ]);
    assert_eq!(
        revoked,
        json!({"sub": sub, "username": "carol", "client_id": client_id, "withdrawn": 1})
    );
    assert_eq!(
        server.cli(&["consent", "list", "--user", "carol", "--json"]),
        json!([])
    );
    assert!(db.consent(&sub, &client_id).await.unwrap().is_none());
    let token = db.refresh_token("rt-1").await.unwrap().expect("kept");
    assert_eq!(
        token.state(SystemClock.now()),
        RefreshState::Revoked,
        "the refresh token still works after the withdrawal: {token:?}"
    );
}

#[tokio::test]
async fn on_a_terminal_the_password_is_asked_twice_without_echo() {
    const TYPED: &str = "typed on a terminal";
    let server = TestServer::start().await;
    let create = |name: &str| -> [String; 6] {
        [
            "user",
            "create",
            "--username",
            name,
            "--password-stdin",
            "--json",
        ]
        .map(str::to_owned)
    };
    let Some(mut terminal) = Terminal::run(&server, &create("carol")) else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    terminal.answer("Password: ", TYPED).await;
    terminal.answer("Password again: ", TYPED).await;
    let (status, screen) = terminal.finish().await;
    assert!(status.success(), "{screen}");
    assert!(!screen.contains(TYPED), "the password was echoed: {screen}");
    // The prompts went to stderr: stdout, here mixed in, still ends with the JSON.
    let json = &screen[screen.find('{').expect("JSON on the screen")..];
    let created: Value = serde_json::from_str(&json.replace("\r\n", "\n")).unwrap();
    let sub = created["sub"].as_str().unwrap();
    let stored = store(&server).await.user(sub).await.unwrap().unwrap();
    assert!(tessera_core::password::verify(TYPED, &stored.password_hash));

    // Two different answers: refused, nothing stored.
    let mut terminal = Terminal::run(&server, &create("dave")).unwrap();
    terminal.answer("Password: ", TYPED).await;
    terminal
        .answer("Password again: ", "typed on a terminal!")
        .await;
    let (status, screen) = terminal.finish().await;
    assert_eq!(status.code(), Some(1), "{screen}");
    assert!(screen.contains("the two passwords differ"), "{screen}");
    let users = server.cli(&["user", "list", "--json"]);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    // set-password asks the same way.
    let set = ["user", "set-password", "carol", "--password-stdin"].map(str::to_owned);
    let mut terminal = Terminal::run(&server, &set).unwrap();
    terminal.answer("Password: ", "another good password").await;
    terminal
        .answer("Password again: ", "another good password")
        .await;
    let (status, screen) = terminal.finish().await;
    assert!(status.success(), "{screen}");
    let stored = store(&server).await.user(sub).await.unwrap().unwrap();
    assert!(tessera_core::password::verify(
        "another good password",
        &stored.password_hash
    ));
}

/// A `tessera` command on a pseudo-terminal (see `TestServer::in_terminal`):
/// the test reads its screen and types into it. Killed if the test ends early.
struct Terminal {
    child: Option<Child>,
    keyboard: Option<ChildStdin>,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    fn run(server: &TestServer, args: &[String]) -> Option<Terminal> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = server
            .in_terminal(&args)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run script");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut output = child.stdout.take().unwrap();
        let shown = Arc::clone(&screen);
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            while let Ok(n @ 1..) = output.read(&mut buffer) {
                shown.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        Some(Terminal {
            keyboard: child.stdin.take(),
            child: Some(child),
            screen,
            reader: Some(reader),
        })
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until `prompt` shows, then types `line` and Enter.
    async fn answer(&mut self, prompt: &str, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.screen().contains(prompt) {
            assert!(
                Instant::now() < deadline,
                "no {prompt:?} on the screen: {}",
                self.screen()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The prompt is written just before echo is switched off; a moment's
        // wait keeps the typing out of that gap.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let keyboard = self.keyboard.as_mut().unwrap();
        keyboard.write_all(format!("{line}\r").as_bytes()).unwrap();
        keyboard.flush().unwrap();
    }

    /// Closes the keyboard and waits for the command to end.
    async fn finish(mut self) -> (ExitStatus, String) {
        self.keyboard = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        let child = self.child.as_mut().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running: {}",
                self.screen()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.child = None;
        // The pipe closed with `script`, so the reader has copied all there is.
        self.reader.take().unwrap().join().unwrap();
        (status, self.screen())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
