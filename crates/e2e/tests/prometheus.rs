//! Flagger's builtin metric queries against the real test-environment Prometheus scraping real test apps.
//!
//! Needs `TESTENV_PROMETHEUS_URL` / `TESTENV_PROMETHEUS_SD_DIR` (`cargo xtask testenv up --with-prometheus`).
//! Every test uses its own namespace label value, so tests can run in parallel against one Prometheus.
//!
//! The query templates are Flagger 1.44's, verbatim (`pkg/metrics/observers/*.go`), rendered and whitespace-
//! collapsed as Flagger's Prometheus provider does.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use testkit::load::{Load, Weights};
use testkit::prometheus::{Prometheus, render};
use testkit::testapp::{
    Config, Labels, Latency, Telemetry, podinfo_canary_labels, spawn_scraped, unique_namespace,
};

const ISTIO_SUCCESS: &str = r#"
	sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",
		destination_workload=~"{{ target }}",response_code!~"5.*"}[{{ interval }}]))
	/
	sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",
		destination_workload=~"{{ target }}"}[{{ interval }}]))
	* 100"#;
const ISTIO_DURATION: &str = r#"
	histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",
		destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) by (le))"#;

const LINKERD_SUCCESS: &str = r#"
	sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",classification!="failure",
		direction="inbound"}[{{ interval }}]))
	/
	sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound"}[{{ interval }}]))
	* 100"#;
const LINKERD_DURATION: &str = r#"
	histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{namespace="{{ namespace }}",deployment=~"{{ target }}",
		direction="inbound"}[{{ interval }}])) by (le))"#;

const CONTOUR_SUCCESS: &str = r#"
	sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",
		envoy_response_code!~"5.*"}[{{ interval }}]))
	/
	sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",
		}[{{ interval }}]))
	* 100"#;
const CONTOUR_DURATION: &str = r#"
	histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{
		envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",}[{{ interval }}])) by (le))"#;

const APPMESH_SUCCESS: &str = r#"
	sum(rate(envoy_cluster_upstream_rq{kubernetes_namespace="{{ namespace }}",
		kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",envoy_response_code!~"5.*"}[{{ interval }}]))
	/
	sum(rate(envoy_cluster_upstream_rq{kubernetes_namespace="{{ namespace }}",
		kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}]))
	* 100"#;

const KUMA_SUCCESS: &str = r#"
	sum(rate(envoy_cluster_upstream_rq{service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+",
		envoy_response_code!~"5.*"}[{{ interval }}]))
	/
	sum(rate(envoy_cluster_upstream_rq{service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+"}[{{ interval }}]))
	* 100"#;

const NGINX_SUCCESS: &str = r#"
	sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!="",
		status!~"5.*"}[{{ interval }}]))
	/
	sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""
		}[{{ interval }}]))
	* 100"#;
const NGINX_DURATION: &str = r#"
	sum(rate(nginx_ingress_controller_response_duration_seconds_sum{namespace="{{ namespace }}",
		ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
	/
	sum(rate(nginx_ingress_controller_response_duration_seconds_count{namespace="{{ namespace }}",
		ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
	* 1000"#;

const HTTP_SUCCESS: &str = r#"
	sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",
		kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",status!~"5.*"}[{{ interval }}]))
	/
	sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",
		kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}]))
	* 100"#;
const HTTP_DURATION: &str = r#"
	histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace="{{ namespace }}",
		kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) by (le))"#;

/// Waits for scraping to catch up with what the app answered.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);

fn prometheus() -> Result<Prometheus> {
    Prometheus::from_env()
}

