//! The built-in hey against a real test app, counted by the app itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use flagger_loadtester::hey;
use serde_json::json;
use testkit::testapp::{Config as AppConfig, spawn};
use tokio_util::sync::CancellationToken;

fn options(cmd: &str) -> hey::Options {
    match hey::plan(cmd).unwrap() {
        hey::Plan::Native(o) => *o,
        hey::Plan::Shell => panic!("{cmd} is not native"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_task_hey_sends_the_rate_it_was_asked_for() {
    let app = spawn(AppConfig::default()).await.unwrap();
    let lt = start().await;
    let cmd = format!("hey -z 2s -c 2 -q 10 http://{}/", app.addr());
    assert_eq!(
        post(&lt.url("/"), &payload("test", json!({"cmd": cmd}))).await,
        (202, String::new())
    );
    wait_metric(
        &lt,
        r#"flagger_loadtester_tasks_total{type="cmd",result="ok"}"#,
        1.0,
        Duration::from_secs(15),
    )
    .await;
    // 2 workers x 10 requests/s x 2 s. The rate limit is the upper bound; a loaded machine can only lose
    // ticks, so the lower bound is loose.
    let sent = app.request_count();
    assert!(
        (25..=46).contains(&sent),
        "the app saw {sent} requests, expected at most 40 + 15% and not far below 40"
    );
    lt.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_matches_what_the_app_saw() {
    let app = spawn(AppConfig {
        error_rate: 0.25,
        ..AppConfig::default()
    })
    .await
    .unwrap();
    let opts = options(&format!(
        "hey -n 200 -c 4 -m POST -d hello http://{}/",
        app.addr()
    ));
    let report = hey::run(&opts, &CancellationToken::new()).await.unwrap();
    assert_eq!(app.request_count(), 200);
    assert_eq!(report.responses, 200);
    assert_eq!(report.status_codes.get(&200), Some(&150));
    assert_eq!(report.status_codes.get(&500), Some(&50));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.latencies.len(), 200);
    let summary = report.summary();
    assert!(summary.starts_with("\nSummary:\n  Total:\t"), "{summary}");
    for needle in [
        "  Requests/sec:\t",
        "\nResponse time histogram:\n",
        "\nLatency distribution:\n  10%% in ",
        "\n  99%% in ",
        "\nStatus code distribution:\n  [200]\t150 responses\n  [500]\t50 responses\n",
    ] {
        assert!(summary.contains(needle), "{needle:?} missing in\n{summary}");
    }
    assert!(report.percentile(99).unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_counted_like_hey() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = options(&format!("hey -n 4 -c 2 http://127.0.0.1:{port}/x"));
    let report = hey::run(&opts, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.responses, 4);
    assert!(report.status_codes.is_empty());
    let (error, count) = report.errors.iter().next().unwrap();
    assert_eq!(*count, 4);
    assert!(
        error.starts_with(&format!("Get \"http://127.0.0.1:{port}/x\": ")),
        "{error}"
    );
    assert!(report.summary().contains(&format!(
        "Error distribution:\n  [4]\tGet \"http://127.0.0.1:{port}/x\": "
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_task_returns_the_summary() {
    let app = spawn(AppConfig::default()).await.unwrap();
    let lt = start().await;
    let cmd = format!("hey -n 20 -c 2 http://{}/", app.addr());
    let (status, body) = post(
        &lt.url("/"),
        &payload(
            "test",
            json!({"type": "bash", "cmd": cmd, "returnCmdOutput": "true"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.request_count(), 20);
    assert!(
        body.contains("Status code distribution:\n  [200]\t20 responses"),
        "{body}"
    );
    lt.shutdown().await.unwrap();
}
