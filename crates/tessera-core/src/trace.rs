//! A client's recent authorization and token requests, step by step, for its
//! developer to see where an integration goes wrong (the portal's trace).
//!
//! Recording never waits: an event goes into an in-memory buffer under a
//! short lock, bounded per client and in the number of clients, and
//! [`Tracer::flush`] writes the buffer to the store off the request path
//! (every second while serving, and before the portal reads a trace). The
//! store keeps the newest [`KEEP_PER_CLIENT`] events of each client for
//! [`TRACE_RETENTION`](crate::store::TRACE_RETENTION) at most.
//!
//! An event holds what a developer needs and nothing that grants access:
//! the endpoint, the grant or response type, the scope, the address of the
//! client's server for token requests, and the outcome with
//! its OAuth error, precise reason and the description the client got.
//! Never a secret, code, token or password, and never who signed in (a
//! description may echo what the client itself sent, such as an assertion's
//! subject).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::error::Error;
use crate::store::{StoreResult, TraceStore};

/// How many events of each client are kept.
pub const KEEP_PER_CLIENT: usize = 50;

/// How many clients' events, and how many events in all, the buffer holds
/// between two flushes; further events are dropped (and counted) until the
/// next flush.
const MAX_BUFFERED_CLIENTS: usize = 10_000;
const MAX_BUFFERED_EVENTS: usize = 20_000;

/// One request of a client, as its trace shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub client_id: String,
    pub at: UnixTime,
    pub step: TraceStep,
}

/// Which request it was and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    pub endpoint: TraceEndpoint,
    /// The grant type at the token endpoint, the response type at the
    /// authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Where a token request came from (the resolved address behind trusted
    /// proxies): the client's own server, which its developer may want to
    /// check. Never recorded for the browser's requests: that would hand a
    /// person's address to the application's developer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub outcome: TraceOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceEndpoint {
    /// The browser at the authorization endpoint (and the login and consent
    /// pages that continue it).
    Authorization,
    /// The client at the token endpoint.
    Token,
}

impl TraceEndpoint {
    /// Who sent the request to which endpoint, as a sequence diagram labels
    /// its arrow.
    pub fn arrow(self) -> &'static str {
        match self {
            TraceEndpoint::Authorization => "browser → /oauth2/authorize",
            TraceEndpoint::Token => "client → /oauth2/token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TraceOutcome {
    /// The step went through; `detail` says what the server did next.
    Done { detail: String },
    /// Refused: the OAuth `error`, the precise reason behind it, and the
    /// `error_description` the client got.
    Refused {
        error: String,
        reason: String,
        description: String,
    },
}

impl TraceOutcome {
    pub fn refused(error: &Error) -> Self {
        Self::refused_for(error.reason, &error.description)
    }

    pub fn refused_for(reason: crate::Reason, description: &str) -> Self {
        TraceOutcome::Refused {
            error: reason.code().as_str().to_owned(),
            reason: reason_words(&format!("{reason:?}")),
            description: description.to_owned(),
        }
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, TraceOutcome::Refused { .. })
    }
}

/// `PkceVerifierMismatch` → `pkce verifier mismatch`.
fn reason_words(name: &str) -> String {
    let mut words = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    words
}

/// The buffer between the endpoints and the store.
#[derive(Debug, Default)]
pub struct Tracer {
    buffer: Mutex<Buffer>,
    /// Held from taking the buffer until the store has the events, so that
    /// a reader's flush waits for one already under way instead of finding
    /// the buffer empty and reading the store before those events land.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Buffer {
    events: HashMap<String, VecDeque<TraceEvent>>,
    /// The events held, across clients.
    held: usize,
    dropped: u64,
}

