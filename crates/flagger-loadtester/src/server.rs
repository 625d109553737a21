//! The HTTP API, with Flagger's load tester's paths, status codes and bodies (see the crate docs), and the
//! [`LoadTester`] handle that runs it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use prometheus_client::registry::Registry;
use regex::Regex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::gate::GateStore;
use crate::metrics::Metrics;
use crate::payload::Payload;
use crate::tasks::Runner;

/// How long in-flight requests may take to finish after shutdown starts (Flagger's value).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// Everything the load tester needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`-port`); port 0 picks a free one.
    pub listen: SocketAddr,
    /// Task timeout (`-timeout`).
    pub timeout: Duration,
    /// Only canaries in namespaces matching this (unanchored, as Go's `MatchString`) may use the API
    /// (`-namespace-regexp`).
    pub namespace_regexp: Option<Regex>,
    /// Gate storage (`-gate-store`).
    pub gates: GateStore,
}

impl Config {
    /// Flagger's defaults on `listen`: 1h timeout, every namespace allowed, gates in memory.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            timeout: Duration::from_secs(3600),
            namespace_regexp: None,
            gates: GateStore::memory(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    gates: GateStore,
    namespace_regexp: Option<Arc<Regex>>,
    runner: Runner,
    metrics: Metrics,
}

fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body: Vec<u8> = body.into();
    if body.is_empty() {
        return status.into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn forbidden() -> Response {
    text(403, "Forbidden")
}

impl AppState {
    /// Decodes and authorizes the body, or answers 400 / 403.
    fn payload(&self, body: &[u8]) -> Result<Payload, Box<Response>> {
        let payload = Payload::from_slice(body).map_err(|e| {
            tracing::error!("decoding the request body failed: {e}");
            Box::new(text(400, format!("decoding the request body failed: {e}")))
        })?;
        let allowed = self
            .namespace_regexp
            .as_ref()
            .is_none_or(|re| re.is_match(&payload.namespace));
        if !allowed {
            return Err(Box::new(forbidden()));
        }
        Ok(payload)
    }
}

/// Which gate an endpoint works on.
#[derive(Clone, Copy)]
enum Gate {
    Promotion,
    Rollback,
}

impl Gate {
    fn key(self, p: &Payload) -> String {
        match self {
            Self::Promotion => p.canary(),
            Self::Rollback => format!("rollback.{}", p.canary()),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Promotion => "gate",
            Self::Rollback => "rollback",
        }
    }
}

async fn check(state: &AppState, gate: Gate, body: &[u8]) -> Response {
    let payload = match state.payload(body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = gate.key(&payload);
    match state.gates.is_open(&key).await {
        Ok(approved) => {
            tracing::info!("{key} {} check: approved {approved}", gate.label());
            state.metrics.gate_check(gate.label(), approved);
            if approved {
                text(200, "Approved")
            } else {
                forbidden()
            }
        }
        Err(e) => {
            tracing::error!("{key} {} check failed: {e}", gate.label());
            text(500, e.to_string())
        }
    }
}

async fn set(state: &AppState, gate: Gate, open: bool, body: &[u8]) -> Response {
    let payload = match state.payload(body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = gate.key(&payload);
    match state.gates.set(&key, open).await {
        Ok(()) => {
            let what = if open { "opened" } else { "closed" };
            tracing::info!("{key} {} {what}", gate.label());
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => {
            tracing::error!("{key}: {e}");
            text(500, e.to_string())
        }
    }
}

async fn task(State(state): State<AppState>, body: Bytes) -> Response {
    let payload = match state.payload(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if payload.metadata.is_empty() {
        return text(400, "metadata not found in payload");
    }
    let answer = state.runner.handle(&payload.canary(), &payload.metadata).await;
    text(answer.status, answer.body)
}

/// The load tester's router (without `/metrics`, `/healthz` and `/readyz`, see [`LoadTester::start`]).
fn router(state: AppState) -> Router {
    use Gate::{Promotion, Rollback};
    Router::new()
        .route("/gate/approve", any(|| async { text(200, "OK") }))
        .route("/gate/halt", any(|| async { forbidden() }))
        .route(
            "/gate/check",
            any(|State(s): State<AppState>, b: Bytes| async move { check(&s, Promotion, &b).await }),
        )
        .route(
            "/gate/open",
            any(|State(s): State<AppState>, b: Bytes| async move { set(&s, Promotion, true, &b).await }),
        )
        .route(
            "/gate/close",
            any(|State(s): State<AppState>, b: Bytes| async move { set(&s, Promotion, false, &b).await }),
        )
        .route(
            "/rollback/check",
            any(|State(s): State<AppState>, b: Bytes| async move { check(&s, Rollback, &b).await }),
        )
        .route(
            "/rollback/open",
            any(|State(s): State<AppState>, b: Bytes| async move { set(&s, Rollback, true, &b).await }),
        )
        .route(
            "/rollback/close",
            any(|State(s): State<AppState>, b: Bytes| async move { set(&s, Rollback, false, &b).await }),
        )
        .fallback(task)
        .with_state(state)
}

/// A running load tester.
pub struct LoadTester {
    addr: SocketAddr,
    stop: CancellationToken,
    kill: CancellationToken,
    runner: Runner,
    server: JoinHandle<std::io::Result<()>>,
}

impl LoadTester {
    /// Binds `config.listen` and serves in the background of the current tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        Self::serve(listener, config)
    }

    /// Serves on an already bound listener.
    pub fn serve(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let kill = CancellationToken::new();
        let runner = Runner::new(config.timeout, kill.clone(), metrics.clone());
        let state = AppState {
            gates: config.gates,
            namespace_regexp: config.namespace_regexp.map(Arc::new),
            runner: runner.clone(),
            metrics,
        };
        let readiness = flagger_telemetry::Readiness::new();
        readiness.set_ready(true);
        let app = router(state).merge(flagger_telemetry::router(Arc::new(registry), readiness));
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let server = tokio::spawn(flagger_telemetry::serve(listener, app, async move {
            shutdown.cancelled().await;
        }));
        Ok(Self {
            addr,
            stop,
            kill,
            runner,
            server,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish (up to [`SHUTDOWN_GRACE`]), then kills
    /// the background tasks still running and waits for them.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.stop.cancel();
        let mut server = self.server;
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(joined) => joined.map_err(std::io::Error::other).and_then(|r| r),
            Err(_) => {
                tracing::error!(
                    "HTTP server graceful shutdown failed: requests still running after {SHUTDOWN_GRACE:?}"
                );
                server.abort();
                Ok(())
            }
        };
        self.kill.cancel();
        self.runner.wait().await;
        tracing::info!("HTTP server stopped");
        served
    }
}
