//! What every reconcile shares: the client, the caches, the leader gate, the event recorder, the alert
//! sender, the metric checks and the operator metrics — plus two small memories that keep the watch
//! caches' lag from causing repeated work.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flagger_api::Canary;
use flagger_telemetry::metrics::OperatorMetrics;
use flagger_webhooks::client::WebhookClient;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};

use crate::alerts::Alerts;
use crate::analysis::Analysis;
use crate::cache::Caches;
use crate::config::ControllerConfig;
use crate::events::EventRecorder;
use crate::gate::WriteGate;

/// Shared state of the reconciles.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The operator settings.
    pub config: ControllerConfig,
    /// The watch caches.
    pub caches: Caches,
    /// Leader-gated writes.
    pub gate: WriteGate,
    /// Kubernetes Events and event webhooks.
    pub recorder: EventRecorder,
    /// Alerts.
    pub alerts: Alerts,
    /// Metric checks.
    pub analysis: Analysis,
    /// Webhook calls.
    pub webhooks: WebhookClient,
    /// Operator metrics.
    pub metrics: OperatorMetrics,
    written: Mutex<HashMap<ObjectRef<Canary>, Written>>,
    created: Mutex<HashSet<String>>,
    reported: Mutex<HashMap<ObjectRef<Canary>, String>>,
}

/// A Canary as this process last wrote it, and the resourceVersion it was written over.
struct Written {
    base: Option<String>,
    canary: Arc<Canary>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Context {
    /// Assembles the context.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        config: ControllerConfig,
        caches: Caches,
        gate: WriteGate,
        recorder: EventRecorder,
        alerts: Alerts,
        analysis: Analysis,
        webhooks: WebhookClient,
        metrics: OperatorMetrics,
    ) -> Self {
        Self {
            client,
            config,
            caches,
            gate,
            recorder,
            alerts,
            analysis,
            webhooks,
            metrics,
            written: Mutex::default(),
            created: Mutex::default(),
            reported: Mutex::default(),
        }
    }

    /// The freshest known version of a Canary: the cached one, unless this process wrote its status after
    /// the version the cache still holds (the watch has not delivered the write yet). Without this, a
    /// reconcile triggered right after a status write would decide on the old status and repeat a step.
    pub fn freshest(&self, cached: Arc<Canary>) -> Arc<Canary> {
        let key = ObjectRef::from_obj(cached.as_ref());
        let mut written = lock(&self.written);
        match written.get(&key) {
            Some(w) if cached.resource_version() == w.base => w.canary.clone(),
            Some(_) => {
                // The cache has moved past the version the write was based on: it holds our write or a
                // newer change.
                written.remove(&key);
                cached
            }
            None => cached,
        }
    }

    /// Remembers a status write: `base` is the resourceVersion the write was made over, `canary` what
    /// the API server returned.
    pub fn remember_write(&self, base: Option<String>, canary: Canary) {
        let key = ObjectRef::from_obj(&canary);
        lock(&self.written).insert(
            key,
            Written {
                base,
                canary: Arc::new(canary),
            },
        );
    }

    /// Records that this process created the object `key` (`kind/namespace/name`), which the watch cache
    /// may not show yet.
    pub fn note_created(&self, key: String) {
        lock(&self.created).insert(key);
    }

    /// Whether this process created `key` and the cache may not show it yet.
    pub fn was_created(&self, key: &str) -> bool {
        lock(&self.created).contains(key)
    }

    /// Forgets a created object once the cache shows it.
    pub fn cache_caught_up(&self, key: &str) {
        lock(&self.created).remove(key);
    }

    /// Whether a problem with a canary should be reported (it differs from the last one reported), and
    /// remembers it. `None` clears the memory (the problem went away).
    pub fn should_report(&self, key: &ObjectRef<Canary>, problem: Option<&str>) -> bool {
        let mut reported = lock(&self.reported);
        match problem {
            None => {
                reported.remove(key);
                false
            }
            Some(p) => {
                if reported.get(key).map(String::as_str) == Some(p) {
                    false
                } else {
                    reported.insert(key.clone(), p.to_string());
                    true
                }
            }
        }
    }
}
