//! Prometheus metrics at `/metrics`, on the main listener or on
//! `metrics_listen`.
//!
//! The core and this crate count through the `metrics` facade: requests and
//! their latency per route and grant, refusals per OAuth error and reason
//! (here, as responses leave), tokens issued and logins (in the core). Gauges
//! that describe a state (database connections, signing keys) are read when
//! the page is scraped.
//!
//! Labels only ever take values from a fixed set (route templates, grant
//! names, error codes and reasons), never what a client sent.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tessera_core::Provider;
use tessera_core::error::{ErrorCode, Reason};

/// Latency buckets, in seconds: the token endpoint's answers take from a
/// tenth of a millisecond (a cached client, a JWT) to tens of milliseconds
/// (a password hash).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often the recorder drains its histogram buffers.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder: installed once, whatever number of routers ask.
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// What `/metrics` renders from.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// The process's metrics, installing the recorder on first use. `None`
    /// when another recorder was installed first (an embedding program's).
    pub fn install() -> Option<Metrics> {
        let handle = RECORDER.get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS);
            let installed = builder.and_then(|builder| builder.install_recorder());
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        });
        handle.clone().map(|handle| Metrics { handle })
    }

    /// Drains buffered histogram samples; call every [`UPKEEP_INTERVAL`].
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The page, with the gauges read now.
    pub fn render(&self, provider: &Provider) -> String {
        let connections = provider.store().connections();
        let backend = provider.store().backend();
        metrics::gauge!("tessera_db_connections", "backend" => backend, "state" => "open")
            .set(connections.open);
        metrics::gauge!("tessera_db_connections", "backend" => backend, "state" => "busy")
            .set(connections.busy);
        let now = provider.clock().now();
        let rotation = provider.settings().key_rotation_interval;
        for (alg, schedule) in provider.keys().ring().signing_schedule(now, rotation) {
            let alg = alg.as_str();
            metrics::gauge!("tessera_signing_key_age_seconds", "alg" => alg)
                .set(schedule.age as f64);
            if let Some(next) = schedule.next_key_in {
                metrics::gauge!("tessera_signing_key_next_rotation_seconds", "alg" => alg)
                    .set(next as f64);
            }
        }
        self.handle.render()
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "tessera_http_requests_total",
        "HTTP requests answered, per route, method and status"
    );
    describe_histogram!(
        "tessera_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer, per route (and grant at the token endpoint)"
    );
    describe_counter!(
        "tessera_refusals_total",
        "OAuth error responses, per route, grant, error code and reason"
    );
    describe_counter!(
        "tessera_tokens_issued_total",
        "Tokens issued at the token endpoint, per grant and kind (access_jwt, access_reference, refresh, id)"
    );
    describe_counter!(
        "tessera_logins_total",
        "Password checks, per outcome (success, failure, throttled, rate_limited)"
    );
    describe_gauge!(
        "tessera_db_connections",
        "Database connections held (open) and lent out now (busy)"
    );
    describe_gauge!(
        "tessera_signing_key_age_seconds",
        Unit::Seconds,
        "How long the key that signs each algorithm has signed"
    );
    describe_gauge!(
        "tessera_signing_key_next_rotation_seconds",
        Unit::Seconds,
        "Seconds until the next key of each algorithm starts signing (absent with rotation off)"
    );
}

/// `GET /metrics`
pub async fn scrape(State(state): State<(Metrics, Arc<Provider>)>) -> Response {
    let (metrics, provider) = state;
    let body = metrics.render(&provider);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The grant a token-endpoint response answered, for its labels.
#[derive(Debug, Clone, Copy)]
pub struct GrantLabel(pub &'static str);

/// An OAuth error response, for its labels.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub code: ErrorCode,
    pub reason: Reason,
}

/// Counts each request and its latency under its route's template; refusals
/// under their error code and reason.
pub async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let route = intern(matched.as_ref().map_or("unmatched", MatchedPath::as_str));
    let grant = response.extensions().get::<GrantLabel>().map(|g| g.0);
    metrics::counter!(
        "tessera_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => intern(response.status().as_str()),
    )
    .increment(1);
    match grant {
        Some(grant) => metrics::histogram!(
            "tessera_http_request_duration_seconds",
            "route" => route,
            "grant_type" => grant,
        )
        .record(elapsed),
        None => metrics::histogram!(
            "tessera_http_request_duration_seconds",
            "route" => route,
        )
        .record(elapsed),
    }
    if let Some(refusal) = response.extensions().get::<Refusal>() {
        metrics::counter!(
            "tessera_refusals_total",
            "route" => route,
            "grant_type" => grant.unwrap_or(""),
            "error" => refusal.code.as_str(),
            "reason" => format!("{:?}", refusal.reason),
        )
        .increment(1);
    }
    if let Some(matched) = matched {
        // For the request log, which runs outside routing.
        response
            .extensions_mut()
            .insert(crate::request_log::RouteLabel(matched));
    }
    response
}

/// A label value from a small, fixed set (route templates, status codes)
/// as a `&'static str`, made once per value, so that counting a request
/// allocates nothing.
fn intern(value: &str) -> &'static str {
    static SEEN: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(known) = seen.read().unwrap_or_else(|e| e.into_inner()).get(value) {
        return known;
    }
    let mut seen = seen.write().unwrap_or_else(|e| e.into_inner());
    match seen.get(value) {
        Some(known) => known,
        None => {
            // Bounded: the router's routes and HTTP's status codes.
            let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
            seen.insert(leaked);
            leaked
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
