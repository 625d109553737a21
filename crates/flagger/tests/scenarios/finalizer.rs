//! revertOnDeletion (§2.12): deleting the Canary gives the user back a running target and their own apex
//! Service, without downtime, then lets Kubernetes collect what flagger-rs generated.

use std::time::Duration;

use flagger_api::{Canary, CanaryPhase as P};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use testkit::kube::{apply_yaml, poll};

use crate::support::*;

const FINALIZER: &str = "finalizer.flagger.app";

fn finalizers(c: &Canary) -> Vec<String> {
    c.metadata.finalizers.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_canary_restores_the_target_and_the_users_apex_service_first_ready_then_routed() {
    let ns = namespace("revert").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    // The user's own apex Service, applied with kubectl (its last-applied selector is what comes back).
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  labels: {owner: user}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"v1","kind":"Service","metadata":{"name":"podinfo"},"spec":{"selector":{"app":"podinfo"},"ports":[{"port":9898}]}}'
spec:
  selector: {app: podinfo}
  ports: [{port: 9898, targetPort: 9898}]
"#,
    )
    .await
    .unwrap();
    let yaml = canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1")
        .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
    apply_canary(&ns, &yaml).await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let initialized = wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    assert_eq!(finalizers(&initialized), vec![FINALIZER.to_string()]);
    assert_eq!(selector(&ns, "podinfo").await["app"], "podinfo-primary");
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
    let services: Api<Service> = ns.api();
    let apex = services.get("podinfo").await.unwrap();
    assert!(
        apex.metadata.owner_references.is_none(),
        "a user's apex Service must not be owned by the Canary: {:?}",
        apex.metadata.owner_references
    );

    // Watch the apex Service: the moment its selector points at the target again, the target must be ready.
    let deployments: Api<Deployment> = ns.api();
    let watch_deployments = deployments.clone();
    let switched = tokio::spawn(async move {
        let mut stream = std::pin::pin!(
            watcher(
                services.clone(),
                watcher::Config::default().fields("metadata.name=podinfo")
            )
            .applied_objects()
        );
        while let Some(Ok(svc)) = stream.next().await {
            let sel = svc.spec.and_then(|s| s.selector).unwrap_or_default();
            if sel.get("app").map(String::as_str) == Some("podinfo") {
                let target = watch_deployments.get("podinfo").await.unwrap();
                return target.status.and_then(|s| s.available_replicas);
            }
        }
        None
    });

    let canaries: Api<Canary> = ns.api();
    canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .unwrap();
    let available = tokio::time::timeout(RELEASE, switched)
        .await
        .expect("the apex selector went back to the target")
        .unwrap();
    assert_eq!(available, Some(2), "{}", op.logs());
    poll("the Canary to be gone", RELEASE, || async {
        Ok(match canaries.get_opt("podinfo").await? {
            None => Ok(()),
            Some(c) => Err(finalizers(&c)),
        })
    })
    .await
    .unwrap();
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Terminating canary {t}"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    wait_event(
        &ns,
        "podinfo",
        &format!("Terminated canary {t}"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(2));

    // The garbage collector removes the primary and the generated Services; the user's apex stays.
    poll("the primary to be collected", RELEASE, || async {
        Ok(match deployments.get_opt("podinfo-primary").await? {
            None => Ok(()),
            Some(_) => Err("still there"),
        })
    })
    .await
    .unwrap();
    let services: Api<Service> = ns.api();
    poll("the generated Services to be collected", RELEASE, || async {
        let left: Vec<String> = services
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .map(|s| s.metadata.name.unwrap_or_default())
            .collect();
        Ok(if left == ["podinfo"] { Ok(()) } else { Err(left) })
    })
    .await
    .unwrap();
    let apex = services.get("podinfo").await.unwrap();
    assert_eq!(apex.metadata.labels.unwrap()["owner"], "user");
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_revert_on_deletion_off_removes_the_finalizer() {
    let ns = namespace("optout").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let yaml = canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1")
        .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
    apply_canary(&ns, &yaml).await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let canaries: Api<Canary> = ns.api();
    wait_for_finalizers(&canaries, vec![FINALIZER.to_string()]).await;
    canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"revertOnDeletion": false}})),
        )
        .await
        .unwrap();
    wait_for_finalizers(&canaries, vec![]).await;
    // Without the finalizer, deletion is immediate and nothing is reverted.
    canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .unwrap();
    poll("the Canary to be gone", RELEASE, || async {
        Ok(match canaries.get_opt("podinfo").await? {
            None => Ok(()),
            Some(_) => Err("still there"),
        })
    })
    .await
    .unwrap();
    drop(op);
}

async fn wait_for_finalizers(canaries: &Api<Canary>, expected: Vec<String>) {
    poll(&format!("finalizers {expected:?}"), RELEASE, || async {
        let c = canaries.get("podinfo").await?;
        Ok(if finalizers(&c) == expected {
            Ok(())
        } else {
            Err(finalizers(&c))
        })
    })
    .await
    .unwrap();
}
