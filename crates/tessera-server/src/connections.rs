//! Accepting and serving connections, with limits against clients that hold
//! them open: requests trickled in byte by byte (slowloris), connections left
//! idle, and more connections than the process has file descriptors for.
//!
//! `axum::serve` exposes none of these settings, so the loop lives here:
//! hyper-util serves each connection with hyper's own header read timeout,
//! tower-http puts a deadline on request bodies, a semaphore caps the number of
//! connections, and a small watcher closes connections on which no request is
//! in progress.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use proxy_header::ParseConfig;
use proxy_header::io::ProxiedStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::timeout::RequestBodyDeadlineLayer;

use crate::client_address::{ResolvedAddress, TrustedProxies};

/// How many connections may be open and how long a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the connection's start (or, on HTTP/1.1, from the end of the
    /// previous response) to the end of a request's headers.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body, however steadily
    /// the bytes come.
    pub body_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress.
    pub keep_alive_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: u32,
    /// After SIGTERM or SIGINT, how long requests in progress get to finish
    /// before their connections are dropped.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// The default cap where the open-files limit is high or unknown.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

    /// Half the open-files limit, at most [`Self::DEFAULT_MAX_CONNECTIONS`]:
    /// every connection takes a descriptor, and the other half stays free for
    /// the database, the key file and the logs, which fail outright without one.
    pub fn default_max_connections(open_files_limit: Option<u64>) -> u32 {
        let Some(limit) = open_files_limit else {
            return Self::DEFAULT_MAX_CONNECTIONS;
        };
        u32::try_from(limit / 2)
            .unwrap_or(u32::MAX)
            .clamp(1, Self::DEFAULT_MAX_CONNECTIONS)
    }
}

/// The soft limit on open files of this process, where there is one.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE
            .get_soft()
            .ok()
            .filter(|&limit| limit != rlimit::INFINITY)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then asks every
/// connection to finish and waits until they have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    proxies: TrustedProxies,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    // A deadline, not an idle timeout: one byte a second would reset an idle
    // timer forever.
    let router = router.layer(RequestBodyDeadlineLayer::new(limits.body_read_timeout));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header timer needs a timer to run at all; it also bounds the wait
    // for the next request on a kept-alive HTTP/1.1 connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let shared = Arc::new(PerConnection {
        builder,
        proxies,
        limits,
        tls,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (closing, closing_rx) = watch::channel(());
    let mut failures = AcceptFailures::default();
    let mut shutdown = pin!(shutdown);

    loop {
        let next = async {
            // A slot before accept(): over the cap, connections wait in the
            // kernel's backlog instead of taking descriptors.
            let slot = Arc::clone(&slots).acquire_owned().await.ok()?;
            Some((slot, accept(&listener, &mut failures).await))
        };
        let (slot, (stream, remote)) = tokio::select! {
            next = next => match next {
                Some(next) => next,
                None => break,
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(open_connection(
            stream,
            remote,
            router.clone(),
            Arc::clone(&shared),
            closing_rx.clone(),
            slot,
        ));
    }

    drop(listener);
    drop(closing_rx);
    let _ = closing.send(());
    // Every connection holds a slot until it ends: all slots back means all
    // done. Past the grace period the rest are dropped with the process.
    let all_done = slots.acquire_many(limits.max_connections);
    if tokio::time::timeout(limits.shutdown_grace, all_done)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = limits.max_connections as usize - slots.available_permits(),
            grace = ?limits.shutdown_grace,
            "requests still in progress at the end of shutdown_grace; dropping their connections"
        );
    }
}

/// The next connection. Errors are the listener's, not a peer's: most often the
/// process is out of descriptors (EMFILE) or the system is (ENFILE). Open
/// connections go on being served meanwhile; each one that ends frees a
/// descriptor, so accept() is retried after a short, growing pause.
async fn accept(listener: &TcpListener, failures: &mut AcceptFailures) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                if let Some(count) = failures.succeeded() {
                    tracing::info!(failures = count, "accepting connections again");
                }
                return accepted;
            }
            // The peer gave up between its SYN and our accept(): nothing to wait for.
            Err(e) if is_peer_error(&e) => {}
            Err(e) => {
                let (pause, report) = failures.failed(std::time::Instant::now());
                if let Some(count) = report {
                    tracing::error!(
                        error = %e,
                        failures = count,
                        "cannot accept connections; serving the open ones and retrying \
                         (out of file descriptors? raise the open-files limit or lower max_connections)"
                    );
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
    )
}

/// Failures of accept() in a row: the pause before the next try, and when to
/// say so in the log. A run of failures is reported once when it starts (and
/// again at most every [`AcceptFailures::REPORT_EVERY`] while it lasts), not
/// once per try: a flood of lines would only add to the trouble.
#[derive(Debug, Default)]
struct AcceptFailures {
    in_a_row: u32,
    unreported: u64,
    last_report: Option<std::time::Instant>,
    run_reported: bool,
}

