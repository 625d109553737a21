//! Watch caches (reflectors): every read of the reconcile comes from here, so a canary that does not
//! change costs no API request.
//!
//! The kinds every canary needs are watched from the start: Canaries and Deployments (both also trigger
//! reconciles), Services, HorizontalPodAutoscalers, MetricTemplates and AlertProviders, and with config
//! tracking ConfigMaps and Secrets (which trigger the reconcile of the canaries whose target uses them;
//! the data of Secrets that are never tracked, such as service-account tokens and Helm releases, is
//! dropped before it is stored). The routing objects of mesh and ingress
//! providers are watched on first use ([`Caches::dynamic`]), so a cluster without Istio never watches
//! VirtualServices and a missing CRD only fails the canaries that need it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagger_api::{AlertProvider, Canary, MetricTemplate};
use flagger_core::config::TRACKED_SECRET_TYPES;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// How long [`Caches::dynamic`] waits for the first list of a newly watched kind.
const DYNAMIC_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// A watch stream that triggers reconciles.
pub type Trigger<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// Why a cache cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The first list of a kind did not complete (typically: its CRD is not installed, or RBAC forbids it).
    #[error(
        "cannot watch {kind}: the first list did not complete within {timeout:?} (is its CRD installed?)"
    )]
    NotSynced {
        /// The kind (`VirtualService.networking.istio.io/v1beta1`).
        kind: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A watch stopped before its first list (the process is shutting down).
    #[error("the watch caches stopped before their first list")]
    Stopped,
}

/// The watch streams the controller reconciles on.
pub struct Triggers {
    /// Canary changes.
    pub canaries: Trigger<Canary>,
    /// Deployment changes (a target's new revision, a primary's rollout).
    pub deployments: Trigger<Deployment>,
    /// DaemonSet changes.
    pub daemonsets: Trigger<DaemonSet>,
    /// Service changes (Service targets).
    pub services: Trigger<Service>,
    /// ConfigMap changes (with config tracking).
    pub config_maps: Option<Trigger<ConfigMap>>,
    /// Secret changes (with config tracking).
    pub secrets: Option<Trigger<Secret>>,
}

/// What [`Caches::start_with`] watches besides the kinds every canary needs.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// Watch ConfigMaps and Secrets (`-enable-config-tracking`, on by default).
    pub track_configs: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self { track_configs: true }
    }
}

/// Read access to everything the operator watches.
#[derive(Clone)]
pub struct Caches {
    /// Canaries.
    pub canaries: Store<Canary>,
    /// Deployments (targets and primaries).
    pub deployments: Store<Deployment>,
    /// DaemonSets (targets and primaries).
    pub daemonsets: Store<DaemonSet>,
    /// Services (generated and apex).
    pub services: Store<Service>,
    /// HorizontalPodAutoscalers (`autoscalerRef` of kind HorizontalPodAutoscaler and their primaries).
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// ConfigMaps (with config tracking; empty without).
    pub config_maps: Store<ConfigMap>,
    /// Secrets (with config tracking; empty without). Secrets of untracked types are stored without data.
    pub secrets: Store<Secret>,
    /// MetricTemplates.
    pub metric_templates: Store<MetricTemplate>,
    /// AlertProviders.
    pub alert_providers: Store<AlertProvider>,
    /// The first list of the background caches (Services, HPAs, MetricTemplates, AlertProviders).
    background_listed: FirstList,
    /// The first list of the triggering caches the reconcile reads targets and configs from.
    triggering_listed: FirstList,
    dynamic: Arc<DynamicCaches>,
}

/// Whether some stores have completed their first list, for any number of concurrent waiters.
///
/// kube-runtime's `Store::wait_until_ready` keeps one waker, the last poller's: of several reconciles
/// waiting at once only that one is woken, and the others stall until their timeout. So one task per
/// group of stores waits on them, and everyone else waits on this.
#[derive(Clone, Debug)]
struct FirstList(tokio::sync::watch::Receiver<Option<bool>>);

