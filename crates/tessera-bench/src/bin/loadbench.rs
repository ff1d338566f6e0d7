//! `loadbench`: Tessera under load, from the outside, next to a floor.
//!
//! Starts the release `tessera` binary on 127.0.0.1 with a fresh SQLite
//! database in a temporary directory (or several instances sharing an empty
//! PostgreSQL database, `--postgres`), provisions it through its CLI, signs
//! people in through the login and consent pages, starts the `floor` server,
//! and drives each scenario with virtual users (one keep-alive connection
//! each, requests one after another) for a warm-up and a measured window.
//! The servers run on one CPU and the driver on the others when `taskset`
//! allows. Prints a markdown table and writes JSON. See `scripts/bench-load`
//! and the README's "Benchmarks" section.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use tessera_bench::browser::{Browser, Logins, Pkce, authorize_path, mint_codes};
use tessera_bench::http::{Connection, Reply, Template, form};
use tessera_bench::load::{Measured, Run, Window, Work, drive};
use tessera_bench::process::{Pinning, Server, TempDir, Tessera, free_port, start_floor};
use tessera_bench::procfs::{self, Machine};
use tessera_bench::report::{HEADER, Row};

/// Authorization codes live this long: the server is started with it, and
/// codes are minted so that they are used within it.
const CODE_TTL: u64 = 60;
const REDIRECT: &str = "https://app.example/cb";
const WEB_SCOPE: &str = "openid profile orders.read";
const API: &str = "https://api.example";
const REF_API: &str = "https://ref.example";
const ORDERS: &str = "https://orders.example";
const INVENTORY: &str = "https://inventory.example";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Tessera under load next to a floor server, on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "loadbench",
    after_help = "Scenarios: floor, cc-es256, cc-eddsa, cc-reference, introspect-reference, \
                  introspect-jwt, code-exchange, refresh-rotation, token-exchange, jwks, \
                  discovery, cc-with-logins."
)]
struct Args {
    /// Measured seconds per scenario and concurrency (after the warm-up).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Warm-up seconds before each measurement, not counted.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    warmup: f64,
    /// Virtual users (connections), comma-separated; each scenario runs at each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16,64",
        value_name = "N,N"
    )]
    concurrency: Vec<usize>,
    /// Only the scenarios whose id contains one of these (comma-separated);
    /// the floor always runs, as every ratio refers to it.
    #[arg(long, value_delimiter = ',', value_name = "SUBSTRING")]
    only: Vec<String>,
    /// Authorization codes minted before each code-exchange run, at most
    /// (minting stops earlier if the codes would expire before their use).
    #[arg(long, default_value_t = 40_000, value_name = "N")]
    codes: usize,
    /// Browsers signing in in a loop during the client-credentials-with-logins scenario.
    #[arg(long, default_value_t = 4, value_name = "N")]
    logins: usize,
    /// The web app's ID token algorithm (`client create --id-token-alg`), for
    /// the code exchange and refresh rotation. RS256, the OpenID default,
    /// costs one RSA-2048 signature per response, several times the rest of
    /// the request; ES256 shows the cost of the flows themselves.
    #[arg(long, default_value = "RS256", value_name = "ALG")]
    id_token_alg: String,
    /// The tessera binary (default: `tessera` beside this program).
    #[arg(long, value_name = "PATH")]
    tessera: Option<PathBuf>,
    /// The floor binary (default: `floor` beside this program).
    #[arg(long, value_name = "PATH")]
    floor: Option<PathBuf>,
    /// Where the JSON results go (default: `loadbench.json` in the target directory).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Do not pin the servers and the driver to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Run on PostgreSQL at this URL (an empty database), with `--instances`
    /// instances sharing it, instead of one instance on SQLite.
    /// `scripts/bench-load --postgres` starts a throwaway cluster for it.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Instances sharing the PostgreSQL database; the virtual users'
    /// connections are spread over them round robin.
    #[arg(long, default_value_t = 3, value_name = "N")]
    instances: usize,
}

