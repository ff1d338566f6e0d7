//! A harness that runs the real `tessera` binary on 127.0.0.1 with a random port
//! and a temporary database, and drives it over HTTP and through its CLI the way
//! an operator and a client would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A running server and everything needed to talk to it.
pub struct TestServer {
    pub issuer: String,
    pub port: u16,
    /// `https` when the server runs TLS itself.
    pub scheme: &'static str,
    pub dir: TempDir,
    pub database_url: String,
    pub http: reqwest::Client,
    /// Extra environment for the server and the CLI.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    log_path: PathBuf,
    /// The PostgreSQL database the server runs on, dropped after it stops.
    database: Option<PgDatabase>,
}

impl TestServer {
    /// A server on a fresh SQLite database.
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// A server with extra `TESSERA_*` settings: on a fresh SQLite database,
    /// or with `TESSERA_TEST_ON_POSTGRES=1` (and the test cluster's URL) on a
    /// fresh PostgreSQL database, so that the whole suite runs on both.
    pub async fn start_with(env: &[(&str, &str)]) -> TestServer {
        if std::env::var_os("TESSERA_TEST_ON_POSTGRES").is_some_and(|v| v == "1")
            && let Some(database) = PgDatabase::create().await
        {
            let url = database.url.clone();
            let mut server = Self::start_on(TempDir::new("server"), url, env).await;
            server.database = Some(database);
            return server;
        }
        Self::start_on_sqlite(env).await
    }

    /// A server on a fresh SQLite database whatever the suite runs on, for
    /// tests that look into SQLite's files.
    pub async fn start_on_sqlite(env: &[(&str, &str)]) -> TestServer {
        let dir = TempDir::new("server");
        let database_url = format!("sqlite://{}/tessera.db", dir.path().display());
        Self::start_on(dir, database_url, env).await
    }

    /// A server on a given database (for PostgreSQL and shared databases).
    pub async fn start_on(dir: TempDir, database_url: String, env: &[(&str, &str)]) -> TestServer {
        let port = free_port();
        let mut all_env: Vec<(String, String)> = vec![
            ("TESSERA_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("TESSERA_DATABASE_URL".into(), database_url.clone()),
        ];
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // With TLS on, the server's own certificate is the one to trust.
        let tls_cert = all_env
            .iter()
            .find(|(k, _)| k == "TESSERA_TLS_CERT")
            .map(|(_, v)| std::fs::read(v).expect("the TLS certificate"));
        let scheme = if tls_cert.is_some() { "https" } else { "http" };
        let issuer = all_env
            .iter()
            .rev()
            .find(|(k, _)| k == "TESSERA_ISSUER")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("{scheme}://127.0.0.1:{port}"));
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &tls_cert {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
        }
        let log_path = dir.path().join(format!("server-{port}.log"));
        let mut server = TestServer {
            issuer,
            port,
            dir,
            database_url,
            scheme,
            http: http.build().unwrap(),
            env: all_env,
            child: None,
            log_path,
            database: None,
        };
        server.spawn().await;
        server
    }

    /// Starts the server. The port was free a moment ago, but another test may
    /// bind it first; then (and only then) the server starts again on another
    /// port, unless the caller fixed an issuer that names this port.
    async fn spawn(&mut self) {
        for attempt in 0..5 {
            let from = self.log_now().len();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .unwrap();
            let child = self
                .command()
                .arg("serve")
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start tessera");
            self.child = Some(child);
            if self.wait_ready(from).await {
                return;
            }
            let derived_issuer =
                self.issuer == format!("{}://127.0.0.1:{}", self.scheme, self.port);
            // A fixed issuer that names another host (a shared issuer in front
            // of several instances) does not tie the server to this port.
            let issuer_names_port = self.issuer.contains(&format!(":{}", self.port));
            assert!(
                attempt < 4 && (derived_issuer || !issuer_names_port),
                "port {} is taken:\n{}",
                self.port,
                self.log()
            );
            self.port = free_port();
            if derived_issuer {
                self.issuer = format!("{}://127.0.0.1:{}", self.scheme, self.port);
            }
            for (key, value) in &mut self.env {
                if key == "TESSERA_LISTEN" {
                    *value = format!("127.0.0.1:{}", self.port);
                }
            }
        }
    }

