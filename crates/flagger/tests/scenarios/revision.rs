//! A new revision of the target during the analysis restarts it.

use std::time::Duration;

use flagger_api::CanaryPhase as P;
use testkit::hooks::Receiver;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_revision_mid_analysis_restarts_it() {
    let ns = namespace("revision").await;
    let hooks = Receiver::start().await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s
threshold: 2
iterations: 3
webhooks:
- {{name: gate, type: confirm-rollout, url: \"{}\"}}",
        hooks.url("gate")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    set_image(&ns, "podinfo:2.0.0").await;
    wait_status(&ns, "two iterations done", RELEASE, |s| {
        s.phase() == P::Progressing && s.iterations() >= 2
    })
    .await;
    let gate_calls = hooks.calls_to("gate").len();
    set_image(&ns, "podinfo:3.0.0").await;
    // The restart is picked up at once (a watch event), not at the next interval: the tick that wrote
    // the second iteration was just now, so the next is about 10 s away.
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("New revision detected! Restarting analysis for {t}"),
        Duration::from_secs(8),
    )
    .await
    .unwrap();
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:3.0.0"
    );
    let status = done.status.unwrap();
    assert_eq!(status.last_applied_spec, status.last_promoted_spec);

    // The iterations went back to zero once, within Progressing; confirm-rollout was not asked again.
    let seen = history.seen();
    let progressing: Vec<i32> = seen
        .iter()
        .filter(|s| s.phase == P::Progressing)
        .map(|s| s.iterations)
        .collect();
    let resets = progressing.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(resets, 1, "{seen:?}\n{}", op.logs());
    assert_eq!(
        hooks.calls_to("gate").len(),
        gate_calls,
        "confirm-rollout is not re-run on a restart"
    );
    assert_eq!(
        history.phases(),
        vec![
            P::Initializing,
            P::Initialized,
            P::Progressing,
            P::Promoting,
            P::Finalising,
            P::Succeeded
        ]
    );
}