/// The scenarios, in the order they run: (id, title). `--help` lists the ids.
const SCENARIOS: &[(&str, &str)] = &[
    ("floor", "floor: POST /token (ES256)"),
    ("cc-es256", "client_credentials, JWT ES256"),
    ("cc-eddsa", "client_credentials, JWT EdDSA"),
    ("cc-reference", "client_credentials, reference token"),
    ("introspect-reference", "introspection of a reference token"),
    ("introspect-jwt", "introspection of a JWT"),
    ("code-exchange", "authorization_code exchange (PKCE)"),
    ("refresh-rotation", "refresh_token rotation"),
    ("token-exchange", "token exchange (RFC 8693)"),
    ("jwks", "GET /jwks.json"),
    ("discovery", "GET /.well-known/openid-configuration"),
    ("cc-with-logins", "client_credentials ES256 during logins"),
];

fn main() -> ExitCode {
    let args = Args::parse();
    // Before the runtime starts any thread: its threads inherit the mask.
    let pinning = Pinning::apply(!args.no_pin);
    let threads = if pinning.pinned() {
        pinning.driver_cpus.len()
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadbench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = bench(args, pinning) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    // The servers and the temporary directory are gone by now: their guards
    // were dropped with the future.
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A binary beside this program.
fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
    Ok(exe.with_file_name(name))
}

fn seconds(secs: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{what}: {e}"))
}

/// A registered client.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    secret: String,
}

impl Client {
    fn from(value: &Value) -> Result<Client, String> {
        Ok(Client {
            id: value["client_id"]
                .as_str()
                .ok_or("client create printed no client_id")?
                .to_owned(),
            secret: value["client_secret"]
                .as_str()
                .ok_or("client create printed no client_secret")?
                .to_owned(),
        })
    }

    fn token_template(&self, addr: SocketAddr) -> Result<Template, String> {
        Template::post_form(addr, "/oauth2/token")?.basic(&self.id, &self.secret)
    }
}

/// What the CLI registered.
#[derive(Debug, Clone)]
struct Provisioned {
    cc_jwt: Client,
    cc_ref: Client,
    gateway: Client,
    web: Client,
    service: Client,
    password: String,
    login_users: Vec<String>,
}

/// The SQLite write-ahead log, whose size the write scenarios report; none on
/// PostgreSQL.
fn args_wal(args: &Args, tessera: &Tessera) -> Option<PathBuf> {
    args.postgres.is_none().then(|| tessera.wal())
}

/// A key-encryption key as operators configure one: 32 random bytes, base64url.
fn random_kek() -> Result<String, String> {
    random_base64(32)
}

fn random_secret() -> Result<String, String> {
    random_base64(24)
}

fn random_base64(len: usize) -> Result<String, String> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    use base64::Engine as _;
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no randomness")?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Registers the APIs, clients and people through the CLI.
fn provision(tessera: &Tessera, logins: usize, id_token_alg: &str) -> Result<Provisioned, String> {
    for (audience, scope, format) in [
        (API, "api.read", Some("jwt")),
        (REF_API, "ref.read", Some("reference")),
        (ORDERS, "orders.read", None),
        (INVENTORY, "inventory.read", None),
    ] {
        let mut args = vec![
            "resource",
            "create",
            "--audience",
            audience,
            "--scope",
            scope,
        ];
        if let Some(format) = format {
            args.extend(["--token-format", format]);
        }
        args.push("--json");
        tessera.cli(&args)?;
    }
    let client = |options: &[(&str, &str)]| -> Result<Client, String> {
        let mut args = vec!["client", "create", "--json"];
        for (name, value) in options {
            args.extend([*name, *value]);
        }
        Client::from(&tessera.cli(&args)?)
    };
    let cc_jwt = client(&[
        ("--name", "bench: client credentials, JWT"),
        ("--grant", "client_credentials"),
        ("--scope", "api.read"),
        ("--audience", API),
    ])?;
    let cc_ref = client(&[
        ("--name", "bench: client credentials, reference"),
        ("--grant", "client_credentials"),
        ("--scope", "ref.read"),
        ("--audience", REF_API),
    ])?;
    // An API gateway introspecting the tokens of its two APIs.
    let gateway = client(&[
        ("--name", "bench: gateway"),
        ("--grant", "client_credentials"),
        ("--audience", API),
        ("--audience", REF_API),
        ("--introspection", "own"),
    ])?;
    let web = client(&[
        ("--name", "bench: web app"),
        ("--grant", "authorization_code"),
        ("--grant", "refresh_token"),
        ("--redirect-uri", REDIRECT),
        ("--scope", WEB_SCOPE),
        ("--audience", ORDERS),
        ("--id-token-alg", id_token_alg),
    ])?;
    let service = client(&[
        ("--name", "bench: service"),
        ("--grant", "token-exchange"),
        ("--scope", "orders.read inventory.read"),
        ("--audience", ORDERS),
        ("--audience", INVENTORY),
    ])?;
    let password = random_secret()?;
    let mut login_users = Vec::new();
    for name in
        std::iter::once("alice".to_owned()).chain((1..=logins).map(|i| format!("login-{i}")))
    {
        tessera.cli_with_input(
            &[
                "user",
                "create",
                "--username",
                &name,
                "--password-stdin",
                "--json",
            ],
            Some(&password),
        )?;
        if name != "alice" {
            login_users.push(name);
        }
    }
    Ok(Provisioned {
        cc_jwt,
        cc_ref,
        gateway,
        web,
        service,
        password,
        login_users,
    })
}