impl FirstList {
    /// Publishes the outcome of `wait`: true when every store listed, false when a store's writer was
    /// dropped first.
    fn spawn(wait: impl Future<Output = bool> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let _ = tx.send(Some(wait.await));
        });
        Self(rx)
    }

    /// The outcome, if there is one yet.
    fn now(&self) -> Option<bool> {
        *self.0.borrow()
    }

    /// Waits for the outcome (false if the waiting task is gone).
    async fn wait(&self) -> bool {
        let mut rx = self.0.clone();
        rx.wait_for(Option::is_some)
            .await
            .is_ok_and(|listed| *listed == Some(true))
    }
}

struct DynamicCaches {
    client: Client,
    namespace: Option<String>,
    shutdown: CancellationToken,
    /// The store of each kind.
    stores: Mutex<HashMap<String, DynamicStore>>,
}

/// The cache of one kind watched on first use.
struct DynamicStore {
    store: Store<DynamicObject>,
    listed: FirstList,
    /// Whether a first wait for its list already timed out once.
    timed_out: bool,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A reflector drained in the background until `shutdown` (so its store fills without a consumer), whose
/// changes are also offered as a trigger stream. Changes are dropped while nobody holds the stream.
fn background_triggering<K>(api: Api<K>, shutdown: &CancellationToken) -> (Store<K>, Trigger<K>)
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default().any_semantic()))
        .default_backoff()
        .touched_objects()
        .map(move |item| {
            if let Ok(obj) = &item {
                // A closed receiver (no controller, e.g. in tests) only means nobody listens.
                let _ = tx.send(obj.clone());
            }
            item
        });
    spawn_drain(stream, shutdown.clone());
    let trigger = futures::stream::unfold(rx, |mut rx| async move {
        let obj = rx.recv().await?;
        Some((Ok(obj), rx))
    })
    .boxed();
    (reader, trigger)
}

/// A reflector whose stream is drained in the background until `shutdown`.
fn background<K>(api: Api<K>, shutdown: &CancellationToken) -> Store<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default().any_semantic()))
        .default_backoff()
        .touched_objects();
    spawn_drain(stream, shutdown.clone());
    reader
}

fn spawn_drain<S, K>(stream: S, shutdown: CancellationToken)
where
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                item = stream.next() => match item {
                    None => break,
                    Some(Err(e)) => tracing::warn!(error = %e, "watch error"),
                    Some(Ok(_)) => {}
                },
            }
        }
    });
}

/// A reflector whose stream is returned, to trigger reconciles.
fn triggering<K>(api: Api<K>) -> (Store<K>, Trigger<K>)
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    triggering_trimmed(api, |_| {})
}

/// [`triggering`], with `trim` applied to every object before it is stored.
fn triggering_trimmed<K>(api: Api<K>, trim: fn(&mut K)) -> (Store<K>, Trigger<K>)
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .modify(move |obj| {
            obj.meta_mut().managed_fields = None;
            trim(obj);
        })
        .default_backoff();
    let stream = reflector::reflector(writer, stream).touched_objects().boxed();
    (reader, stream)
}

/// Keeps only what config tracking reads of a Secret: the data of tracked types.
fn trim_secret(secret: &mut Secret) {
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if !TRACKED_SECRET_TYPES.contains(&type_) {
        secret.data = None;
        secret.string_data = None;
    }
}

/// A store that never fills (a kind not watched).
fn empty_store<K>() -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, _writer) = reflector::store();
    reader
}

impl Caches {
    /// Starts watching. `namespace` limits every watch to one namespace (`-namespace`). The background
    /// watches stop when `shutdown` is cancelled; the returned triggers stop when they are dropped.
    pub fn start(client: &Client, namespace: Option<&str>, shutdown: &CancellationToken) -> (Self, Triggers) {
        Self::start_with(client, namespace, shutdown, CacheOptions::default())
    }