impl AcceptFailures {
    const FIRST_PAUSE: Duration = Duration::from_millis(50);
    const LONGEST_PAUSE: Duration = Duration::from_secs(1);
    const REPORT_EVERY: Duration = Duration::from_secs(60);

    /// Notes a failure at `now`: how long to pause, and the number of failures
    /// to report now, if it is time to report.
    fn failed(&mut self, now: std::time::Instant) -> (Duration, Option<u64>) {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unreported = self.unreported.saturating_add(1);
        let pause = Self::FIRST_PAUSE
            .saturating_mul(1 << (self.in_a_row - 1).min(16))
            .min(Self::LONGEST_PAUSE);
        let due = self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= Self::REPORT_EVERY);
        if !due {
            return (pause, None);
        }
        self.last_report = Some(now);
        self.run_reported = true;
        (pause, Some(std::mem::take(&mut self.unreported)))
    }

    /// Notes a success: the length of the run of failures it ends, if that run
    /// was reported (so that its end is reported too).
    fn succeeded(&mut self) -> Option<u32> {
        let run = std::mem::take(&mut self.in_a_row);
        std::mem::take(&mut self.run_reported).then_some(run)
    }
}

/// What every connection is served with.
struct PerConnection {
    builder: auto::Builder<TokioExecutor>,
    proxies: TrustedProxies,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Reads a trusted proxy's PROXY protocol header where one is expected, then
/// serves the connection. The header must arrive within the header read
/// timeout; a trusted proxy's connection without a valid one is dropped,
/// since nothing on it could say who the client is.
async fn open_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    shared: Arc<PerConnection>,
    closing: watch::Receiver<()>,
    slot: OwnedSemaphorePermit,
) {
    if !shared.proxies.expects_proxy_header(remote.ip()) {
        return secure_connection(stream, remote, None, router, shared, closing, slot).await;
    }
    // TLVs (the proxy's TLS details, its own IDs) are not used.
    let config = ParseConfig {
        include_tlvs: false,
        ..ParseConfig::default()
    };
    let header = ProxiedStream::create_from_tokio(stream, config);
    match tokio::time::timeout(shared.limits.header_read_timeout, header).await {
        Ok(Ok(stream)) => {
            // A LOCAL header (the proxy's own health check) names nobody:
            // the proxy is the client then.
            let client = stream
                .proxy_header()
                .proxied_address()
                .map_or(remote.ip(), |address| address.source.ip());
            secure_connection(stream, remote, Some(client), router, shared, closing, slot).await;
        }
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "no valid PROXY protocol header from a trusted proxy");
        }
        Err(_) => tracing::debug!(%remote, "PROXY protocol header not received in time"),
    }
}

/// Serves a connection, after its TLS handshake when TLS is on. The
/// handshake must be over within the header read timeout: a client that
/// stalls in it holds a slot as one that stalls in its headers would.
async fn secure_connection<S>(
    stream: S,
    remote: SocketAddr,
    client: Option<IpAddr>,
    router: Router,
    shared: Arc<PerConnection>,
    closing: watch::Receiver<()>,
    slot: OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(acceptor) = shared.tls.clone() else {
        return serve_connection(stream, remote, client, router, shared, closing, slot).await;
    };
    let handshake = acceptor.accept(stream);
    match tokio::time::timeout(shared.limits.header_read_timeout, handshake).await {
        Ok(Ok(stream)) => {
            serve_connection(stream, remote, client, router, shared, closing, slot).await;
        }
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake not finished in time"),
    }
}

/// `client`: the address a PROXY protocol header named, which stands; else
/// the client is resolved from each request's forwarding header.
async fn serve_connection<S>(
    stream: S,
    remote: SocketAddr,
    client: Option<IpAddr>,
    router: Router,
    shared: Arc<PerConnection>,
    mut closing: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let activity = Activity::default();
    let service = {
        let activity = activity.clone();
        let shared = Arc::clone(&shared);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_progress = activity.begin();
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(client) = client {
                request
                    .extensions_mut()
                    .insert(ResolvedAddress(client.to_canonical()));
            } else if !shared.proxies.is_empty() {
                // Without trusted proxies the peer is the client: nothing to add.
                let client = shared.proxies.resolve(remote.ip(), request.headers());
                request.extensions_mut().insert(ResolvedAddress(client));
            }
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await;
                drop(in_progress);
                response
            }
        })
    };
    let mut connection = pin!(
        shared
            .builder
            .serve_connection(TokioIo::new(stream), service)
    );
    let mut idle = pin!(activity.idle(limits.header_read_timeout, limits.keep_alive_timeout));
    let mut give_up: Option<Instant> = None;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%remote, error = %e, "connection ended");
                }
                return;
            }
            () = &mut idle, if give_up.is_none() => {}
            _ = closing.changed(), if give_up.is_none() => {}
            () = tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                tracing::debug!(%remote, "dropped a connection that did not close in time");
                return;
            }
        }
        // Idle, or the server is stopping: finish the response in progress
        // (HTTP/2: the streams in progress), then close. A peer that does not
        // let that happen gets as long as a request body may take.
        connection.as_mut().graceful_shutdown();
        give_up = Some(Instant::now() + limits.body_read_timeout);
    }
}

