//! The background sender: never blocks the caller, keeps order per destination, retries a bounded
//! number of times, and counts sent, failed and dropped alerts.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flagger_core::provider::AlertProviderType;
use flagger_notify::{
    Alert, AlertSender, AnyNotifier, Delivery, DeliveryCounts, HttpOptions, NotifierConfig, SenderConfig,
    Severity,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{silent_receiver, wait_until};

const DEADLINE: Duration = Duration::from_secs(10);

fn notifier(provider: AlertProviderType, address: String, timeout: Duration) -> AnyNotifier {
    let config = NotifierConfig {
        provider,
        address,
        token: None,
        proxy: None,
        username: "flagger".to_owned(),
        channel: "general".to_owned(),
    };
    AnyNotifier::with_options(&config, &HttpOptions { timeout }).unwrap()
}

fn alert(n: usize) -> Arc<Alert> {
    Arc::new(Alert::new(
        "podinfo",
        "test",
        format!("alert {n}"),
        Severity::Info,
    ))
}

fn fast_config() -> SenderConfig {
    SenderConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..SenderConfig::default()
    }
}

async fn answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_dead_endpoint_never_delays_send_nor_other_destinations() {
    let (dead_url, accepted) = silent_receiver().await;
    let dead = notifier(AlertProviderType::Slack, dead_url, Duration::from_secs(30));
    let healthy_server = answering(200).await;
    let healthy = notifier(
        AlertProviderType::Msteams,
        format!("{}/hook", healthy_server.uri()),
        Duration::from_secs(5),
    );
    let (sender, task) = AlertSender::start(fast_config());
    let counters = sender.counters();

    let start = Instant::now();
    for n in 0..50 {
        assert!(sender.send(Delivery::new(dead.clone(), alert(n))));
    }
    assert!(sender.send(Delivery::new(healthy, alert(50))));
    let elapsed = start.elapsed();
    // Each send to the dead endpoint would take its 30s timeout if sending were inline.
    assert!(elapsed < Duration::from_secs(2), "51 sends took {elapsed:?}");

    // The dead endpoint got a connection that hangs; the healthy one is served meanwhile.
    wait_until(DEADLINE, "the dead endpoint's first connection", || {
        *accepted.lock().unwrap() >= 1
    })
    .await;
    wait_until(DEADLINE, "the healthy destination's alert", || {
        counters.get(AlertProviderType::Msteams).sent == 1
    })
    .await;
    assert_eq!(counters.get(AlertProviderType::Slack), DeliveryCounts::default());
    task.abort();
}

#[tokio::test]
async fn retries_are_bounded_for_server_errors() {
    let server = answering(503).await;
    let (sender, task) = AlertSender::start(fast_config());
    let counters = sender.counters();
    sender.send(Delivery::new(
        notifier(
            AlertProviderType::Gchat,
            format!("{}/hook", server.uri()),
            Duration::from_secs(5),
        ),
        alert(0),
    ));
    wait_until(DEADLINE, "the alert to fail", || {
        counters.get(AlertProviderType::Gchat).failed == 1
    })
    .await;
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    assert_eq!(
        counters.get(AlertProviderType::Gchat),
        DeliveryCounts {
            sent: 0,
            failed: 1,
            dropped: 0,
            retries: 2
        }
    );
    drop(sender);
    task.join().await;
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = answering(400).await;
    let (sender, task) = AlertSender::start(fast_config());
    let counters = sender.counters();
    sender.send(Delivery::new(
        notifier(
            AlertProviderType::Rocket,
            format!("{}/hook", server.uri()),
            Duration::from_secs(5),
        ),
        alert(0),
    ));
    drop(sender);
    task.join().await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(
        counters.get(AlertProviderType::Rocket),
        DeliveryCounts {
            sent: 0,
            failed: 1,
            dropped: 0,
            retries: 0
        }
    );
}

