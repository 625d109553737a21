//! Gate storage: which gates (`<name>.<namespace>`, `rollback.<name>.<namespace>`) are open.
//!
//! * [`GateStore::memory`]: Flagger's store, a map in the process. Lost on restart, not shared by replicas.
//! * [`GateStore::kubernetes`]: one ConfigMap whose `data` maps each gate key to `"true"` (open) or
//!   `"false"` (closed). Every check reads the ConfigMap from the API server, and every change is a
//!   read-modify-write guarded by the ConfigMap's `resourceVersion` (a conflict is retried), so any number
//!   of replicas and restarts agree on the state.
//!
//! In both stores a gate that was never opened is closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The value of an open gate in the ConfigMap.
pub const OPEN: &str = "true";
/// The value of a closed gate in the ConfigMap.
pub const CLOSED: &str = "false";
/// The label put on the ConfigMap the store creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "flagger-loadtester");

/// How many times a write is retried after a `resourceVersion` conflict before giving up.
const MAX_ATTEMPTS: u64 = 64;

/// Errors of the Kubernetes store.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The API server refused or could not be reached.
    #[error("gate store: ConfigMap {namespace}/{name}: {source}")]
    Kube {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Other writers kept changing the ConfigMap.
    #[error("gate store: ConfigMap {namespace}/{name}: still conflicting after {MAX_ATTEMPTS} attempts")]
    Contended {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
    },
}

/// Where gate state lives (`-gate-store`).
#[derive(Clone, Debug)]
pub enum GateStore {
    /// In this process only (Flagger's behaviour).
    Memory(Arc<Mutex<HashMap<String, bool>>>),
    /// In a ConfigMap.
    Kubernetes(Box<ConfigMapGates>),
}

/// The ConfigMap-backed store.
#[derive(Clone, Debug)]
pub struct ConfigMapGates {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
}

impl GateStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// A store in ConfigMap `name` of `namespace` (created on the first change).
    pub fn kubernetes(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self::Kubernetes(Box::new(ConfigMapGates {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }))
    }

    /// Whether gate `key` is open.
    pub async fn is_open(&self, key: &str) -> Result<bool, GateError> {
        match self {
            Self::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(*map.entry(key.to_owned()).or_insert(false))
            }
            Self::Kubernetes(cm) => cm.is_open(key).await,
        }
    }

    /// Opens (`true`) or closes (`false`) gate `key`.
    pub async fn set(&self, key: &str, open: bool) -> Result<(), GateError> {
        match self {
            Self::Memory(map) => {
                map.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.to_owned(), open);
                Ok(())
            }
            Self::Kubernetes(cm) => cm.set(key, open).await,
        }
    }
}

impl ConfigMapGates {
    fn error(&self, source: kube::Error) -> GateError {
        GateError::Kube {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    async fn is_open(&self, key: &str) -> Result<bool, GateError> {
        let cm = self.api.get_opt(&self.name).await.map_err(|e| self.error(e))?;
        Ok(cm
            .and_then(|cm| cm.data)
            .is_some_and(|data| data.get(key).is_some_and(|v| v == OPEN)))
    }

    async fn set(&self, key: &str, open: bool) -> Result<(), GateError> {
        let value = if open { OPEN } else { CLOSED };
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Let the writer that won get out of the way; grows to 100ms.
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempt.min(20))).await;
            }
            let current = self.api.get_opt(&self.name).await.map_err(|e| self.error(e))?;
            let result = match current {
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(self.name.clone()),
                            labels: Some(BTreeMap::from([(
                                MANAGED_BY.0.to_owned(),
                                MANAGED_BY.1.to_owned(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
                        ..ConfigMap::default()
                    };
                    self.api.create(&PostParams::default(), &cm).await.map(drop)
                }
                Some(mut cm) => {
                    let data = cm.data.get_or_insert_with(BTreeMap::new);
                    if data.get(key).is_some_and(|v| v == value) {
                        return Ok(());
                    }
                    data.insert(key.to_owned(), value.to_owned());
                    // `cm` carries the resourceVersion it was read at: the API server refuses the update
                    // with 409 Conflict when another writer got there first.
                    self.api
                        .replace(&self.name, &PostParams::default(), &cm)
                        .await
                        .map(drop)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Conflict on update, AlreadyExists on create: someone else wrote; read again.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    tracing::debug!(key, "gate store conflict, retrying");
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(GateError::Contended {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        })
    }
}
