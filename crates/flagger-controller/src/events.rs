//! Kubernetes Events on Canaries, with their copies to event webhooks (Flagger's `events.go`:
//! `recordEventInfof`/`recordEventWarningf` and `sendEventToWebhook`).
//!
//! Every event the state machine asks for is
//!
//! 1. **logged** at info with the field `canary = "<name>.<namespace>"` (Flagger logs its Normal events
//!    and its warnings at info; the machine's events are only Normal or Warning);
//! 2. **written as a core/v1 `Event`** the way client-go's `record` package writes it: reason `Synced`,
//!    `source.component` and `reportingComponent` = the component (`flagger`), `involvedObject` = the
//!    Canary, named `<canary>.<unix nanoseconds in hex>`. A repeat of the same (object, type, reason,
//!    message) patches the earlier Event (`count` + 1, `lastTimestamp`) instead of creating a new one, as
//!    client-go's correlator does; the observations are kept in a bounded LRU cache (client-go's 4096
//!    entries), and an Event that disappeared meanwhile (TTL) is created again under the same name;
//! 3. **posted to the event webhooks**: the canary's `type: event` hooks, else the global
//!    `-event-webhook`, with Flagger's payload ([`EventWebhookPayload`]).
//!
//! Kubernetes kube-runtime's `events::Recorder` is deliberately not used: its aggregation key ignores the
//! message, and all of Flagger's events have the reason `Synced`, so they would collapse into one.
//!
//! **Webhooks do not block the reconcile.** Flagger posts them synchronously, one hook after the other, so
//! a slow receiver (10 s timeout by default) holds up its whole control loop. Here [`EventRecorder::record`]
//! only enqueues; a background task per canary posts that canary's events in the order they were
//! recorded, each to its hooks in manifest order. Canaries do not wait for each other. The queues are
//! bounded (1024 events waiting to be dispatched, 128 per canary); an event that does not fit is dropped
//! with an error log, as a failed post is. A canary's task ends after five idle minutes; its successor
//! starts only once it has finished, so the order holds across restarts of the task. Events still queued
//! when the process exits are not posted.
//!
//! **Leadership.** A process that may not write ([`WriteGate`]) still logs the event but writes no
//! Kubernetes Event and posts nothing (the gate is checked again right before each post).
//!
//! Differences from client-go, deliberately: an Event whose write fails is not retried (client-go retries
//! up to 12 times, 10 s apart, in the background), and client-go's two lossy filters are left out — the
//! per-object spam filter (a burst of 25 events, then one per five minutes) and the aggregation of ten
//! different messages within ten minutes into `(combined from similar events): <message>` — so every
//! message Flagger's state machine emits stays visible as written.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use flagger_api::{Canary, CanaryWebhook};
use flagger_core::machine::{Event, EventType};
use flagger_webhooks::client::WebhookClient;
use flagger_webhooks::payload::{self, EventWebhookPayload, event_webhooks};
use k8s_openapi::api::core::v1::{Event as KubeEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::config::ControllerConfig;
use crate::gate::WriteGate;

/// How many distinct events the correlator remembers (client-go's `maxLruCacheEntries`).
pub const CORRELATION_CACHE_SIZE: usize = 4096;
/// Events waiting to be dispatched to their canary's webhook task.
const WEBHOOK_QUEUE: usize = 1024;
/// Events waiting for one canary's webhook task.
const WEBHOOK_LANE: usize = 128;
/// A canary's webhook task ends after this long without events.
const LANE_IDLE: Duration = Duration::from_secs(300);

/// Why a Kubernetes Event was not written.
#[derive(Debug, thiserror::Error)]
pub enum EventWriteError {
    /// The Canary has no namespace (it was not read from the cluster).
    #[error("the canary has no namespace")]
    NoNamespace,
    /// Creating the Event failed.
    #[error("creating event {name}: {source}")]
    Create {
        /// Name of the Event.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Patching the count of an existing Event failed.
    #[error("updating event {name}: {source}")]
    Patch {
        /// Name of the Event.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Records Flagger's events: a log line, a Kubernetes Event and a POST to the event webhooks. Cheap to
/// clone; clones share the correlation cache and the webhook tasks.
#[derive(Clone)]
pub struct EventRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    component: String,
    instance: String,
    event_webhook: Option<String>,
    webhooks: WebhookClient,
    correlator: Mutex<Correlator>,
    queue: OnceLock<mpsc::Sender<WebhookJob>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// The `involvedObject` as client-go's `GetReference` makes it: apiVersion, kind, name, namespace, uid and
/// resourceVersion.
fn reference(canary: &Canary) -> ObjectReference {
    ObjectReference {
        resource_version: canary.metadata.resource_version.clone(),
        ..canary.object_ref(&())
    }
}

fn webhook_type(t: EventType) -> payload::EventType {
    match t {
        EventType::Normal => payload::EventType::Normal,
        EventType::Warning => payload::EventType::Warning,
    }
}

impl EventRecorder {
    /// A recorder reporting as `config.component` (`source.component` and `reportingComponent`) from
    /// `config.instance` (`reportingInstance`), posting to `config.event_webhook` for canaries without
    /// `event` hooks.
    pub fn new(client: Client, config: &ControllerConfig, webhooks: WebhookClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                component: config.component.clone(),
                instance: config.instance.clone(),
                event_webhook: config.event_webhook.clone().filter(|u| !u.is_empty()),
                webhooks,
                correlator: Mutex::new(Correlator::new(CORRELATION_CACHE_SIZE)),
                queue: OnceLock::new(),
            }),
        }
    }

    /// Records `event` on `canary`: a log line, a Kubernetes Event and a POST to the event webhooks (in
    /// the background). Never fails: errors are logged. Writes and posts nothing when `gate` is closed.
    pub async fn record(&self, canary: &Canary, event: &Event, gate: &WriteGate) {
        let key = canary.key();
        // Flagger logs Normal events (recordEventInfof) and warnings (recordEventWarningf) at info.
        tracing::info!(canary = %key, "{}", event.message);
        if gate.check().is_err() {
            tracing::debug!(canary = %key, "not the leader: event not recorded");
            return;
        }
        let now = jiff::Timestamp::now();
        if let Err(error) = self.write(canary, event, now).await {
            tracing::error!(canary = %key, %error, "event not recorded: {}", event.message);
        }
        self.post_to_webhooks(canary, event, now, gate);
    }

    /// The Event as client-go's `makeEvent` builds it.
    fn kube_event(
        &self,
        reference: &ObjectReference,
        event: &Event,
        observation: &Observation,
        now: jiff::Timestamp,
    ) -> KubeEvent {
        KubeEvent {
            metadata: ObjectMeta {
                name: Some(observation.name.clone()),
                namespace: reference.namespace.clone(),
                ..ObjectMeta::default()
            },
            involved_object: reference.clone(),
            reason: Some(event.reason().to_owned()),
            message: Some(event.message.clone()),
            type_: Some(type_name(event.type_).to_owned()),
            source: Some(EventSource {
                component: Some(self.inner.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.inner.component.clone()),
            reporting_instance: Some(self.inner.instance.clone()).filter(|i| !i.is_empty()),
            first_timestamp: Some(Time(observation.first)),
            last_timestamp: Some(Time(now)),
            count: Some(observation.count),
            ..KubeEvent::default()
        }
    }

    async fn write(
        &self,
        canary: &Canary,
        event: &Event,
        now: jiff::Timestamp,
    ) -> Result<(), EventWriteError> {
        let reference = reference(canary);
        let namespace = reference
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .ok_or(EventWriteError::NoNamespace)?;
        let key = CorrelationKey::new(&reference, event);
        let (observation, repeated) = lock(&self.inner.correlator).observe(key.clone(), now, || {
            format!(
                "{}.{:x}",
                reference.name.as_deref().unwrap_or_default(),
                now.as_nanosecond()
            )
        });
        let api: Api<KubeEvent> = Api::namespaced(self.inner.client.clone(), &namespace);
        let name = observation.name.clone();
        let mut written = None;
        if repeated {
            let patch = serde_json::json!({
                "count": observation.count,
                "lastTimestamp": Time(now),
                "message": event.message,
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(e) => written = Some(e),
                // Gone (the API server's event TTL): create it again, as client-go does.
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(source) => return Err(EventWriteError::Patch { name, source }),
            }
        }
        let written = match written {
            Some(e) => e,
            None => {
                let body = self.kube_event(&reference, event, &observation, now);
                api.create(&PostParams::default(), &body)
                    .await
                    .map_err(|source| EventWriteError::Create { name, source })?
            }
        };
        // Remember the server's state (client-go's `UpdateState`).
        if let Some(name) = written.metadata.name {
            lock(&self.inner.correlator).update(
                key,
                Observation {
                    name,
                    count: written.count.unwrap_or(observation.count),
                    first: written.first_timestamp.map_or(observation.first, |t| t.0),
                },
            );
        }
        Ok(())
    }

    fn post_to_webhooks(&self, canary: &Canary, event: &Event, now: jiff::Timestamp, gate: &WriteGate) {
        let own = canary.analysis().map(|a| a.webhooks()).unwrap_or_default();
        let hooks = event_webhooks(own, self.inner.event_webhook.as_deref());
        if hooks.is_empty() {
            return;
        }
        let job = WebhookJob {
            lane: format!(
                "{}/{}",
                canary.metadata.namespace.as_deref().unwrap_or_default(),
                canary.metadata.name.as_deref().unwrap_or_default()
            ),
            canary: canary.key(),
            hooks,
            payload: EventWebhookPayload::new(canary, event.message.clone(), webhook_type(event.type_), now),
            gate: gate.clone(),
        };
        let queue = self.inner.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
            tokio::spawn(dispatch(rx, self.inner.webhooks.clone()));
            tx
        });
        if let Err(TrySendError::Full(job) | TrySendError::Closed(job)) = queue.try_send(job) {
            tracing::error!(
                canary = %job.canary,
                "error sending event to webhook: event webhook queue full, event dropped"
            );
        }
    }
}

/// One recorded event for the event hooks of one canary.
struct WebhookJob {
    /// `<namespace>/<name>`: events of one canary are posted in order.
    lane: String,
    /// `<name>.<namespace>`, for logs.
    canary: String,
    hooks: Vec<CanaryWebhook>,
    payload: EventWebhookPayload,
    gate: WriteGate,
}

/// The task posting one canary's events, and a receiver that completes when it has ended.
struct Lane {
    tx: mpsc::Sender<WebhookJob>,
    done: oneshot::Receiver<()>,
}

impl Lane {
    fn finished(&mut self) -> bool {
        matches!(self.done.try_recv(), Err(oneshot::error::TryRecvError::Closed))
    }
}

/// Routes each job to its canary's task, so one slow receiver holds back only its canary.
async fn dispatch(mut rx: mpsc::Receiver<WebhookJob>, client: WebhookClient) {
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let mut workers = JoinSet::new();
    while let Some(mut job) = rx.recv().await {
        let mut ended = false;
        while workers.try_join_next().is_some() {
            ended = true;
        }
        if ended {
            lanes.retain(|_, lane| !lane.finished());
        }
        loop {
            let lane = lanes
                .entry(job.lane.clone())
                .or_insert_with(|| spawn_lane(&mut workers, &client, None));
            match lane.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(dropped)) => {
                    tracing::error!(
                        canary = %dropped.canary,
                        "error sending event to webhook: event webhook queue full, event dropped"
                    );
                    break;
                }
                Err(TrySendError::Closed(back)) => {
                    // The task stopped when idle: its successor waits until it has finished.
                    job = back;
                    let previous = lanes.remove(&job.lane).map(|old| old.done);
                    lanes.insert(job.lane.clone(), spawn_lane(&mut workers, &client, previous));
                }
            }
        }
    }
    drop(lanes);
    while workers.join_next().await.is_some() {}
}

