//! The local control plane is a real Kubernetes: these tests prove the parts every later test relies on.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use testkit::{TestNamespace, apply_yaml, install_crds, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deployment_rolls_out_through_controllers_scheduler_and_kwok() {
    let ns = TestNamespace::new("rollout").await.unwrap();
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 3
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
"#,
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = ns.api();
    let ready = |d: &Deployment| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(3);
    wait_for(&deployments, "podinfo", "readyReplicas 3", TIMEOUT, ready)
        .await
        .unwrap();

    // The pods were scheduled onto fake nodes and are Running with an IP from kwok's CIDR.
    let pods: Api<Pod> = ns.api();
    let list = pods
        .list(&ListParams::default().labels("app=podinfo"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3);
    for pod in &list.items {
        let spec = pod.spec.as_ref().unwrap();
        assert!(
            spec.node_name
                .as_deref()
                .is_some_and(|n| n.starts_with("kwok-node-")),
            "{:?}",
            spec.node_name
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(
            status
                .pod_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.244.")),
            "{:?}",
            status.pod_ip
        );
    }

    // A template change rolls out a new ReplicaSet and old pods really go away.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}});
    deployments
        .patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let rolled = |d: &Deployment| {
        let Some(s) = d.status.as_ref() else { return false };
        d.metadata.generation == s.observed_generation
            && s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3)
            && s.replicas == Some(3)
    };
    wait_for(
        &deployments,
        "podinfo",
        "rolled out to the new template",
        TIMEOUT,
        rolled,
    )
    .await
    .unwrap();
    testkit::kube::poll("old pods to be gone", TIMEOUT, || async {
        let pods = pods.list(&ListParams::default().labels("app=podinfo")).await?;
        let images: Vec<String> = pods
            .items
            .iter()
            .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
            .collect();
        Ok(
            if images.len() == 3 && images.iter().all(|i| i.ends_with(":6.0.1")) {
                Ok(())
            } else {
                Err(images)
            },
        )
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn server_side_apply_tracks_named_field_managers_and_conflicts() {
    let ns = TestNamespace::new("ssa").await.unwrap();
    let cms: Api<ConfigMap> = ns.api();
    let ours = PatchParams::apply("flagger/primary-configmap");
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    cms.patch("cfg", &ours, &Patch::Apply(&cm)).await.unwrap();

    // Another manager adds a field of its own: both survive and both managers are recorded.
    let theirs = PatchParams::apply("user-tool");
    let other =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"b": "2"}});
    let merged = cms.patch("cfg", &theirs, &Patch::Apply(&other)).await.unwrap();
    let data = merged.data.clone().unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert_eq!(data.get("b").map(String::as_str), Some("2"));
    let managers: Vec<String> = merged
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"flagger/primary-configmap".to_string()),
        "{managers:?}"
    );
    assert!(managers.contains(&"user-tool".to_string()), "{managers:?}");

    // Taking a field another manager owns is a conflict unless forced. (user-tool re-states "b": under SSA
    // a manager that omits a field it owned removes it.)
    let steal = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "9", "b": "2"}});
    let err = cms
        .patch("cfg", &theirs, &Patch::Apply(&steal))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("expected a 409 conflict, got {other:?}"),
    }
    let forced = cms
        .patch(
            "cfg",
            &PatchParams::apply("user-tool").force(),
            &Patch::Apply(&steal),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap().get("a").map(String::as_str), Some("9"));

    // Applying our own object again with other fields drops only what we owned and leaves the rest.
    let ours_only =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"c": "3"}});
    let after = cms.patch("cfg", &ours, &Patch::Apply(&ours_only)).await.unwrap();
    let data = after.data.unwrap();
    assert_eq!(
        data.get("a").map(String::as_str),
        Some("9"),
        "the field taken over by force survives"
    );
    assert_eq!(
        data.get("b").map(String::as_str),
        Some("2"),
        "the other manager's field survives"
    );
    assert_eq!(data.get("c").map(String::as_str), Some("3"));
}

#[tokio::test]
async fn flagger_crds_install_and_the_server_validates_canaries() {
    let ns = TestNamespace::new("crds").await.unwrap();
    install_crds(&ns.client, &flagger_api::crds()).await.unwrap();

    let gvk = GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary");
    let canaries: Api<DynamicObject> =
        Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk));
    let valid = json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo"},
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}]}
        }
    });
    let created = canaries
        .patch("podinfo", &PatchParams::apply("test"), &Patch::Apply(&valid))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["analysis"]["stepWeight"], 10);

    // Each of these breaks one rule of the schema, and the server says which field.
    let cases = [
        ("no-port", "/spec/service/port", json!(null), "spec.service.port"),
        (
            "bad-interval",
            "/spec/analysis/interval",
            json!("soon"),
            "spec.analysis.interval",
        ),
        (
            "bad-kind",
            "/spec/targetRef/kind",
            json!("StatefulSet"),
            "spec.targetRef.kind",
        ),
        (
            "bad-provider",
            "/spec/provider",
            json!("gatewayapi"),
            "spec.provider",
        ),
    ];
    for (name, pointer, value, field) in cases {
        let mut invalid = valid.clone();
        invalid["metadata"]["name"] = json!(name);
        if value.is_null() {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            invalid
                .pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
        } else {
            *invalid.pointer_mut(pointer).unwrap() = value;
        }
        let err = canaries
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(&invalid))
            .await
            .unwrap_err();
        match err {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 422, "{name}: {status:?}");
                assert!(status.message.contains(field), "{name}: {}", status.message);
            }
            other => panic!("{name}: expected 422 Invalid, got {other:?}"),
        }
    }
}