    /// [`Caches::start`] with options.
    pub fn start_with(
        client: &Client,
        namespace: Option<&str>,
        shutdown: &CancellationToken,
        options: CacheOptions,
    ) -> (Self, Triggers) {
        let (canaries, canary_trigger) = triggering(api::<Canary>(client, namespace));
        let (deployments, deployment_trigger) = triggering(api::<Deployment>(client, namespace));
        let (daemonsets, daemonset_trigger) = triggering(api::<DaemonSet>(client, namespace));
        let (services, service_trigger) = background_triggering(api::<Service>(client, namespace), shutdown);
        let hpas = background(api::<HorizontalPodAutoscaler>(client, namespace), shutdown);
        let metric_templates = background(api::<MetricTemplate>(client, namespace), shutdown);
        let alert_providers = background(api::<AlertProvider>(client, namespace), shutdown);
        let (config_maps, config_map_trigger, secrets, secret_trigger) = if options.track_configs {
            let (cms, cm_trigger) = triggering(api::<ConfigMap>(client, namespace));
            let (secrets, secret_trigger) = triggering_trimmed(api::<Secret>(client, namespace), trim_secret);
            (cms, Some(cm_trigger), secrets, Some(secret_trigger))
        } else {
            (empty_store(), None, empty_store(), None)
        };
        let background_listed = {
            let (services, hpas, templates, providers) = (
                services.clone(),
                hpas.clone(),
                metric_templates.clone(),
                alert_providers.clone(),
            );
            FirstList::spawn(async move {
                services.wait_until_ready().await.is_ok()
                    && hpas.wait_until_ready().await.is_ok()
                    && templates.wait_until_ready().await.is_ok()
                    && providers.wait_until_ready().await.is_ok()
            })
        };
        let triggering_listed = {
            let (deployments, daemonsets, cms, secrets) = (
                deployments.clone(),
                daemonsets.clone(),
                config_maps.clone(),
                secrets.clone(),
            );
            // A store whose writer is gone (a kind not watched) answers at once: nothing to wait for.
            FirstList::spawn(async move {
                let _ = deployments.wait_until_ready().await;
                let _ = daemonsets.wait_until_ready().await;
                let _ = cms.wait_until_ready().await;
                let _ = secrets.wait_until_ready().await;
                true
            })
        };
        let caches = Self {
            canaries,
            deployments,
            daemonsets,
            config_maps,
            secrets,
            hpas,
            services,
            metric_templates,
            alert_providers,
            background_listed,
            triggering_listed,
            dynamic: Arc::new(DynamicCaches {
                client: client.clone(),
                namespace: namespace.map(str::to_string),
                shutdown: shutdown.clone(),
                stores: Mutex::new(HashMap::new()),
            }),
        };
        let triggers = Triggers {
            canaries: canary_trigger,
            deployments: deployment_trigger,
            daemonsets: daemonset_trigger,
            services: service_trigger,
            config_maps: config_map_trigger,
            secrets: secret_trigger,
        };
        (caches, triggers)
    }

    /// Waits until the background caches hold their first list. The triggering caches are filled by the
    /// controller as it consumes their streams.
    pub async fn wait_until_ready(&self) -> Result<(), CacheError> {
        if self.background_listed.wait().await {
            Ok(())
        } else {
            Err(CacheError::Stopped)
        }
    }

    /// Waits until the caches the controller fills from its trigger streams (Deployments, DaemonSets, and
    /// with config tracking ConfigMaps and Secrets) hold their first list. Any number of reconciles may
    /// wait at once.
    pub async fn wait_for_triggering_caches(&self) {
        self.triggering_listed.wait().await;
    }

