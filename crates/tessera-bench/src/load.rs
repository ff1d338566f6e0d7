//! The load driver: virtual users, each on its own keep-alive connection and
//! sending its requests one after another, for a warm-up and then a measured
//! window. Latencies are kept per request (in a vector allocated up front),
//! and the server's CPU time is read from `/proc` at the window's edges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::http::{Connection, Reply, Template, find};
use crate::procfs;

/// What each virtual user sends.
#[derive(Debug, Clone)]
pub enum Work {
    /// The same request again and again.
    Repeat { template: Template, body: Bytes },
    /// Each request takes the next body of a shared list; users stop when it
    /// runs out (single-use credentials such as authorization codes).
    Queue {
        template: Template,
        bodies: Arc<Vec<Bytes>>,
    },
    /// Each user follows its own chain, starting from `starts[user]`: the next
    /// body is made from the previous answer (rotating refresh tokens). A
    /// user whose answer does not give a next body stops.
    Chain {
        template: Template,
        starts: Vec<Bytes>,
        next: fn(&Reply) -> Option<Bytes>,
    },
}

/// What a user sends next.
enum UserWork {
    Repeat(Template, Bytes),
    Queue(Template, Arc<Vec<Bytes>>, Arc<AtomicUsize>),
    Chain(Template, Option<Bytes>, fn(&Reply) -> Option<Bytes>),
}

impl UserWork {
    fn next(&mut self) -> Option<hyper::Request<crate::http::Body>> {
        match self {
            UserWork::Repeat(template, body) => Some(template.request(body.clone())),
            UserWork::Queue(template, bodies, next) => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                bodies.get(i).map(|body| template.request(body.clone()))
            }
            UserWork::Chain(template, body, _) => body.take().map(|body| template.request(body)),
        }
    }

    fn answered(&mut self, reply: &Reply) {
        if let UserWork::Chain(_, body, next) = self {
            *body = next(reply);
        }
    }
}

impl Work {
    fn for_users(&self, users: usize) -> Vec<UserWork> {
        match self {
            Work::Repeat { template, body } => (0..users)
                .map(|_| UserWork::Repeat(template.clone(), body.clone()))
                .collect(),
            Work::Queue { template, bodies } => {
                let next = Arc::new(AtomicUsize::new(0));
                (0..users)
                    .map(|_| {
                        UserWork::Queue(template.clone(), Arc::clone(bodies), Arc::clone(&next))
                    })
                    .collect()
            }
            Work::Chain {
                template,
                starts,
                next,
            } => (0..users)
                .map(|i| UserWork::Chain(template.clone(), starts.get(i).cloned(), *next))
                .collect(),
        }
    }
}

/// The measured part of a run: requests that complete between `from` and
/// `to` count; none start after `to`, nor after `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub to: Instant,
}

impl Window {
    /// A window after `warmup` from now, `duration` long, ending no later
    /// than `deadline`.
    pub fn after(warmup: Duration, duration: Duration, deadline: Option<Instant>) -> Window {
        let from = Instant::now() + warmup;
        let to = from + duration;
        Window {
            from,
            to: deadline.map_or(to, |d| d.min(to)),
        }
    }

    pub fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

/// A run's outcome.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Successful requests completed in the window.
    pub requests: u64,
    /// Failed requests (non-2xx, unexpected answers, transport errors),
    /// warm-up included.
    pub errors: u64,
    /// The first failure, to show what went wrong.
    pub first_error: Option<String>,
    /// The window as it was: shorter than asked when the work ran out.
    pub elapsed: Duration,
    pub ended_early: bool,
    /// Latencies of the counted requests, in nanoseconds, sorted.
    pub latencies: Vec<u64>,
    /// The server's CPU time (user + system) in the window.
    pub server_cpu: Option<Duration>,
    /// The driver's own CPU time in the window.
    pub driver_cpu: Option<Duration>,
    /// Time the server's CPUs ran anything in the window, the server
    /// included (when it is pinned).
    pub server_cpus_busy: Option<Duration>,
    /// The same for the driver's CPUs.
    pub driver_cpus_busy: Option<Duration>,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency below which `q` of the requests completed (nearest rank).
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank =
            ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        Some(Duration::from_nanos(self.latencies[rank - 1]))
    }

    /// Server CPU time per successful request.
    pub fn cpu_per_request(&self) -> Option<Duration> {
        let cpu = self.server_cpu?;
        (self.requests > 0)
            .then(|| Duration::from_secs_f64(cpu.as_secs_f64() / self.requests as f64))
    }
}

