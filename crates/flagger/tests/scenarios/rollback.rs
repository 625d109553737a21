//! Rollback after `threshold` failed checks, and what a failed release reacts to afterwards.

use std::time::Duration;

use flagger_api::CanaryPhase as P;
use testkit::hooks::Receiver;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rollout_hook_rolls_back_and_only_a_new_revision_restarts() {
    let ns = namespace("rollback").await;
    let hooks = Receiver::start().await.unwrap();
    hooks.set_status("load", 500);
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s
threshold: 2
iterations: 5
webhooks:
- {{name: load, url: \"{}\", timeout: 2s}}
- {{name: post, type: post-rollout, url: \"{}\"}}",
        hooks.url("load"),
        hooks.url("post")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    set_image(&ns, "podinfo:2.0.0").await;
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    let status = failed.status.unwrap();
    assert_eq!(status.canary_weight(), 0);
    assert_eq!(status.failed_checks(), 0, "a rollback resets failedChecks");
    let seen = history.seen();
    assert!(
        seen.iter()
            .any(|s| s.phase == P::Progressing && s.failed_checks == 2),
        "failed checks counted up to the threshold: {seen:?}\n{}",
        op.logs()
    );
    assert!(!seen.iter().any(|s| s.phase == P::Promoting), "{seen:?}");
    // The canary is scaled to zero; the primary still runs the old revision.
    let target = deployment(&ns, "podinfo").await;
    assert_eq!(target.spec.replicas, Some(0));
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:1.0.0"
    );
    let t = dotted(&ns);
    for message in [
        "Halt podinfo.{ns} advancement external check load failed POST {url} giving up after 1 attempt(s)"
            .replace("podinfo.{ns}", &t)
            .replace("{url}", &hooks.url("load")),
        format!("Rolling back {t} failed checks threshold reached 2"),
        format!("Canary failed! Scaling down {t}"),
    ] {
        wait_event(&ns, "podinfo", &message, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let post = hooks
        .wait_for_calls("post", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(post[0].body["phase"], "Failed");

    // Reverting the target to the primary's revision starts nothing: the status records it as seen.
    let before = hooks.calls_to("load").len();
    set_image(&ns, "podinfo:1.0.0").await;
    wait_status(
        &ns,
        "lastAppliedSpec back to the promoted revision",
        RELEASE,
        |s| {
            s.phase() == P::Failed
                && s.last_applied_spec.is_some()
                && s.last_applied_spec == s.last_promoted_spec
        },
    )
    .await;
    let failed_at = history.seen().len();
    // A new revision starts a new analysis.
    set_image(&ns, "podinfo:3.0.0").await;
    wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    let after_revert = &history.seen()[..failed_at];
    assert_eq!(
        after_revert.last().map(|s| s.phase),
        Some(P::Failed),
        "{after_revert:?}"
    );
    assert_eq!(
        after_revert
            .iter()
            .filter(|s| s.phase == P::Progressing && s.iterations == 0 && s.failed_checks == 0)
            .count(),
        1,
        "only the first release started before the new revision: {after_revert:?}"
    );
    assert!(hooks.calls_to("load").len() >= before);
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_past_its_progress_deadline_is_rolled_back() {
    let ns = namespace("deadline").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let yaml = canary_yaml("kubernetes", "interval: 10s\nthreshold: 5\niterations: 5").replace(
        "  provider: kubernetes\n",
        "  provider: kubernetes\n  progressDeadlineSeconds: 15\n",
    );
    apply_canary(&ns, &yaml).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    // A revision whose pods cannot be scheduled: once the canary has been unavailable for longer than the
    // Canary's progressDeadlineSeconds, waiting is no longer retriable.
    let api: kube::api::Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    let patch = serde_json::json!({"spec": {
        "template": {"spec": {"nodeSelector": {"flagger-rs.test/nowhere": "true"}}},
    }});
    api.patch(
        "podinfo",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(&patch),
    )
    .await
    .unwrap();
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    assert_eq!(failed.status.unwrap().canary_weight(), 0);
    assert!(
        history.phases().contains(&P::Progressing),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!(
            "canary deployment {t} not ready: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) \
             updated replicas are available"
        ),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    wait_event(
        &ns,
        "podinfo",
        &format!(
            "Rolling back {t} progress deadline exceeded waiting for rollout to finish: 0 of 2 (readyThreshold \
             100%) updated replicas are available"
        ),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    wait_event(
        &ns,
        "podinfo",
        &format!("Canary failed! Scaling down {t}"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:1.0.0"
    );
}
