//! Autoscalers (§2.10): the primary gets a copy of the target's HPA or KEDA ScaledObject, updated only at
//! promotion; a ScaledObject of the target is paused while the target is at zero.

use flagger_api::CanaryPhase as P;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use testkit::TestNamespace;
use testkit::kube::{apply_yaml, poll};

use crate::support::*;

const KEDA_CRD: &str = include_str!("../../../flagger-controller/testdata/crds/keda-scaledobject.yaml");

fn cpu_target(hpa: &HorizontalPodAutoscaler) -> Option<i32> {
    hpa.spec.metrics.as_ref()?[0]
        .resource
        .as_ref()?
        .target
        .average_utilization
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_hpa_is_created_at_init_and_follows_the_source_only_at_promotion() {
    let ns = namespace("hpa").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: podinfo
  labels: {team: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 90}}
"#,
    )
    .await
    .unwrap();
    let yaml = canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1").replace(
        "spec:\n",
        "spec:\n  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n    primaryScalerReplicas: {minReplicas: 3, maxReplicas: 5}\n",
    );
    apply_canary(&ns, &yaml).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    let hpas: Api<HorizontalPodAutoscaler> = ns.api();
    let primary = hpas.get("podinfo-primary").await.unwrap();
    assert_eq!(primary.spec.scale_target_ref.name, "podinfo-primary");
    assert_eq!(primary.spec.scale_target_ref.kind, "Deployment");
    assert_eq!(
        (primary.spec.min_replicas, primary.spec.max_replicas),
        (Some(3), 5)
    );
    assert_eq!(cpu_target(&primary), Some(90));
    assert_eq!(primary.metadata.labels.as_ref().unwrap()["team"], "web");
    assert_eq!(
        primary.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Canary"
    );

    // A change to the source HPA waits for the next release.
    hpas.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
        ]}})),
    )
    .await
    .unwrap();
    set_image(&ns, "podinfo:2.0.0").await;
    wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    assert_eq!(
        cpu_target(&hpas.get("podinfo-primary").await.unwrap()),
        Some(90),
        "the primary HPA changed before the promotion"
    );
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        cpu_target(&hpas.get("podinfo-primary").await.unwrap()),
        Some(70),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
}

fn scaled_objects(ns: &TestNamespace) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

fn paused(so: &DynamicObject) -> Option<String> {
    so.metadata
        .annotations
        .as_ref()?
        .get("autoscaling.keda.sh/paused-replicas")
        .cloned()
}

async fn wait_paused(api: &Api<DynamicObject>, expected: Option<&str>) {
    poll(&format!("paused-replicas {expected:?}"), RELEASE, || async {
        let so = api.get("podinfo-so").await?;
        let now = paused(&so);
        Ok(if now.as_deref() == expected {
            Ok(())
        } else {
            Err(now)
        })
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keda_scaled_object_gets_a_primary_with_rewritten_queries_and_is_paused_while_idle() {
    let ns = namespace_with_crds("keda", KEDA_CRD).await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: podinfo-so
spec:
  scaleTargetRef: {name: podinfo}
  pollingInterval: 10
  minReplicaCount: 2
  maxReplicaCount: 4
  triggers:
  - type: prometheus
    name: requests
    metadata:
      serverAddress: http://prometheus.monitoring:9090
      query: sum(rate(http_requests_total{deployment="podinfo", app="podinfo-canary"}[2m]))
      threshold: "100"
"#,
    )
    .await
    .unwrap();
    let yaml = canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1").replace(
        "spec:\n",
        "spec:\n  autoscalerRef: {apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: podinfo-so}\n",
    );
    apply_canary(&ns, &yaml).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    let api = scaled_objects(&ns);
    let primary = api.get("podinfo-so-primary").await.unwrap();
    assert_eq!(primary.data["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
    assert_eq!(primary.data["spec"]["minReplicaCount"], 2);
    assert_eq!(
        primary.data["spec"]["triggers"][0]["metadata"]["query"],
        r#"sum(rate(http_requests_total{deployment="podinfo-primary", app="podinfo-primary"}[2m]))"#
    );
    assert_eq!(paused(&primary), None);
    // The target sits at zero, so its ScaledObject is paused there.
    wait_paused(&api, Some("0")).await;
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));

    // A release resumes it (and scales the target from zero to the scaler's minimum), then pauses it again.
    set_image(&ns, "podinfo:2.0.0").await;
    wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    wait_paused(&api, None).await;
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(2));
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    wait_paused(&api, Some("0")).await;
    assert!(
        history.phases().contains(&P::Progressing),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
}
