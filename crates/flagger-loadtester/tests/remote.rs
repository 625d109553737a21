//! Concord and nGrinder tasks against local servers speaking their REST APIs; the tests assert the exact
//! requests the load tester sends.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use common::*;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Request {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: String,
}

type Script = Arc<dyn Fn(&Request, usize) -> Value + Send + Sync>;

/// A server that records every request and answers `script(request, index of the request)`.
async fn server(script: Script) -> (String, Arc<Mutex<Vec<Request>>>) {
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let record = seen.clone();
    let app =
        axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            let script = script.clone();
            async move {
                let req = Request {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let mut all = record.lock().unwrap();
                let answer = script(&req, all.len());
                all.push(req);
                axum::Json(answer)
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn header(r: &Request, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concord_process_started_and_polled_until_finished() {
    let (url, seen) = server(Arc::new(|r: &Request, i| match (r.method.as_str(), i) {
        ("POST", _) => json!({"instanceId": "abc-1", "ok": true}),
        (_, 1) => json!({"instanceId": "abc-1", "status": "RUNNING"}),
        _ => json!({"instanceId": "abc-1", "status": "FINISHED"}),
    }))
    .await;
    let key = std::env::temp_dir().join(format!("lt-concord-key-{}", std::process::id()));
    std::fs::write(&key, "secret-key\n").unwrap();
    let lt = start().await;
    let task = payload(
        "test",
        json!({
            "type": "concord", "server": url, "org": "my-org", "project": "my-project", "repo": "my-repo",
            "entrypoint": "loadtest", "apiKeyPath": key.to_str().unwrap(), "endpoint": "http://podinfo-canary.test:9898",
            "pollInterval": "1", "pollTimeout": "20", "arguments.users": "10"
        }),
    );
    assert_eq!(post(&lt.url("/"), &task).await, (200, String::new()));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let start = &seen[0];
    assert_eq!(
        (start.method.as_str(), start.uri.as_str()),
        ("POST", "/api/v1/process")
    );
    assert_eq!(header(start, "authorization"), "secret-key");
    let content_type = header(start, "content-type");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let field = |name: &str, value: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let expected = [
        field("org", "my-org"),
        field("project", "my-project"),
        field("repo", "my-repo"),
        field("entryPoint", "loadtest"),
        field("arguments.endpoint", "http://podinfo-canary.test:9898"),
        field("arguments.users", "10"),
        format!("--{boundary}--\r\n"),
    ]
    .concat();
    assert_eq!(start.body, expected);
    for poll in &seen[1..] {
        assert_eq!(
            (poll.method.as_str(), poll.uri.as_str()),
            ("GET", "/api/v1/process/abc-1")
        );
        assert_eq!(header(poll, "authorization"), "secret-key");
    }
    lt.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concord_failure_is_a_500() {
    let (url, _seen) = server(Arc::new(|r: &Request, _| match r.method.as_str() {
        "POST" => json!({"instanceId": "abc-2", "ok": true}),
        _ => json!({"instanceId": "abc-2", "status": "FAILED"}),
    }))
    .await;
    let key = std::env::temp_dir().join(format!("lt-concord-key2-{}", std::process::id()));
    std::fs::write(&key, "k").unwrap();
    let lt = start().await;
    let task = payload(
        "test",
        json!({
            "type": "concord", "server": url, "org": "o", "project": "p", "repo": "r", "entrypoint": "e",
            "apiKeyPath": key.to_str().unwrap(), "endpoint": "x", "pollInterval": "1"
        }),
    );
    assert_eq!(
        post(&lt.url("/"), &task).await,
        (500, "concord instanceID: abc-2 failed".to_owned())
    );
    lt.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ngrinder_test_cloned_started_and_polled() {
    let (url, seen) = server(Arc::new(|r: &Request, i| match (r.method.as_str(), i) {
        ("POST", _) => json!({"success": true, "id": 42}),
        (_, 1) => json!({"status": [{"status_id": "TESTING"}]}),
        _ => json!({"status": [{"status_id": "FINISHED"}]}),
    }))
    .await;
    let lt = start().await;
    let task = payload(
        "test",
        json!({"type": "ngrinder", "server": url, "clone": "7", "username": "admin", "passwd": "cGFzc3dk", "pollInterval": "100ms"}),
    );
    assert_eq!(post(&lt.url("/"), &task).await, (202, String::new()));
    wait_metric(
        &lt,
        r#"flagger_loadtester_tasks_total{type="ngrinder",result="ok"}"#,
        1.0,
        Duration::from_secs(10),
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let calls: Vec<(&str, &str)> = seen.iter().map(|r| (r.method.as_str(), r.uri.as_str())).collect();
    assert_eq!(
        calls,
        [
            ("POST", "/perftest/api/7/clone_and_start"),
            ("GET", "/perftest/api/42/status"),
            ("GET", "/perftest/api/42/status")
        ]
    );
    // admin:passwd
    assert!(
        seen.iter()
            .all(|r| header(r, "authorization") == "Basic YWRtaW46cGFzc3dk")
    );
    lt.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ngrinder_test_stopped_on_timeout() {
    let (url, seen) = server(Arc::new(|r: &Request, _| match r.method.as_str() {
        "POST" => json!({"success": true, "id": 43}),
        "PUT" => json!({"success": true}),
        _ => json!({"status": [{"status_id": "TESTING"}]}),
    }))
    .await;
    let lt = start().await;
    let task = payload(
        "test",
        json!({"type": "ngrinder", "server": url, "clone": "7", "username": "admin", "passwd": "cGFzc3dk",
               "pollInterval": "100ms", "timeout": "700ms"}),
    );
    assert_eq!(post(&lt.url("/"), &task).await.0, 202);
    wait_metric(
        &lt,
        r#"flagger_loadtester_tasks_total{type="ngrinder",result="failed"}"#,
        1.0,
        Duration::from_secs(10),
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.uri.as_str()),
        ("PUT", "/perftest/api/43?action=stop")
    );
    assert!(
        seen.iter().filter(|r| r.method == "GET").count() >= 3,
        "{seen:#?}"
    );
    lt.shutdown().await.unwrap();
}
