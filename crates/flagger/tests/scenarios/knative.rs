//! Knative targets (§2.8, §3.12): the primary is the revision in `flagger.app/primary-revision`, traffic is
//! split in the Knative Service's `spec.traffic` and read back from `status.traffic`. The test plays
//! Knative: it creates Revisions, sets `status.latestCreatedRevisionName`, and mirrors `spec.traffic` into
//! `status.traffic` as Knative's route controller would.

use std::sync::{Arc, Mutex};

use flagger_api::CanaryPhase as P;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use testkit::TestNamespace;
use testkit::kube::poll;

use crate::support::*;

const KNATIVE_CRDS: &str = include_str!("../../../flagger-controller/testdata/crds/knative.yaml");

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("serving.knative.dev", "v1", kind), plural)
}

fn services(ns: &TestNamespace) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource("Service", "services"))
}

/// A ready Revision `name`, and the Service's latest created revision set to it.
async fn new_revision(ns: &TestNamespace, name: &str) {
    let revisions: Api<DynamicObject> =
        Api::namespaced_with(ns.client.clone(), &ns.name, &resource("Revision", "revisions"));
    let mut rev = DynamicObject::new(name, &resource("Revision", "revisions"));
    rev.data = json!({"spec": {"containers": [{"image": format!("podinfo:{name}")}]}});
    revisions.create(&PostParams::default(), &rev).await.unwrap();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    revisions
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    services(ns)
        .patch_status(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"latestCreatedRevisionName": name}})),
        )
        .await
        .unwrap();
}

/// Knative's route controller, for one Service: `status.traffic` follows `spec.traffic`, with the
/// latest-revision entry resolved to the latest created revision. Returns the canary percents seen in
/// `spec.traffic`, in order.
fn play_knative(ns: &TestNamespace) -> Arc<Mutex<Vec<i64>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = services(ns);
    let record = seen.clone();
    tokio::spawn(async move {
        let mut stream = watcher::watch_object(api.clone(), "podinfo").boxed();
        while let Some(item) = stream.next().await {
            let Ok(Some(svc)) = item else { continue };
            let latest = svc.data["status"]["latestCreatedRevisionName"].clone();
            let Some(spec) = svc.data["spec"]["traffic"].as_array() else {
                continue;
            };
            let status: Vec<Value> = spec
                .iter()
                .map(|t| {
                    let latest_entry = t["latestRevision"] == true;
                    json!({
                        "revisionName": if latest_entry { latest.clone() } else { t["revisionName"].clone() },
                        "latestRevision": latest_entry,
                        "percent": t["percent"],
                    })
                })
                .collect();
            if let Some(canary) = spec
                .iter()
                .find(|t| t["latestRevision"] == true)
                .and_then(|t| t["percent"].as_i64())
            {
                let mut seen = record.lock().unwrap();
                if seen.last() != Some(&canary) {
                    seen.push(canary);
                }
            }
            if svc.data["status"]["traffic"] != json!(status) {
                let _ = api
                    .patch_status(
                        "podinfo",
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"status": {"traffic": status}})),
                    )
                    .await;
            }
        }
    });
    seen
}

fn annotation(svc: &DynamicObject) -> Option<String> {
    svc.metadata
        .annotations
        .as_ref()?
        .get("flagger.app/primary-revision")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knative_revision_is_released_by_traffic_percent_and_a_failing_one_rolled_back() {
    let ns = namespace_with_crds("knative", KNATIVE_CRDS).await;
    let mut svc = DynamicObject::new("podinfo", &resource("Service", "services"));
    svc.data = json!({"spec": {"template": {"spec": {"containers": [{"image": "podinfo:1"}]}}}});
    services(&ns).create(&PostParams::default(), &svc).await.unwrap();
    new_revision(&ns, "podinfo-00001").await;
    let seen = play_knative(&ns);

    let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  provider: knative
  targetRef: {apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}
  service: {port: 80}
  analysis:
    interval: 10s
    threshold: 2
    stepWeight: 25
    maxWeight: 50
";
    apply_canary(&ns, yaml).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=knative"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    let svc = services(&ns).get("podinfo").await.unwrap();
    assert_eq!(
        annotation(&svc).as_deref(),
        Some("podinfo-00001"),
        "{}",
        op.logs()
    );
    assert_eq!(
        svc.data["spec"]["traffic"],
        json!([
            {"latestRevision": true, "percent": 0},
            {"revisionName": "podinfo-00001", "percent": 100},
        ])
    );

    // A new revision: 25, 50, then promoted (the annotation moves) and all traffic to the primary.
    new_revision(&ns, "podinfo-00002").await;
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    let svc = services(&ns).get("podinfo").await.unwrap();
    assert_eq!(annotation(&svc).as_deref(), Some("podinfo-00002"));
    assert_eq!(
        svc.data["spec"]["traffic"],
        json!([
            {"latestRevision": true, "percent": 0},
            {"revisionName": "podinfo-00002", "percent": 100},
        ])
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![0, 25, 50, 0],
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );

    // A revision whose rollout check fails goes back to the primary.
    let canaries: Api<flagger_api::Canary> = ns.api();
    canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"analysis": {"webhooks": [
                {"name": "check", "type": "rollout", "url": "http://127.0.0.1:1/unreachable"}
            ]}}})),
        )
        .await
        .unwrap();
    seen.lock().unwrap().clear();
    new_revision(&ns, "podinfo-00003").await;
    wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    poll("all traffic back on the primary", RELEASE, || async {
        let svc = services(&ns).get("podinfo").await?;
        let traffic = svc.data["spec"]["traffic"].clone();
        let expected = json!([
            {"latestRevision": true, "percent": 0},
            {"revisionName": "podinfo-00002", "percent": 100},
        ]);
        Ok(if traffic == expected { Ok(()) } else { Err(traffic) })
    })
    .await
    .unwrap();
    assert_eq!(
        annotation(&services(&ns).get("podinfo").await.unwrap()).as_deref(),
        Some("podinfo-00002")
    );
}
