//! Manual gates: confirm-rollout, confirm-promotion and rollback hooks.

use std::time::Duration;

use flagger_api::CanaryPhase as P;
use testkit::hooks::Receiver;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_gates_wait_and_open_gates_continue() {
    let ns = namespace("gates").await;
    let hooks = Receiver::start().await.unwrap();
    hooks.set_status("rollout-gate", 403);
    hooks.set_status("promotion-gate", 403);
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s
threshold: 2
iterations: 1
webhooks:
- {{name: rollout-gate, type: confirm-rollout, url: \"{}\"}}
- {{name: promotion-gate, type: confirm-promotion, url: \"{}\"}}",
        hooks.url("rollout-gate"),
        hooks.url("promotion-gate")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;

    // Closed confirm-rollout: Waiting, the canary stays at zero, the gate is asked every tick.
    wait_phase(&ns, "podinfo", P::Waiting, RELEASE).await;
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Halt {t} advancement waiting for approval rollout-gate"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
    let calls = hooks
        .wait_for_calls("rollout-gate", 2, Duration::from_secs(40))
        .await
        .unwrap();
    assert_eq!(calls[0].body["phase"], "Initialized");
    assert_eq!(calls[1].body["phase"], "Waiting");

    // Opening it starts the analysis.
    hooks.set_status("rollout-gate", 200);
    wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    wait_event(
        &ns,
        "podinfo",
        "Confirm-rollout check rollout-gate passed",
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    // Closed confirm-promotion: WaitingPromotion; opening it promotes.
    wait_phase(&ns, "podinfo", P::WaitingPromotion, RELEASE).await;
    wait_event(
        &ns,
        "podinfo",
        &format!("Halt {t} advancement waiting for promotion approval promotion-gate"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:1.0.0"
    );
    hooks.set_status("promotion-gate", 200);
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    let phases = history.phases();
    assert_eq!(
        phases,
        vec![
            P::Initializing,
            P::Initialized,
            P::Waiting,
            P::Progressing,
            P::WaitingPromotion,
            P::Promoting,
            P::Finalising,
            P::Succeeded
        ],
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    assert!(
        hooks
            .calls_to("promotion-gate")
            .iter()
            .all(|c| c.body["phase"] == "Progressing"),
        "confirm-promotion is sent phase Progressing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_hook_returning_200_rolls_back() {
    let ns = namespace("rbhook").await;
    let hooks = Receiver::start().await.unwrap();
    hooks.set_status("rollback", 404);
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s
threshold: 5
iterations: 10
webhooks:
- {{name: rollback, type: rollback, url: \"{}\"}}",
        hooks.url("rollback")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;
    wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    let calls = hooks
        .wait_for_calls("rollback", 1, Duration::from_secs(40))
        .await
        .unwrap();
    assert_eq!(calls[0].body["phase"], "Progressing");
    wait_event(
        &ns,
        "podinfo",
        "Rollback hook rollback not signaling a rollback",
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    hooks.set_status("rollback", 200);
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    assert_eq!(failed.status.unwrap().canary_weight(), 0);
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Rolling back {t} manual webhook invoked"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(
        deployment(&ns, "podinfo").await.spec.replicas,
        Some(0),
        "{}",
        op.logs()
    );
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:1.0.0"
    );
}