/// One token request outside the measurements; the answer must be 200.
async fn token(addr: SocketAddr, client: &Client, pairs: &[(&str, &str)]) -> Result<Reply, String> {
    let request = client.token_template(addr)?.request(form(pairs));
    let reply = Connection::new(addr).send(request).await?;
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(format!(
            "token request {pairs:?}: {}: {}",
            reply.status,
            reply.text(400)
        ))
    }
}

fn member(reply: &Reply, name: &str) -> Result<String, String> {
    reply
        .json_str(name)
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} in {}", reply.text(400)))
}

/// The `alg` of a compact JWS.
fn jws_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next()?)
        .ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

/// The people's side, set up once: Alice signed in to the web app (her
/// session mints codes), the people of the login loop have consented.
struct People {
    authorize: String,
    pkce: Pkce,
    alice_cookie: String,
}

impl People {
    async fn sign_in(addr: SocketAddr, p: &Provisioned) -> Result<People, String> {
        let pkce = Pkce::new(&format!("loadbench-{}", std::process::id()));
        let authorize = authorize_path(&p.web.id, REDIRECT, WEB_SCOPE, &pkce);
        let mut alice = Browser::new(addr);
        alice.sign_in(&authorize, "alice", &p.password).await?;
        for name in &p.login_users {
            Browser::new(addr)
                .sign_in(&authorize, name, &p.password)
                .await?;
        }
        Ok(People {
            authorize,
            pkce,
            alice_cookie: alice.cookie_header(),
        })
    }

    fn code_exchange_body(&self, code: &str) -> Bytes {
        form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &self.pkce.verifier),
        ])
    }

    /// Alice's tokens through one code exchange.
    async fn tokens(&self, addr: SocketAddr, web: &Client) -> Result<Reply, String> {
        let minted = mint_codes(addr, &self.authorize, &self.alice_cookie, 1, 1, far()).await?;
        let code = minted
            .codes
            .first()
            .ok_or_else(|| format!("no code: {:?}", minted.first_failure))?;
        let request = web
            .token_template(addr)?
            .request(self.code_exchange_body(code));
        let reply = Connection::new(addr).send(request).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(format!(
                "code exchange: {}: {}",
                reply.status,
                reply.text(400)
            ))
        }
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Everything a scenario run needs to know about where it runs.
struct Bench {
    args: Args,
    warmup: Duration,
    duration: Duration,
    clock_ticks: u64,
    driver_cpus: usize,
    pinning: Pinning,
    rows: Vec<Row>,
    /// The floor's CPU per request, per concurrency.
    floor_cpu: Vec<(usize, Duration)>,
}

/// A scenario's work at one concurrency, and how to read its result.
struct Plan {
    work: Work,
    expect: Option<&'static [u8]>,
    deadline: Option<Instant>,
    /// Report the WAL's size after it.
    writes: bool,
    notes: Vec<String>,
    logins: Option<(Vec<(String, String)>, String)>,
    capacity_hint: usize,
}

impl Plan {
    fn new(work: Work, expect: &'static [u8]) -> Plan {
        Plan {
            work,
            expect: Some(expect),
            deadline: None,
            writes: false,
            notes: Vec::new(),
            logins: None,
            capacity_hint: 50_000,
        }
    }
}

