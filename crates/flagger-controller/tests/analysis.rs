//! `flagger_controller::analysis` against the test environment's real Prometheus scraping a real test app
//! (10% errors, 110ms latency, the `kubernetes` telemetry shape), with MetricTemplates and Secrets created in
//! the local control plane and read through the watch caches.
//!
//! Needs the local control plane and its Prometheus (`eval "$(cargo xtask testenv env)"`). Every test has
//! its own namespace, which is also the `namespace` label of its test app, so tests run in parallel.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use flagger_api::Canary;
use flagger_controller::analysis::Analysis;
use flagger_controller::cache::Caches;
use flagger_core::machine::MetricsOutcome;
use flagger_core::provider::MeshProvider;
use flagger_telemetry::{OperatorMetrics, Readiness};
use testkit::kube::poll;
use testkit::prometheus::Prometheus;
use testkit::testapp::{Config, Latency, ScrapedApp, Telemetry, podinfo_canary_labels, spawn_scraped};
use testkit::{TestNamespace, apply_yaml, install_crds};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long scraping and the `[1m]` rate windows may take to reflect the load.
const DEADLINE: Duration = Duration::from_secs(60);
const REQUESTS: u64 = 500;

/// A loopback address nobody listens on.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The app `podinfo` in `namespace` (10% errors, 110ms), loaded with `REQUESTS` requests that Prometheus
/// has all scraped.
async fn loaded_app(prom: &Prometheus, namespace: &str) -> Result<ScrapedApp> {
    let config = Config {
        error_rate: 0.1,
        latency: Latency::Fixed(Duration::from_millis(110)),
        telemetry: vec![Telemetry::Kubernetes],
        labels: podinfo_canary_labels(namespace),
        ..Config::default()
    };
    let app = spawn_scraped(prom, config).await?;
    app.load_until_scraped(prom, REQUESTS, 100.0, DEADLINE).await?;
    Ok(app)
}

/// Watch caches of `namespace`, stopped when the guard is dropped.
fn caches(ns: &TestNamespace) -> (Caches, DropGuard) {
    let token = CancellationToken::new();
    let (caches, _triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
    (caches, token.drop_guard())
}

/// Canary `podinfo` in `namespace` targeting Deployment `target` with `metrics` and extra `spec` fields.
fn canary(namespace: &str, target: &str, metrics: serde_json::Value, spec: serde_json::Value) -> Canary {
    let mut json = serde_json::json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "service": {"port": 80},
            "analysis": {"interval": "15s", "threshold": 5, "metrics": metrics}
        }
    });
    if let (Some(fields), Some(extra)) = (json["spec"].as_object_mut(), spec.as_object()) {
        fields.extend(extra.clone());
    }
    serde_json::from_value(json).unwrap()
}

fn messages(outcome: &MetricsOutcome) -> Vec<&str> {
    outcome.events.iter().map(|e| e.message.as_str()).collect()
}

/// Runs the checks of `canary` until `accept` holds (the rate windows fill up over a few scrapes).
async fn run_until(
    analysis: &Analysis,
    caches: &Caches,
    canary: &Canary,
    what: &str,
    accept: impl Fn(&MetricsOutcome) -> bool,
) -> Result<MetricsOutcome> {
    poll(what, DEADLINE, || async {
        let outcome = analysis.run(canary, caches).await;
        Ok(if accept(&outcome) {
            Ok(outcome)
        } else {
            Err(outcome)
        })
    })
    .await
}