    /// A Deployment by namespace and name.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(&ObjectRef::new(name).within(namespace))
    }

    /// A DaemonSet by namespace and name.
    pub fn daemonset(&self, namespace: &str, name: &str) -> Option<Arc<DaemonSet>> {
        self.daemonsets.get(&ObjectRef::new(name).within(namespace))
    }

    /// A ConfigMap by namespace and name.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps.get(&ObjectRef::new(name).within(namespace))
    }

    /// A Secret by namespace and name.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(&ObjectRef::new(name).within(namespace))
    }

    /// A HorizontalPodAutoscaler by namespace and name.
    pub fn hpa(&self, namespace: &str, name: &str) -> Option<Arc<HorizontalPodAutoscaler>> {
        self.hpas.get(&ObjectRef::new(name).within(namespace))
    }

    /// A Service by namespace and name.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    /// A MetricTemplate by namespace and name.
    pub fn metric_template(&self, namespace: &str, name: &str) -> Option<Arc<MetricTemplate>> {
        self.metric_templates.get(&ObjectRef::new(name).within(namespace))
    }

    /// An AlertProvider by namespace and name.
    pub fn alert_provider(&self, namespace: &str, name: &str) -> Option<Arc<AlertProvider>> {
        self.alert_providers.get(&ObjectRef::new(name).within(namespace))
    }

    /// A Canary by namespace and name.
    pub fn canary(&self, namespace: &str, name: &str) -> Option<Arc<Canary>> {
        self.canaries.get(&ObjectRef::new(name).within(namespace))
    }

    /// The cache of a kind that is watched on first use (routing objects of mesh and ingress providers).
    /// The first call for a kind starts its watch and waits for its first list; later calls return at once.
    /// Cluster-scoped kinds (`namespaced: false`) are watched cluster-wide even with `-namespace`.
    pub async fn dynamic(
        &self,
        resource: &ApiResource,
        namespaced: bool,
    ) -> Result<Store<DynamicObject>, CacheError> {
        let key = format!("{}.{}/{}", resource.kind, resource.group, resource.version);
        let store = {
            let mut stores = self
                .dynamic
                .stores
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(DynamicStore {
                store,
                listed,
                timed_out,
            }) = stores.get(&key)
            {
                if *timed_out {
                    // Do not wait again on every call for a kind that did not list (a missing CRD): answer
                    // from the watch's current state; it keeps retrying in the background.
                    return match listed.now() {
                        Some(true) => Ok(store.clone()),
                        _ => Err(CacheError::NotSynced {
                            kind: key,
                            timeout: DYNAMIC_SYNC_TIMEOUT,
                        }),
                    };
                }
                (store.clone(), listed.clone())
            } else {
                let d = &self.dynamic;
                let api: Api<DynamicObject> = match (&d.namespace, namespaced) {
                    (Some(ns), true) => Api::namespaced_with(d.client.clone(), ns, resource),
                    _ => Api::all_with(d.client.clone(), resource),
                };
                let writer = reflector::store::Writer::new(resource.clone());
                let reader = writer.as_reader();
                let stream =
                    reflector::reflector(writer, watcher(api, watcher::Config::default().any_semantic()))
                        .default_backoff()
                        .touched_objects();
                spawn_drain(stream, d.shutdown.clone());
                let listed = FirstList::spawn({
                    let reader = reader.clone();
                    async move { reader.wait_until_ready().await.is_ok() }
                });
                stores.insert(
                    key.clone(),
                    DynamicStore {
                        store: reader.clone(),
                        listed: listed.clone(),
                        timed_out: false,
                    },
                );
                (reader, listed)
            }
        };
        let (store, listed) = store;
        match tokio::time::timeout(DYNAMIC_SYNC_TIMEOUT, listed.wait()).await {
            Ok(true) => Ok(store),
            _ => {
                if let Some(entry) = self
                    .dynamic
                    .stores
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(&key)
                {
                    entry.timed_out = true;
                }
                Err(CacheError::NotSynced {
                    kind: key,
                    timeout: DYNAMIC_SYNC_TIMEOUT,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many reconciles wait for the first list of the same store at once; all of them must be woken when it
    /// completes (kube-runtime's own wait wakes only the last one).
    #[tokio::test]
    async fn every_concurrent_waiter_sees_the_first_list() {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        let listed = FirstList::spawn(async move { reader.wait_until_ready().await.is_ok() });
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let listed = listed.clone();
                tokio::spawn(async move { listed.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(listed.now(), None);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            // A waiter left asleep would never finish: the deadline turns that into a failure.
            let woken = tokio::time::timeout(Duration::from_secs(10), waiter).await;
            assert!(matches!(woken, Ok(Ok(true))), "{woken:?}");
        }
        assert_eq!(listed.now(), Some(true));
    }

    #[tokio::test]
    async fn a_store_whose_writer_is_gone_answers_at_once() {
        let listed =
            FirstList::spawn(async move { empty_store::<Secret>().wait_until_ready().await.is_ok() });
        assert!(!listed.wait().await);
        assert_eq!(listed.now(), Some(false));
    }
}