impl Tracer {
    /// Buffers an event; never waits on the store.
    pub fn record(&self, event: TraceEvent) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let clients = buffer.events.len();
        let full = buffer.held >= MAX_BUFFERED_EVENTS;
        match buffer.events.get_mut(&event.client_id) {
            // A client's own newest events replace its oldest.
            Some(events) if events.len() == KEEP_PER_CLIENT => {
                events.pop_front();
                events.push_back(event);
            }
            Some(events) if !full => {
                events.push_back(event);
                buffer.held += 1;
            }
            None if !full && clients < MAX_BUFFERED_CLIENTS => {
                buffer
                    .events
                    .insert(event.client_id.clone(), VecDeque::from([event]));
                buffer.held += 1;
            }
            _ => buffer.dropped += 1,
        }
    }

    /// Writes what is buffered to the store; returns how many events. Events
    /// the store refused are dropped: a trace is a diagnostic, and keeping
    /// them would let a failing database grow the buffer.
    pub async fn flush(&self, store: &dyn TraceStore) -> StoreResult<usize> {
        let _flushing = self.flushing.lock().await;
        let (events, dropped) = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            if buffer.events.is_empty() {
                return Ok(0);
            }
            let dropped = std::mem::take(&mut buffer.dropped);
            buffer.held = 0;
            (std::mem::take(&mut buffer.events), dropped)
        };
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "trace events dropped: too many clients between two flushes"
            );
        }
        let mut events: Vec<TraceEvent> = events.into_values().flatten().collect();
        // In order of time, so that the store's insertion order is the
        // events' order.
        events.sort_by_key(|e| e.at);
        store.record_trace(&events, KEEP_PER_CLIENT).await?;
        Ok(events.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;

    fn event(client: &str, at: UnixTime) -> TraceEvent {
        TraceEvent {
            client_id: client.into(),
            at,
            step: TraceStep {
                endpoint: TraceEndpoint::Token,
                flow: Some("client_credentials".into()),
                scope: None,
                from: None,
                outcome: TraceOutcome::Done {
                    detail: "issued an access token".into(),
                },
            },
        }
    }

    #[tokio::test]
    async fn the_buffer_and_the_store_keep_the_newest_events_of_each_client() {
        let tracer = Tracer::default();
        let store = MemoryStore::new();
        for at in 0..(KEEP_PER_CLIENT as i64 + 7) {
            tracer.record(event("a", at));
        }
        tracer.record(event("b", 1));
        assert_eq!(
            tracer.flush(&store).await.unwrap(),
            KEEP_PER_CLIENT + 1,
            "the buffer holds at most KEEP_PER_CLIENT of a client"
        );
        assert_eq!(tracer.flush(&store).await.unwrap(), 0, "flushed once");
        for at in 100..110 {
            tracer.record(event("a", at));
        }
        tracer.flush(&store).await.unwrap();
        let trace = store.trace("a", 1_000).await.unwrap();
        assert_eq!(trace.len(), KEEP_PER_CLIENT);
        assert_eq!(trace[0].at, 109, "newest first");
        assert_eq!(store.trace("b", 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_buffer_holds_a_bounded_number_of_events_in_all() {
        let tracer = Tracer::default();
        let clients = MAX_BUFFERED_EVENTS / KEEP_PER_CLIENT + 10;
        for client in 0..clients {
            for at in 0..KEEP_PER_CLIENT as i64 {
                tracer.record(event(&format!("c{client}"), at));
            }
        }
        let store = MemoryStore::new();
        assert_eq!(tracer.flush(&store).await.unwrap(), MAX_BUFFERED_EVENTS);
        // Room again after the flush.
        tracer.record(event("late", 1));
        assert_eq!(tracer.flush(&store).await.unwrap(), 1);
    }

    /// A store whose writes take a few turns of the scheduler.
    struct SlowStore(MemoryStore);

    #[async_trait::async_trait]
    impl TraceStore for SlowStore {
        async fn record_trace(&self, events: &[TraceEvent], keep: usize) -> StoreResult<()> {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            self.0.record_trace(events, keep).await
        }
        async fn trace(&self, client_id: &str, limit: usize) -> StoreResult<Vec<TraceEvent>> {
            self.0.trace(client_id, limit).await
        }
    }

    #[tokio::test]
    async fn a_flush_waits_for_the_one_under_way() {
        let tracer = std::sync::Arc::new(Tracer::default());
        let store = std::sync::Arc::new(SlowStore(MemoryStore::new()));
        tracer.record(event("a", 1));
        let periodic = tokio::spawn({
            let (tracer, store) = (tracer.clone(), store.clone());
            async move { tracer.flush(store.as_ref()).await }
        });
        // The periodic flush takes the buffer and is writing it.
        tokio::task::yield_now().await;
        // A reader's flush then finds nothing to write, but must not return
        // before the event is readable.
        tracer.flush(store.as_ref()).await.unwrap();
        assert_eq!(store.trace("a", 10).await.unwrap().len(), 1);
        assert_eq!(periodic.await.unwrap().unwrap(), 1);
    }

    #[test]
    fn reasons_read_as_words() {
        assert_eq!(
            reason_words("PkceVerifierMismatch"),
            "pkce verifier mismatch"
        );
        let refused = TraceOutcome::refused(&Error::new(
            crate::Reason::CodeReplayed,
            "the code was used before",
        ));
        assert_eq!(
            refused,
            TraceOutcome::Refused {
                error: "invalid_grant".into(),
                reason: "code replayed".into(),
                description: "the code was used before".into(),
            }
        );
    }
}
