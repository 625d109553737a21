//! The metric analysis core (`flagger-metrics`) against the real test-environment Prometheus scraping real
//! test apps: for each telemetry shape the app exports, the builtin queries rendered by `flagger-metrics`,
//! run through its Prometheus provider and classified by `evaluate`, see the app's known error rate and
//! latency; a target without traffic is classified as NoData.
//!
//! Needs `TESTENV_PROMETHEUS_URL` / `TESTENV_PROMETHEUS_SD_DIR` (`eval "$(cargo xtask testenv env)"`). Each
//! test uses its own namespace label value, so tests run in parallel against one Prometheus.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flagger_api::{Canary, CanaryMetric};
use flagger_metrics::outcome::Bound;
use flagger_metrics::{
    BuiltinMetric, Check, CheckKind, MetricModel, MetricProvider, Observer, Outcome, PrometheusConfig,
    PrometheusProvider, evaluate,
};
use testkit::prometheus::Prometheus;
use testkit::testapp::{Config, Latency, Telemetry, podinfo_canary_labels, spawn_scraped, unique_namespace};

/// How long scraping and rate windows may take to reflect the load.
const DEADLINE: Duration = Duration::from_secs(45);
/// The app's latency: every observation lands in the bucket (100, 250] ms (istio/envoy), (100, 200] ms
/// (linkerd) or (0.1, 0.25] s (podinfo) even with < 90ms of scheduling slack.
const LATENCY: Duration = Duration::from_millis(110);
const ERROR_RATE: f64 = 0.1;
const REQUESTS: u64 = 500;
/// Success rate tolerance in percentage points (rate() extrapolation noise).
const TOLERANCE: f64 = 1.0;

fn canary(namespace: &str) -> Canary {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80},
            "analysis": {"interval": "1m"}
        }
    }))
    .unwrap()
}

fn metric(json: serde_json::Value) -> CanaryMetric {
    serde_json::from_value(json).unwrap()
}

fn provider(prom: &Prometheus) -> Result<PrometheusProvider> {
    Ok(PrometheusProvider::new(PrometheusConfig::new(prom.url()))?)
}