fn spawn_lane(
    workers: &mut JoinSet<()>,
    client: &WebhookClient,
    previous: Option<oneshot::Receiver<()>>,
) -> Lane {
    let (tx, rx) = mpsc::channel(WEBHOOK_LANE);
    let (done_tx, done) = oneshot::channel();
    workers.spawn(post_lane(rx, client.clone(), previous, done_tx));
    Lane { tx, done }
}

/// Posts one canary's events in order; ends when idle. Starts only once `previous` (the task this one
/// replaces) has ended; `done` is dropped when this one ends.
async fn post_lane(
    mut rx: mpsc::Receiver<WebhookJob>,
    client: WebhookClient,
    previous: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
) {
    if let Some(previous) = previous {
        // Err only: the sender is dropped when the previous task ends.
        let _ = previous.await;
    }
    loop {
        match tokio::time::timeout(LANE_IDLE, rx.recv()).await {
            Ok(Some(job)) => post(&client, &job).await,
            Ok(None) => break,
            Err(_) => {
                rx.close();
                while let Ok(job) = rx.try_recv() {
                    post(&client, &job).await;
                }
                break;
            }
        }
    }
    drop(done);
}

/// Posts one event to its hooks, one after the other (as Flagger does).
async fn post(client: &WebhookClient, job: &WebhookJob) {
    if job.gate.check().is_err() {
        tracing::debug!(canary = %job.canary, "not the leader: event not sent to webhooks");
        return;
    }
    for hook in &job.hooks {
        if let Err(error) = client.call_event(hook, &job.payload).await {
            tracing::error!(
                canary = %job.canary,
                hook = %hook.name,
                "error sending event to webhook: {}",
                error.flagger_message()
            );
        }
    }
}

