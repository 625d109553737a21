//! DaemonSet targets (§2.7, §2.8): a primary DaemonSet, scale to zero through the
//! `flagger.app/scale-to-zero` nodeSelector, a blue/green release, and revertOnDeletion.

use flagger_api::{Canary, CanaryPhase as P};
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use testkit::TestNamespace;
use testkit::kube::{apply_yaml, poll};

use crate::support::*;

const SCALE_TO_ZERO: &str = "flagger.app/scale-to-zero";

async fn deploy_daemonset(ns: &TestNamespace, strategy: &str) {
    apply_yaml(
        &ns.client,
        &ns.name,
        &format!(
            r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: podinfo
  labels: {{app: podinfo}}
spec:
  updateStrategy: {{type: {strategy}}}
  selector:
    matchLabels: {{app: podinfo}}
  template:
    metadata:
      labels: {{app: podinfo}}
    spec:
      containers:
      - name: podinfod
        image: podinfo:1.0.0
        ports: [{{containerPort: 9898, name: http}}]
"#
        ),
    )
    .await
    .unwrap();
}

fn node_selector(ds: &DaemonSet) -> std::collections::BTreeMap<String, String> {
    ds.spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .node_selector
        .clone()
        .unwrap_or_default()
}

fn ds_image(ds: &DaemonSet) -> String {
    ds.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn daemonset_canary(extra: &str) -> String {
    canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1")
        .replace(
            "kind: Deployment, name: podinfo",
            "kind: DaemonSet, name: podinfo",
        )
        .replace("spec:\n", &format!("spec:\n{extra}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_is_released_blue_green_and_reverted_on_deletion() {
    let ns = namespace("ds").await;
    deploy_daemonset(&ns, "RollingUpdate").await;
    apply_canary(&ns, &daemonset_canary("  revertOnDeletion: true\n")).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    let api: Api<DaemonSet> = ns.api();
    let primary = api.get("podinfo-primary").await.unwrap();
    assert_eq!(
        primary.spec.selector.match_labels.clone().unwrap()["app"],
        "podinfo-primary"
    );
    assert!(!node_selector(&primary).contains_key(SCALE_TO_ZERO));
    assert_eq!(
        primary.spec.update_strategy.as_ref().unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
    // The primary runs on every node; the target is "scaled to zero" by a nodeSelector no node has.
    let status = primary.status.clone().unwrap();
    assert!(status.desired_number_scheduled > 0);
    assert_eq!(status.number_available, Some(status.desired_number_scheduled));
    assert_eq!(
        node_selector(&api.get("podinfo").await.unwrap())[SCALE_TO_ZERO],
        "true"
    );
    assert_eq!(selector(&ns, "podinfo").await["app"], "podinfo-primary");

    // A blue/green release promotes the new image into the primary, then scales the target down again.
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Strategic(&serde_json::json!({"spec": {"template": {"spec": {
            "containers": [{"name": "podinfod", "image": "podinfo:2.0.0"}],
        }}}})),
    )
    .await
    .unwrap();
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert!(
        history.phases().contains(&P::Progressing),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    assert_eq!(
        ds_image(&api.get("podinfo-primary").await.unwrap()),
        "podinfo:2.0.0"
    );
    poll("the target back at zero", RELEASE, || async {
        let ns_sel = node_selector(&api.get("podinfo").await?);
        Ok(if ns_sel.contains_key(SCALE_TO_ZERO) {
            Ok(())
        } else {
            Err(ns_sel)
        })
    })
    .await
    .unwrap();

    // Deleting the Canary runs the target again and lets the finalizer go.
    let canaries: Api<Canary> = ns.api();
    canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .unwrap();
    poll("the Canary to be gone", RELEASE, || async {
        Ok(match canaries.get_opt("podinfo").await? {
            None => Ok(()),
            Some(c) => Err(c.metadata.finalizers),
        })
    })
    .await
    .unwrap();
    let target = api.get("podinfo").await.unwrap();
    assert!(
        !node_selector(&target).contains_key(SCALE_TO_ZERO),
        "{}",
        op.logs()
    );
    let status = target.status.unwrap();
    assert!(status.desired_number_scheduled > 0);
    assert_eq!(status.number_available, Some(status.desired_number_scheduled));
    wait_event(
        &ns,
        "podinfo",
        &format!("Terminated canary {}", dotted(&ns)),
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_without_rolling_update_is_refused_with_a_condition() {
    let ns = namespace("dsondelete").await;
    deploy_daemonset(&ns, "OnDelete").await;
    apply_canary(&ns, &daemonset_canary("")).await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let message = format!(
        "daemonset podinfo.{} must have RollingUpdate strategy but have OnDelete",
        ns.name
    );
    wait_event(&ns, "podinfo", &message, RELEASE).await.unwrap();
    let canary = wait_status(&ns, "a Valid=False condition", RELEASE, |s| {
        s.condition("Valid")
            .is_some_and(|c| c.status == flagger_api::ConditionStatus::False)
    })
    .await;
    assert_eq!(
        canary
            .status
            .unwrap()
            .condition("Valid")
            .unwrap()
            .message
            .as_deref(),
        Some(message.as_str()),
        "{}",
        op.logs()
    );
    let api: Api<DaemonSet> = ns.api();
    assert!(api.get_opt("podinfo-primary").await.unwrap().is_none());
}