#[tokio::test]
async fn timeouts_are_retried_then_counted_as_failed() {
    let (url, accepted) = silent_receiver().await;
    let config = SenderConfig {
        max_attempts: 2,
        ..fast_config()
    };
    let (sender, task) = AlertSender::start(config);
    let counters = sender.counters();
    sender.send(Delivery::new(
        notifier(AlertProviderType::Discord, url, Duration::from_millis(200)),
        alert(0),
    ));
    drop(sender);
    task.join().await;
    assert_eq!(*accepted.lock().unwrap(), 2);
    assert_eq!(
        counters.get(AlertProviderType::Discord),
        DeliveryCounts {
            sent: 0,
            failed: 1,
            dropped: 0,
            retries: 1
        }
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let (url, _accepted) = silent_receiver().await;
    let config = SenderConfig {
        queue_capacity: 1,
        destination_capacity: 1,
        ..fast_config()
    };
    let (sender, task) = AlertSender::start(config);
    let counters = sender.counters();
    let dead = notifier(AlertProviderType::Slack, url, Duration::from_secs(30));
    let refused = (0..20)
        .filter(|n| !sender.send(Delivery::new(dead.clone(), alert(*n))))
        .count() as u64;
    // At most one delivery in flight, one in the destination queue and one in the main queue.
    wait_until(DEADLINE, "all drops to be counted", || {
        counters.get(AlertProviderType::Slack).dropped >= 17
    })
    .await;
    let dropped = counters.get(AlertProviderType::Slack).dropped;
    assert!(
        refused >= 1 && refused <= dropped,
        "refused {refused}, dropped {dropped}"
    );
    assert!(dropped <= 19);
    assert_eq!(counters.get(AlertProviderType::Slack).sent, 0);
    task.abort();
}

#[tokio::test]
async fn alerts_to_one_destination_arrive_in_order_and_idle_workers_restart() {
    let server = answering(200).await;
    let config = SenderConfig {
        idle_timeout: Duration::from_millis(20),
        ..fast_config()
    };
    let (sender, task) = AlertSender::start(config);
    let counters = sender.counters();
    let target = notifier(
        AlertProviderType::Msteams,
        format!("{}/hook", server.uri()),
        Duration::from_secs(5),
    );
    for n in 0..10 {
        assert!(sender.send(Delivery::new(target.clone(), alert(n))));
    }
    wait_until(DEADLINE, "ten alerts", || {
        counters.get(AlertProviderType::Msteams).sent == 10
    })
    .await;
    // Let the destination's worker stop for idleness, then send again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sender.send(Delivery::new(target, alert(10))));
    drop(sender);
    task.join().await;
    let titles: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["sections"][0]["activityTitle"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..=10).map(|n| format!("alert {n}")).collect();
    assert_eq!(titles, expected);
    assert_eq!(counters.get(AlertProviderType::Msteams).sent, 11);
}

#[tokio::test]
async fn send_all_fans_out_and_snapshot_lists_every_type() {
    let a = answering(200).await;
    let b = answering(200).await;
    let (sender, task) = AlertSender::start(fast_config());
    let counters = sender.counters();
    sender.send_all(
        Alert::new("podinfo", "test", "hello", Severity::Warn),
        [
            notifier(
                AlertProviderType::Slack,
                format!("{}/a", a.uri()),
                Duration::from_secs(5),
            ),
            notifier(
                AlertProviderType::Gchat,
                format!("{}/b", b.uri()),
                Duration::from_secs(5),
            ),
        ],
    );
    drop(sender);
    task.join().await;
    assert_eq!(a.received_requests().await.unwrap().len(), 1);
    assert_eq!(b.received_requests().await.unwrap().len(), 1);
    let snapshot = counters.snapshot();
    assert_eq!(snapshot.len(), 5);
    let sent: Vec<(AlertProviderType, u64)> = snapshot.iter().map(|(p, c)| (*p, c.sent)).collect();
    assert_eq!(
        sent,
        [
            (AlertProviderType::Slack, 1),
            (AlertProviderType::Msteams, 0),
            (AlertProviderType::Discord, 0),
            (AlertProviderType::Rocket, 0),
            (AlertProviderType::Gchat, 1),
        ]
    );
}
