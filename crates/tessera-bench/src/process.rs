//! The processes a load run starts, and the place they keep their files:
//! every one is stopped by its PID, and the directory removed, when its guard
//! is dropped (at the end, on an error, or on a panic).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::http::{Connection, Template};
use crate::procfs;

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
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

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Where the servers and the driver run: the servers on one CPU, the
/// driver on the others, when `taskset` exists and there are two CPUs or more.
#[derive(Debug, Clone)]
pub struct Pinning {
    pub server_cpu: Option<usize>,
    pub driver_cpus: Vec<usize>,
    /// Said in the report: how it was done, or why not.
    pub note: String,
}

impl Pinning {
    /// Pins this process (all its threads, and the threads and processes it
    /// starts later) to every allowed CPU but the first, which is left for
    /// the servers. Call it before the runtime starts its threads.
    pub fn apply(enabled: bool) -> Pinning {
        let unpinned = |note: String| Pinning {
            server_cpu: None,
            driver_cpus: Vec::new(),
            note,
        };
        if !enabled {
            return unpinned("unpinned (--no-pin)".into());
        }
        let Some(cpus) = procfs::allowed_cpus() else {
            return unpinned("unpinned: the allowed CPUs are unknown".into());
        };
        if cpus.len() < 2 {
            return unpinned(format!(
                "unpinned: only one CPU ({}) for servers and driver",
                procfs::format_cpu_list(&cpus)
            ));
        }
        let (server, driver) = (cpus[0], cpus[1..].to_vec());
        let list = procfs::format_cpu_list(&driver);
        let pinned = Command::new("taskset")
            .args(["-a", "-p", "-c", &list, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match pinned {
            Ok(out) if out.status.success() => Pinning {
                server_cpu: Some(server),
                driver_cpus: driver,
                note: format!("servers on CPU {server}, load driver on CPU {list} (taskset)"),
            },
            Ok(out) => unpinned(format!(
                "unpinned: taskset failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => unpinned(format!("unpinned: no taskset ({e})")),
        }
    }

    pub fn pinned(&self) -> bool {
        self.server_cpu.is_some()
    }

    /// A command for a server: under `taskset -c CPU` when pinned.
    pub fn server_command(&self, program: &Path) -> Command {
        match self.server_cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// A server process, stopped when dropped.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl Server {
    /// The PID as `/proc` wants it.
    pub fn proc_id(&self) -> String {
        self.pid.to_string()
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let Some(text) = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Asks the process to stop (SIGTERM), and kills it if it has not after
    /// ten seconds.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let asked = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if asked {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `GET /health/ready` answers 200; the time from `spawned`.
async fn wait_ready(server: &mut Server, spawned: Instant) -> Result<Duration, String> {
    let deadline = spawned + Duration::from_secs(60);
    let template = Template::get(server.addr, "/health/ready")?;
    loop {
        let mut connection = Connection::new(server.addr);
        if let Ok(reply) = connection.send(template.request(Bytes::new())).await
            && reply.status == StatusCode::OK
        {
            return Ok(spawned.elapsed());
        }
        if let Some(status) = server.exited() {
            return Err(format!(
                "{} exited with {status}:\n{}",
                server.name,
                server.log_tail()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} was not ready after 60 s:\n{}",
                server.name,
                server.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The `tessera` binary with one configuration: a SQLite database in a
/// directory of its own. The CLI runs with the same configuration as the
/// server, as the README asks.
#[derive(Debug, Clone)]
pub struct Tessera {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub database: PathBuf,
    /// `TESSERA_*` settings for the server and the CLI.
    pub env: Vec<(String, String)>,
}

impl Tessera {
    /// A configuration for a database `tessera.db` in `dir`, the server
    /// listening on 127.0.0.1:`port`.
    pub fn new(bin: &Path, dir: &Path, port: u16) -> Tessera {
        let database = dir.join("tessera.db");
        Tessera {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            env: vec![
                ("TESSERA_LISTEN".into(), format!("127.0.0.1:{port}")),
                (
                    "TESSERA_DATABASE_URL".into(),
                    format!("sqlite://{}", database.display()),
                ),
            ],
            database,
        }
    }

    /// The same with one more setting (a later one wins).
    pub fn with(&self, key: &str, value: &str) -> Tessera {
        let mut other = self.clone();
        other.env.retain(|(k, _)| k != key);
        other.env.push((key.into(), value.into()));
        other
    }

    /// The SQLite write-ahead log beside the database.
    pub fn wal(&self) -> PathBuf {
        let mut name = self.database.clone().into_os_string();
        name.push("-wal");
        PathBuf::from(name)
    }

    fn listen(&self) -> Result<SocketAddr, String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "TESSERA_LISTEN")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| "no TESSERA_LISTEN".to_owned())
    }

    fn configure(&self, command: &mut Command) {
        command
            .current_dir(&self.dir)
            .env_remove("TESSERA_CONFIG")
            .env_remove("RUST_LOG");
        for (key, value) in &self.env {
            command.env(key, value);
        }
    }

    /// `tessera ARGS`, which must succeed and print JSON.
    pub fn cli(&self, args: &[&str]) -> Result<Value, String> {
        self.cli_with_input(args, None)
    }

    /// `tessera ARGS` with `input` on stdin (a pipe).
    pub fn cli_with_input(&self, args: &[&str], input: Option<&str>) -> Result<Value, String> {
        let mut command = Command::new(&self.bin);
        self.configure(&mut command);
        let mut child = command
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(format!("{input}\n").as_bytes())
                .map_err(|e| format!("tessera {args:?}: stdin: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("tessera {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tessera {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "tessera {}: not JSON ({e}): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Starts `tessera serve` (pinned as `pinning` says), logging to a file
    /// beside the database; returns it once ready, with the time from spawn
    /// to the first 200 from `/health/ready`.
    pub async fn serve(&self, name: &str, pinning: &Pinning) -> Result<(Server, Duration), String> {
        let addr = self.listen()?;
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let mut command = pinning.server_command(&self.bin);
        self.configure(&mut command);
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        let spawned = Instant::now();
        let child = command
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let mut server = Server {
            name: name.to_owned(),
            addr,
            pid: child.id(),
            child: Some(child),
            log: Some(log_path),
        };
        let ready = wait_ready(&mut server, spawned).await?;
        Ok((server, ready))
    }
}

/// Starts the floor server (pinned as `pinning` says) and reads the address
/// it prints.
pub fn start_floor(bin: &Path, secret: &str, pinning: &Pinning) -> Result<Server, String> {
    let mut child = pinning
        .server_command(bin)
        .args(["--port", "0", "--client-id", "floor"])
        .env("FLOOR_SECRET", secret)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let mut line = String::new();
    let read = child
        .stdout
        .take()
        .map(|out| BufReader::new(out).read_line(&mut line));
    let addr = match (read, line.trim().parse::<SocketAddr>()) {
        (Some(Ok(_)), Ok(addr)) => addr,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not print its address (got {line:?})",
                bin.display()
            ));
        }
    };
    Ok(Server {
        name: "floor".into(),
        addr,
        pid,
        child: Some(child),
        log: None,
    })
}