/// Runs the builtin `metric` of `observer` through the provider until `accept` holds for the verdict or
/// the deadline passes; returns the last verdict.
async fn poll_check(
    provider: &PrometheusProvider,
    canary: &Canary,
    observer: Observer,
    metric_spec: &CanaryMetric,
    accept: impl Fn(&Outcome) -> bool,
) -> Result<Outcome> {
    let builtin = BuiltinMetric::from_name(&metric_spec.name).context("not a builtin metric")?;
    let model = MetricModel::new(canary, metric_spec);
    let query = observer.query(builtin, &model)?;
    let check = Check::new(
        CheckKind::Builtin {
            metric: builtin,
            observer,
            provider_key: format!("{observer:?}").to_lowercase(),
        },
        canary,
        metric_spec,
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let verdict = evaluate(&check, provider.run_query(&query).await.map_err(Into::into));
        if accept(&verdict.outcome) {
            eprintln!("{observer:?} {}: {}", builtin.name(), verdict.summary);
            return Ok(verdict.outcome);
        }
        if Instant::now() >= deadline {
            bail!(
                "{observer:?} {}: last verdict {verdict:?} for `{query}`",
                builtin.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One app exporting `shape` with 10% errors and 110ms latency; every observer reading that shape must see
/// a 90% success rate (failing `thresholdRange.min: 99`) and the expected duration in ms (passing
/// `thresholdRange.max: 500`).
/// The expected `request-duration` in milliseconds.
#[derive(Clone, Copy, Debug)]
enum Expected {
    /// A whole number (the observer truncates as Flagger's `int64` does) in `lo..=hi`: the top of the
    /// histogram bucket every request falls in (99% of it when all do; a request delayed into the next
    /// bucket by a loaded machine moves it up a little, still inside).
    WholeIn(f64, f64),
    Within(f64, f64),
}

impl Expected {
    fn accepts(self, ms: f64) -> bool {
        match self {
            Self::WholeIn(lo, hi) => ms.fract() == 0.0 && (lo..=hi).contains(&ms),
            Self::Within(lo, hi) => (lo..hi).contains(&ms),
        }
    }
}

async fn shape_reports_known_rate_and_latency(
    shape: Telemetry,
    checks: &[(Observer, Expected)],
) -> Result<()> {
    let prom = Prometheus::from_env()?;
    let ns = unique_namespace(&format!("ma-{shape}"));
    let config = Config {
        error_rate: ERROR_RATE,
        latency: Latency::Fixed(LATENCY),
        telemetry: vec![shape],
        labels: podinfo_canary_labels(&ns),
        ..Config::default()
    };
    let app = spawn_scraped(&prom, config).await?;
    app.load_until_scraped(&prom, REQUESTS, 100.0, DEADLINE).await?;
    ensure!(
        app.error_count() == REQUESTS / 10,
        "app answered {} errors",
        app.error_count()
    );

    let provider = provider(&prom)?;
    provider.is_online().await?;
    let canary = canary(&ns);
    let success = metric(serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}));
    let duration = metric(serde_json::json!({"name": "request-duration", "thresholdRange": {"max": 500}}));
    for (observer, expected) in checks {
        let outcome = poll_check(&provider, &canary, *observer, &success, |o| {
            matches!(o, Outcome::Fail { value, bound: Bound::Min(m) } if (value - 90.0).abs() <= TOLERANCE && *m == 99.0)
        })
        .await?;
        eprintln!("{shape} {observer:?} request-success-rate {outcome:?} (expected 90 ± {TOLERANCE})");

        let outcome = poll_check(
            &provider,
            &canary,
            *observer,
            &duration,
            |o| matches!(o, Outcome::Pass { value } if expected.accepts(*value)),
        )
        .await?;
        eprintln!("{shape} {observer:?} request-duration {outcome:?} (expected {expected:?} ms)");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_shape() -> Result<()> {
    // histogram_quantile(0.99) in (0.1, 0.25] s = 0.2485 s; the HTTP observer takes int64(0.2485 * 1000).
    shape_reports_known_rate_and_latency(
        Telemetry::Kubernetes,
        &[(Observer::Http, Expected::WholeIn(240.0, 250.0))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_shape() -> Result<()> {
    // p99 in (100, 250] ms = 248.5 ms, truncated to 248.
    shape_reports_known_rate_and_latency(
        Telemetry::Istio,
        &[(Observer::Istio, Expected::WholeIn(240.0, 250.0))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkerd_shape() -> Result<()> {
    // p99 in (100, 200] ms = 199 ms.
    shape_reports_known_rate_and_latency(
        Telemetry::Linkerd,
        &[(Observer::Linkerd, Expected::WholeIn(190.0, 200.0))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_shape_for_contour_appmesh_and_kuma() -> Result<()> {
    shape_reports_known_rate_and_latency(
        Telemetry::Envoy,
        &[
            (Observer::Contour, Expected::WholeIn(240.0, 250.0)),
            (Observer::AppMesh, Expected::WholeIn(240.0, 250.0)),
            (Observer::Kuma, Expected::WholeIn(240.0, 250.0)),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_shape() -> Result<()> {
    // nginx's duration is an average (sum / count * 1000): the latency itself plus slack.
    shape_reports_known_rate_and_latency(
        Telemetry::Nginx,
        &[(Observer::Nginx, Expected::Within(110.0, 200.0))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_traffic_is_no_data() -> Result<()> {
    let prom = Prometheus::from_env()?;
    let ns = unique_namespace("ma-idle");
    let config = Config {
        telemetry: Telemetry::ALL.to_vec(),
        labels: podinfo_canary_labels(&ns),
        ..Config::default()
    };
    let app = spawn_scraped(&prom, config).await?;
    // Scraped at least twice, so a rate over the app's series exists and is 0 (0/0 = NaN) if the series
    // are exported before any request, or the selection is empty if they are not: NoData either way.
    let q = format!("count_over_time(up{{{}}}[1m])", app.target.selector());
    prom.wait_for_query(&q, DEADLINE, |s| s.len() == 1 && s[0].value >= 2.0)
        .await?;
    let provider = provider(&prom)?;
    let canary = canary(&ns);
    for observer in [
        Observer::Http,
        Observer::Istio,
        Observer::Linkerd,
        Observer::Contour,
        Observer::Nginx,
    ] {
        for name in ["request-success-rate", "request-duration"] {
            let m = metric(serde_json::json!({"name": name, "thresholdRange": {"min": 99, "max": 500}}));
            let outcome = poll_check(&provider, &canary, observer, &m, |o| {
                matches!(o, Outcome::NoData { .. })
            })
            .await?;
            eprintln!("idle {observer:?} {name}: {outcome:?}");
        }
    }
    ensure!(
        app.request_count() == 0,
        "the idle app got {} requests",
        app.request_count()
    );
    Ok(())
}
