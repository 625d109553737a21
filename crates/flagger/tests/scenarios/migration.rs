//! Taking over from Go Flagger: a Canary whose status Flagger wrote (its own revision hash) is adopted
//! without an analysis when the primary already runs the target, and analysed when it does not.

use std::time::Duration;

use flagger_api::{Canary, CanaryPhase as P};
use kube::api::{Api, Patch, PatchParams};
use testkit::TestNamespace;
use testkit::kube::apply_yaml;

use crate::support::*;

/// What Go Flagger leaves behind after a successful release of `primary_image`: the primary Deployment it
/// built (selector and labels `-primary`, a `flagger-id`), the target scaled to zero, and the Canary's
/// status with Flagger's hashes (a Go `hash/fnv` text, not flagger-rs's `frs1-` format).
async fn flagger_left(ns: &TestNamespace, target_image: &str, primary_image: &str) {
    deploy_podinfo(ns, target_image).await;
    apply_yaml(
        &ns.client,
        &ns.name,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-primary
  labels: {{app: podinfo-primary}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: podinfo-primary}}
  template:
    metadata:
      labels: {{app: podinfo-primary}}
      annotations: {{flagger-id: 6f5e6a52-5d3e-4c1a-9d0c-8b5f3e2a1c7d}}
    spec:
      containers:
      - name: podinfod
        image: {primary_image}
        ports: [{{containerPort: 9898, name: http}}]
"#
        ),
    )
    .await
    .unwrap();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    deployments
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    apply_canary(
        ns,
        &canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1"),
    )
    .await;
    let canaries: Api<Canary> = ns.api();
    let status = serde_json::json!({"status": {
        "phase": "Succeeded",
        "canaryWeight": 0,
        "failedChecks": 0,
        "iterations": 0,
        "lastAppliedSpec": "5f8c9d7b6d",
        "lastPromotedSpec": "5f8c9d7b6d",
        "lastTransitionTime": "2026-11-01T10:00:00Z",
        "conditions": [{
            "type": "Promoted", "status": "True", "reason": "Succeeded",
            "message": "Canary analysis completed successfully, promotion finished.",
            "lastUpdateTime": "2026-11-01T10:00:00Z", "lastTransitionTime": "2026-11-01T10:00:00Z",
        }],
    }});
    canaries
        .patch_status("podinfo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_canary_from_flagger_is_adopted_without_an_analysis() {
    let ns = namespace("adopt").await;
    flagger_left(&ns, "podinfo:1.0.0", "podinfo:1.0.0").await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Adopted {t} from Flagger: its promoted revision was recorded without a new analysis"),
        RELEASE,
    )
    .await
    .unwrap();
    let adopted = wait_status(&ns, "a flagger-rs revision hash", RELEASE, |s| {
        s.last_applied_spec
            .as_deref()
            .is_some_and(|h| h.starts_with("frs1-"))
    })
    .await;
    let status = adopted.status.unwrap();
    assert_eq!(status.phase(), P::Succeeded);
    assert_eq!(status.last_promoted_spec, status.last_applied_spec);

    // It stays settled: no phase other than Succeeded, the target stays at zero, the primary untouched.
    let id_before = deployment(&ns, "podinfo-primary")
        .await
        .spec
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()["flagger-id"]
        .clone();
    // Make the operator look again (a metadata change triggers a reconcile) and wait until it has.
    let reconciles = |logs: String| logs.matches("\"reconciled\"").count();
    let before = reconciles(op.logs());
    let canaries: Api<Canary> = ns.api();
    canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"test/poke": "1"}}})),
        )
        .await
        .unwrap();
    testkit::kube::poll("another reconcile", Duration::from_secs(30), || async {
        let now = reconciles(op.logs());
        Ok(if now > before { Ok(()) } else { Err(now) })
    })
    .await
    .unwrap();
    assert!(
        history.phases().iter().all(|p| *p == P::Succeeded),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
    let id_after = deployment(&ns, "podinfo-primary")
        .await
        .spec
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()["flagger-id"]
        .clone();
    assert_eq!(id_before, id_after);
    let events = events(&ns, "podinfo").await;
    assert!(
        !events.iter().any(|(_, m)| m.starts_with("New revision detected")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_from_flagger_whose_target_changed_is_analysed() {
    let ns = namespace("adoptchg").await;
    flagger_left(&ns, "podinfo:2.0.0", "podinfo:1.0.0").await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    wait_event(
        &ns,
        "podinfo",
        &format!("New revision detected! Scaling up {}", dotted(&ns)),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0",
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
}