/// The number of requests in progress on one connection.
#[derive(Debug, Clone)]
struct Activity(Arc<watch::Sender<usize>>);

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(watch::Sender::new(0)))
    }
}

impl Activity {
    fn begin(&self) -> InProgress {
        self.0.send_modify(|n| *n += 1);
        InProgress(Arc::clone(&self.0))
    }

    /// Resolves once no request has been in progress for `first` since the
    /// connection opened, or for `between` after an earlier request. On
    /// HTTP/1.1 hyper's header timer ends a half-sent request; this also ends a
    /// connection that sends nothing at all or a partial HTTP/2 preface (which
    /// hyper-util waits for before any timer runs), and idle HTTP/2 connections,
    /// including those that trickle header frames that never finish a request.
    async fn idle(&self, first: Duration, between: Duration) {
        let mut requests = self.0.subscribe();
        let mut allowed = first;
        loop {
            // A request may have begun before this first looked.
            if *requests.borrow_and_update() > 0 {
                // `self` holds the sender, so waiting on it cannot fail.
                let _ = requests.wait_for(|n| *n == 0).await;
                allowed = between;
            }
            tokio::select! {
                () = tokio::time::sleep(allowed) => return,
                // Any request starting or ending starts the clock again.
                _ = requests.changed() => allowed = between,
            }
        }
    }
}

/// One request in progress; counted until dropped.
#[derive(Debug)]
struct InProgress(Arc<watch::Sender<usize>>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_half_the_descriptors_free() {
        assert_eq!(ConnectionLimits::default_max_connections(Some(256)), 128);
        assert_eq!(ConnectionLimits::default_max_connections(Some(1024)), 512);
        assert_eq!(
            ConnectionLimits::default_max_connections(Some(1 << 20)),
            ConnectionLimits::DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(ConnectionLimits::default_max_connections(Some(1)), 1);
        assert_eq!(
            ConnectionLimits::default_max_connections(None),
            ConnectionLimits::DEFAULT_MAX_CONNECTIONS
        );
    }

    #[test]
    fn accept_failures_pause_longer_and_are_reported_once_per_run() {
        let start = std::time::Instant::now();
        let mut failures = AcceptFailures::default();
        let (pause, report) = failures.failed(start);
        assert_eq!(pause, AcceptFailures::FIRST_PAUSE);
        assert_eq!(report, Some(1));
        let mut pauses = vec![pause];
        for i in 1..20 {
            let (pause, report) = failures.failed(start + Duration::from_millis(i));
            assert_eq!(report, None, "failure {i} reported again");
            pauses.push(pause);
        }
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(pauses.last(), Some(&AcceptFailures::LONGEST_PAUSE));
        // A run that lasts is reported again after a while, with its count.
        let (_, report) = failures.failed(start + AcceptFailures::REPORT_EVERY);
        assert_eq!(report, Some(20));
        // Its end is reported, and the next failure pauses briefly again.
        assert_eq!(failures.succeeded(), Some(21));
        assert_eq!(failures.succeeded(), None);
        let later = start + AcceptFailures::REPORT_EVERY + Duration::from_secs(1);
        let (pause, report) = failures.failed(later);
        assert_eq!(pause, AcceptFailures::FIRST_PAUSE);
        // Within a minute of the last report a new run stays quiet, and so
        // does its end.
        assert_eq!(report, None);
        assert_eq!(failures.succeeded(), None);
        let (_, report) = failures.failed(later + AcceptFailures::REPORT_EVERY);
        assert_eq!(report, Some(2));
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_request_in_progress() {
        let first = Duration::from_millis(50);
        let between = Duration::from_millis(150);
        let activity = Activity::default();

        // Nothing ever arrives: idle after `first`.
        let started = Instant::now();
        activity.idle(first, between).await;
        assert!(started.elapsed() >= first);

        // A request in progress holds the connection open however long it
        // takes; `between` counts from its end.
        let watcher = tokio::spawn({
            let activity = activity.clone();
            async move {
                activity.idle(first, between).await;
                Instant::now()
            }
        });
        let request = activity.begin();
        tokio::time::sleep(first + between * 2).await;
        assert!(!watcher.is_finished(), "idle during a request");
        drop(request);
        let ended = Instant::now();
        let idle_at = watcher.await.expect("watcher");
        assert!(idle_at >= ended + between, "{:?}", idle_at - ended);
    }
}
