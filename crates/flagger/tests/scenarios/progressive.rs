//! Progressive traffic shifting through a router (SMI TrafficSplit, `linkerd`), weights read from the
//! routing object as the operator wrote them.

use flagger_api::CanaryPhase as P;

use crate::smi_support::*;
use crate::support::*;

/// Runs one release with `analysis` and returns the primary weights the TrafficSplit went through.
async fn release(prefix: &str, analysis: &str) -> Vec<i64> {
    let ns = smi_namespace(prefix).await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_canary(&ns, &canary_yaml("linkerd", analysis)).await;
    let weights = Weights::record(&ns, "v1alpha1");
    let op = operator(&ns, &["-mesh-provider=linkerd"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE * 2).await;
    assert_eq!(done.status.unwrap().canary_weight(), 0);
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(
        deployment(&ns, "podinfo").await.spec.replicas,
        Some(0),
        "{}",
        op.logs()
    );
    assert!(
        weights.pairs().iter().all(|(p, c)| p + c == 100),
        "{:?}",
        weights.pairs()
    );
    weights.primary()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_weight_overshoots_max_weight_then_promotes() {
    let weights = release(
        "step",
        "interval: 10s\nthreshold: 2\nstepWeight: 20\nmaxWeight: 50",
    )
    .await;
    assert_eq!(weights, vec![100, 80, 60, 40, 100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_weights_follow_the_list() {
    let weights = release(
        "steps",
        "interval: 10s\nthreshold: 2\nstepWeights: [1, 2, 10, 80]",
    )
    .await;
    assert_eq!(weights, vec![100, 99, 98, 90, 20, 100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_weight_promotion_shifts_back_in_steps() {
    let weights = release(
        "promo",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50\nstepWeightPromotion: 25",
    )
    .await;
    assert_eq!(weights, vec![100, 50, 75, 100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_traffic_increase_holds_the_weight_until_approved() {
    let ns = smi_namespace("traffic").await;
    let hooks = testkit::hooks::Receiver::start().await.unwrap();
    hooks.set_status("increase", 403);
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50\nwebhooks:\n- {{name: increase, type: confirm-traffic-increase, url: \"{}\"}}",
        hooks.url("increase")
    );
    apply_canary(&ns, &canary_yaml("linkerd", &analysis)).await;
    let weights = Weights::record(&ns, "v1alpha1");
    let _op = operator(&ns, &["-mesh-provider=linkerd"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;

    // Closed: asked on two ticks, the weight stays at 0, a halt event, no failed check.
    let calls = hooks
        .wait_for_calls("increase", 2, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(calls.iter().all(|c| c.body["phase"] == "Progressing"));
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Halt {t} advancement waiting for traffic increase approval increase"),
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let c = wait_phase(&ns, "podinfo", P::Progressing, RELEASE).await;
    let status = c.status.unwrap();
    assert_eq!((status.canary_weight(), status.failed_checks()), (0, 0));
    assert_eq!(weights.primary(), vec![100]);

    // Open: the step is taken, then the promotion (which asks again).
    hooks.set_status("increase", 200);
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(weights.primary(), vec![100, 50, 100]);
    wait_event(
        &ns,
        "podinfo",
        "Confirm-traffic-increase check increase passed",
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
}
