//! Blue/green promotion of a Deployment with the `kubernetes` provider, driven by a real operator
//! process against the local control plane.
use std::time::Duration;

use crate::support::*;
use flagger_api::CanaryPhase as P;
use testkit::hooks::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_promotion_with_hooks() {
    let ns = namespace("bg").await;
    let hooks = Receiver::start().await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_canary(
        &ns,
        &format!(
            r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  provider: kubernetes
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898}}
  analysis:
    interval: 1s
    threshold: 2
    iterations: 5
    webhooks:
    - {{name: gate, type: confirm-rollout, url: "{gate}"}}
    - {{name: pre, type: pre-rollout, url: "{pre}", metadata: {{cmd: "check"}}}}
    - {{name: load, url: "{load}"}}
    - {{name: post, type: post-rollout, url: "{post}"}}
"#,
            gate = hooks.url("gate"),
            pre = hooks.url("pre"),
            load = hooks.url("load"),
            post = hooks.url("post"),
        ),
    )
    .await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;

    // Initialization: the primary, the Services, the target scaled to zero.
    let c = wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    let promoted = c.status.as_ref().unwrap().condition("Promoted").unwrap();
    assert_eq!(Some(promoted.reason.as_str()), Some("Initialized"));
    let primary = deployment(&ns, "podinfo-primary").await;
    assert_eq!(image_of(&primary), "podinfo:1.0.0");
    assert_eq!(
        primary.spec.selector.match_labels.as_ref().unwrap()["app"],
        "podinfo-primary"
    );
    assert_eq!(selector(&ns, "podinfo").await["app"], "podinfo-primary");
    assert_eq!(selector(&ns, "podinfo-primary").await["app"], "podinfo-primary");
    assert_eq!(selector(&ns, "podinfo-canary").await["app"], "podinfo");
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
    assert!(hooks.calls().is_empty(), "no hook runs before a new revision");

    // A new revision is analysed and promoted.
    set_image(&ns, "podinfo:2.0.0").await;
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    let status = done.status.as_ref().unwrap();
    let promoted = status.condition("Promoted").unwrap();
    assert_eq!(promoted.status, flagger_api::ConditionStatus::True);
    assert_eq!(Some(promoted.reason.as_str()), Some("Succeeded"));
    assert_eq!(status.last_applied_spec, status.last_promoted_spec);

    assert_eq!(
        history.phases(),
        vec![
            P::Initializing,
            P::Initialized,
            P::Progressing,
            P::Promoting,
            P::Finalising,
            P::Succeeded
        ],
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    let iterations: Vec<i32> = history
        .seen()
        .iter()
        .filter(|s| s.phase == P::Progressing)
        .map(|s| s.iterations)
        .collect();
    assert_eq!(iterations.first(), Some(&0));
    assert!(iterations.contains(&5), "{iterations:?}");

    // The hooks: confirm-rollout with the phase the change was found in, one pre-rollout, rollout hooks on
    // every later analysis tick, one post-rollout after success; each with Flagger's payload.
    let gate = hooks.calls_to("gate");
    assert_eq!(gate[0].body["phase"], "Initialized");
    assert_eq!(gate[0].body["name"], "podinfo");
    assert_eq!(gate[0].body["namespace"], ns.name.as_str());
    let pre = hooks.calls_to("pre");
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert_eq!(pre[0].body["phase"], "Progressing");
    assert_eq!(pre[0].body["metadata"]["cmd"], "check");
    assert!(pre[0].body["checksum"].as_str().is_some_and(|c| !c.is_empty()));
    let load = hooks.calls_to("load");
    assert!(load.len() >= 5, "{} rollout calls", load.len());
    assert!(load.iter().all(|c| c.body["phase"] == "Progressing"));
    assert!(
        pre[0].at < load[0].at,
        "pre-rollout runs before the first rollout hook"
    );
    let post = hooks
        .wait_for_calls("post", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].body["phase"], "Succeeded");

    // The primary runs the new template, the apex Service still selects the primary, the target is at zero.
    let primary = deployment(&ns, "podinfo-primary").await;
    assert_eq!(image_of(&primary), "podinfo:2.0.0");
    assert_eq!(selector(&ns, "podinfo").await["app"], "podinfo-primary");
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));

    // Flagger's events, in order.
    let t = format!("podinfo.{}", ns.name);
    for message in [
        format!("Initialization done! {t}"),
        format!("New revision detected! Scaling up {t}"),
        format!("Starting canary analysis for {t}"),
        "Pre-rollout check pre passed".to_string(),
        format!("Advance {t} canary iteration 1/5"),
        format!("Copying {t} template spec to podinfo-primary.{}", ns.name),
        format!("Promotion completed! Scaling down {t}"),
        "Post-rollout check post passed".to_string(),
    ] {
        wait_event(&ns, "podinfo", &message, Duration::from_secs(10))
            .await
            .unwrap();
    }

    // Flagger's operator metrics (set once the reconcile that wrote them finishes).
    let labels = format!("name=\"podinfo\",namespace=\"{}\"", ns.name);
    let needles = [
        format!("flagger_canary_status{{{labels}}} 1"),
        format!("flagger_canary_total{{namespace=\"{}\"}} 1", ns.name),
        "flagger_canary_successes_total{".to_string(),
        "deployment_strategy=\"blue-green\"".to_string(),
        format!("flagger_canary_duration_seconds_count{{{labels}}}"),
        "flagger_info{".to_string(),
    ];
    testkit::kube::poll("the operator metrics", Duration::from_secs(30), || async {
        let metrics = op.metrics().await?;
        Ok(match needles.iter().find(|n| !metrics.contains(n.as_str())) {
            None => Ok(()),
            Some(missing) => Err(format!("{missing} missing from\n{metrics}")),
        })
    })
    .await
    .unwrap();

    // Idle: a reconcile of a Succeeded canary (triggered by a metadata change) writes nothing.
    let versions = || async {
        let mut v = Vec::new();
        for svc in ["podinfo", "podinfo-primary", "podinfo-canary"] {
            let api: kube::api::Api<k8s_openapi::api::core::v1::Service> = ns.api();
            v.push(api.get(svc).await.unwrap().metadata.resource_version);
        }
        // The Deployment controller keeps writing the status of a Deployment scaled to zero a moment ago:
        // a write of ours shows in the generation (spec) or the metadata.
        for d in ["podinfo", "podinfo-primary"] {
            let m = deployment(&ns, d).await.metadata;
            v.push(Some(format!(
                "{:?} {:?} {:?}",
                m.generation, m.labels, m.annotations
            )));
        }
        let api: kube::api::Api<flagger_api::Canary> = ns.api();
        v.push(Some(format!("{:?}", api.get("podinfo").await.unwrap().status)));
        v
    };
    let before = versions().await;
    let reconciles = || op.logs().matches("\"reconciled\"").count();
    let count = reconciles();
    let api: kube::api::Api<flagger_api::Canary> = ns.api();
    let note = serde_json::json!({"metadata": {"annotations": {"test/touch": "1"}}});
    api.patch(
        "podinfo",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&note),
    )
    .await
    .unwrap();
    testkit::kube::poll("a reconcile after the touch", Duration::from_secs(10), || async {
        Ok(if reconciles() > count { Ok(()) } else { Err(count) })
    })
    .await
    .unwrap();
    assert_eq!(versions().await, before, "an idle reconcile wrote something");
    drop(op);
}
