//! The operator's HTTP endpoints (Flagger's `pkg/server`, plus a readiness probe).
//!
//! * `GET /metrics`: the registry in the classic Prometheus text format 0.0.4 (`text/plain; version=0.0.4`),
//!   which is what Flagger's `promhttp.Handler()` serves. A scraper that asks for OpenMetrics in `Accept`
//!   (Prometheus 2.x does, by preference) gets `application/openmetrics-text; version=1.0.0`. Both carry the
//!   same sample names (`flagger_canary_successes_total`, `flagger_canary_duration_seconds_bucket`, ...), so
//!   Flagger's Grafana dashboards and alert rules work either way; only the `# TYPE` line of counters differs
//!   (`..._total` in 0.0.4, bare in OpenMetrics), which Prometheus handles.
//! * `GET /healthz`: `200 OK`, body `OK`, as Flagger (liveness: the process serves HTTP).
//! * `GET /readyz` (new in flagger-rs): `200 OK` once [`Readiness::set_ready`] was called (the binary does this
//!   when its informer caches have synced), `503` with `not ready` before. It does **not** depend on
//!   leadership: a standby replica with synced caches is ready, so rolling updates of a multi-replica
//!   Deployment progress and a standby can take over at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Shared readiness flag behind `/readyz`. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the operator ready (caches synced) or not.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "OK" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, readiness })
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let is_om = parts.next() == Some("application/openmetrics-text");
            // `q=0` means "not acceptable".
            is_om && !parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0")
        })
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut body = String::new();
    let (result, content_type) = if wants_openmetrics(&headers) {
        (text::encode(&mut body, &state.registry), OPENMETRICS_CONTENT_TYPE)
    } else {
        (
            prometheus_text::encode(&mut body, &state.registry),
            prometheus_text::CONTENT_TYPE,
        )
    };
    match result {
        Ok(()) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "failed to encode metrics").into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.readiness.is_ready() {
        (StatusCode::OK, "OK").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::OperatorMetrics;

    async fn start() -> (
        String,
        Readiness,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let mut registry = Registry::default();
        let metrics = OperatorMetrics::register(&mut registry);
        crate::process::register(&mut registry);
        metrics.set_info("1.44.0", "kubernetes");
        let readiness = Readiness::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(Arc::new(registry), readiness.clone());
        let task = tokio::spawn(async move {
            serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (base, readiness, stop, task)
    }

    #[tokio::test]
    async fn healthz_readyz_and_metrics() {
        let (base, readiness, stop, task) = start().await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();

        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(health.text().await.unwrap(), "OK");

        let not_ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(not_ready.status(), 503);
        readiness.set_ready(true);
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.text().await.unwrap(), "OK");

        let classic = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(classic.status(), 200);
        assert_eq!(
            classic.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = classic.text().await.unwrap();
        assert!(
            body.lines()
                .any(|l| l == r#"flagger_info{version="1.44.0",mesh_provider="kubernetes"} 1"#),
            "{body}"
        );
        assert!(
            body.contains("# TYPE process_cpu_seconds_total counter"),
            "{body}"
        );
        assert!(!body.contains("# EOF"), "{body}");

        // What Prometheus 2.x sends: OpenMetrics preferred.
        let om = http
            .get(format!("{base}/metrics"))
            .header(
                header::ACCEPT,
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                 text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(om.headers()[header::CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        let body = om.text().await.unwrap();
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(body.contains("# TYPE flagger_info gauge"), "{body}");

        let missing = http.get(format!("{base}/nope")).send().await.unwrap();
        assert_eq!(missing.status(), 404);

        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn accept_negotiation() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            wants_openmetrics(&h)
        };
        assert!(accept("application/openmetrics-text; version=1.0.0"));
        assert!(!accept("text/plain"));
        assert!(!accept("*/*"));
        assert!(!accept("application/openmetrics-text;q=0, text/plain"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
