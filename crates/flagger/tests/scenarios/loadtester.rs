//! The load tester as Flagger's docs use it: a `confirm-promotion` webhook on `/gate/check` holds the
//! release in WaitingPromotion until someone calls `/gate/open`.

use std::time::Duration;

use flagger_api::CanaryPhase as P;
use flagger_loadtester::{Config, LoadTester};

use crate::support::*;

async fn post(url: &str, body: &serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_waits_for_the_load_testers_gate() {
    let ns = namespace("ltgate").await;
    let lt = LoadTester::start(Config::new(([127, 0, 0, 1], 0).into()))
        .await
        .unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let analysis = format!(
        "interval: 10s
threshold: 2
iterations: 1
webhooks:
- {{name: gate, type: confirm-promotion, url: \"{}\"}}",
        lt.url("/gate/check")
    );
    apply_canary(&ns, &canary_yaml("kubernetes", &analysis)).await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(&ns, "podinfo:2.0.0").await;

    wait_phase(&ns, "podinfo", P::WaitingPromotion, RELEASE).await;
    let t = dotted(&ns);
    wait_event(
        &ns,
        "podinfo",
        &format!("Halt {t} advancement waiting for promotion approval gate"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // The gate stays closed across two more analysis intervals: the release does not move.
    let checks = |lt: &LoadTester| {
        let url = lt.url("/metrics");
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(r#"flagger_loadtester_gate_checks_total{gate="gate",approved="false"} "#)
                })
                .map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
        }
    };
    let before = checks(&lt).await;
    testkit::kube::poll("two more closed gate checks", Duration::from_secs(40), || async {
        let now = checks(&lt).await;
        Ok(if now >= before + 2.0 { Ok(()) } else { Err(now) })
    })
    .await
    .unwrap();
    let canary = wait_phase(&ns, "podinfo", P::WaitingPromotion, Duration::from_secs(1)).await;
    assert_eq!(canary.status.unwrap().phase(), P::WaitingPromotion);
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:1.0.0",
        "{}",
        op.logs()
    );

    // Opening the gate (the documented curl call) promotes.
    let open = serde_json::json!({"name": "podinfo", "namespace": ns.name});
    assert_eq!(post(&lt.url("/gate/open"), &open).await, 202);
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    wait_event(
        &ns,
        "podinfo",
        "Confirm-promotion check gate passed",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    lt.shutdown().await.unwrap();
}