    /// A `tessera` command with this server's environment and working directory.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("TESSERA_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `tessera ARGS` inside a pseudo-terminal made by util-linux `script`, with
    /// this server's environment: the command's stdin, stdout and stderr are
    /// that terminal, so all it shows comes out on `script`'s stdout (with
    /// `\r\n` line ends) and what is written to `script`'s stdin is typed.
    /// `None` off Linux (BSD `script` takes other arguments) or where `script`
    /// is not installed.
    pub fn in_terminal(&self, args: &[&str]) -> Option<Command> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let script = ["/usr/bin/script", "/bin/script"]
            .into_iter()
            .find(|p| Path::new(p).is_file())?;
        // `script -c` hands the command line to a shell: quote every word.
        let line = std::iter::once(BIN)
            .chain(args.iter().copied())
            .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(script);
        // -q: no start and end notes; -e: exit with the command's status.
        cmd.args(["-qec", &line, "/dev/null"])
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("TESSERA_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Some(cmd)
    }

    /// Waits until this server (not another one that took the port: its own
    /// log says it listens) answers; `false` if the port was taken.
    async fn wait_ready(&mut self, log_from: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let logged = |server: &TestServer, text: &str| {
            server
                .log_now()
                .get(log_from..)
                .is_some_and(|new| new.contains(text))
        };
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                if logged(self, "cannot listen on") {
                    return false;
                }
                panic!("tessera exited with {status}:\n{}", self.log());
            }
            if logged(self, "tessera is ready")
                && let Ok(r) = self.http.get(self.url("/health/ready")).send().await
                && r.status().is_success()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "tessera did not become ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server has logged so far. The server writes its log from a
    /// thread of its own, a moment after the line was logged: this waits
    /// until the file has stopped growing (20 ms without a write, 2 s at
    /// most), so that what a request logged is there once its answer is in.
    pub fn log(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = self.log_now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.log_now();
            if now.len() == seen.len() || Instant::now() > deadline {
                return now;
            }
            seen = now;
        }
    }

    /// The key-encryption key file the server made for its database (the
    /// default one): what another instance on the same database needs.
    pub fn key_file(&self) -> PathBuf {
        match self.database_url.strip_prefix("sqlite://") {
            Some(path) => PathBuf::from(format!("{path}.kek")),
            None => self.dir.path().join("tessera.kek"),
        }
    }

    /// The log file as it is this instant.
    fn log_now(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Runs a CLI command that must succeed and print JSON.
    pub fn cli(&self, args: &[&str]) -> Value {
        let out = self.cli_output(args);
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

    pub fn cli_output(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run tessera")
    }

    /// Creates a confidential client; returns (id, secret).
    pub fn client(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec!["client", "create", "--name", "test", "--json"];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        (
            out["client_id"].as_str().unwrap().to_owned(),
            out["client_secret"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// POSTs a form to the token endpoint with Basic authentication; returns the
    /// JSON body, whatever the status.
    pub async fn token(&self, client_id: &str, secret: &str, form: &[(&str, &str)]) -> Value {
        self.token_response(client_id, secret, form).await.1
    }

    pub async fn token_response(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> (reqwest::StatusCode, Value) {
        self.post_form("/oauth2/token", client_id, secret, form)
            .await
    }

    pub async fn post_form(
        &self,
        path: &str,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> (reqwest::StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .basic_auth(client_id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn introspect(&self, client_id: &str, secret: &str, token: &str) -> Value {
        let (status, body) = self
            .post_form("/oauth2/introspect", client_id, secret, &[("token", token)])
            .await;
        assert_eq!(status, 200, "introspection failed: {body}");
        body
    }

    /// The status of `/userinfo` for `token` sent as a bearer token.
    pub async fn userinfo_status(&self, token: &str) -> reqwest::StatusCode {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGKILL-free: the process is killed and reaped).
    /// Sends SIGTERM and waits (up to `limit`) for the process to exit; its
    /// exit status, or `None` if it was still running (then it is killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and database.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A key-encryption key as operators configure it: base64url of 32 random
/// bytes; instances on one database share one.
pub fn new_kek() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(tessera_core::crypto::random_bytes::<32>())
}

/// The environment that runs a process with its wall clock moved by `offset`
/// (libfaketime's syntax: "+2d", "-20s"), its monotonic clock left alone, so
/// that expiry and clock skew are tested on the real binary without waiting.
/// `scripts/test` installs Debian's `faketime` and names its library in
/// `TESSERA_TEST_FAKETIME`; without it this says so and gives `None`.
pub fn skewed_clock(offset: &str) -> Option<Vec<(String, String)>> {
    match std::env::var("TESSERA_TEST_FAKETIME") {
        Ok(library) if !library.is_empty() => Some(vec![
            ("LD_PRELOAD".into(), library),
            ("FAKETIME".into(), offset.into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ]),
        _ => {
            eprintln!("skipped: TESSERA_TEST_FAKETIME not set (scripts/test sets it)");
            None
        }
    }
}

/// A binary of this workspace's examples (`tessera-server`'s or
/// `tessera-guard`'s), in target/<profile>/examples beside the test binary's
/// target/<profile>/deps. `cargo test --all-targets` builds examples only as
/// test harnesses without their `main`, so `scripts/test` builds them first;
/// a binary older than its source is refused rather than silently tested.
pub fn example(name: &str) -> PathBuf {
    let build =
        "build the examples first with `cargo build --workspace --examples` (scripts/test does)";
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "the {name} example is missing at {}: {build}",
                path.display()
            )
        });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = ["tessera-server", "tessera-guard"]
        .iter()
        .map(|krate| {
            workspace
                .join(krate)
                .join("examples")
                .join(format!("{name}.rs"))
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no source for the {name} example"));
    let edited = std::fs::metadata(&source)
        .and_then(|m| m.modified())
        .unwrap();
    assert!(
        built >= edited,
        "{} is older than its source: {build}",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
/// The interpreter of the interoperability tests' virtualenv
/// (`TESSERA_TEST_PYTHON`, set by `scripts/test`); `None`, with a note, to
/// skip a test without it.
pub fn python() -> Option<String> {
    match std::env::var("TESSERA_TEST_PYTHON") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!("skipped: TESSERA_TEST_PYTHON not set (scripts/test sets it)");
            None
        }
    }
}

/// Runs a script of `tests/outside/` with one JSON request on stdin;
/// returns the JSON it prints, or panics with its error output.
pub fn python_json(python: &str, script: &str, request: &Value) -> Value {
    use std::io::Write as _;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/outside")
        .join(script);
    let mut child = Command::new(python)
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let out = child.wait_with_output().expect("wait for python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script printed JSON")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tessera-test-{label}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Splits a compact JWT into its decoded header and claims, without verification.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    let decode = |p: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    (decode(parts[0]), decode(parts[1]))
}

/// A fresh PostgreSQL database on the test cluster, dropped afterwards; `None`
/// when the suite runs without PostgreSQL.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> Option<PgDatabase> {
        let Ok(admin_url) = std::env::var("TESSERA_TEST_POSTGRES_URL") else {
            eprintln!("skipped: TESSERA_TEST_POSTGRES_URL not set (scripts/test sets it)");
            return None;
        };
        use sqlx::Connection as _;
        let name = format!(
            "tessera_it_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap()
            .to_owned();
        Some(PgDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside async; a short-lived runtime does the cleanup.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Waits out the bound within which a running server sees a change the CLI
/// made to clients, resources or trusted issuers: servers keep those in
/// memory (`tessera_core::catalog::MAX_STALENESS`).
pub async fn catalog_settles() {
    tokio::time::sleep(tessera_core::catalog::MAX_STALENESS).await;
}