impl Bench {
    async fn measure(
        &mut self,
        (id, title): (&'static str, &'static str),
        users: usize,
        servers: &[&Server],
        wal: Option<&Path>,
        plan: Plan,
    ) -> Result<(), String> {
        eprintln!("  {title} with {users} users…");
        let first = servers.first().ok_or("no server to measure")?;
        let pids: Vec<String> = servers.iter().map(|s| s.proc_id()).collect();
        let mut reset = true;
        for pid in &pids {
            reset &= procfs::reset_peak_rss(pid);
        }
        let window = Window::after(self.warmup, self.duration, plan.deadline);
        let logins = plan
            .logins
            .clone()
            .map(|(people, password)| Logins::start(first.addr, people, password, window));
        let run = Run {
            addrs: servers.iter().map(|s| s.addr).collect(),
            users,
            window,
            expect: plan.expect,
            server_pids: servers.iter().map(|s| s.pid).collect(),
            clock_ticks: self.clock_ticks,
            capacity_hint: plan.capacity_hint,
            server_cpus: self.pinning.server_cpu.into_iter().collect(),
            driver_cpus: self.pinning.driver_cpus.clone(),
        };
        let mut measured: Measured = drive(&run, &plan.work).await;
        let mut notes = plan.notes;
        let mut extra = Map::new();
        if let Some(logins) = logins {
            let (count, failures, first) = logins.stop().await;
            let per_second = count as f64 / measured.elapsed.as_secs_f64().max(1e-9);
            notes.push(format!("{per_second:.1} logins/s; CPU/req includes them"));
            extra.insert("logins".into(), json!(count));
            extra.insert(
                "logins_per_second".into(),
                json!((per_second * 100.0).round() / 100.0),
            );
            extra.insert("login_failures".into(), json!(failures));
            if failures > 0 {
                notes.push(format!("{failures} failed logins"));
                measured.errors += failures;
                if measured.first_error.is_none() {
                    measured.first_error = first;
                }
            }
        }
        if measured.ended_early {
            notes.push(format!(
                "ran out of work after {:.1} s",
                measured.elapsed.as_secs_f64()
            ));
        }
        if let Some(first) = &measured.first_error {
            notes.push(format!(
                "first error: {}",
                first.chars().take(160).collect::<String>()
            ));
        }
        // Each instance's own peak: the largest is the one to provision for.
        let peak = pids
            .iter()
            .filter_map(|pid| procfs::status_kib(pid, "VmHWM"))
            .max();
        if servers.len() > 1 {
            let each = measured.per_second() / servers.len() as f64;
            notes.push(format!(
                "{} instances: {each:.0} req/s each; CPU/req sums them, PostgreSQL's own not counted",
                servers.len()
            ));
            extra.insert("instances".into(), json!(servers.len()));
            extra.insert(
                "requests_per_second_per_instance".into(),
                json!((each * 10.0).round() / 10.0),
            );
        }
        let cpu = measured.cpu_per_request();
        if id == "floor"
            && let Some(cpu) = cpu
        {
            self.floor_cpu.push((users, cpu));
        }
        let floor = self
            .floor_cpu
            .iter()
            .find(|(n, _)| *n == users)
            .map(|(_, cpu)| *cpu);
        let floor_ratio = match (cpu, floor) {
            (Some(cpu), Some(floor)) if !floor.is_zero() => {
                Some(cpu.as_secs_f64() / floor.as_secs_f64())
            }
            _ => None,
        };
        let driver_load = measured.driver_cpu.map(|cpu| {
            cpu.as_secs_f64() / measured.elapsed.as_secs_f64().max(1e-9) / self.driver_cpus as f64
        });
        if driver_load.is_some_and(|l| l > 0.9) {
            notes.push("driver CPU saturated: a lower bound".into());
        }
        // What else ran on the pinned CPUs meanwhile: a busy machine makes
        // the figures noisy, and says so.
        let elapsed = measured.elapsed.as_secs_f64().max(1e-9);
        let other = |busy: Option<Duration>, own: Option<Duration>, cpus: usize| {
            Some((busy?.as_secs_f64() - own?.as_secs_f64()).max(0.0) / elapsed / cpus as f64)
        };
        let server_other = other(measured.server_cpus_busy, measured.server_cpu, 1);
        let driver_other = other(
            measured.driver_cpus_busy,
            measured.driver_cpu,
            self.pinning.driver_cpus.len().max(1),
        );
        if let Some(share) = server_other.filter(|&s| s > 0.05) {
            notes.push(format!(
                "other processes used {:.0}% of the server's CPU",
                share * 100.0
            ));
        }
        if let Some(share) = driver_other.filter(|&s| s > 0.1) {
            notes.push(format!(
                "other processes used {:.0}% of the driver's CPUs",
                share * 100.0
            ));
        }
        let round = |x: Option<f64>| x.map(|x| (x * 1000.0).round() / 1000.0);
        extra.insert(
            "other_load_on_server_cpu".into(),
            json!(round(server_other)),
        );
        extra.insert(
            "other_load_on_driver_cpus".into(),
            json!(round(driver_other)),
        );
        extra.insert(
            "driver_cpu_us_per_request".into(),
            json!(
                measured
                    .driver_cpu
                    .filter(|_| measured.requests > 0)
                    .map(|d| {
                        (d.as_secs_f64() * 1e6 / measured.requests as f64 * 10.0).round() / 10.0
                    })
            ),
        );
        let wal_bytes = match (plan.writes, wal) {
            (true, Some(path)) => Some(std::fs::metadata(path).map_or(0, |m| m.len())),
            _ => None,
        };
        let row = Row {
            id,
            title,
            users,
            measured,
            floor_ratio,
            peak_rss_kib: peak,
            peak_since_start: !reset,
            wal_bytes,
            driver_load,
            notes,
            extra,
        };
        println!("{}", row.markdown());
        self.rows.push(row);
        Ok(())
    }

