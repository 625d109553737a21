//! The writes of flagger-k8s against the real local control plane: the primary rolls out, the Services
//! select the right pods, a user's apex Service is taken over without losing its other fields, scaling
//! touches only replicas, and status writes land on the status subresource.

// A test crate: unwrap in its helpers is as fine as in its #[test] functions.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flagger_api::{Canary, CanaryPhase, CanaryStatus};
use flagger_core::primary::{WorkloadOptions, desired_primary};
use flagger_core::readiness;
use flagger_core::services::desired_services;
use flagger_k8s::{
    apply_primary_object, apply_service, owner_reference, patch_canary_status, scale_deployment,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use testkit::{TestNamespace, apply_yaml, install_crds, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn setup(prefix: &str) -> (TestNamespace, Canary, Deployment) {
    let ns = TestNamespace::new(prefix).await.unwrap();
    install_crds(&ns.client, &flagger_api::crds()).await.unwrap();
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels: {app: podinfo, app.kubernetes.io/part-of: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports: [{containerPort: 9898, name: http}]
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  provider: kubernetes
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 10s, threshold: 2, iterations: 2}
"#,
    )
    .await
    .unwrap();
    let canary = Api::<Canary>::namespaced(ns.client.clone(), &ns.name)
        .get("podinfo")
        .await
        .unwrap();
    let target = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name)
        .get("podinfo")
        .await
        .unwrap();
    (ns, canary, target)
}

#[tokio::test]
async fn the_primary_rolls_out_and_the_services_select_it() {
    let (ns, canary, target) = setup("primary").await;
    let owner = owner_reference(&canary).unwrap();
    let opts = WorkloadOptions::default();
    let primary = desired_primary(&target, owner.clone(), &opts, &BTreeSet::new(), None, "id-1").unwrap();
    apply_primary_object(&ns.client, &primary).await.unwrap();

    let deployments: Api<Deployment> = ns.api();
    let ready = wait_for(&deployments, "podinfo-primary", "ready", TIMEOUT, |d| {
        readiness::deployment(d, 600, 100, Timestamp::now()).is_ready()
    })
    .await
    .unwrap();
    assert_eq!(ready.spec.replicas, Some(2));
    let owners = ready.metadata.owner_references.unwrap();
    assert_eq!(owners[0].kind, "Canary");
    assert_eq!(owners[0].controller, Some(true));

    // Applying the same desired primary again changes nothing: no new generation, no rollout.
    let generation = ready.metadata.generation;
    let again = apply_primary_object(&ns.client, &primary).await.unwrap();
    assert_eq!(again.metadata.generation, generation);

    for svc in desired_services(&canary, "app", "podinfo", &BTreeMap::new(), &owner) {
        apply_service(&ns.client, &svc).await.unwrap();
    }
    let services: Api<Service> = ns.api();
    for (name, selector) in [
        ("podinfo", "podinfo-primary"),
        ("podinfo-primary", "podinfo-primary"),
        ("podinfo-canary", "podinfo"),
    ] {
        let svc = services.get(name).await.unwrap();
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector.unwrap()["app"], selector, "{name}");
        assert!(
            spec.cluster_ip.is_some_and(|ip| ip.starts_with("10.96.")),
            "{name} got a ClusterIP"
        );
    }

    // The target is scaled to zero with a merge patch that leaves everything else as the user wrote it.
    scale_deployment(&ns.client, &ns.name, "podinfo", 0)
        .await
        .unwrap();
    let scaled = wait_for(&deployments, "podinfo", "scaled to zero", TIMEOUT, |d| {
        d.status.as_ref().is_some_and(|s| s.replicas.unwrap_or(0) == 0)
    })
    .await
    .unwrap();
    assert_eq!(scaled.spec.replicas, Some(0));
    assert_eq!(
        scaled.metadata.labels.as_ref().unwrap()["app.kubernetes.io/part-of"],
        "shop"
    );
    assert!(
        !readiness::deployment(&scaled, 600, 100, Timestamp::now()).is_ready(),
        "zero replicas never ready"
    );
}

#[tokio::test]
async fn a_users_apex_service_is_taken_over_without_losing_its_other_fields() {
    let (ns, canary, _target) = setup("apex").await;
    let services: Api<Service> = ns.api();
    let user_svc: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "annotations": {"team.example/owner": "shop"}},
        "spec": {"selector": {"app": "podinfo"}, "ports": [{"name": "http", "port": 9898}],
                 "sessionAffinity": "ClientIP"}
    }))
    .unwrap();
    services
        .create(
            &PostParams {
                field_manager: Some("kubectl".into()),
                ..Default::default()
            },
            &user_svc,
        )
        .await
        .unwrap();

    let owner = owner_reference(&canary).unwrap();
    let [_, _, apex] = desired_services(&canary, "app", "podinfo", &BTreeMap::new(), &owner);
    let applied = apply_service(&ns.client, &apex).await.unwrap();
    let spec = applied.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap()["app"],
        "podinfo-primary",
        "traffic moves to the primary"
    );
    assert_eq!(
        spec.session_affinity.as_deref(),
        Some("ClientIP"),
        "the user's field stays"
    );
    let annotations = applied.metadata.annotations.unwrap();
    assert_eq!(annotations["team.example/owner"], "shop");
    assert_eq!(annotations["kustomize.toolkit.fluxcd.io/reconcile"], "disabled");
}

#[tokio::test]
async fn status_writes_go_to_the_status_subresource() {
    let (ns, canary, _target) = setup("status").await;
    let status = CanaryStatus {
        phase: Some(CanaryPhase::Initialized),
        canary_weight: Some(0),
        ..Default::default()
    };
    let written = patch_canary_status(&ns.client, &canary, &status).await.unwrap();
    assert_eq!(written.status.unwrap().phase, Some(CanaryPhase::Initialized));

    // The decision was made on an old version of the Canary: the write is refused, not applied blindly.
    let stale = patch_canary_status(&ns.client, &canary, &status)
        .await
        .unwrap_err();
    assert!(!stale.to_string().is_empty());
    assert!(
        stale.is_transient(),
        "a conflict is retried after a fresh read: {stale}"
    );
}
