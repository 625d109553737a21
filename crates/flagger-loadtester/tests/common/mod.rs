//! Shared helpers: an in-process load tester, JSON posts, metric reads.
#![allow(dead_code)]

use std::time::Duration;

use flagger_loadtester::{Config, GateStore, LoadTester};
use serde_json::{Value, json};

/// A load tester on a free loopback port with Flagger's defaults and `gates`.
pub async fn start_with(gates: GateStore) -> LoadTester {
    let mut config = Config::new(([127, 0, 0, 1], 0).into());
    config.gates = gates;
    LoadTester::start(config).await.unwrap()
}

/// A load tester with in-memory gates.
pub async fn start() -> LoadTester {
    start_with(GateStore::memory()).await
}

/// `(status, body)` of a POST of `body` (raw bytes) to `url`.
pub async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let resp = reqwest::Client::new().post(url).body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// `(status, body)` of a POST of `body` as JSON to `url`.
pub async fn post(url: &str, body: &Value) -> (u16, String) {
    post_raw(url, serde_json::to_vec(body).unwrap()).await
}

/// `(status, body)` of a GET.
pub async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Flagger's webhook payload for canary `podinfo` in `namespace` with `metadata`.
pub fn payload(namespace: &str, metadata: Value) -> Value {
    json!({"name": "podinfo", "namespace": namespace, "phase": "Progressing", "checksum": "abc", "metadata": metadata})
}

/// The value of the sample `name{labels}` on `/metrics` (exact label text, e.g. `result="ok",type="cmd"`),
/// 0 when absent.
pub async fn metric(lt: &LoadTester, sample: &str) -> f64 {
    let (_, text) = get(&lt.url("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `metric(sample) == value`.
pub async fn wait_metric(lt: &LoadTester, sample: &str, value: f64, timeout: Duration) {
    testkit::kube::poll(&format!("{sample} == {value}"), timeout, || async {
        let v = metric(lt, sample).await;
        Ok(if v == value { Ok(()) } else { Err(v) })
    })
    .await
    .unwrap();
}