    fn selected(&self, id: &str) -> bool {
        id == "floor"
            || self.args.only.is_empty()
            || self.args.only.iter().any(|s| id.contains(s.as_str()))
    }
}

async fn bench(args: Args, pinning: Pinning) -> Result<(), String> {
    let tessera_bin = match &args.tessera {
        Some(path) => path.clone(),
        None => sibling("tessera")?,
    };
    let floor_bin = match &args.floor {
        Some(path) => path.clone(),
        None => sibling("floor")?,
    };
    let json_path = match &args.json {
        Some(path) => path.clone(),
        None => {
            // target/release/loadbench → target/loadbench.json
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            exe.parent().and_then(Path::parent).map_or_else(
                || PathBuf::from("loadbench.json"),
                |t| t.join("loadbench.json"),
            )
        }
    };
    for (what, path) in [("tessera", &tessera_bin), ("floor", &floor_bin)] {
        if !path.is_file() {
            return Err(format!(
                "no {what} binary at {} (build with cargo build --release -p tessera-server -p tessera-bench --bins, or give --{what})",
                path.display()
            ));
        }
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err("--concurrency needs numbers above 0".into());
    }
    let warmup = seconds(args.warmup, "--warmup")?;
    let duration = seconds(args.duration, "--duration")?;
    if duration.is_zero() {
        return Err("--duration must be above 0".into());
    }

    let machine = Machine::describe();
    println!("# Tessera load benchmark\n");
    println!(
        "- machine: {}, {} CPUs, {}{}",
        machine.cpu_model,
        machine.cpus,
        machine.kernel,
        machine.memory_mib.map_or(String::new(), |m| format!(
            ", {:.1} GiB RAM",
            m as f64 / 1024.0
        ))
    );
    println!("- pinning: {}", pinning.note);
    println!(
        "- each run: {:.1} s warm-up, {:.1} s measured; users: {}",
        warmup.as_secs_f64(),
        duration.as_secs_f64(),
        args.concurrency
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.postgres.is_some() && args.instances == 0 {
        return Err("--instances needs a number above 0".into());
    }
    let instances = if args.postgres.is_some() {
        args.instances
    } else {
        1
    };
    println!("- tessera: {}", tessera_bin.display());
    println!(
        "- database: {}",
        if args.postgres.is_some() {
            format!(
                "PostgreSQL, {instances} instance(s) sharing it, the users spread over them round robin"
            )
        } else {
            "SQLite, one instance".to_owned()
        }
    );
    println!(
        "- ID tokens of the code exchange and refresh rotation: {}",
        args.id_token_alg
    );

    // A fresh database; the first start creates it and the signing keys.
    let dir = TempDir::new("tessera-loadbench")?;
    let port = free_port()?;
    let mut tessera = Tessera::new(&tessera_bin, dir.path(), port)
        .with("TESSERA_CODE_TTL", &CODE_TTL.to_string());
    if let Some(url) = &args.postgres {
        // Instances behind one load balancer: one issuer, one key-encryption
        // key, one database.
        tessera = tessera
            .with("TESSERA_DATABASE_URL", url)
            .with("TESSERA_KEY_ENCRYPTION_KEY", &random_kek()?)
            .with("TESSERA_ISSUER", &format!("http://127.0.0.1:{port}"));
    }
    eprintln!(
        "starting tessera on a new database in {}",
        dir.path().display()
    );
    let (first, first_ready) = tessera.serve("tessera-first-start", &pinning).await?;
    let provisioned = provision(&tessera, args.logins, &args.id_token_alg)?;
    first.stop().await;
    // The measured start: an existing database.
    let (server, ready) = tessera.serve("tessera", &pinning).await?;
    let mut servers = vec![server];
    for i in 1..instances {
        let other = tessera.with("TESSERA_LISTEN", &format!("127.0.0.1:{}", free_port()?));
        servers.push(other.serve(&format!("tessera-{i}"), &pinning).await?.0);
    }
    let server = &servers[0];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = procfs::status_kib(&server.proc_id(), "VmRSS");
    println!(
        "- start to ready: {:.0} ms on an existing database ({:.0} ms for the first start, which creates it and the keys); idle RSS {}",
        ready.as_secs_f64() * 1e3,
        first_ready.as_secs_f64() * 1e3,
        idle_rss.map_or("unknown".into(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    );
    let floor_secret = random_secret()?;
    let floor = start_floor(&floor_bin, &floor_secret, &pinning)?;
    let addr = server.addr;
    let people = People::sign_in(addr, &provisioned).await?;

    let mut bench = Bench {
        warmup,
        duration,
        clock_ticks: procfs::clock_ticks(),
        driver_cpus: if pinning.pinned() {
            pinning.driver_cpus.len()
        } else {
            machine.cpus
        },
        pinning: pinning.clone(),
        rows: Vec::new(),
        floor_cpu: Vec::new(),
        args,
    };
    println!();
    println!("{HEADER}");
    let concurrency = bench.args.concurrency.clone();
    let wal = args_wal(&bench.args, &tessera);
    let p = &provisioned;
    for &scenario in SCENARIOS {
        let id = scenario.0;
        if !bench.selected(id) {
            continue;
        }
        // Each scenario's own server and work, prepared outside the timing.
        let mut eddsa: Option<Server> = None;
        if id == "cc-eddsa" && servers.len() > 1 {
            eprintln!("  {id}: skipped with several instances (it needs one configured for EdDSA)");
            continue;
        }
        if id == "cc-eddsa" {
            let other = tessera
                .with("TESSERA_LISTEN", &format!("127.0.0.1:{}", free_port()?))
                .with("TESSERA_SIGNING_ALG", "EdDSA");
            eddsa = Some(other.serve("tessera-eddsa", &pinning).await?.0);
        }
        let targets: Vec<&Server> = match id {
            "floor" => vec![&floor],
            "cc-eddsa" => vec![eddsa.as_ref().ok_or("no EdDSA server")?],
            _ => servers.iter().collect(),
        };
        for &users in &concurrency {
            // Prepared at the first instance: they share one database.
            let addr = targets[0].addr;
            let plan = plan(id, users, addr, p, &people, &bench, &floor_secret).await?;
            bench
                .measure(scenario, users, &targets, wal.as_deref(), plan)
                .await?;
        }
        if let Some(eddsa) = eddsa {
            eddsa.stop().await;
        }
    }

    let rows: Vec<Value> = bench.rows.iter().map(Row::json).collect();
    let report = json!({
        "machine": {
            "cpu_model": machine.cpu_model,
            "cpus": machine.cpus,
            "kernel": machine.kernel,
            "memory_mib": machine.memory_mib,
        },
        "pinning": pinning.note,
        "database": if bench.args.postgres.is_some() { "postgresql" } else { "sqlite" },
        "instances": servers.len(),
        "warmup_seconds": warmup.as_secs_f64(),
        "duration_seconds": duration.as_secs_f64(),
        "concurrency": concurrency,
        "startup": {
            "ready_ms_existing_database": ready.as_secs_f64() * 1e3,
            "ready_ms_first_start": first_ready.as_secs_f64() * 1e3,
            "idle_rss_kib": idle_rss,
        },
        "scenarios": rows,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    if let Some(parent) = json_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(&json_path, text).map_err(|e| format!("{}: {e}", json_path.display()))?;

    println!();
    println!("{HEADER}");
    for row in &bench.rows {
        println!("{}", row.markdown());
    }
    println!();
    println!(
        "CPU µs/req: the server's user+system CPU time over the measured window per successful request; × floor: that over the floor's at the same number of users. Peak RSS is the server's VmHWM during the run{}. Errors count non-2xx answers and failed requests, warm-up included. Driver CPU: the load driver's share of its CPUs.",
        if bench.rows.iter().any(|r| r.peak_since_start) {
            " (* since the server started: the kernel refused to reset it)"
        } else {
            ""
        }
    );
    println!("JSON: {}", json_path.display());
    let failed: Vec<String> = bench
        .rows
        .iter()
        .filter(|r| r.measured.errors > 0 || r.measured.requests == 0)
        .map(|r| format!("{} ({} users)", r.id, r.users))
        .collect();
    drop(floor);
    for server in servers {
        server.stop().await;
    }
    drop(dir);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "scenarios with errors or no requests: {}",
            failed.join(", ")
        ))
    }
}

/// Prepares a scenario's work at one concurrency: tokens, codes and refresh
/// chains are obtained here, before the timing.
async fn plan(
    id: &str,
    users: usize,
    addr: SocketAddr,
    p: &Provisioned,
    people: &People,
    bench: &Bench,
    floor_secret: &str,
) -> Result<Plan, String> {
    let cc_body = |audience: &str, scope: &str| {
        form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", audience),
        ])
    };
    let repeat = |template: Template, body: Bytes| Work::Repeat { template, body };
    Ok(match id {
        "floor" => Plan::new(
            repeat(
                Template::post_form(addr, "/token")?.basic("floor", floor_secret)?,
                form(&[("grant_type", "client_credentials")]),
            ),
            b"\"access_token\"",
        ),
        "cc-es256" | "cc-eddsa" | "cc-with-logins" => {
            let body = cc_body(API, "api.read");
            // Check once that the token is the kind this scenario is about.
            let reply = token(
                addr,
                &p.cc_jwt,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "api.read"),
                    ("resource", API),
                ],
            )
            .await?;
            let alg = jws_alg(&member(&reply, "access_token")?).unwrap_or_default();
            let want = if id == "cc-eddsa" { "EdDSA" } else { "ES256" };
            if alg != want {
                return Err(format!("{id}: the access token is {alg:?}, not {want}"));
            }
            let mut plan = Plan::new(
                repeat(p.cc_jwt.token_template(addr)?, body),
                b"\"access_token\"",
            );
            if id == "cc-with-logins" {
                let people = p
                    .login_users
                    .iter()
                    .map(|name| (people.authorize.clone(), name.clone()))
                    .collect();
                plan.logins = Some((people, p.password.clone()));
                plan.notes.push(format!(
                    "{} browsers signing in meanwhile",
                    p.login_users.len()
                ));
            }
            plan
        }
        "cc-reference" => {
            let reply = token(
                addr,
                &p.cc_ref,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "ref.read"),
                    ("resource", REF_API),
                ],
            )
            .await?;
            let value = member(&reply, "access_token")?;
            if value.contains('.') {
                return Err(format!("cc-reference: the access token is a JWT: {value}"));
            }
            let mut plan = Plan::new(
                repeat(p.cc_ref.token_template(addr)?, cc_body(REF_API, "ref.read")),
                b"\"access_token\"",
            );
            plan.writes = true;
            plan
        }
        "introspect-reference" | "introspect-jwt" => {
            let (client, audience, scope) = if id == "introspect-reference" {
                (&p.cc_ref, REF_API, "ref.read")
            } else {
                (&p.cc_jwt, API, "api.read")
            };
            let reply = token(
                addr,
                client,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", scope),
                    ("resource", audience),
                ],
            )
            .await?;
            let value = member(&reply, "access_token")?;
            let template = Template::post_form(addr, "/oauth2/introspect")?
                .basic(&p.gateway.id, &p.gateway.secret)?;
            Plan::new(
                repeat(
                    template,
                    form(&[("token", &value), ("token_type_hint", "access_token")]),
                ),
                b"\"active\":true",
            )
        }
        "code-exchange" => {
            // Codes expire CODE_TTL after they are minted: minting stops in
            // time for the run to use them, and the run stops before the
            // first of them expires.
            let started = Instant::now();
            let run_time = bench.warmup + bench.duration;
            let budget = Duration::from_secs(CODE_TTL)
                .saturating_sub(run_time + Duration::from_secs(8))
                .max(Duration::from_secs(3));
            let minted = mint_codes(
                addr,
                &people.authorize,
                &people.alice_cookie,
                bench.args.codes,
                16,
                started + budget,
            )
            .await?;
            if minted.codes.is_empty() {
                return Err(format!("no codes minted: {:?}", minted.first_failure));
            }
            let minting = started.elapsed();
            let bodies: Vec<Bytes> = minted
                .codes
                .iter()
                .map(|c| people.code_exchange_body(c))
                .collect();
            let mut plan = Plan::new(
                Work::Queue {
                    template: p.web.token_template(addr)?,
                    bodies: std::sync::Arc::new(bodies),
                },
                b"\"refresh_token\"",
            );
            plan.deadline = Some(started + Duration::from_secs(CODE_TTL - 2));
            plan.writes = true;
            plan.notes.push(format!(
                "{} codes minted in {:.1} s{}",
                minted.codes.len(),
                minting.as_secs_f64(),
                if minted.failures > 0 {
                    format!(
                        " ({} minting failures: {:?})",
                        minted.failures, minted.first_failure
                    )
                } else {
                    String::new()
                }
            ));
            plan
        }
        "refresh-rotation" => {
            // Each user starts from its own refresh token and follows the
            // chain of rotated ones.
            let minted = mint_codes(
                addr,
                &people.authorize,
                &people.alice_cookie,
                users,
                4,
                far(),
            )
            .await?;
            if minted.codes.len() < users {
                return Err(format!(
                    "refresh-rotation: minted {} codes of {users}: {:?}",
                    minted.codes.len(),
                    minted.first_failure
                ));
            }
            let mut starts = Vec::with_capacity(users);
            let mut connection = Connection::new(addr);
            let template = p.web.token_template(addr)?;
            for code in &minted.codes {
                let reply = connection
                    .send(template.request(people.code_exchange_body(code)))
                    .await?;
                if !reply.status.is_success() {
                    return Err(format!(
                        "code exchange: {}: {}",
                        reply.status,
                        reply.text(300)
                    ));
                }
                starts.push(refresh_body(&member(&reply, "refresh_token")?));
            }
            let mut plan = Plan::new(
                Work::Chain {
                    template,
                    starts,
                    next: |reply| reply.json_str("refresh_token").map(refresh_body),
                },
                b"\"refresh_token\"",
            );
            plan.writes = true;
            plan
        }
        "token-exchange" => {
            let alice = people.tokens(addr, &p.web).await?;
            let subject = member(&alice, "access_token")?;
            let body = form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &subject),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("audience", INVENTORY),
            ]);
            // Check once that the exchange works as the README says.
            let reply = Connection::new(addr)
                .send(p.service.token_template(addr)?.request(body.clone()))
                .await?;
            if !reply.status.is_success() {
                return Err(format!(
                    "token exchange: {}: {}",
                    reply.status,
                    reply.text(400)
                ));
            }
            Plan::new(
                repeat(p.service.token_template(addr)?, body),
                b"\"access_token\"",
            )
        }
        "jwks" => Plan::new(
            repeat(Template::get(addr, "/jwks.json")?, Bytes::new()),
            b"\"keys\"",
        ),
        "discovery" => Plan::new(
            repeat(
                Template::get(addr, "/.well-known/openid-configuration")?,
                Bytes::new(),
            ),
            b"\"issuer\"",
        ),
        other => return Err(format!("unknown scenario {other}")),
    })
}

fn refresh_body(token: &str) -> Bytes {
    form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
}
