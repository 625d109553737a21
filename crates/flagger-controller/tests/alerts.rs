//! `flagger_controller::alerts::Alerts` against the local control plane: AlertProviders (and a provider's
//! Secret) in the cluster, read through the watch caches, pointing at a loopback receiver standing in for
//! Slack; Flagger's severity filter, its Slack payload, the global notifier fallback and the failure
//! metric.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). Every test has its own namespace.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use flagger_api::{AlertSeverity, Canary};
use flagger_controller::ControllerConfig;
use flagger_controller::alerts::Alerts;
use flagger_controller::cache::Caches;
use flagger_core::machine::Alert;
use flagger_core::provider::{AlertProviderType, MeshProvider};
use flagger_notify::{AlertSender, NotifierConfig, SenderConfig};
use flagger_telemetry::{OperatorMetrics, Readiness};
use serde_json::json;
use testkit::hooks::Receiver;
use testkit::kube::poll;
use testkit::{TestNamespace, apply_yaml, install_crds};
use tokio_util::sync::{CancellationToken, DropGuard};

const DEADLINE: Duration = Duration::from_secs(20);
const CLUSTER: &str = "kind-local";

/// Everything a test needs: its namespace, the receiver, watch caches and a sender.
struct Setup {
    ns: TestNamespace,
    hooks: Receiver,
    caches: Caches,
    sender: AlertSender,
    _stop: DropGuard,
}

async fn setup(prefix: &str, providers: &str) -> Result<Setup> {
    let ns = TestNamespace::new(prefix).await?;
    install_crds(&ns.client, &flagger_api::crds()).await?;
    let hooks = Receiver::start().await?;
    let yaml = providers.replace("RECEIVER", &hooks.url(""));
    apply_yaml(&ns.client, &ns.name, &yaml).await?;
    let token = CancellationToken::new();
    let (caches, _triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
    caches.wait_until_ready().await?;
    let names: Vec<String> = provider_names(&yaml);
    poll("the AlertProviders in the cache", DEADLINE, || async {
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| caches.alert_provider(&ns.name, n).is_none())
            .collect();
        Ok(if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{missing:?}"))
        })
    })
    .await?;
    let (sender, _task) = AlertSender::start(SenderConfig {
        initial_backoff: Duration::from_millis(50),
        ..SenderConfig::default()
    });
    Ok(Setup {
        ns,
        hooks,
        caches,
        sender,
        _stop: token.drop_guard(),
    })
}

/// The names of the AlertProviders in `yaml`.
fn provider_names(yaml: &str) -> Vec<String> {
    yaml.split("---")
        .filter(|doc| doc.contains("kind: AlertProvider"))
        .filter_map(|doc| {
            doc.lines()
                .find_map(|l| l.trim().strip_prefix("name: "))
                .map(|n| n.trim().to_owned())
        })
        .collect()
}

/// Canary `name` in `namespace` (strategy: weight steps of 10 up to 50, threshold 5) with `alerts`.
fn canary(namespace: &str, name: &str, alerts: serde_json::Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50, "alerts": alerts},
        },
    }))
    .unwrap()
}

fn alert(severity: AlertSeverity, message: &str, with_metadata: bool) -> Alert {
    Alert {
        severity,
        message: message.to_owned(),
        with_metadata,
    }
}

fn config() -> ControllerConfig {
    let mut config = ControllerConfig::new(MeshProvider::Kubernetes);
    config.cluster_name = CLUSTER.into();
    config
}

/// Flagger's Slack payload with attachment `fields` as (title, value).
fn slack(
    channel: &str,
    username: &str,
    subject: &str,
    color: &str,
    text: &str,
    fields: &[(&str, &str)],
) -> serde_json::Value {
    let fields: Vec<serde_json::Value> = fields
        .iter()
        .map(|(title, value)| json!({"title": title, "value": value, "short": false}))
        .collect();
    json!({
        "channel": channel,
        "username": username,
        "icon_url": "",
        "icon_emoji": ":rocket:",
        "attachments": [{
            "color": color,
            "author_name": subject,
            "text": text,
            "mrkdwn_in": ["text"],
            "fields": fields,
        }],
    })
}

const PROVIDERS: &str = r#"
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
spec:
  type: slack
  channel: on-call
  username: flagger-rs
  address: RECEIVERslack/on-call