struct UserOutcome {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// What a run needs besides the work.
#[derive(Debug, Clone)]
pub struct Run {
    /// The instances to load: user `i` connects to `addrs[i % addrs.len()]`,
    /// as a round-robin load balancer with keep-alive would spread them.
    pub addrs: Vec<SocketAddr>,
    pub users: usize,
    pub window: Window,
    /// A successful answer's body must contain this (e.g. `"active":true`).
    pub expect: Option<&'static [u8]>,
    /// The server processes, for their CPU time (summed).
    pub server_pids: Vec<u32>,
    /// Clock ticks per second, for `/proc` CPU times.
    pub clock_ticks: u64,
    /// Requests per second expected at most, to size the latency vectors.
    pub capacity_hint: usize,
    /// The CPUs the server and the driver are pinned to (empty: unpinned).
    pub server_cpus: Vec<usize>,
    pub driver_cpus: Vec<usize>,
}

/// Runs `work` with `run.users` virtual users until the window ends or the
/// work runs out.
pub async fn drive(run: &Run, work: &Work) -> Measured {
    let users = work.for_users(run.users);
    let live = Arc::new(AtomicUsize::new(users.len()));
    let all_done = Arc::new(Notify::new());
    let window = run.window;
    let per_user =
        run.capacity_hint / run.users.max(1) * (window.to - window.from).as_secs().max(1) as usize;
    let mut tasks = Vec::with_capacity(users.len());
    for (i, work) in users.into_iter().enumerate() {
        let (addr, expect, live, all_done) = (
            run.addrs[i % run.addrs.len()],
            run.expect,
            Arc::clone(&live),
            Arc::clone(&all_done),
        );
        tasks.push(tokio::spawn(async move {
            let outcome = user(addr, work, window, expect, per_user).await;
            if live.fetch_sub(1, Ordering::AcqRel) == 1 {
                all_done.notify_one();
            }
            outcome
        }));
    }

    // The window's edges: CPU times read as it opens and as it closes (or as
    // the last user stops, when the work ran out).
    let pids: Vec<String> = run.server_pids.iter().map(u32::to_string).collect();
    // Every instance's CPU time, or none if one cannot be read.
    let servers_cpu = || {
        pids.iter()
            .map(|pid| procfs::cpu_ticks(pid))
            .sum::<Option<u64>>()
    };
    let early = tokio::select! {
        () = tokio::time::sleep_until(window.from) => false,
        () = all_done.notified() => true,
    };
    let opened = Instant::now().max(window.from);
    let busy = |cpus: &[usize]| {
        if cpus.is_empty() {
            None
        } else {
            procfs::cpus_busy_ticks(cpus)
        }
    };
    let server_before = servers_cpu();
    let driver_before = procfs::cpu_ticks("self");
    let (server_busy_before, driver_busy_before) = (busy(&run.server_cpus), busy(&run.driver_cpus));
    if !early {
        tokio::select! {
            () = tokio::time::sleep_until(window.to) => {},
            () = all_done.notified() => {},
        }
    }
    // Users stop by themselves at the window's end: only a wake-up before it
    // means the work ran out.
    let woke = Instant::now();
    let ended_early = woke < window.to;
    let closed = woke.min(window.to).max(opened);
    let server_after = servers_cpu();
    let driver_after = procfs::cpu_ticks("self");
    let (server_busy_after, driver_busy_after) = (busy(&run.server_cpus), busy(&run.driver_cpus));

    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                if latencies.is_empty() {
                    latencies = outcome.latencies;
                } else {
                    latencies.extend_from_slice(&outcome.latencies);
                }
                errors += outcome.errors;
                if first_error.is_none() {
                    first_error = outcome.first_error;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("a virtual user failed: {e}"));
            }
        }
    }
    latencies.sort_unstable();
    let cpu = |before: Option<u64>, after: Option<u64>| {
        Some(procfs::ticks_to_duration(
            after?.saturating_sub(before?),
            run.clock_ticks,
        ))
    };
    Measured {
        requests: latencies.len() as u64,
        errors,
        first_error,
        elapsed: closed - opened,
        ended_early,
        latencies,
        server_cpu: cpu(server_before, server_after),
        driver_cpu: cpu(driver_before, driver_after),
        server_cpus_busy: cpu(server_busy_before, server_busy_after),
        driver_cpus_busy: cpu(driver_busy_before, driver_busy_after),
    }
}

