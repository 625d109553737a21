//! Canaries that cannot be reconciled get a Warning event and a `Valid=False` condition, and recover when
//! the problem is fixed.

use std::time::Duration;

use flagger_api::{Canary, CanaryPhase as P, ConditionStatus};
use kube::api::Api;
use testkit::kube::wait_for;

use crate::support::*;

async fn wait_valid_false(ns: &testkit::TestNamespace, name: &str, reason: &str) -> Canary {
    let api: Api<Canary> = ns.api();
    wait_for(
        &api,
        name,
        &format!("Valid=False {reason}"),
        Duration::from_secs(30),
        |c: &Canary| {
            c.status
                .as_ref()
                .and_then(|s| s.condition("Valid"))
                .is_some_and(|v| v.status == ConditionStatus::False && v.reason == reason)
        },
    )
    .await
    .unwrap()
}

fn valid_message(c: &Canary) -> String {
    let status = c.status.as_ref().unwrap();
    status.condition("Valid").unwrap().message.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_target_invalid_spec_and_cross_namespace_refs_are_reported() {
    let ns = namespace("problems").await;
    let _op = operator(&ns, &["-mesh-provider=kubernetes", "-no-cross-namespace-refs"]).await;

    // A missing target: reported, then picked up once it exists.
    apply_canary(
        &ns,
        &canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 2"),
    )
    .await;
    let c = wait_valid_false(&ns, "podinfo", "TargetNotFound").await;
    let message = format!("Deployment podinfo.{} not found", ns.name);
    assert_eq!(
        c.status.unwrap().condition("Valid").unwrap().message.as_deref(),
        Some(message.as_str())
    );
    wait_event(&ns, "podinfo", &message, Duration::from_secs(10))
        .await
        .unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let c = wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    assert!(
        c.status.unwrap().condition("Valid").is_none(),
        "the condition goes once the target exists"
    );

    // An invalid spec (step weights must increase): nothing is created for it.
    let steps = "interval: 10s\nthreshold: 2\nstepWeights: [20, 10]";
    apply_canary(&ns, &canary_named("steps", "kubernetes", steps)).await;
    let message = valid_message(&wait_valid_false(&ns, "steps", "InvalidSpec").await);
    assert!(message.starts_with("invalid canary spec: "), "{message}");
    assert!(message.contains("spec.analysis.stepWeights[1]"), "{message}");
    wait_event(&ns, "steps", &message, Duration::from_secs(10))
        .await
        .unwrap();

    // -no-cross-namespace-refs: a template in another namespace is refused.
    let xns = "interval: 10s
threshold: 2
iterations: 2
metrics:
- name: errors
  templateRef: {name: errors, namespace: elsewhere}
  thresholdRange: {max: 1}";
    apply_canary(&ns, &canary_named("xns", "kubernetes", xns)).await;
    let message = valid_message(&wait_valid_false(&ns, "xns", "InvalidSpec").await);
    assert!(message.contains("elsewhere"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_analysis_promotes_without_checks() {
    let ns = namespace("skip").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let mut yaml = canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 5");
    yaml = yaml.replace(
        "  provider: kubernetes\n",
        "  provider: kubernetes\n  skipAnalysis: true\n",
    );
    apply_canary(&ns, &yaml).await;
    let history = History::record(&ns, "podinfo").await;
    let _op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Promotion completed! Canary analysis was skipped for {t}"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(!history.phases().contains(&P::Promoting), "{:?}", history.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_canary_does_not_start_a_release() {
    let ns = namespace("suspend").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_canary(
        &ns,
        &canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1"),
    )
    .await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    let api: Api<Canary> = ns.api();
    let suspend = |on: bool| serde_json::json!({"spec": {"suspend": on}});
    let params = kube::api::PatchParams::default();
    api.patch("podinfo", &params, &kube::api::Patch::Merge(&suspend(true)))
        .await
        .unwrap();
    // The operator has seen the suspension before the new revision arrives.
    wait_event(
        &ns,
        "podinfo",
        "skipping canary run as object is suspended",
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let reconciles = || op.logs().matches("\"reconciled\"").count();
    let count = reconciles();
    set_image(&ns, "podinfo:2.0.0").await;
    testkit::kube::poll(
        "a reconcile of the new revision",
        Duration::from_secs(30),
        || async { Ok(if reconciles() > count { Ok(()) } else { Err(count) }) },
    )
    .await
    .unwrap();
    let c = api.get("podinfo").await.unwrap();
    assert_eq!(c.status.unwrap().phase(), P::Initialized);
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));

    api.patch("podinfo", &params, &kube::api::Patch::Merge(&suspend(false)))
        .await
        .unwrap();
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
}
