//! Test helpers: canaries, local receivers and a recording proxy, all on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flagger_api::Canary;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A canary `podinfo` in `test` targeting Deployment `podinfo`, with the given analysis.
pub fn canary(analysis: Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-app"},
            "progressDeadlineSeconds": 60,
            "service": {"port": 9898},
            "analysis": analysis,
        }
    }))
    .unwrap()
}

/// Polls `cond` every 10ms until it holds; panics after `deadline`.
pub async fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A request as seen by [`RecordingProxy`].
#[derive(Clone, Debug)]
pub struct Recorded {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A stand-in HTTP proxy: records every request (request line, headers, body) and answers 200 without
/// forwarding anything.
pub struct RecordingProxy {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl RecordingProxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                        if let Some(end) = head_end {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            let mut lines = head.split("\r\n");
                            let request_line = lines.next().unwrap_or_default().to_owned();
                            let headers: Vec<(String, String)> = lines
                                .filter_map(|l| l.split_once(':'))
                                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                                .collect();
                            let len: usize = headers
                                .iter()
                                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                                .map(|(_, v)| v.parse().unwrap())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                let body = buf[end + 4..end + 4 + len].to_vec();
                                recorded.lock().unwrap().push(Recorded {
                                    request_line,
                                    headers,
                                    body,
                                });
                                let _ = stream
                                    .write_all(
                                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                                    )
                                    .await;
                                return;
                            }
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Self { url, requests }
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// A receiver that accepts connections and never answers; returns its URL and the number of
/// connections accepted.
pub async fn silent_receiver() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            *count.lock().unwrap() += 1;
            held.push(stream);
        }
    });
    (url, accepted)
}