async fn user(
    addr: SocketAddr,
    mut work: UserWork,
    window: Window,
    expect: Option<&'static [u8]>,
    capacity: usize,
) -> UserOutcome {
    let mut connection = Connection::new(addr);
    let mut outcome = UserOutcome {
        latencies: Vec::with_capacity(capacity),
        errors: 0,
        first_error: None,
    };
    loop {
        if Instant::now() >= window.to {
            break;
        }
        let Some(request) = work.next() else {
            break;
        };
        let started = Instant::now();
        let result = connection.send(request).await;
        let done = Instant::now();
        let failure = match &result {
            Ok(reply) if !reply.status.is_success() => {
                Some(format!("{}: {}", reply.status, reply.text(300)))
            }
            Ok(reply) => match expect {
                Some(needle) if find(&reply.body, needle).is_none() => Some(format!(
                    "{} without {}: {}",
                    reply.status,
                    String::from_utf8_lossy(needle),
                    reply.text(300)
                )),
                _ => None,
            },
            Err(e) => Some(e.clone()),
        };
        match (failure, result) {
            (None, Ok(reply)) => {
                if window.contains(done) {
                    outcome.latencies.push((done - started).as_nanos() as u64);
                }
                work.answered(&reply);
            }
            (failure, _) => {
                outcome.errors += 1;
                if outcome.first_error.is_none() {
                    outcome.first_error = failure;
                }
                // A chain cannot go on without its answer.
                if let UserWork::Chain(_, body, _) = &mut work {
                    *body = None;
                }
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(latencies: Vec<u64>) -> Measured {
        Measured {
            requests: latencies.len() as u64,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(1),
            ended_early: false,
            latencies,
            server_cpu: Some(Duration::from_millis(500)),
            driver_cpu: None,
            server_cpus_busy: None,
            driver_cpus_busy: None,
        }
    }

    /// A floor server in this process, and a run against it.
    async fn floor() -> (SocketAddr, impl Fn(Window) -> Run) {
        use crate::floor::{Floor, router};
        let floor = Floor::new("floor", "right", "http://127.0.0.1").expect("floor");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router(Arc::new(floor))).await });
        let run = move |window| Run {
            addrs: vec![addr],
            users: 2,
            window,
            expect: Some(b"\"access_token\""),
            server_pids: vec![std::process::id()],
            clock_ticks: 100,
            capacity_hint: 1000,
            server_cpus: Vec::new(),
            driver_cpus: Vec::new(),
        };
        (addr, run)
    }

    fn token_work(addr: SocketAddr, secret: &str) -> (Template, Bytes) {
        let template = Template::post_form(addr, "/token")
            .and_then(|t| t.basic("floor", secret))
            .expect("template");
        (
            template,
            crate::http::form(&[("grant_type", "client_credentials")]),
        )
    }

    #[tokio::test]
    async fn answers_are_measured_and_failures_counted() {
        let (addr, run) = floor().await;
        let window = || Window::after(Duration::from_millis(50), Duration::from_millis(300), None);

        let (template, body) = token_work(addr, "right");
        let good = drive(&run(window()), &Work::Repeat { template, body }).await;
        assert!(good.requests > 0);
        assert_eq!(good.errors, 0, "{:?}", good.first_error);
        assert!(!good.ended_early);
        assert!(good.percentile(0.99).is_some());

        let (template, body) = token_work(addr, "wrong");
        let bad = drive(&run(window()), &Work::Repeat { template, body }).await;
        assert_eq!(bad.requests, 0, "failures are not measured as successes");
        assert!(bad.errors > 0);
        assert!(
            bad.first_error
                .as_deref()
                .is_some_and(|e| e.starts_with("401")),
            "{:?}",
            bad.first_error
        );

        // Single-use work runs out: the run stops early and says so.
        let (template, body) = token_work(addr, "right");
        let bodies = Arc::new(vec![body; 5]);
        let window = Window::after(Duration::ZERO, Duration::from_secs(5), None);
        let queue = drive(&run(window), &Work::Queue { template, bodies }).await;
        assert_eq!(queue.requests, 5);
        assert!(queue.ended_early);
        assert!(queue.elapsed < Duration::from_secs(4));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let m = measured((1..=1000).collect());
        assert_eq!(m.percentile(0.5), Some(Duration::from_nanos(500)));
        assert_eq!(m.percentile(0.99), Some(Duration::from_nanos(990)));
        assert_eq!(m.percentile(0.999), Some(Duration::from_nanos(999)));
        assert_eq!(m.percentile(1.0), Some(Duration::from_nanos(1000)));
        assert_eq!(m.cpu_per_request(), Some(Duration::from_micros(500)));
        assert_eq!(measured(vec![]).percentile(0.5), None);
        assert_eq!(measured(vec![]).cpu_per_request(), None);
    }
}
