//! Metric analysis end to end: the operator process runs the builtin `request-success-rate` and
//! `request-duration` checks against the test environment's real Prometheus while it releases a blue/green
//! canary (`kubernetes` provider, so the `kubernetes` observer's queries on the app's own
//! `http_request_duration_seconds` series, selected by `kubernetes_namespace` and a `kubernetes_pod_name`
//! of the form `podinfo-<hash>-<suffix>`).
//!
//! The fake nodes run no pods, so the canary's telemetry comes from `testapp` processes started here and
//! scraped by that Prometheus with the labels a real `podinfo` pod of this namespace would have. Each
//! test has its own namespace, which is also the `namespace` label of its apps.

use std::time::Duration;

use flagger_api::CanaryPhase as P;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use testkit::TestNamespace;
use testkit::load::{Load, Running, Weights};
use testkit::operator::Operator;
use testkit::prometheus::Prometheus;
use testkit::testapp::{
    Config, Labels, Latency, ScrapedApp, Telemetry, podinfo_canary_labels, spawn_scraped,
};

use crate::support::*;

/// How long Prometheus may take to scrape the warm-up load.
const SCRAPED: Duration = Duration::from_secs(60);

/// The app's fixed latency: every observation lands in the bucket (0.1, 0.25] s, so the p99 the
/// `kubernetes` observer computes is 0.2485 s, 248 ms once truncated.
const LATENCY: Duration = Duration::from_millis(110);

/// A blue/green analysis (two iterations at Flagger's minimum interval, rollback after two failed checks)
/// with both builtin checks; their `interval` is left to Flagger's default (`1m`).
const ANALYSIS: &str = "interval: 10s
threshold: 2
iterations: 2
metrics:
- name: request-success-rate
  thresholdRange: {min: 99}
- name: request-duration
  thresholdRange: {max: 500}";

/// A test app exporting the `kubernetes` telemetry shape as a pod of Deployment `workload` in `ns`
/// (`podinfo` is the canary, whose pods the builtin queries select), answering `error_rate` of its
/// requests with 500, scraped by Prometheus.
async fn scraped_app(prom: &Prometheus, ns: &TestNamespace, workload: &str, error_rate: f64) -> ScrapedApp {
    let labels = if workload == "podinfo" {
        podinfo_canary_labels(&ns.name)
    } else {
        Labels::new(&ns.name, workload)
    };
    let config = Config {
        error_rate,
        latency: Latency::Fixed(LATENCY),
        telemetry: vec![Telemetry::Kubernetes],
        labels,
        ..Config::default()
    };
    spawn_scraped(prom, config).await.unwrap()
}

/// Load for the whole release: 20 requests a second split `weights` between `primary` and `canary`,
/// bounded to six minutes. The builtin queries are rates over the last minute, so the load must go on
/// while the operator checks.
fn steady_load(primary: &ScrapedApp, canary: Option<&ScrapedApp>, weights: (u32, u32)) -> Running {
    Load::new(primary.addr(), canary.map(|c| c.addr()))
        .rate(20.0)
        .requests(7200)
        .duration(Duration::from_secs(360))
        .spawn(Weights::fixed(weights.0, weights.1))
        .unwrap()
}

/// The Deployment `podinfo`, the Canary with [`ANALYSIS`], and an operator reading `prom`.
async fn release_setup(ns: &TestNamespace, prom: &Prometheus) -> (History, Operator) {
    deploy_podinfo(ns, "podinfo:1.0.0").await;
    apply_canary(ns, &canary_yaml("kubernetes", ANALYSIS)).await;
    let history = History::record(ns, "podinfo").await;
    let server = format!("-metrics-server={}", prom.url());
    let op = operator(ns, &["-mesh-provider=kubernetes", &server]).await;
    wait_phase(ns, "podinfo", P::Initialized, RELEASE).await;
    // Prometheus answered the operator's availability check while the canary was initialised.
    wait_event(
        ns,
        "podinfo",
        "all the metrics providers are available!",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    (history, op)
}

/// The Events on the Canary whose message satisfies `matches`, as `(type, message, count)`.
async fn counted_events(ns: &TestNamespace, matches: impl Fn(&str) -> bool) -> Vec<(String, String, i32)> {
    let api: Api<Event> = ns.api();
    api.list(&ListParams::default().fields("involvedObject.name=podinfo,involvedObject.kind=Canary"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.message.as_deref().is_some_and(&matches))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(1),
            )
        })
        .collect()
}