---
apiVersion: v1
kind: Secret
metadata:
  name: all-events-url
stringData:
  address: RECEIVERslack/all
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: all-events
spec:
  type: slack
  secretRef:
    name: all-events-url
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_alerts_reach_the_providers_whose_severity_accepts_them() -> Result<()> {
    let s = setup("alerts-severity", PROVIDERS).await?;
    let metrics = OperatorMetrics::register(&mut Default::default());
    let alerts = Alerts::new(s.ns.client.clone(), &config(), s.sender.clone(), metrics);
    let n = &s.ns.name;
    let c = canary(
        n,
        "podinfo",
        json!([
            {"name": "on-call", "severity": "error", "providerRef": {"name": "on-call"}},
            {"name": "everything", "severity": "info", "providerRef": {"name": "all-events", "namespace": n}},
        ]),
    );
    let subject = format!("podinfo.{n}");
    let new_revision = "New revision detected, progressing canary analysis.";
    let waiting = "Canary is waiting for approval.";
    let failed = "Failed checks threshold reached 5";

    // info (with metadata) and warn: only the info subscriber; error: both.
    alerts
        .send(&c, &alert(AlertSeverity::Info, new_revision, true), &s.caches)
        .await;
    alerts
        .send(&c, &alert(AlertSeverity::Warn, waiting, false), &s.caches)
        .await;
    alerts
        .send(&c, &alert(AlertSeverity::Error, failed, false), &s.caches)
        .await;

    let all = s.hooks.wait_for_calls("slack/all", 3, DEADLINE).await?;
    let target = format!("Deployment/podinfo.{n}");
    let bodies: Vec<&serde_json::Value> = all.iter().map(|c| &c.body).collect();
    assert_eq!(
        bodies,
        [
            &slack(
                "general",
                "flagger",
                &subject,
                "good",
                new_revision,
                &[
                    ("Cluster", CLUSTER),
                    ("Target", &target),
                    ("Failed checks threshold", "5"),
                    ("Progress deadline", "600s"),
                    ("Traffic routing", "Weight step: 10 max: 50"),
                ],
            ),
            &slack(
                "general",
                "flagger",
                &subject,
                "good",
                waiting,
                &[("Cluster", CLUSTER)]
            ),
            &slack(
                "general",
                "flagger",
                &subject,
                "danger",
                failed,
                &[("Cluster", CLUSTER)]
            ),
        ]
    );
    // One destination gets its alerts in order: had the info or warn alert gone to on-call, it would be
    // its first call.
    let on_call = s.hooks.wait_for_calls("slack/on-call", 1, DEADLINE).await?;
    assert_eq!(on_call.len(), 1);
    assert_eq!(
        on_call[0].body,
        slack(
            "on-call",
            "flagger-rs",
            &subject,
            "danger",
            failed,
            &[("Cluster", CLUSTER)]
        )
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_notifier_serves_canaries_without_alerts() -> Result<()> {
    let s = setup("alerts-global", PROVIDERS).await?;
    let metrics = OperatorMetrics::register(&mut Default::default());
    let mut config = config();
    config.cluster_name = String::new();
    config.notifier = Some(NotifierConfig {
        provider: AlertProviderType::Slack,
        address: s.hooks.url("global"),
        token: None,
        proxy: None,
        username: "flagger".into(),
        channel: "releases".into(),
    });
    let alerts = Alerts::new(s.ns.client.clone(), &config, s.sender.clone(), metrics);
    let n = &s.ns.name;
    let with_alerts = canary(
        n,
        "backend",
        json!([{"name": "on-call", "severity": "error", "providerRef": {"name": "on-call"}}]),
    );
    let without = canary(n, "frontend", json!([]));

    // A canary with alerts never falls back to the global notifier, even when none of them matches.
    alerts
        .send(
            &with_alerts,
            &alert(
                AlertSeverity::Warn,
                "Canary promotion is waiting for approval.",
                false,
            ),
            &s.caches,
        )
        .await;
    // Without alerts: the global notifier, whatever the severity (info included), no fields without
    // -cluster-name.
    alerts
        .send(
            &without,
            &alert(
                AlertSeverity::Info,
                "Canary analysis completed successfully, promotion finished.",
                false,
            ),
            &s.caches,
        )
        .await;
    alerts
        .send(
            &without,
            &alert(
                AlertSeverity::Error,
                "Promotion failed, primary not ready: timeout",
                false,
            ),
            &s.caches,
        )
        .await;
    let global = s.hooks.wait_for_calls("global", 2, DEADLINE).await?;
    let subject = format!("frontend.{n}");
    let bodies: Vec<&serde_json::Value> = global.iter().map(|c| &c.body).collect();
    assert_eq!(
        bodies,
        [
            &slack(
                "releases",
                "flagger",
                &subject,
                "good",
                "Canary analysis completed successfully, promotion finished.",
                &[],
            ),
            &slack(
                "releases",
                "flagger",
                &subject,
                "danger",
                "Promotion failed, primary not ready: timeout",
                &[],
            ),
        ]
    );
    // The canary with alerts: its error alert reaches on-call, first and only.
    alerts
        .send(
            &with_alerts,
            &alert(AlertSeverity::Error, "Failed checks threshold reached 2", false),
            &s.caches,
        )
        .await;
    let on_call = s.hooks.wait_for_calls("slack/on-call", 1, DEADLINE).await?;
    assert_eq!(on_call.len(), 1);
    assert_eq!(
        on_call[0].body["attachments"][0]["text"],
        "Failed checks threshold reached 2"
    );
    assert_eq!(s.hooks.calls_to("global").len(), 2);
    Ok(())
}

const BROKEN_PROVIDERS: &str = r#"
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
spec:
  type: slack
  channel: on-call
  address: RECEIVERslack/on-call
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: rejecting
spec:
  type: slack
  channel: on-call
  address: RECEIVERslack/rejecting
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: no-secret
spec:
  type: msteams
  secretRef:
    name: does-not-exist
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_providers_are_skipped_and_counted() -> Result<()> {
    let s = setup("alerts-broken", BROKEN_PROVIDERS).await?;
    s.hooks.set_status("slack/rejecting", 400);
    let mut registry = Default::default();
    let metrics = OperatorMetrics::register(&mut registry);
    let app = flagger_telemetry::router(Arc::new(registry), Readiness::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(flagger_telemetry::serve(
        listener,
        app,
        stop.clone().cancelled_owned(),
    ));
    let _stop_server = stop.drop_guard();

    let alerts = Alerts::new(s.ns.client.clone(), &config(), s.sender.clone(), metrics);
    let n = &s.ns.name;
    let c = canary(
        n,
        "podinfo",
        json!([
            {"name": "missing", "severity": "info", "providerRef": {"name": "missing"}},
            {"name": "no-secret", "severity": "info", "providerRef": {"name": "no-secret"}},
            {"name": "rejecting", "severity": "info", "providerRef": {"name": "rejecting"}},
            {"name": "on-call", "severity": "warn", "providerRef": {"name": "on-call"}},
        ]),
    );
    alerts
        .send(
            &c,
            &alert(AlertSeverity::Warn, "Rolling back manual webhook invoked", false),
            &s.caches,
        )
        .await;

    // The usable provider still gets the alert.
    let on_call = s.hooks.wait_for_calls("slack/on-call", 1, DEADLINE).await?;
    assert_eq!(
        on_call[0].body["attachments"][0]["text"],
        "Rolling back manual webhook invoked"
    );
    s.hooks.wait_for_calls("slack/rejecting", 1, DEADLINE).await?;

    // The missing provider (its type unknown) and the missing Secret at once, the rejected delivery once
    // the sender has given up on it.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://{addr}/metrics");
    poll("the alert failures in the metrics", DEADLINE, || async {
        let text = http.get(&url).send().await?.error_for_status()?.text().await?;
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("flagger_rs_alert_failures_total"))
            .map(str::to_owned)
            .collect();
        let expected = [
            r#"flagger_rs_alert_failures_total{provider="msteams"} 1"#,
            r#"flagger_rs_alert_failures_total{provider="slack"} 1"#,
            r#"flagger_rs_alert_failures_total{provider="unknown"} 1"#,
        ];
        Ok(
            if expected.iter().all(|e| lines.iter().any(|l| l == e)) && lines.len() == 3 {
                Ok(())
            } else {
                Err(lines)
            },
        )
    })
    .await?;
    Ok(())
}
