//! Two operators against one cluster: only the leader acts; killing it hands over and the release
//! completes.

use std::time::Duration;

use flagger_api::CanaryPhase as P;
use testkit::hooks::Receiver;
use testkit::kube::poll;
use testkit::operator::Operator;

use crate::support::*;

// Short, but with a renew deadline that a slow API server on a loaded machine does not miss.
const LEASE: [&str; 4] = [
    "-enable-leader-election",
    "-leader-election-lease-duration=8s",
    "-leader-election-renew-deadline=6s",
    "-leader-election-retry-period=1s",
];

async fn is_leader(op: &Operator) -> bool {
    op.metrics().await.is_ok_and(|m| {
        m.lines()
            .any(|l| l.starts_with("flagger_rs_leader ") && l.trim_end().ends_with(" 1"))
    })
}

async fn wait_leader(op: &Operator, what: &str, timeout: Duration) {
    poll(what, timeout, || async {
        Ok(if is_leader(op).await {
            Ok(())
        } else {
            Err("not leading")
        })
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_a_killed_leader_hands_over() {
    let ns = namespace("leader").await;
    let hooks = Receiver::start().await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s
threshold: 2
iterations: 4
webhooks:
- {{name: load, url: \"{}\"}}",
        hooks.url("load")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;

    let mut args = vec!["-mesh-provider=kubernetes"];
    args.extend(LEASE);
    let mut first = operator(&ns, &args).await;
    wait_leader(&first, "the first operator to lead", Duration::from_secs(30)).await;
    let second = operator(&ns, &args).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    set_image(&ns, "podinfo:2.0.0").await;
    wait_status(&ns, "an iteration done", RELEASE, |s| {
        s.phase() == P::Progressing && s.iterations() >= 1
    })
    .await;
    // The standby has done nothing: it does not lead and logged no reconcile.
    assert!(!is_leader(&second).await);
    assert!(
        !second.logs().contains("Initialization done!"),
        "{}",
        second.logs()
    );
    assert!(
        !second.logs().contains("New revision detected!"),
        "{}",
        second.logs()
    );

    // Killing the leader (no chance to release the lease) hands over within the lease time.
    first.kill().unwrap();
    wait_leader(&second, "the second operator to lead", Duration::from_secs(30)).await;
    let done = wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(done.status.unwrap().canary_weight(), 0);
    assert!(
        second.logs().contains("Acquired the leader lease"),
        "{}",
        second.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_releases_the_lease_and_exits_cleanly() {
    let ns = namespace("release").await;
    // A lease far longer than the wait below: only a released lease can be taken over in time.
    let args = [
        "-mesh-provider=kubernetes",
        "-enable-leader-election",
        "-leader-election-lease-duration=60s",
        "-leader-election-renew-deadline=15s",
        "-leader-election-retry-period=1s",
    ];
    let mut first = operator(&ns, &args).await;
    wait_leader(&first, "the operator to lead", Duration::from_secs(30)).await;
    let second = operator(&ns, &args).await;
    let status = first.terminate(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "{status}\n{}", first.logs());
    wait_leader(&second, "the second operator to lead", Duration::from_secs(10)).await;
}
