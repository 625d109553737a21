//! Alerts end to end: releases on the local control plane whose Canary lists AlertProviders in
//! `analysis.alerts` (Slack with its address and token in a Secret, Slack with an inline address, MS
//! Teams), all pointing at a loopback server that records every POST with its headers. The operator runs
//! with `-cluster-name`, so every alert carries the `Cluster` field.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use flagger_api::CanaryPhase as P;
use serde_json::{Value, json};
use testkit::TestNamespace;
use testkit::hooks::Receiver;
use testkit::kube::{apply_yaml, poll};

use crate::support::*;

/// The operator's `-cluster-name`.
const CLUSTER: &str = "flagger-rs-e2e";
/// The token in the Slack provider's Secret.
const TOKEN: &str = "xoxb-scenario-token";
/// How long an alert may take to arrive once the status that caused it is written.
const DELIVERY: Duration = Duration::from_secs(15);

/// One POST received.
#[derive(Clone, Debug)]
struct Post {
    /// The path, without the leading `/`.
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Value,
}

/// A loopback server standing in for Slack and Teams: records every POST and answers 200.
#[derive(Clone)]
struct Inbox {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
}

async fn receive(
    State(posts): State<Arc<Mutex<Vec<Post>>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let post = Post {
        path,
        content_type: text(header::CONTENT_TYPE),
        authorization: text(header::AUTHORIZATION),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    posts.lock().unwrap_or_else(PoisonError::into_inner).push(post);
    StatusCode::OK
}

impl Inbox {
    async fn start() -> Self {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(posts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, posts }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn posts_to(&self, path: &str) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| p.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` received `n` posts and returns them.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Post> {
        poll(&format!("{n} alerts to /{path}"), DELIVERY, || async {
            let posts = self.posts_to(path);
            Ok(if posts.len() >= n { Ok(posts) } else { Err(posts) })
        })
        .await
        .unwrap()
    }
}

/// The AlertProviders: `releases` (Slack; address and token from the Secret `slack-address`), `teams`
/// (MS Teams) and `on-call` (Slack with Flagger's default channel and user name).
async fn alert_providers(ns: &TestNamespace, inbox: &Inbox) {
    apply_yaml(
        &ns.client,
        &ns.name,
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata:
  name: slack-address
stringData:
  address: "{slack}"
  token: {TOKEN}
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: releases
spec:
  type: slack
  channel: releases
  username: flagger-rs
  secretRef: {{name: slack-address}}
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: teams
spec:
  type: msteams
  address: "{teams}"
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
spec:
  type: slack
  address: "{on_call}"
"#,
            slack = inbox.url("slack"),
            teams = inbox.url("teams"),
            on_call = inbox.url("on-call"),
        ),
    )
    .await
    .unwrap();
}

/// `analysis.alerts`: every alert to Slack and Teams, only errors to the on-call channel.
const ALERTS: &str = "alerts:
- {name: releases, severity: info, providerRef: {name: releases}}
- {name: teams, severity: info, providerRef: {name: teams}}
- {name: on-call, severity: error, providerRef: {name: on-call}}";

/// The initialisation and new-revision alerts' fields: the cluster, then Flagger's metadata.
fn metadata(ns: &TestNamespace, deadline: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Cluster", CLUSTER.to_string()),
        ("Target", format!("Deployment/{}", dotted(ns))),
        ("Failed checks threshold", "2".to_string()),
        ("Progress deadline", deadline.to_string()),
        ("Traffic routing", "Blue/Green".to_string()),
    ]
}

/// The fields of alerts without metadata.
fn cluster_only() -> Vec<(&'static str, String)> {
    vec![("Cluster", CLUSTER.to_string())]
}

/// Flagger's Slack payload for an alert about `podinfo` in `ns`.
fn slack(ns: &TestNamespace, channel: &str, username: &str, text: &str, fields: &[(&str, String)]) -> Value {
    let color = if is_error(text) { "danger" } else { "good" };
    let fields: Vec<Value> = fields
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
            "author_name": dotted(ns),
            "text": text,
            "mrkdwn_in": ["text"],
            "fields": fields,
        }],
    })
}

/// Flagger's MS Teams MessageCard for an alert about `podinfo` in `ns`.
fn teams(ns: &TestNamespace, text: &str, fields: &[(&str, String)]) -> Value {
    let color = if is_error(text) { "FF0000" } else { "0076D7" };
    let facts: Vec<Value> = fields
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": color,
        "summary": dotted(ns),
        "sections": [{
            "activityTitle": text,
            "activitySubtitle": dotted(ns),
            "facts": facts,
        }],
    })
}

/// Whether an alert text is one of the error-severity alerts used here.
fn is_error(text: &str) -> bool {
    text.starts_with("Failed checks threshold reached") || text.starts_with("Progress deadline exceeded")
}

/// Asserts every post's headers: JSON, and the Secret's token as a Bearer token only for Slack from the
/// Secret (Flagger sends no token to Teams, and `on-call` has none).
fn assert_headers(posts: &[Post]) {
    for p in posts {
        assert_eq!(p.content_type.as_deref(), Some("application/json"), "{p:?}");
        let expected = (p.path == "slack").then(|| format!("Bearer {TOKEN}"));
        assert_eq!(p.authorization, expected, "{p:?}");
    }
}

fn bodies(posts: &[Post]) -> Vec<Value> {
    posts.iter().map(|p| p.body.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_then_a_rolled_back_release_alert_each_provider_by_severity() {
    let ns = namespace("alerts").await;
    let inbox = Inbox::start().await;
    let hooks = Receiver::start().await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    alert_providers(&ns, &inbox).await;
    let analysis = format!(
        "interval: 10s\nthreshold: 2\niterations: 1\nwebhooks:\n- {{name: load, url: \"{}\", timeout: 2s}}\n{ALERTS}",
        hooks.url("load")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;
    let op = operator(
        &ns,
        &["-mesh-provider=kubernetes", &format!("-cluster-name={CLUSTER}")],
    )
    .await;

    // Initialisation, then a release whose rollout hook passes.
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    inbox.wait_for("slack", 1).await;
    set_image(&ns, "podinfo:2.0.0").await;
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    inbox.wait_for("slack", 3).await;

    // A release whose rollout hook fails: rolled back after two failed checks.
    hooks.set_status("load", 500);
    set_image(&ns, "podinfo:3.0.0").await;
    wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    let to_slack = inbox.wait_for("slack", 5).await;
    let to_teams = inbox.wait_for("teams", 5).await;
    let to_on_call = inbox.wait_for("on-call", 1).await;

    let meta = metadata(&ns, "600s");
    let plain = cluster_only();
    let expected: Vec<(&str, &[(&str, String)])> = vec![
        (
            "New Deployment detected, initialization completed.",
            meta.as_slice(),
        ),
        (
            "New revision detected, progressing canary analysis.",
            meta.as_slice(),
        ),
        (
            "Canary analysis completed successfully, promotion finished.",
            plain.as_slice(),
        ),
        (
            "New revision detected, progressing canary analysis.",
            meta.as_slice(),
        ),
        ("Failed checks threshold reached 2", plain.as_slice()),
    ];
    assert_eq!(
        bodies(&to_slack),
        expected
            .iter()
            .map(|(text, fields)| slack(&ns, "releases", "flagger-rs", text, fields))
            .collect::<Vec<_>>(),
        "{}",
        op.logs()
    );
    assert_eq!(
        bodies(&to_teams),
        expected
            .iter()
            .map(|(text, fields)| teams(&ns, text, fields))
            .collect::<Vec<_>>()
    );
    // The error-only subscriber got the error alert alone, with the provider's default channel and user.
    assert_eq!(
        bodies(&to_on_call),
        vec![slack(
            &ns,
            "general",
            "flagger",
            "Failed checks threshold reached 2",
            &cluster_only()
        )]
    );
    for posts in [&to_slack, &to_teams, &to_on_call] {
        assert_headers(posts);
    }
    // A reconcile of the failed release (triggered by a metadata change) sends nothing more.
    let reconciles = || op.logs().matches("\"reconciled\"").count();
    let count = reconciles();
    let api: kube::api::Api<flagger_api::Canary> = ns.api();
    let note = json!({"metadata": {"annotations": {"test/touch": "1"}}});
    api.patch(
        "podinfo",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&note),
    )
    .await
    .unwrap();
    poll("a reconcile after the touch", Duration::from_secs(10), || async {
        Ok(if reconciles() > count { Ok(()) } else { Err(count) })
    })
    .await
    .unwrap();
    assert_eq!(inbox.posts_to("slack").len(), 5);
    assert_eq!(inbox.posts_to("teams").len(), 5);
    assert_eq!(inbox.posts_to("on-call").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_deadline_rollback_sends_an_error_alert() {
    let ns = namespace("alerts-deadline").await;
    let inbox = Inbox::start().await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    alert_providers(&ns, &inbox).await;
    let analysis = format!("interval: 10s\nthreshold: 2\niterations: 5\n{ALERTS}");
    let yaml = canary_yaml("kubernetes", &analysis).replace(
        "  provider: kubernetes\n",
        "  provider: kubernetes\n  progressDeadlineSeconds: 15\n",
    );
    apply_canary(&ns, &yaml).await;
    let op = operator(
        &ns,
        &["-mesh-provider=kubernetes", &format!("-cluster-name={CLUSTER}")],
    )
    .await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    // A revision whose pods cannot be scheduled (no node has the label): unavailable past the deadline.
    let api: kube::api::Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    let patch = json!({"spec": {
        "template": {"spec": {"nodeSelector": {"flagger-rs.test/nowhere": "true"}}},
    }});
    api.patch(
        "podinfo",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(&patch),
    )
    .await
    .unwrap();
    wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    let to_slack = inbox.wait_for("slack", 3).await;
    let to_on_call = inbox.wait_for("on-call", 1).await;

    // The alert names the readiness error the rollback event names: the canary Deployment's own
    // ProgressDeadlineExceeded condition, or (on a cluster where its 600s have not passed) its replicas
    // unavailable for longer than the Canary's 15s.
    let t = dotted(&ns);
    let prefix = format!("Rolling back {t} progress deadline exceeded ");
    let rolled_back = events(&ns, "podinfo").await;
    let reason = rolled_back
        .iter()
        .find_map(|(_, m)| m.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no rollback event: {rolled_back:?}"));
    assert!(
        [
            "deployment \"podinfo\" exceeded its progress deadline",
            "waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available",
        ]
        .contains(&reason),
        "{reason}"
    );
    let alert = format!("Progress deadline exceeded {reason}");
    let deadline = alert.as_str();
    let meta = metadata(&ns, "15s");
    assert_eq!(
        bodies(&to_slack),
        vec![
            slack(
                &ns,
                "releases",
                "flagger-rs",
                "New Deployment detected, initialization completed.",
                &meta
            ),
            slack(
                &ns,
                "releases",
                "flagger-rs",
                "New revision detected, progressing canary analysis.",
                &meta
            ),
            slack(&ns, "releases", "flagger-rs", deadline, &cluster_only()),
        ],
        "{}",
        op.logs()
    );
    assert_eq!(
        bodies(&to_on_call),
        vec![slack(&ns, "general", "flagger", deadline, &cluster_only())]
    );
    let to_teams = inbox.wait_for("teams", 3).await;
    assert_eq!(
        to_teams.last().map(|p| p.body.clone()),
        Some(teams(&ns, deadline, &cluster_only()))
    );
    for posts in [&to_slack, &to_on_call, &to_teams] {
        assert_headers(posts);
    }
}
