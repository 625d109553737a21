//! The operator killed with SIGKILL in the middle of a release: a restarted one finishes it without
//! repeating or skipping a step.

use flagger_api::CanaryPhase as P;

use crate::smi_support::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_progressing_resumes_without_a_doubled_step() {
    let ns = smi_namespace("crashprog").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_canary(
        &ns,
        &canary_yaml(
            "linkerd",
            "interval: 10s\nthreshold: 2\nstepWeight: 10\nmaxWeight: 40",
        ),
    )
    .await;
    let weights = Weights::record(&ns, "v1alpha1");
    let history = History::record(&ns, "podinfo").await;
    let mut op = operator(&ns, &["-mesh-provider=linkerd"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;

    // Kill it the moment the router shows the second step, before or after its status write.
    weights.wait("canary weight 20", RELEASE, |(_, c)| c == 20).await;
    op.kill().unwrap();
    let before = op.logs();
    let op = operator(&ns, &["-mesh-provider=linkerd"]).await;
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE * 2).await;
    assert_eq!(
        weights.primary(),
        vec![100, 90, 80, 70, 60, 100],
        "{:?}\n--- first operator ---\n{before}\n--- second operator ---\n{}",
        history.seen(),
        op.logs()
    );
    let status_weights = history.weights();
    assert!(
        status_weights.windows(2).all(|w| w[1] <= w[0] + 10),
        "the status never skipped a step: {status_weights:?}"
    );
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_promoting_resumes_without_a_doubled_step() {
    let ns = smi_namespace("crashpromo").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    apply_canary(
        &ns,
        &canary_yaml(
            "linkerd",
            "interval: 10s\nthreshold: 2\nstepWeight: 40\nmaxWeight: 40\nstepWeightPromotion: 20",
        ),
    )
    .await;
    let weights = Weights::record(&ns, "v1alpha1");
    let mut op = operator(&ns, &["-mesh-provider=linkerd"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;

    // Promoting shifts 40 → 60 → 80 → 100 on the primary; kill it as the router shows 80.
    weights
        .wait("primary weight 80 while promoting", RELEASE * 2, |(p, _)| p == 80)
        .await;
    op.kill().unwrap();
    let before = op.logs();
    let op = operator(&ns, &["-mesh-provider=linkerd"]).await;
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        weights.primary(),
        vec![100, 60, 80, 100],
        "--- first operator ---\n{before}\n--- second operator ---\n{}",
        op.logs()
    );
    assert_eq!(done.status.unwrap().canary_weight(), 0);
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(deployment(&ns, "podinfo").await.spec.replicas, Some(0));
}
