//! Releases routed through App Mesh (`appmesh:v1beta2`): the weights of the apex VirtualRouter's first route,
//! recorded from a watch as the operator wrote them. App Mesh's controller is not running; the router's
//! objects are plain custom resources (CRDs from the router's test fixture).

use flagger_api::CanaryPhase as P;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;
use testkit::TestNamespace;
use testkit::hooks::Receiver;

use crate::support::*;

/// The App Mesh CRDs (a test fixture of the App Mesh router).
const APPMESH_CRDS: &str = include_str!("../../../flagger-controller/testdata/crds/appmesh.yaml");

/// A namespace with Flagger's CRDs and the App Mesh CRDs.
async fn appmesh_namespace(prefix: &str) -> TestNamespace {
    namespace_with_crds(prefix, APPMESH_CRDS).await
}

fn target_weight(vr: &DynamicObject, node: &str) -> Option<i64> {
    vr.data["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"]
        .as_array()?
        .iter()
        .find(|t| t["virtualNodeRef"]["name"] == node)?["weight"]
        .as_i64()
}

/// The `(primary, canary)` weights of the VirtualRouter `podinfo`'s first route, in order.
fn record_weights(ns: &TestNamespace) -> Weights {
    let gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", "VirtualRouter");
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk));
    Weights::watch(api, "podinfo", |vr| {
        Some((
            target_weight(vr, "podinfo-primary")?,
            target_weight(vr, "podinfo-canary")?,
        ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appmesh_v1beta2_steps_to_max_weight_and_promotes() {
    let ns = appmesh_namespace("appmesh").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_canary(
        &ns,
        &canary_yaml(
            "appmesh:v1beta2",
            "interval: 10s\nthreshold: 2\nstepWeight: 25\nmaxWeight: 50",
        ),
    )
    .await;
    let weights = record_weights(&ns);
    let op = operator(&ns, &["-mesh-provider=appmesh:v1beta2"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE * 2).await;
    assert_eq!(done.status.unwrap().canary_weight(), 0);
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    let canary: Vec<i64> = weights.pairs().iter().map(|(_, c)| *c).collect();
    assert_eq!(canary, vec![0, 25, 50, 0], "{:?}\n{}", weights.pairs(), op.logs());
    assert!(
        weights.pairs().iter().all(|(p, c)| p + c == 100),
        "{:?}",
        weights.pairs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appmesh_v1beta2_failing_canary_returns_all_traffic_to_the_primary() {
    let ns = appmesh_namespace("appmesh-fail").await;
    let hooks = Receiver::start().await.unwrap();
    hooks.set_status("load", 500);
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s\nthreshold: 2\nstepWeight: 25\nmaxWeight: 50\nwebhooks:\n- {{name: load, url: \"{}\", timeout: 2s}}",
        hooks.url("load")
    );
    apply_canary(&ns, &canary_yaml("appmesh:v1beta2", &analysis)).await;
    let weights = record_weights(&ns);
    let op = operator(&ns, &["-mesh-provider=appmesh:v1beta2"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE * 2).await;
    assert_eq!(failed.status.unwrap().canary_weight(), 0);
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:1.0.0"
    );
    let pairs = settled_pairs(|| weights.pairs(), |p| p.last() == Some(&(100, 0)), RELEASE).await;
    assert_eq!(pairs.last(), Some(&(100, 0)), "{pairs:?}\n{}", op.logs());
    assert!(
        pairs.iter().any(|(_, c)| *c > 0),
        "the canary got traffic before the rollback: {pairs:?}"
    );
    assert!(pairs.iter().all(|(p, c)| p + c == 100 && *c <= 50), "{pairs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appmesh_revert_on_deletion_restores_a_taken_over_router_and_collects_the_rest() {
    let ns = appmesh_namespace("appmesh-revert").await;
    let routers = appmesh_api(&ns, "VirtualRouter");
    let original = json!({
        "awsName": "podinfo_mesh",
        "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
        "routes": [{"name": "podinfo", "httpRoute": {
            "match": {"prefix": "/"},
            "action": {"weightedTargets": [{"virtualNodeRef": {"name": "podinfo-v1"}, "weight": 100}]},
        }}],
    });
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "appmesh.k8s.aws/v1beta2",
        "kind": "VirtualRouter",
        "metadata": {"name": "podinfo", "annotations": {"example.com/team": "web"}},
        "spec": original,
    }))
    .unwrap();
    routers.create(&PostParams::default(), &existing).await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let yaml = canary_yaml(
        "appmesh:v1beta2",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50",
    )
    .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
    apply_canary(&ns, &yaml).await;
    let op = operator(&ns, &["-mesh-provider=appmesh:v1beta2"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    let taken = routers.get("podinfo").await.unwrap();
    assert_eq!(
        taken.data["spec"]["listeners"],
        json!([{"portMapping": {"port": 9898, "protocol": "http"}}]),
        "{}",
        op.logs()
    );
    assert!(
        taken
            .annotations()
            .contains_key("flagger.kubernetes.io/original-configuration")
    );

    let canaries: Api<flagger_api::Canary> = ns.api();
    canaries
        .delete("podinfo", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    testkit::kube::poll("the Canary to be gone", RELEASE, || async {
        Ok(match canaries.get_opt("podinfo").await? {
            None => Ok(()),
            Some(c) => Err(c.metadata.finalizers),
        })
    })
    .await
    .unwrap();
    let restored = routers.get("podinfo").await.unwrap();
    assert_eq!(restored.data["spec"], original, "{}", op.logs());
    let annotations = restored.annotations();
    assert_eq!(
        annotations.get("example.com/team").map(String::as_str),
        Some("web")
    );
    assert!(
        !annotations.contains_key("flagger.kubernetes.io/original-configuration"),
        "{annotations:?}"
    );
    // What the router created is owned by the Canary and collected.
    let nodes = appmesh_api(&ns, "VirtualNode");
    testkit::kube::poll("the created objects to be collected", RELEASE, || async {
        let left: Vec<String> = [
            nodes.get_opt("podinfo-primary").await?,
            nodes.get_opt("podinfo-canary").await?,
            routers.get_opt("podinfo-canary").await?,
        ]
        .into_iter()
        .flatten()
        .map(|o| o.name_any())
        .collect();
        Ok(if left.is_empty() { Ok(()) } else { Err(left) })
    })
    .await
    .unwrap();
}

fn appmesh_api(ns: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", kind);
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}
