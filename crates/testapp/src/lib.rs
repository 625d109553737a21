//! The application being released in flagger-rs tests: an HTTP server with a version, a configurable error rate
//! and latency, and `/metrics` in the shapes of the mesh and ingress exporters Flagger's builtin queries read.
//!
//! Use it in-process with [`TestApp::spawn`], or as the `testapp` binary (see `testapp --help`).
//!
//! Endpoints:
//! * any path not listed below: the application. Answers `{"version","status","pod"}` JSON with status 200, or
//!   500 for the configured fraction of requests, after the configured latency; header `x-testapp-version`.
//!   Every such request is counted and recorded in the enabled telemetry shapes;
//! * `GET /healthz`: `ok`, not counted;
//! * `GET /metrics`: Prometheus text format; always `testapp_requests_total{version,code}` plus the shapes;
//! * `GET /stats`: `{"version","requests","errors"}` JSON;
//! * `POST /admin/config?error_rate=0.5&latency=60ms`: changes error rate and/or latency at run time.

pub mod cli;
pub mod exposition;
pub mod latency;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::latency::Latency;
use crate::telemetry::Recorder;
pub use crate::telemetry::{Labels, Telemetry};

/// The response header carrying the app's version.
pub const VERSION_HEADER: &str = "x-testapp-version";

/// How errors are spread over requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ErrorMode {
    /// Request n fails when floor(n·rate) > floor((n−1)·rate): exactly the rate over any run of requests,
    /// spread evenly (10% → every 10th request).
    #[default]
    Even,
    /// Each request fails independently with probability `rate`.
    Random,
}

/// Everything that shapes the app's behaviour.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one. Only loopback addresses make sense in tests.
    pub listen: SocketAddr,
    pub version: String,
    /// Fraction of requests answered 500, in `0.0..=1.0`.
    pub error_rate: f64,
    pub error_mode: ErrorMode,
    pub latency: Latency,
    pub telemetry: Vec<Telemetry>,
    pub labels: Labels,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            version: "1.0.0".to_string(),
            error_rate: 0.0,
            error_mode: ErrorMode::Even,
            latency: Latency::None,
            telemetry: vec![Telemetry::Kubernetes],
            labels: Labels::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("error rate {0} is not within 0..=1")]
    ErrorRate(f64),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Run-time adjustable behaviour.
#[derive(Debug)]
struct Behaviour {
    error_rate_ppm: u64,
    error_mode: ErrorMode,
    latency: Latency,
}

struct AppState {
    version: String,
    pod: String,
    behaviour: RwLock<Behaviour>,
    requests: AtomicU64,
    errors: AtomicU64,
    recorder: Recorder,
}

impl AppState {
    fn behaviour(&self) -> std::sync::RwLockReadGuard<'_, Behaviour> {
        self.behaviour
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn behaviour_mut(&self) -> std::sync::RwLockWriteGuard<'_, Behaviour> {
        self.behaviour
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn rate_ppm(rate: f64) -> Result<u64, Error> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::ErrorRate(rate));
    }
    // In range 0..=1e6 after the check above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((rate * 1e6).round() as u64)
}

/// Whether request number `n` (1-based) fails under `ErrorMode::Even` at `ppm` parts per million.
fn even_error(n: u64, ppm: u64) -> bool {
    let (n, ppm) = (u128::from(n), u128::from(ppm));
    n * ppm / 1_000_000 > (n - 1) * ppm / 1_000_000
}

/// A running app. Dropping it stops the server.
pub struct TestApp {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Binds `config.listen` and serves in a background task of the current tokio runtime.
    pub async fn spawn(config: Config) -> Result<Self, Error> {
        let behaviour = Behaviour {
            error_rate_ppm: rate_ppm(config.error_rate)?,
            error_mode: config.error_mode,
            latency: config.latency,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(AppState {
            pod: config.labels.pod.clone(),
            recorder: Recorder::new(&config.telemetry, config.labels, config.version.clone()),
            version: config.version,
            behaviour: RwLock::new(behaviour),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn version(&self) -> &str {
        &self.state.version
    }

    /// Application requests answered so far (health, metrics, stats and admin calls excluded).
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Application requests answered with 500 so far.
    pub fn error_count(&self) -> u64 {
        self.state.errors.load(Ordering::Relaxed)
    }

    pub fn set_error_rate(&self, rate: f64) -> Result<(), Error> {
        self.state.behaviour_mut().error_rate_ppm = rate_ppm(rate)?;
        Ok(())
    }

    pub fn set_latency(&self, latency: Latency) {
        self.state.behaviour_mut().latency = latency;
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/admin/config", post(admin_config))
        .fallback(serve)
        .with_state(state)
}

async fn serve(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let (fail, delay) = {
        let b = state.behaviour();
        let fail = match b.error_mode {
            ErrorMode::Even => even_error(n, b.error_rate_ppm),
            ErrorMode::Random => rand::random_range(0..1_000_000) < b.error_rate_ppm,
        };
        (fail, b.latency.sample(&mut rand::rng()))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = if fail {
        state.errors.fetch_add(1, Ordering::Relaxed);
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({ "version": state.version, "status": status.as_u16(), "pod": state.pod });
    state.recorder.record(status.as_u16(), started.elapsed());
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&state.version) {
        response.headers_mut().insert(VERSION_HEADER, v);
    }
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        state.recorder.encode(),
    )
}

async fn stats(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "version": state.version,
        "requests": state.requests.load(Ordering::Relaxed),
        "errors": state.errors.load(Ordering::Relaxed),
    }))
}

#[derive(Debug, serde::Deserialize)]
struct AdminQuery {
    error_rate: Option<f64>,
    latency: Option<String>,
}

async fn admin_config(State(state): State<Arc<AppState>>, Query(q): Query<AdminQuery>) -> Response {
    let latency = match q.latency.as_deref().map(str::parse::<Latency>).transpose() {
        Ok(l) => l,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let ppm = match q.error_rate.map(rate_ppm).transpose() {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut b = state.behaviour_mut();
    if let Some(ppm) = ppm {
        b.error_rate_ppm = ppm;
    }
    if let Some(latency) = latency {
        b.latency = latency;
    }
    let text = format!(
        "error_rate={} latency={}\n",
        b.error_rate_ppm as f64 / 1e6,
        b.latency
    );
    (StatusCode::OK, text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_errors_hit_the_exact_fraction() {
        let ppm = rate_ppm(0.1).unwrap();
        let fails: Vec<u64> = (1..=30).filter(|n| even_error(*n, ppm)).collect();
        assert_eq!(fails, vec![10, 20, 30]);
        let ppm = rate_ppm(0.25).unwrap();
        assert_eq!((1..=1000).filter(|n| even_error(*n, ppm)).count(), 250);
        assert!(!(1..=1000).any(|n| even_error(n, 0)));
        assert!((1..=1000).all(|n| even_error(n, 1_000_000)));
        assert!(rate_ppm(1.5).is_err());
        assert!(rate_ppm(-0.1).is_err());
    }
}
