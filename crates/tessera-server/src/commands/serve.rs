//! `tessera serve`

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Provider, SystemClock, catalog};

use tessera_store::IfMissing;

use super::{CommandError, CommandResult, open_store};
use crate::app::{AppState, app};
use crate::client_keys::HttpClientKeys;
use crate::config::Config;
use crate::connections::{self, open_files_limit};
use crate::issuer_keys::HttpIssuerKeys;

/// How often keys rotated elsewhere (the CLI, another instance) are picked up.
const KEY_REFRESH: Duration = Duration::from_secs(1);
// An emergency rotation's key must reach every instance's JWKS before it
// signs: at least one refresh (and a tick of lateness) before activation.
const _: () = assert!(2 * KEY_REFRESH.as_secs() <= tessera_core::keys::KEY_PROPAGATION as u64);
/// How often (in ticks of `KEY_REFRESH`) expired records are deleted: often
/// enough that each purge has little to do.
const PURGE_EVERY: u32 = 60;
/// How often the rotation schedule is checked.
const ROTATION_CHECK_EVERY: u32 = 60;

pub async fn serve(config: Config) -> CommandResult {
    let store = open_store(&config, IfMissing::Create).await?;
    let kek = match config.key_encryption_key()? {
        Some(kek) => kek,
        None => {
            // The default key file does not exist. A new database gets a new key;
            // one that already holds keys was sealed with another, and a new file
            // here would only leave a stray, useless key behind.
            let stored = store
                .signing_keys()
                .await
                .map_err(|e| CommandError(format!("cannot read the signing keys: {e}")))?;
            if !stored.is_empty() {
                return Err(CommandError(format!(
                    "the database holds {} signing key(s) but the key-encryption key file {} does not exist. \
                     Restore the key file that belongs to this database (it was created beside it), \
                     or give it with TESSERA_KEY_ENCRYPTION_KEY_FILE or TESSERA_KEY_ENCRYPTION_KEY",
                    stored.len(),
                    config
                        .default_key_file()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )));
            }
            config.create_default_key_encryption_key()?
        }
    };
    let client_keys = HttpClientKeys::new()
        .map_err(|e| CommandError(format!("cannot set up the HTTP client for jwks_uri: {e}")))?;
    let issuer_keys = HttpIssuerKeys::new().map_err(|e| {
        CommandError(format!(
            "cannot set up the HTTP client for trusted issuers' keys: {e}"
        ))
    })?;
    let provider = Arc::new(
        Provider::new(
            Arc::clone(&store),
            Arc::new(SystemClock),
            config.settings.clone(),
            kek,
        )
        .with_client_keys(Arc::new(client_keys))
        .with_issuer_keys(Arc::new(issuer_keys)),
    );
    let first_key = provider.start().await.map_err(|e| {
        CommandError(format!(
            "cannot load the signing keys: {e} (is the key-encryption key the one this database was created with?)"
        ))
    })?;
    provider
        .catalog()
        .sync()
        .await
        .map_err(|e| CommandError(format!("cannot read the catalogue version: {e}")))?;
    for key in first_key {
        tracing::info!(kid = %key.kid, alg = %key.alg, "generated a signing key");
    }

    let tls = match &config.tls {
        Some(files) => Some(
            crate::tls::ReloadingCertificate::load(files.clone())
                .map_err(|e| CommandError(format!("TLS: {e}")))?,
        ),
        None => None,
    };
    let acceptor = tls
        .as_ref()
        .map(crate::tls::ReloadingCertificate::acceptor)
        .transpose()
        .map_err(CommandError)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CommandError(format!("cannot listen on {}: {e}", config.listen)))?;
    let local = listener.local_addr()?;
    let issuer = &config.settings.issuer;
    tracing::info!(
        listen = %local,
        issuer = %issuer,
        discovery = %format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
        database = store.backend(),
        tls = tls.is_some(),
        max_connections = config.connections.max_connections,
        "tessera is ready"
    );
    if store.clients().await.map(|c| c.is_empty()).unwrap_or(false) {
        print_first_steps(issuer);
    }

    let limits = config.connections;
    if let Some(open_files) = open_files_limit()
        && u64::from(limits.max_connections) > open_files / 2
    {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_files,
            "max_connections leaves less than half the open-files limit for the database and logs; \
             raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
        );
    }

    let maintenance = tokio::spawn(maintain(Arc::clone(&provider)));
    let catalog_sync = tokio::spawn(sync_catalog(Arc::clone(&provider)));
    let housekeeping = tokio::spawn(keep_house(Arc::clone(&provider)));
    let tracing_flush = tokio::spawn(flush_trace(Arc::clone(&provider)));
    let router_provider = Arc::clone(&provider);
    let mut state = AppState::with_limits(provider, &config.rate_limits);
    let metrics_upkeep = state.metrics.clone().map(|metrics| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        })
    });
    let metrics_server = match (config.metrics_listen, state.metrics.take()) {
        (Some(address), Some(metrics)) => {
            let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                CommandError(format!("cannot listen on {address} (metrics_listen): {e}"))
            })?;
            tracing::info!(metrics_listen = %listener.local_addr()?, "serving /metrics");
            let router = crate::app::metrics_app(metrics, Arc::clone(&router_provider));
            Some(tokio::spawn(connections::serve(
                listener,
                router,
                limits,
                crate::client_address::TrustedProxies::default(),
                None,
                std::future::pending(),
            )))
        }
        (None, metrics) => {
            state.metrics = metrics;
            None
        }
        (Some(_), None) => None,
    };
    let mut router = app(state);
    if tls.is_some() {
        router = router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static(crate::tls::HSTS),
        ));
    }
    let tls_reload = tls.map(|certificate| tokio::spawn(reload_certificate(certificate)));
    let flusher = Arc::clone(&router_provider);
    connections::serve(
        listener,
        router,
        limits,
        config.trusted_proxies.clone(),
        acceptor,
        shutdown_signal(),
    )
    .await;
    maintenance.abort();
    catalog_sync.abort();
    housekeeping.abort();
    tracing_flush.abort();
    for task in metrics_upkeep
        .into_iter()
        .chain(metrics_server)
        .chain(tls_reload)
    {
        task.abort();
    }
    // What the last second traced.
    if let Err(e) = flusher.flush_trace().await {
        tracing::warn!(error = %e, "could not write the last trace events");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Background upkeep: pick up keys, rotate on schedule, purge expired records.
async fn maintain(provider: Arc<Provider>) {
    let mut tick = tokio::time::interval(KEY_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut count: u32 = 0;
    loop {
        tick.tick().await;
        count = count.wrapping_add(1);
        if let Err(e) = provider.keys().refresh(provider.store()).await {
            tracing::warn!(error = %e, "could not refresh signing keys; keeping the current ones");
        }
        if count.is_multiple_of(ROTATION_CHECK_EVERY) {
            match provider.maintain_keys().await {
                Ok(Some(key)) => {
                    tracing::info!(kid = %key.kid, alg = %key.alg, activates_at = key.activates_at, "scheduled key rotation: published the next key")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed"),
            }
        }
        if count.is_multiple_of(PURGE_EVERY) {
            match provider.store().purge_expired(provider.clock().now()).await {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "purged expired records"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
        }
    }
}

/// Takes a renewed certificate when its files change (see [`crate::tls`]).
async fn reload_certificate(certificate: Arc<crate::tls::ReloadingCertificate>) {
    let mut tick = tokio::time::interval(crate::tls::RELOAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match certificate.reload_if_changed() {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate changed but did not load; keeping the previous one")
            }
        }
    }
}

/// How often buffered trace events are written (see `tessera_core::trace`).
const TRACE_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes the clients' trace events off the request path.
async fn flush_trace(provider: Arc<Provider>) {
    let mut tick = tokio::time::interval(TRACE_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = provider.flush_trace().await {
            tracing::warn!(error = %e, "could not write trace events; they are dropped");
        }
    }
}

/// The database's own upkeep (SQLite's write-ahead log), on its own tick:
/// much more often than the rest of `maintain`.
async fn keep_house(provider: Arc<Provider>) {
    let mut tick = tokio::time::interval(tessera_core::store::HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match provider.store().housekeeping().await {
            Ok(()) => failing = false,
            // Once per outage, not ten times a second.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "database housekeeping failed");
            }
            Err(_) => {}
        }
    }
}

/// Keeps the in-memory catalogue (clients, resources, trusted issuers) in step
/// with the database: changes made by the CLI or another instance are seen
/// within `catalog::MAX_STALENESS`. While the database cannot be reached the
/// copy goes unused, so nothing stale is served meanwhile.
async fn sync_catalog(provider: Arc<Provider>) {
    let mut tick = tokio::time::interval(catalog::SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match provider.catalog().sync().await {
            Ok(changed) => {
                if changed {
                    tracing::debug!("catalogue changed; dropped the in-memory copy");
                }
                if std::mem::take(&mut failing) {
                    tracing::info!("catalogue version readable again");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read the catalogue version; reading clients from the database until it answers");
            }
            Err(_) => {}
        }
    }
}

/// The exact commands from an empty database to a verified token.
fn print_first_steps(issuer: &str) {
    let exe = std::env::args().next().unwrap_or_else(|| "tessera".into());
    let base = issuer.trim_end_matches('/');
    eprintln!(
        "\nNo clients yet. In another terminal, from this directory (or with the same TESSERA_* settings):\n\n  \
         {exe} client create --name demo --grant client_credentials --scope demo.read --json\n  \
         curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials {base}/oauth2/token\n  \
         {exe} token inspect ACCESS_TOKEN\n\n\
         Keys for verifiers: {base}/jwks.json\n"
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
