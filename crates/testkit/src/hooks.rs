//! A webhook receiver on loopback that records every call and answers with a status the test sets per
//! path: load tests, gates and rollback hooks as Flagger calls them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;

use crate::kube::poll;

/// One recorded call.
#[derive(Clone, Debug)]
pub struct Call {
    /// The path, without the leading `/`.
    pub path: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    statuses: HashMap<String, u16>,
}

/// The receiver. Cheap to clone; the server stops when the test's runtime ends.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, Path(path): Path<String>, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
    let status = inner.statuses.get(&path).copied().unwrap_or(200);
    inner.calls.push(Call {
        path,
        body,
        at: Instant::now(),
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1` at a free port. Every path answers 200 until told otherwise.
    pub async fn start() -> Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The URL of `path` (e.g. `gate/check`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Makes `path` answer `status` from now on.
    pub fn set_status(&self, path: &str, status: u16) {
        self.lock().statuses.insert(path.to_string(), status);
    }

    /// All calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls to `path` so far.
    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.path == path).collect()
    }

    /// Waits until `path` was called at least `n` times.
    pub async fn wait_for_calls(&self, path: &str, n: usize, timeout: Duration) -> Result<Vec<Call>> {
        poll(&format!("{n} calls to /{path}"), timeout, || async {
            let calls = self.calls_to(path);
            Ok(if calls.len() >= n {
                Ok(calls)
            } else {
                Err(calls.len())
            })
        })
        .await
    }
}