/// What makes two events the same for the correlator (client-go's `getEventKey`: source, involved object,
/// type, reason and message; the source is the same for every event of one recorder).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CorrelationKey {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

impl CorrelationKey {
    fn new(reference: &ObjectReference, event: &Event) -> Self {
        let field = |f: &Option<String>| f.clone().unwrap_or_default();
        Self {
            api_version: field(&reference.api_version),
            kind: field(&reference.kind),
            namespace: field(&reference.namespace),
            name: field(&reference.name),
            uid: field(&reference.uid),
            type_: type_name(event.type_),
            reason: event.reason(),
            message: event.message.clone(),
        }
    }
}

/// The last known state of an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observation {
    name: String,
    count: i32,
    first: jiff::Timestamp,
}

/// A bounded LRU map of the events written (client-go's `eventLogger`).
#[derive(Debug)]
struct Correlator {
    capacity: usize,
    tick: u64,
    entries: HashMap<CorrelationKey, (Observation, u64)>,
    recency: BTreeMap<u64, CorrelationKey>,
}

impl Correlator {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
        }
    }

    /// The Event to write for another occurrence of `key` at `now`: the known one with its count + 1
    /// (`true`), or a new one named by `name` (`false`). Remembered at once, as client-go does.
    fn observe(
        &mut self,
        key: CorrelationKey,
        now: jiff::Timestamp,
        name: impl FnOnce() -> String,
    ) -> (Observation, bool) {
        let (observation, repeated) = match self.entries.get(&key) {
            Some((last, _)) => (
                Observation {
                    name: last.name.clone(),
                    count: last.count.saturating_add(1),
                    first: last.first,
                },
                true,
            ),
            None => (
                Observation {
                    name: name(),
                    count: 1,
                    first: now,
                },
                false,
            ),
        };
        self.update(key, observation.clone());
        (observation, repeated)
    }

    /// Remembers `observation` as the latest state of `key`, evicting the least recently used entry
    /// when full.
    fn update(&mut self, key: CorrelationKey, observation: Observation) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, old)) = self.entries.insert(key.clone(), (observation, tick)) {
            self.recency.remove(&old);
        }
        self.recency.insert(tick, key);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("flagger.app/v1beta1".into()),
            kind: Some("Canary".into()),
            name: Some("podinfo".into()),
            namespace: Some("test".into()),
            uid: Some(uid.into()),
            resource_version: Some("1".into()),
            field_path: None,
        }
    }

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).expect("time")
    }

    #[test]
    fn repeats_count_up_and_keep_name_and_first_time() {
        let mut c = Correlator::new(16);
        let key = CorrelationKey::new(&reference("u1"), &Event::normal("a"));
        let (first, repeated) = c.observe(key.clone(), at(10), || "podinfo.1".into());
        assert!(!repeated);
        assert_eq!(
            first,
            Observation {
                name: "podinfo.1".into(),
                count: 1,
                first: at(10)
            }
        );
        let (second, repeated) = c.observe(key, at(20), || unreachable!("known event"));
        assert!(repeated);
        assert_eq!(
            second,
            Observation {
                name: "podinfo.1".into(),
                count: 2,
                first: at(10)
            }
        );
    }

    #[test]
    fn message_type_and_object_make_the_key() {
        let base = CorrelationKey::new(&reference("u1"), &Event::normal("a"));
        assert_ne!(base, CorrelationKey::new(&reference("u1"), &Event::normal("b")));
        assert_ne!(base, CorrelationKey::new(&reference("u1"), &Event::warning("a")));
        assert_ne!(base, CorrelationKey::new(&reference("u2"), &Event::normal("a")));
        // The resourceVersion changes with every write of the canary; it is not part of the key.
        let mut newer = reference("u1");
        newer.resource_version = Some("2".into());
        assert_eq!(base, CorrelationKey::new(&newer, &Event::normal("a")));
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
        let mut c = Correlator::new(3);
        let key = |m: &str| CorrelationKey::new(&reference("u"), &Event::normal(m));
        for m in ["a", "b", "c"] {
            c.observe(key(m), at(1), || m.to_owned());
        }
        // Touch "a": "b" is now the oldest.
        c.observe(key("a"), at(2), || unreachable!());
        c.observe(key("d"), at(3), || "d".into());
        assert_eq!(c.entries.len(), 3);
        assert_eq!(c.recency.len(), 3);
        let (b, repeated) = c.observe(key("b"), at(4), || "b-again".into());
        assert!(!repeated, "b was evicted");
        assert_eq!(b.name, "b-again");
        let (a, repeated) = c.observe(key("a"), at(5), || unreachable!("a was kept"));
        assert!(repeated);
        assert_eq!(a.count, 3);
        for i in 0..1000 {
            c.observe(key(&i.to_string()), at(6), || i.to_string());
        }
        assert_eq!(c.entries.len(), 3);
        assert_eq!(c.recency.len(), 3);
    }

    #[test]
    fn server_state_replaces_the_observation() {
        let mut c = Correlator::new(4);
        let key = CorrelationKey::new(&reference("u"), &Event::warning("x"));
        c.observe(key.clone(), at(1), || "n".into());
        c.update(
            key.clone(),
            Observation {
                name: "n".into(),
                count: 7,
                first: at(0),
            },
        );
        let (next, _) = c.observe(key, at(2), || unreachable!());
        assert_eq!(next.count, 8);
        assert_eq!(next.first, at(0));
    }
}