/// The number in `message` between `prefix` and `suffix`, if `message` has that shape.
fn value_between(message: &str, prefix: &str, suffix: &str) -> Option<f64> {
    message.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// Serves the operator metrics `app` on a loopback port and returns its `/metrics` text.
async fn scrape_operator_metrics(app: axum::Router) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let server = tokio::spawn(flagger_telemetry::serve(
        listener,
        app,
        stop.clone().cancelled_owned(),
    ));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let body = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    stop.cancel();
    server.await??;
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_checks_against_prometheus() -> Result<()> {
    let ns = TestNamespace::new("analysis-builtin").await?;
    let prom = Prometheus::from_env()?;
    let _app = loaded_app(&prom, &ns.name).await?;
    let (caches, _stop) = caches(&ns);
    let mut registry = Default::default();
    let metrics = OperatorMetrics::register(&mut registry);
    let analysis = Analysis::new(ns.client.clone(), MeshProvider::Kubernetes, prom.url(), metrics)?;
    let n = &ns.name;

    // Passing: 90% ≥ 80%, p99 248ms ≤ 500ms.
    let passing = canary(
        n,
        "podinfo",
        serde_json::json!([
            {"name": "request-success-rate", "thresholdRange": {"min": 80}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
        ]),
        serde_json::json!({}),
    );
    let outcome = run_until(&analysis, &caches, &passing, "the builtin checks to pass", |o| {
        o.passed
    })
    .await?;
    assert!(outcome.events.is_empty(), "{outcome:?}");
    // Both values were recorded in flagger_canary_metric_analysis.
    let text =
        scrape_operator_metrics(flagger_telemetry::router(Arc::new(registry), Readiness::new())).await?;
    let gauge = |metric: &str| -> Option<f64> {
        text.lines()
            .find(|l| {
                l.starts_with("flagger_canary_metric_analysis{")
                    && l.contains(&format!("namespace=\"{n}\""))
                    && l.contains(&format!("metric=\"{metric}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let success = gauge("request-success-rate")
        .with_context(|| format!("no request-success-rate gauge in /metrics:\n{text}"))?;
    assert!((89.0..=91.0).contains(&success), "success rate {success}");
    // p99 near the top of the (100, 250] ms bucket every request falls in: 248 ms, or a little more when a
    // loaded machine delays a request into the next bucket (whole milliseconds, in seconds).
    let duration = gauge("request-duration");
    assert!(
        duration.is_some_and(|s| (0.240..=0.250).contains(&s)),
        "{duration:?}\n{text}"
    );

    // Failing success rate: Flagger's text with the measured value.
    let failing = canary(
        n,
        "podinfo",
        serde_json::json!([
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "thresholdRange": {"max": 100}},
        ]),
        serde_json::json!({}),
    );
    let outcome = analysis.run(&failing, &caches).await;
    assert!(!outcome.passed);
    // The first failure stops the analysis: one event, the duration is not judged.
    let [message] = messages(&outcome)[..] else {
        panic!("expected one event: {outcome:?}");
    };
    let rate = value_between(
        message,
        &format!("Halt podinfo.{n} advancement success rate "),
        "% < 99%",
    )
    .with_context(|| format!("unexpected event {message:?}"))?;
    assert!((89.0..=91.0).contains(&rate), "{message}");

    let slow = canary(
        n,
        "podinfo",
        serde_json::json!([{"name": "request-duration", "thresholdRange": {"max": 100}}]),
        serde_json::json!({}),
    );
    let outcome = analysis.run(&slow, &caches).await;
    let [message] = messages(&outcome)[..] else {
        panic!("expected one event: {outcome:?}");
    };
    let ms = value_between(
        message,
        &format!("Halt podinfo.{n} advancement request duration "),
        "ms > 100ms",
    )
    .with_context(|| format!("unexpected event {message:?}"))?;
    assert!(ms.fract() == 0.0 && (240.0..=250.0).contains(&ms), "{message}");

    // No traffic: a target Prometheus has never seen.
    let idle = |metric: &str| {
        canary(
            n,
            "idle",
            serde_json::json!([{"name": metric, "threshold": 1}]),
            serde_json::json!({}),
        )
    };
    let outcome = analysis.run(&idle("request-success-rate"), &caches).await;
    assert!(!outcome.passed);
    assert_eq!(
        messages(&outcome),
        [format!(
            "Halt advancement no values found for kubernetes metric request-success-rate probably idle.{n} is not \
             receiving traffic: running query failed: no values found"
        )]
    );
    let outcome = analysis.run(&idle("request-duration"), &caches).await;
    assert_eq!(
        messages(&outcome),
        [format!(
            "Halt advancement no values found for kubernetes metric request-duration probably idle.{n} is not \
             receiving traffic"
        )]
    );

    // An inline query Prometheus rejects.
    let bad = canary(
        n,
        "podinfo",
        serde_json::json!([{"name": "bad", "query": "sum(rate(", "threshold": 1}]),
        serde_json::json!({}),
    );
    let outcome = analysis.run(&bad, &caches).await;
    assert!(!outcome.passed);
    assert!(
        messages(&outcome)[0].starts_with(
            "Prometheus query failed for bad: prometheus: error response: Status 400 Bad Request: "
        ),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_templates_from_the_cluster() -> Result<()> {
    let ns = TestNamespace::new("analysis-templates").await?;
    install_crds(&ns.client, &flagger_api::crds()).await?;
    let prom = Prometheus::from_env()?;
    let dead = dead_address();
    let error_rate_query = r#"
        sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-.*",status=~"{{ variables.status }}"}[{{ interval }}]))
        /
        sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-.*"}[{{ interval }}]))
        * 100"#;
    let query_yaml = serde_json::to_string(error_rate_query)?;
    let url = prom.url();
    apply_yaml(
        &ns.client,
        &ns.name,
        &format!(
            r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: error-rate}}
spec:
  provider: {{type: prometheus, address: "{url}"}}
  query: {query_yaml}
---
apiVersion: v1
kind: Secret
metadata: {{name: prom-token}}
stringData: {{token: t0k3n}}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: error-rate-auth}}
spec:
  provider: {{type: prometheus, address: "{url}", secretRef: {{name: prom-token}}}}
  query: {query_yaml}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: no-secret}}
spec:
  provider: {{type: prometheus, address: "{url}", secretRef: {{name: missing-secret}}}}
  query: vector(1)
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: offline}}
spec:
  provider: {{type: prometheus, address: "{dead}"}}
  query: vector(1)
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: datadog}}
spec:
  provider: {{type: datadog}}
  query: "avg:requests{{*}}"
"#
        ),
    )
    .await?;
    let _app = loaded_app(&prom, &ns.name).await?;
    let (caches, _stop) = caches(&ns);
    let names = ["error-rate", "error-rate-auth", "no-secret", "offline", "datadog"];
    poll("the MetricTemplates in the watch cache", DEADLINE, || async {
        let missing: Vec<_> = names
            .iter()
            .filter(|t| caches.metric_template(&ns.name, t).is_none())
            .collect();
        Ok(if missing.is_empty() { Ok(()) } else { Err(missing) })
    })
    .await?;
    let metrics = OperatorMetrics::register(&mut Default::default());
    let analysis = Analysis::new(ns.client.clone(), MeshProvider::Kubernetes, prom.url(), metrics)?;
    let n = &ns.name;
    let metric = |template: &str, range: serde_json::Value| {
        canary(
            n,
            "podinfo",
            serde_json::json!([{
                "name": "error-rate", "interval": "1m",
                "templateRef": {"name": template},
                "templateVariables": {"status": "5.*"},
                "thresholdRange": range
            }]),
            serde_json::json!({}),
        )
    };

    // 10% errors pass `max: 20` — also with the credentials of a Secret (Prometheus ignores them).
    for template in ["error-rate", "error-rate-auth"] {
        let ok = metric(template, serde_json::json!({"max": 20}));
        run_until(&analysis, &caches, &ok, &format!("{template} to pass"), |o| {
            o.passed
        })
        .await?;
    }
    assert_eq!(
        analysis
            .check_providers(&metric("error-rate-auth", serde_json::json!({})), &caches)
            .await,
        Ok(())
    );

    // ...and fail `max: 5` with Flagger's text.
    let outcome = analysis
        .run(&metric("error-rate", serde_json::json!({"max": 5})), &caches)
        .await;
    assert!(!outcome.passed);
    let [message] = messages(&outcome)[..] else {
        panic!("expected one event: {outcome:?}");
    };
    let rate = value_between(
        message,
        &format!("Halt podinfo.{n} advancement error-rate "),
        " > 5",
    )
    .with_context(|| format!("unexpected event {message:?}"))?;
    assert!((9.0..=11.0).contains(&rate), "{message}");

    // A template that does not exist.
    let missing = metric("missing", serde_json::json!({"max": 5}));
    assert_eq!(
        messages(&analysis.run(&missing, &caches).await),
        [format!(
            "Metric template missing.{n} error: metrictemplate.flagger.app \"missing\" not found"
        )]
    );
    assert_eq!(
        analysis.check_providers(&missing, &caches).await,
        Err(format!(
            "metric template missing.{n} error: metrictemplate.flagger.app \"missing\" not found"
        ))
    );

    // A Secret that does not exist: the API server's message.
    let no_secret = metric("no-secret", serde_json::json!({"max": 5}));
    assert_eq!(
        messages(&analysis.run(&no_secret, &caches).await),
        [format!(
            "Metric template no-secret.{n} secret missing-secret error: secrets \"missing-secret\" not found"
        )]
    );

    // A provider nobody answers at.
    let offline = metric("offline", serde_json::json!({"max": 5}));
    let err = analysis.check_providers(&offline, &caches).await.unwrap_err();
    assert!(
        err.starts_with(&format!(
            "prometheus in metric template offline.{n} not avaiable: running query failed: prometheus: request to \
             {dead}/api/v1/query failed: "
        )),
        "{err}"
    );
    let outcome = analysis.run(&offline, &caches).await;
    assert!(
        messages(&outcome)[0].starts_with(&format!(
            "Metric query failed for error-rate: prometheus: request to {dead}/api/v1/query failed: "
        )),
        "{outcome:?}"
    );

    // A datadog template without credentials fails the check with Flagger's text.
    let datadog = metric("datadog", serde_json::json!({"max": 5}));
    let expected =
        format!("datadog.{n} provider datadog error: datadog credentials does not contain datadog_api_key");
    assert_eq!(
        messages(&analysis.run(&datadog, &caches).await),
        [format!("Metric template {expected}")]
    );
    assert_eq!(
        analysis.check_providers(&datadog, &caches).await,
        Err(format!("metric template {expected}"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_availability_of_builtin_metrics() -> Result<()> {
    let ns = TestNamespace::new("analysis-online").await?;
    let prom = Prometheus::from_env()?;
    let (caches, _stop) = caches(&ns);
    let metrics = OperatorMetrics::register(&mut Default::default());
    let dead = dead_address();
    let online = Analysis::new(
        ns.client.clone(),
        MeshProvider::Istio,
        prom.url(),
        metrics.clone(),
    )?;
    let offline = Analysis::new(ns.client.clone(), MeshProvider::Istio, &dead, metrics)?;
    let builtin = serde_json::json!([
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        {"name": "request-duration", "thresholdRange": {"max": 500}},
    ]);
    let plain = canary(&ns.name, "podinfo", builtin.clone(), serde_json::json!({}));

    online.check_metrics_server().await?;
    assert_eq!(online.check_providers(&plain, &caches).await, Ok(()));

    let refused = format!(
        "prometheus not avaiable: running query failed: prometheus: request to {dead}/api/v1/query failed: "
    );
    assert!(offline.check_metrics_server().await.is_err());
    let err = offline.check_providers(&plain, &caches).await.unwrap_err();
    assert!(err.starts_with(&refused), "{err}");

    // spec.metricsServer replaces -metrics-server, both ways.
    let to_dead = canary(
        &ns.name,
        "podinfo",
        builtin.clone(),
        serde_json::json!({"metricsServer": dead}),
    );
    let err = online.check_providers(&to_dead, &caches).await.unwrap_err();
    assert!(err.starts_with(&refused), "{err}");
    let to_prom = canary(
        &ns.name,
        "podinfo",
        builtin,
        serde_json::json!({"metricsServer": prom.url()}),
    );
    assert_eq!(offline.check_providers(&to_prom, &caches).await, Ok(()));

    // Metrics without a builtin name or template are not checked.
    let inline = canary(
        &ns.name,
        "podinfo",
        serde_json::json!([{"name": "q", "query": "vector(1)"}]),
        serde_json::json!({}),
    );
    assert_eq!(offline.check_providers(&inline, &caches).await, Ok(()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knative_canaries_need_their_knative_service() -> Result<()> {
    // The Knative Service of this canary does not exist, so its checks fail with Flagger's text. The reason
    // is ours: either the watch of Knative Services cannot start (no Knative CRD in the test cluster) or,
    // once another test installed the CRD, the Service is not found.
    let ns = TestNamespace::new("analysis-knative").await?;
    let prom = Prometheus::from_env()?;
    let (caches, _stop) = caches(&ns);
    let metrics = OperatorMetrics::register(&mut Default::default());
    let analysis = Analysis::new(ns.client.clone(), MeshProvider::Istio, prom.url(), metrics)?;
    let knative = canary(
        &ns.name,
        "podinfo",
        serde_json::json!([{"name": "q", "query": "vector(0)"}]),
        serde_json::json!({"provider": "knative"}),
    );
    let outcome = analysis.run(&knative, &caches).await;
    assert!(!outcome.passed);
    let prefix = format!("Error fetching Knative service {}/podinfo ", ns.name);
    let reason = messages(&outcome)[0]
        .strip_prefix(&prefix)
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("cannot watch Service.serving.knative.dev/v1")
            || reason == "services.serving.knative.dev \"podinfo\" not found",
        "{outcome:?}"
    );
    // The same query passes for another provider.
    let istio = canary(
        &ns.name,
        "podinfo",
        serde_json::json!([{"name": "q", "query": "vector(0)"}]),
        serde_json::json!({"provider": "istio"}),
    );
    assert_eq!(
        analysis.run(&istio, &caches).await,
        MetricsOutcome {
            passed: true,
            events: vec![]
        }
    );
    Ok(())
}

/// A request the fake Datadog API received.
#[derive(Clone, Debug)]
struct DatadogRequest {
    path: String,
    query: std::collections::BTreeMap<String, String>,
    api_key: String,
    application_key: String,
}

/// A local server speaking Datadog's `/api/v1/query` and `/api/v1/validate`: queries answer one series
/// whose first point is 12.5, the API key `bad` is refused with 403; every request is recorded.
async fn fake_datadog() -> Result<(String, Arc<std::sync::Mutex<Vec<DatadogRequest>>>)> {
    let seen: Arc<std::sync::Mutex<Vec<DatadogRequest>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let record = record.clone();
        async move {
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let query = reqwest::Url::parse(&format!(
                "http://fake/?{}",
                request.uri().query().unwrap_or_default()
            ))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
            let path = request.uri().path().to_owned();
            let api_key = header("dd-api-key");
            let rejected = api_key == "bad";
            record.lock().unwrap().push(DatadogRequest {
                path: path.clone(),
                query,
                api_key,
                application_key: header("dd-application-key"),
            });
            match path.as_str() {
                _ if rejected => (axum::http::StatusCode::FORBIDDEN, r#"{"errors":["Forbidden"]}"#),
                "/api/v1/query" => (
                    axum::http::StatusCode::OK,
                    r#"{"status":"ok","series":[{"pointlist":[[1700000000000,12.5],[1700000060000,40]]}]}"#,
                ),
                "/api/v1/validate" => (axum::http::StatusCode::OK, r#"{"valid":true}"#),
                _ => (axum::http::StatusCode::NOT_FOUND, "{}"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}"), seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_template_from_the_cluster() -> Result<()> {
    let ns = TestNamespace::new("analysis-datadog").await?;
    install_crds(&ns.client, &flagger_api::crds()).await?;
    let (address, seen) = fake_datadog().await?;
    apply_yaml(
        &ns.client,
        &ns.name,
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: dd-keys}}
stringData: {{datadog_api_key: api-1, datadog_application_key: app-1}}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: dd-errors}}
spec:
  provider: {{type: datadog, address: "{address}", secretRef: {{name: dd-keys}}}}
  query: "sum:errors{{kube_namespace:{{{{ namespace }}}},kube_deployment:{{{{ target }}}}}}.as_count()"
---
apiVersion: v1
kind: Secret
metadata: {{name: dd-bad}}
stringData: {{datadog_api_key: bad, datadog_application_key: app-1}}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {{name: dd-bad}}
spec:
  provider: {{type: datadog, address: "{address}", secretRef: {{name: dd-bad}}}}
  query: "sum:errors{{*}}"
"#
        ),
    )
    .await?;
    let (caches, _stop) = caches(&ns);
    poll("the MetricTemplates in the watch cache", DEADLINE, || async {
        Ok(caches
            .metric_template(&ns.name, "dd-errors")
            .and(caches.metric_template(&ns.name, "dd-bad"))
            .ok_or(()))
    })
    .await?;
    let metrics = OperatorMetrics::register(&mut Default::default());
    // The builtin Prometheus is never asked: the canary has only the template metric.
    let analysis = Analysis::new(
        ns.client.clone(),
        MeshProvider::Kubernetes,
        dead_address(),
        metrics,
    )?;
    let n = &ns.name;
    // No `interval`: Flagger cannot build the provider (`error parsing metric interval`); here it is 1m.
    let metric_of = |template: &str, max: f64| {
        canary(
            n,
            "podinfo",
            serde_json::json!([{"name": "dd-errors", "templateRef": {"name": template}, "thresholdRange": {"max": max}}]),
            serde_json::json!({}),
        )
    };
    let metric = |max: f64| metric_of("dd-errors", max);

    assert_eq!(analysis.check_providers(&metric(20.0), &caches).await, Ok(()));
    let validate = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(validate.path, "/api/v1/validate");
    assert_eq!(
        (validate.api_key.as_str(), validate.application_key.as_str()),
        ("api-1", "app-1")
    );

    let outcome = analysis.run(&metric(20.0), &caches).await;
    assert!(outcome.passed, "{outcome:?}");
    let query = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(query.path, "/api/v1/query");
    assert_eq!(
        query.query["query"],
        format!("sum:errors{{kube_namespace:{n},kube_deployment:podinfo}}.as_count()")
    );
    let from: i64 = query.query["from"].parse()?;
    let to: i64 = query.query["to"].parse()?;
    assert_eq!(to - from, 600, "10 × the default 1m interval");
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    assert!((now - 30..=now).contains(&to), "to {to} is not now {now}");
    assert_eq!(
        (query.api_key.as_str(), query.application_key.as_str()),
        ("api-1", "app-1")
    );

    // The first point, 12.5, fails `max: 5` with Flagger's text.
    let outcome = analysis.run(&metric(5.0), &caches).await;
    assert!(!outcome.passed);
    assert_eq!(
        messages(&outcome),
        [format!("Halt podinfo.{n} advancement dd-errors 12.50 > 5")]
    );

    // A refused key fails the availability check and the query with Datadog's status and body.
    assert_eq!(
        analysis
            .check_providers(&metric_of("dd-bad", 20.0), &caches)
            .await,
        Err(format!(
            "datadog in metric template dd-bad.{n} not avaiable: datadog: error response: Status 403 Forbidden: \
             {{\"errors\":[\"Forbidden\"]}}"
        ))
    );
    assert_eq!(
        messages(&analysis.run(&metric_of("dd-bad", 20.0), &caches).await),
        [
            "Metric query failed for dd-errors: datadog: error response: Status 403 Forbidden: \
             {\"errors\":[\"Forbidden\"]}"
        ]
    );

    // The Secret is read on every check: rotated keys are sent from the next check on.
    apply_yaml(
        &ns.client,
        &ns.name,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: dd-keys}\nstringData: {datadog_api_key: api-2, datadog_application_key: app-2}\n",
    )
    .await?;
    assert!(analysis.run(&metric(20.0), &caches).await.passed);
    let rotated = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (rotated.api_key.as_str(), rotated.application_key.as_str()),
        ("api-2", "app-2")
    );
    Ok(())
}
