//! The operator's /metrics as the test environment's real Prometheus scrapes it: Flagger's series names,
//! labels and values arrive intact (whatever exposition format Prometheus negotiates).

use std::sync::Arc;
use std::time::Duration;

use flagger_api::CanaryPhase;
use flagger_telemetry::{AnalysisStatus, DeploymentStrategy, OperatorMetrics, Readiness};
use prometheus_client::registry::Registry;
use testkit::prometheus::Prometheus;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn prometheus_scrapes_flaggers_operator_metrics() {
    let prom = Prometheus::from_env().unwrap();
    let mut registry = Registry::default();
    let metrics = OperatorMetrics::register(&mut registry);
    flagger_telemetry::process::register(&mut registry);
    metrics.set_info("1.44.0", "kubernetes");
    metrics.set_total("apps", 2);
    metrics.set_status("podinfo", "apps", CanaryPhase::Progressing);
    metrics.set_status("backend", "apps", CanaryPhase::Failed);
    metrics.set_weight("podinfo", "apps", 70, 30);
    metrics.set_analysis("podinfo", "apps", "request-success-rate", 99.5);
    metrics.observe_duration("podinfo", "apps", Duration::from_millis(30));
    metrics.inc_success(
        "podinfo",
        "apps",
        DeploymentStrategy::Canary,
        AnalysisStatus::Completed,
    );
    metrics.inc_failure(
        "backend",
        "apps",
        DeploymentStrategy::BlueGreen,
        AnalysisStatus::Completed,
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = flagger_telemetry::router(Arc::new(registry), Readiness::new());
    let server = tokio::spawn(flagger_telemetry::serve(listener, app, std::future::pending()));

    let target = prom.register_target("flagger-operator", addr, &[]).unwrap();
    target.wait_until_up(TIMEOUT).await.unwrap();
    let sel = target.selector();
    let value = |q: String| {
        let prom = prom.clone();
        async move { prom.wait_for_value(&q, TIMEOUT).await.unwrap() }
    };

    assert_eq!(
        value(format!(
            r#"flagger_info{{{sel},version="1.44.0",mesh_provider="kubernetes"}}"#
        ))
        .await,
        1.0
    );
    assert_eq!(
        value(format!(r#"flagger_canary_total{{{sel},namespace="apps"}}"#)).await,
        2.0
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_status{{{sel},name="podinfo",namespace="apps"}}"#
        ))
        .await,
        0.0
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_status{{{sel},name="backend",namespace="apps"}}"#
        ))
        .await,
        2.0
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_weight{{{sel},workload="podinfo-primary"}}"#
        ))
        .await,
        70.0
    );
    assert_eq!(
        value(format!(r#"flagger_canary_weight{{{sel},workload="podinfo"}}"#)).await,
        30.0
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_metric_analysis{{{sel},metric="request-success-rate"}}"#
        ))
        .await,
        99.5
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_successes_total{{{sel},name="podinfo",namespace="apps",deployment_strategy="canary",analysis_status="completed"}}"#
        ))
        .await,
        1.0
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_failures_total{{{sel},name="backend",deployment_strategy="blue-green"}}"#
        ))
        .await,
        1.0
    );
    assert_eq!(
        value(format!(
            r#"flagger_canary_duration_seconds_count{{{sel},name="podinfo"}}"#
        ))
        .await,
        1.0
    );
    // Flagger's dashboard query shape: a quantile over the buckets.
    let p50 = value(format!(
        r#"histogram_quantile(0.5, sum(flagger_canary_duration_seconds_bucket{{{sel}}}) by (le))"#
    ))
    .await;
    assert!((0.025..=0.05).contains(&p50), "p50 {p50}");
    assert!(value(format!("process_resident_memory_bytes{{{sel}}}")).await > 0.0);
    assert!(value(format!("process_start_time_seconds{{{sel}}}")).await > 1.0e9);

    drop(target);
    server.abort();
}
