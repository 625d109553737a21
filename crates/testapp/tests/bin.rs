//! The `testapp` binary: first stdout line is the address, it serves every shape, and it stops on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn binary_prints_its_address_serves_metrics_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testapp"))
        .args([
            "--telemetry",
            "all",
            "--namespace",
            "ns1",
            "--workload",
            "podinfo",
            "--app-version",
            "2.0.1",
        ])
        .args(["--error-rate", "0.5", "--nginx-canary", "ns1-podinfo-canary-80"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = first.parse().unwrap();
    assert!(addr.ip().is_loopback());
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = http.get(format!("{base}/anything")).send().await.unwrap();
        assert_eq!(r.headers()["x-testapp-version"], "2.0.1");
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes, vec![200, 500, 200, 500]);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"testapp_requests_total{version="2.0.1",code="500"} 2"#,
        r#"http_request_duration_seconds_count{kubernetes_namespace="ns1",kubernetes_pod_name="podinfo-"#,
        r#"istio_requests_total{reporter="destination","#,
        r#"destination_workload="podinfo",destination_workload_namespace="ns1","#,
        "istio_request_duration_milliseconds_bucket{",
        r#"response_total{direction="inbound",namespace="ns1",deployment="podinfo","#,
        r#"classification="failure"} 2"#,
        "response_latency_ms_bucket{",
        r#"envoy_cluster_upstream_rq{envoy_cluster_name="ns1_podinfo_80","#,
        "envoy_cluster_upstream_rq_time_bucket{",
        r#"nginx_ingress_controller_requests{canary="ns1-podinfo-canary-80","#,
        "nginx_ingress_controller_response_duration_seconds_sum{",
    ] {
        assert!(metrics.contains(expected), "missing {expected:?} in:\n{metrics}");
    }

    let set = http
        .post(format!("{base}/admin/config?error_rate=0"))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let bad = http
        .post(format!("{base}/admin/config?latency=fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        http.get(format!("{base}/x"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let stats: serde_json::Value = http
        .get(format!("{base}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 5);
    assert_eq!(stats["errors"], 2);

    let pid = child.id().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_app_applies_latency_and_counts_requests() {
    let config = testapp::Config {
        latency: "60ms".parse().unwrap(),
        telemetry: vec![testapp::Telemetry::Kubernetes],
        labels: testapp::Labels::new("ns2", "podinfo"),
        ..Default::default()
    };
    let app = testapp::TestApp::spawn(config).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = std::time::Instant::now();
    let r = http.get(app.url()).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(app.request_count(), 1);
    app.set_latency(testapp::Latency::None);
    app.set_error_rate(1.0).unwrap();
    assert_eq!(http.get(app.url()).send().await.unwrap().status().as_u16(), 500);
    assert_eq!((app.request_count(), app.error_count()), (2, 1));
    let metrics = http
        .get(format!("{}/metrics", app.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The 60ms request sits in the (0.05, 0.1] bucket, the immediate one below 5ms.
    assert!(
        metrics.contains(r#"path="/",status="200",le="0.05"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"path="/",status="200",le="0.1"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"path="/",status="500",le="0.005"} 1"#),
        "{metrics}"
    );
    app.shutdown().await.unwrap();
}