/// The value of `flagger_canary_metric_analysis` for `metric` of the canary in `ns`, from the operator's
/// `/metrics` text.
fn metric_analysis(text: &str, ns: &TestNamespace, metric: &str) -> Option<f64> {
    let series = format!(
        "flagger_canary_metric_analysis{{name=\"podinfo\",namespace=\"{}\",metric=\"{metric}\"}} ",
        ns.name
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

/// Asserts the rollback that follows two failed checks: the failed-checks count reached the threshold
/// before, Flagger's rollback events, the canary at zero, the primary still on the old revision.
async fn assert_rolled_back(ns: &TestNamespace, history: &History, op: &Operator) {
    let seen = history.seen();
    assert!(
        seen.iter()
            .any(|s| s.phase == P::Progressing && s.failed_checks == 2),
        "failedChecks reached the threshold: {seen:?}\n{}",
        op.logs()
    );
    assert!(
        seen.iter().all(|s| s.failed_checks <= 2),
        "no check after the threshold: {seen:?}"
    );
    assert!(!seen.iter().any(|s| s.phase == P::Promoting), "{seen:?}");
    let t = dotted(ns);
    for message in [
        format!("Rolling back {t} failed checks threshold reached 2"),
        format!("Canary failed! Scaling down {t}"),
    ] {
        wait_event(ns, "podinfo", &message, Duration::from_secs(10))
            .await
            .unwrap();
    }
    assert_eq!(deployment(ns, "podinfo").await.spec.replicas, Some(0));
    assert_eq!(
        image_of(&deployment(ns, "podinfo-primary").await),
        "podinfo:1.0.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_passes_its_builtin_checks_and_is_promoted() {
    let ns = namespace("analysis-ok").await;
    let prom = Prometheus::from_env().unwrap();
    let canary = scraped_app(&prom, &ns, "podinfo", 0.0).await;
    canary
        .load_until_scraped(&prom, 200, 50.0, SCRAPED)
        .await
        .unwrap();
    let load = steady_load(&canary, None, (1, 0));
    let (history, op) = release_setup(&ns, &prom).await;

    set_image(&ns, "podinfo:2.0.0").await;
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE * 2).await;
    load.stop();
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(done.status.unwrap().failed_checks(), 0);
    assert!(
        history
            .seen()
            .iter()
            .all(|s| s.failed_checks == 0 && s.phase != P::Failed),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    // Both checks ran on the real series and recorded what they read: a 100% success rate and a p99 near
    // the top of the (100, 250] ms bucket every request falls in, 248 ms (recorded in seconds).
    let text = op.metrics().await.unwrap();
    assert_eq!(
        metric_analysis(&text, &ns, "request-success-rate"),
        Some(100.0),
        "{text}"
    );
    let duration = metric_analysis(&text, &ns, "request-duration");
    assert!(
        duration.is_some_and(|s| (0.240..=0.250).contains(&s)),
        "{duration:?}\n{text}"
    );
    let halts = counted_events(&ns, |m| m.starts_with("Halt")).await;
    assert!(halts.is_empty(), "no failed check: {halts:?}");
    let t = dotted(&ns);
    for message in [
        format!("Advance {t} canary iteration 2/2"),
        format!("Promotion completed! Scaling down {t}"),
    ] {
        wait_event(&ns, "podinfo", &message, Duration::from_secs(10))
            .await
            .unwrap();
    }
    assert!(canary.request_count() > 200);
    assert_eq!(canary.error_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_20_percent_errors_is_rolled_back_after_threshold_checks() {
    let ns = namespace("analysis-fail").await;
    let prom = Prometheus::from_env().unwrap();
    let canary = scraped_app(&prom, &ns, "podinfo", 0.2).await;
    // A healthy primary with the same load: its pods (`podinfo-primary-<hash>-<suffix>`) are not selected
    // by the canary's queries, so the measured rate stays the canary's 80%.
    let primary = scraped_app(&prom, &ns, "podinfo-primary", 0.0).await;
    canary
        .load_until_scraped(&prom, 200, 50.0, SCRAPED)
        .await
        .unwrap();
    let load = steady_load(&primary, Some(&canary), (1, 1));
    let (history, op) = release_setup(&ns, &prom).await;

    set_image(&ns, "podinfo:2.0.0").await;
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE * 2).await;
    load.stop();
    assert_eq!(failed.status.unwrap().canary_weight(), 0);
    assert_rolled_back(&ns, &history, &op).await;

    // Exactly `threshold` failed checks, each saying what it measured (Flagger's `%.2f%%`).
    let prefix = format!("Halt {} advancement success rate ", dotted(&ns));
    let halts = counted_events(&ns, |m| m.starts_with("Halt")).await;
    assert_eq!(
        halts.iter().map(|(_, _, count)| count).sum::<i32>(),
        2,
        "{halts:?}\n{}",
        op.logs()
    );
    for (type_, message, _) in &halts {
        assert_eq!(type_, "Warning", "{message}");
        let value: f64 = message
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("% < 99%"))
            .filter(|v| v.split_once('.').is_some_and(|(_, decimals)| decimals.len() == 2))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected event {message:?}"));
        assert!((78.0..=82.0).contains(&value), "{message}");
    }
    let text = op.metrics().await.unwrap();
    let recorded = metric_analysis(&text, &ns, "request-success-rate").unwrap();
    assert!((78.0..=82.0).contains(&recorded), "{text}");
    // The first failing check stops the analysis: the duration was never judged.
    assert_eq!(metric_analysis(&text, &ns, "request-duration"), None, "{text}");
    assert!(primary.request_count() > 0 && primary.error_count() == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_without_traffic_fails_with_no_data_and_is_rolled_back() {
    let ns = namespace("analysis-idle").await;
    let prom = Prometheus::from_env().unwrap();
    // Scraped, but nobody sends it a request.
    let canary = scraped_app(&prom, &ns, "podinfo", 0.0).await;
    let (history, op) = release_setup(&ns, &prom).await;

    set_image(&ns, "podinfo:2.0.0").await;
    wait_phase(&ns, "podinfo", P::Failed, RELEASE * 2).await;
    assert_rolled_back(&ns, &history, &op).await;

    let no_data = format!(
        "Halt advancement no values found for kubernetes metric request-success-rate probably {} is not \
         receiving traffic: running query failed: no values found",
        dotted(&ns)
    );
    let halts = counted_events(&ns, |m| m.starts_with("Halt")).await;
    assert_eq!(
        halts,
        vec![("Warning".to_string(), no_data, 2)],
        "one NoData check per failed tick\n{}",
        op.logs()
    );
    let text = op.metrics().await.unwrap();
    assert_eq!(
        metric_analysis(&text, &ns, "request-success-rate"),
        None,
        "no value to record: {text}"
    );
    assert_eq!(canary.request_count(), 0);
}