fn vars(namespace: &str) -> [(&'static str, &str); 5] {
    [
        ("namespace", namespace),
        ("target", "podinfo"),
        ("service", "podinfo"),
        ("ingress", "podinfo"),
        ("interval", "1m"),
    ]
}

async fn instant(prom: &Prometheus, template: &str, namespace: &str) -> Result<f64> {
    let q = render(template, &vars(namespace));
    let samples = prom.query(&q).await?;
    ensure!(
        samples.len() == 1,
        "expected one sample for `{q}`, got {samples:?}"
    );
    Ok(samples[0].value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_count_rate_is_a_non_empty_vector_after_load() -> Result<()> {
    let prom = prometheus()?;
    let ns = unique_namespace("prom-count");
    let config = Config {
        telemetry: vec![Telemetry::Kubernetes],
        labels: podinfo_canary_labels(&ns),
        ..Config::default()
    };
    let app = spawn_scraped(&prom, config).await?;
    app.load_until_scraped(&prom, 200, 100.0, SCRAPE_TIMEOUT).await?;

    let all = prom
        .wait_for_query(
            "sum(rate(http_request_duration_seconds_count[30s]))",
            SCRAPE_TIMEOUT,
            |s| s.len() == 1 && s[0].value > 0.0,
        )
        .await?;
    let ours = prom
        .wait_for_value(
            &format!(r#"sum(rate(http_request_duration_seconds_count{{kubernetes_namespace="{ns}"}}[30s]))"#),
            SCRAPE_TIMEOUT,
        )
        .await?;
    eprintln!(
        "rate over all targets {:.2}/s, this app {ours:.2}/s",
        all[0].value
    );
    ensure!(ours > 0.0, "this app's request rate is {ours}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_rate_is_90_for_every_shape_at_10_percent_errors() -> Result<()> {
    let prom = prometheus()?;
    let ns = unique_namespace("prom-success");
    let config = Config {
        error_rate: 0.1,
        telemetry: Telemetry::ALL.to_vec(),
        labels: podinfo_canary_labels(&ns),
        ..Config::default()
    };
    let app = spawn_scraped(&prom, config).await?;
    let started = Instant::now();
    app.load_until_scraped(&prom, 1000, 100.0, SCRAPE_TIMEOUT).await?;
    ensure!(
        app.error_count() == 100,
        "app answered {} errors",
        app.error_count()
    );

    // Errors are spread evenly (every 10th request) and rate() loses each series' first scraped value in the
    // same proportion, so the ratio is 90 up to extrapolation noise.
    const TOLERANCE: f64 = 1.0;
    let mut failures = Vec::new();
    for (name, template) in [
        ("istio", ISTIO_SUCCESS),
        ("linkerd", LINKERD_SUCCESS),
        ("contour", CONTOUR_SUCCESS),
        ("appmesh", APPMESH_SUCCESS),
        ("kuma", KUMA_SUCCESS),
        ("nginx", NGINX_SUCCESS),
        ("kubernetes", HTTP_SUCCESS),
    ] {
        let value = instant(&prom, template, &ns).await?;
        eprintln!("request-success-rate {name}: {value:.3} (expected 90 ± {TOLERANCE})");
        if (value - 90.0).abs() > TOLERANCE {
            failures.push(format!("{name}: {value}"));
        }
    }
    eprintln!(
        "load + scrape + queries took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    ensure!(
        failures.is_empty(),
        "success rates off 90 ± {TOLERANCE}: {failures:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_queries_match_a_fixed_latency() -> Result<()> {
    let prom = prometheus()?;
    let ns = unique_namespace("prom-duration");
    let config = Config {
        latency: Latency::Fixed(Duration::from_millis(110)),
        telemetry: Telemetry::ALL.to_vec(),
        labels: podinfo_canary_labels(&ns),
        ..Config::default()
    };
    let app = spawn_scraped(&prom, config).await?;
    app.load_until_scraped(&prom, 150, 50.0, SCRAPE_TIMEOUT).await?;

    // Every request takes 110ms plus scheduling slack, so the observations fall into one histogram bucket
    // and histogram_quantile(0.99) interpolates to 99% of that bucket: istio/envoy (100, 250] ms -> 248.5;
    // linkerd (100, 200] ms -> 199; podinfo (0.1, 0.25] s -> 0.2485. A request or two delayed into the next
    // bucket by a loaded machine moves the value up a little, still below the bucket's top; the units (ms
    // or s) are what this checks.
    let mut failures = Vec::new();
    for (name, template, expected) in [
        ("istio", ISTIO_DURATION, 240.0..=250.0),
        ("linkerd", LINKERD_DURATION, 190.0..=200.0),
        ("contour", CONTOUR_DURATION, 240.0..=250.0),
        ("kubernetes", HTTP_DURATION, 0.240..=0.250),
    ] {
        let value = instant(&prom, template, &ns).await?;
        eprintln!("request-duration {name}: {value} (expected {expected:?})");
        if !expected.contains(&value) {
            failures.push(format!("{name}: {value} outside {expected:?}"));
        }
    }
    // nginx's query is an average (sum / count * 1000), so it sees the latency itself.
    let nginx = instant(&prom, NGINX_DURATION, &ns).await?;
    eprintln!("request-duration nginx: {nginx:.2}ms (expected 110..200)");
    if !(110.0..200.0).contains(&nginx) {
        failures.push(format!("nginx: {nginx}ms outside 110..200"));
    }
    ensure!(failures.is_empty(), "duration queries: {failures:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_driver_splits_by_live_weights_and_queries_select_only_the_canary() -> Result<()> {
    let prom = prometheus()?;
    let ns = unique_namespace("prom-split");
    let primary_labels = Labels {
        service: "podinfo".to_string(),
        ..Labels::new(&ns, "podinfo-primary")
    };
    let primary = spawn_scraped(
        &prom,
        Config {
            telemetry: Telemetry::ALL.to_vec(),
            labels: primary_labels,
            ..Config::default()
        },
    )
    .await?;
    let canary = spawn_scraped(
        &prom,
        Config {
            version: "2.0.0".to_string(),
            error_rate: 0.2,
            telemetry: Telemetry::ALL.to_vec(),
            labels: podinfo_canary_labels(&ns),
            ..Config::default()
        },
    )
    .await?;

    // The weights a routing object would carry: all primary, then a 50/50 step once 200 requests went out.
    let (weights, rx) = tokio::sync::watch::channel((100, 0));
    let running = Load::new(primary.addr(), Some(canary.addr()))
        .rate(200.0)
        .requests(1000)
        .spawn(Weights::watch(rx))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while primary.request_count() < 200 {
        ensure!(
            Instant::now() < deadline,
            "primary got only {} requests",
            primary.request_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    weights.send((50, 50))?;
    let report = running.join().await?;
    ensure!(report.sent() == 1000 && !report.timed_out, "{report:?}");
    // The split after the change is exact (smooth round-robin), so the canary gets half of the slots left
    // when the change was seen: at most 400, fewer if this loop noticed 200 primary requests late.
    ensure!(
        (360..=400).contains(&report.canary.sent),
        "canary got {} of 1000: {report:?}",
        report.canary.sent
    );
    ensure!(canary.request_count() == report.canary.sent && primary.request_count() == report.primary.sent);

    for app in [&primary, &canary] {
        let q = format!("sum(testapp_requests_total{{{}}})", app.target.selector());
        let n = app.request_count() as f64;
        prom.wait_for_query(&q, SCRAPE_TIMEOUT, |s| s.len() == 1 && s[0].value == n)
            .await?;
    }
    // `{{ target }}` = podinfo selects the canary's series only (podinfo-primary's workload and pods do not
    // match), so the success rate is the canary's 80%, not the blended 92%. The canary's ~380 requests
    // span only a few scrapes, and rate() extrapolates each series from its first scraped value, so on a
    // busy machine the ratio drifts up to ~2 points from 80 (78.1 was seen once in CI); ±3 still tells the
    // canary's 80 from the blended 92 apart.
    const TOLERANCE: f64 = 3.0;
    for (name, template) in [
        ("istio", ISTIO_SUCCESS),
        ("linkerd", LINKERD_SUCCESS),
        ("kubernetes", HTTP_SUCCESS),
    ] {
        let value = instant(&prom, template, &ns).await?;
        eprintln!("canary request-success-rate {name}: {value:.3} (expected 80 ± {TOLERANCE})");
        ensure!(
            (value - 80.0).abs() <= TOLERANCE,
            "{name} canary success rate {value}, expected 80 ± {TOLERANCE} (the blended rate would be 92)"
        );
    }
    // The primary's own series, selected with its workload name, are error-free.
    let primary_vars = [
        ("namespace", ns.as_str()),
        ("target", "podinfo-primary"),
        ("interval", "1m"),
    ];
    let value = prom.query(&render(ISTIO_SUCCESS, &primary_vars)).await?;
    ensure!(
        value.len() == 1 && value[0].value == 100.0,
        "primary success rate {value:?}"
    );
    Ok(())
}
