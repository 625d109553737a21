//! Delivery off the reconcile path: [`AlertSender::send`] only enqueues (never awaits the network); a
//! background task posts, in order per destination, with bounded retries, and counts the outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flagger_core::provider::AlertProviderType;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::{JoinHandle, JoinSet};

use crate::{Alert, AnyNotifier, Notifier};

/// Queue sizes, retries and backoff of an [`AlertSender`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderConfig {
    /// Deliveries waiting to be dispatched; when full, [`AlertSender::send`] drops (default 1024).
    pub queue_capacity: usize,
    /// Deliveries waiting for one destination while an earlier one is posted; when full they are
    /// dropped (default 128).
    pub destination_capacity: usize,
    /// Attempts per delivery, the first included (default 3). Only transport failures, 408, 429 and
    /// 5xx are retried.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one (default 1s).
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 10s).
    pub max_backoff: Duration,
    /// A destination's worker stops after this long without deliveries (default 5 minutes).
    pub idle_timeout: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            destination_capacity: 128,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// One alert for one notifier.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Where to post.
    pub notifier: AnyNotifier,
    /// What to post (shared by the deliveries of one alert).
    pub alert: Arc<Alert>,
}

impl Delivery {
    /// A delivery.
    pub fn new(notifier: AnyNotifier, alert: Arc<Alert>) -> Self {
        Self { notifier, alert }
    }
}

/// Delivery outcomes of one provider type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Alerts the service accepted.
    pub sent: u64,
    /// Alerts given up on after the last attempt or a non-retriable error.
    pub failed: u64,
    /// Alerts dropped because a queue was full or the sender had stopped.
    pub dropped: u64,
    /// Attempts after the first.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

/// Counters of delivery outcomes by provider type, for the operator's metrics.
#[derive(Debug, Default)]
pub struct AlertCounters {
    by_provider: [Counters; 5],
}

impl AlertCounters {
    fn of(&self, provider: AlertProviderType) -> &Counters {
        let index = match provider {
            AlertProviderType::Slack => 0,
            AlertProviderType::Msteams => 1,
            AlertProviderType::Discord => 2,
            AlertProviderType::Rocket => 3,
            AlertProviderType::Gchat => 4,
        };
        &self.by_provider[index]
    }

    /// The outcomes of `provider`.
    pub fn get(&self, provider: AlertProviderType) -> DeliveryCounts {
        let c = self.of(provider);
        DeliveryCounts {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// The outcomes of every provider type, in the CRD's order.
    pub fn snapshot(&self) -> Vec<(AlertProviderType, DeliveryCounts)> {
        AlertProviderType::ALL
            .iter()
            .map(|p| (*p, self.get(*p)))
            .collect()
    }

    fn add(&self, provider: AlertProviderType, pick: impl Fn(&Counters) -> &AtomicU64) {
        pick(self.of(provider)).fetch_add(1, Ordering::Relaxed);
    }
}

/// Enqueues deliveries for the background task. Cheap to clone; the task ends when every clone is
/// dropped and the queues are drained.
#[derive(Clone, Debug)]
pub struct AlertSender {
    queue: mpsc::Sender<Delivery>,
    counters: Arc<AlertCounters>,
}

/// The background task of an [`AlertSender`].
#[derive(Debug)]
pub struct SenderTask {
    handle: JoinHandle<()>,
}

impl SenderTask {
    /// Waits until every sender is dropped and every queued delivery was attempted.
    pub async fn join(self) {
        if let Err(error) = self.handle.await {
            tracing::error!(%error, "alert sender task ended abnormally");
        }
    }

    /// Stops at once; queued deliveries are lost.
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl AlertSender {
    /// Starts the background task on the current tokio runtime.
    pub fn start(config: SenderConfig) -> (Self, SenderTask) {
        let (queue, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(AlertCounters::default());
        let handle = tokio::spawn(dispatch(rx, config, Arc::clone(&counters)));
        (Self { queue, counters }, SenderTask { handle })
    }

    /// Enqueues `delivery` without waiting. Returns false, counting a drop, when the queue is full or
    /// the task has stopped.
    pub fn send(&self, delivery: Delivery) -> bool {
        match self.queue.try_send(delivery) {
            Ok(()) => true,
            Err(TrySendError::Full(d) | TrySendError::Closed(d)) => {
                drop_delivery(&self.counters, &d, "alert queue full");
                false
            }
        }
    }

    /// Enqueues one delivery of `alert` per notifier.
    pub fn send_all(&self, alert: Alert, notifiers: impl IntoIterator<Item = AnyNotifier>) {
        let alert = Arc::new(alert);
        for notifier in notifiers {
            self.send(Delivery::new(notifier, Arc::clone(&alert)));
        }
    }

    /// The delivery counters.
    pub fn counters(&self) -> Arc<AlertCounters> {
        Arc::clone(&self.counters)
    }
}

fn drop_delivery(counters: &AlertCounters, d: &Delivery, reason: &'static str) {
    counters.add(d.notifier.provider(), |c| &c.dropped);
    tracing::warn!(
        canary = %d.alert.subject(),
        provider = %d.notifier.provider(),
        destination = %d.notifier.redacted_destination(),
        message = %d.alert.message,
        "{reason}, alert dropped"
    );
}

/// Routes each delivery to the worker of its destination, so one slow destination never holds back
/// another and each destination gets its alerts in order.
async fn dispatch(mut rx: mpsc::Receiver<Delivery>, config: SenderConfig, counters: Arc<AlertCounters>) {
    let mut lanes: HashMap<String, mpsc::Sender<Delivery>> = HashMap::new();
    let mut workers = JoinSet::new();
    while let Some(mut delivery) = rx.recv().await {
        while workers.try_join_next().is_some() {}
        let key = delivery.notifier.destination();
        loop {
            let lane = lanes.entry(key.clone()).or_insert_with(|| {
                let (tx, lane_rx) = mpsc::channel(config.destination_capacity.max(1));
                workers.spawn(work(lane_rx, config.clone(), Arc::clone(&counters)));
                tx
            });
            match lane.try_send(delivery) {
                Ok(()) => break,
                Err(TrySendError::Full(d)) => {
                    drop_delivery(&counters, &d, "alert destination queue full");
                    break;
                }
                Err(TrySendError::Closed(d)) => {
                    // The worker stopped when idle: start a new one.
                    lanes.remove(&key);
                    delivery = d;
                }
            }
        }
    }
    drop(lanes);
    while workers.join_next().await.is_some() {}
}

/// Posts the deliveries of one destination in order; stops when idle.
async fn work(mut rx: mpsc::Receiver<Delivery>, config: SenderConfig, counters: Arc<AlertCounters>) {
    loop {
        match tokio::time::timeout(config.idle_timeout, rx.recv()).await {
            Ok(Some(delivery)) => deliver(&delivery, &config, &counters).await,
            Ok(None) => return,
            Err(_) => {
                rx.close();
                while let Ok(delivery) = rx.try_recv() {
                    deliver(&delivery, &config, &counters).await;
                }
                return;
            }
        }
    }
}

async fn deliver(d: &Delivery, config: &SenderConfig, counters: &AlertCounters) {
    let provider = d.notifier.provider();
    let attempts = config.max_attempts.max(1);
    let mut backoff = config.initial_backoff;
    for attempt in 1..=attempts {
        match d.notifier.post(&d.alert).await {
            Ok(()) => {
                counters.add(provider, |c| &c.sent);
                tracing::debug!(canary = %d.alert.subject(), %provider, attempt, "alert sent");
                return;
            }
            Err(error) if error.is_retriable() && attempt < attempts => {
                counters.add(provider, |c| &c.retries);
                tracing::warn!(
                    canary = %d.alert.subject(),
                    %provider,
                    destination = %d.notifier.redacted_destination(),
                    attempt,
                    %error,
                    "alert can't be sent, retrying in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(config.max_backoff);
            }
            Err(error) => {
                counters.add(provider, |c| &c.failed);
                tracing::error!(
                    canary = %d.alert.subject(),
                    %provider,
                    destination = %d.notifier.redacted_destination(),
                    attempt,
                    %error,
                    message = %d.alert.message,
                    "alert can't be sent"
                );
                return;
            }
        }
    }
}
