//! Runs the controller: watch caches, the reconcile loop and its background tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

use flagger_api::Canary;
use flagger_core::config::ConfigRef;
use flagger_telemetry::metrics::OperatorMetrics;
use flagger_webhooks::client::WebhookClient;
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::alerts::Alerts;
use crate::analysis::Analysis;
use crate::cache::{CacheOptions, Caches};
use crate::config::ControllerConfig;
use crate::context::Context;
use crate::events::EventRecorder;
use crate::gate::WriteGate;
use crate::reconcile::{error_policy, reconcile};

/// How long in-flight reconciles may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The controller could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Canary CRD is not installed (or cannot be listed).
    #[error(
        "cannot list canaries.flagger.app (is the CRD installed? `flagger crds | kubectl apply -f -`): {0}"
    )]
    Crd(#[source] kube::Error),
    /// The webhook client cannot be built.
    #[error(transparent)]
    Webhooks(#[from] flagger_webhooks::client::BuildError),
    /// The watch caches stopped before their first list.
    #[error("the watch caches stopped before their first list")]
    Caches,
}

/// What the process hands the controller.
pub struct Runtime {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub config: ControllerConfig,
    /// The leader gate.
    pub gate: WriteGate,
    /// Operator metrics.
    pub metrics: OperatorMetrics,
    /// Alert delivery.
    pub alerts: Alerts,
    /// Metric checks.
    pub analysis: Analysis,
    /// Set ready once the watch caches are synced.
    pub readiness: flagger_telemetry::http::Readiness,
}

/// The canaries a workload event concerns: those whose target or primary it is.
fn canaries_of(
    canaries: &kube::runtime::reflector::Store<Canary>,
    kind: &str,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<Canary>> {
    canaries
        .state()
        .iter()
        .filter(|c| c.namespace() == namespace && c.spec.target_ref.kind == kind)
        .filter(|c| {
            let target = &c.spec.target_ref.name;
            target == name || name.strip_suffix("-primary") == Some(target.as_str())
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The canaries a ConfigMap or Secret event concerns: those whose target's pod template references it, or,
/// for a `<name>-primary` copy, references `<name>` (so a copy that lost an owner is mended at once).
fn canaries_using(
    caches: &Caches,
    namespace: Option<String>,
    reference: impl Fn(String) -> ConfigRef,
    name: &str,
) -> Vec<ObjectRef<Canary>> {
    let Some(ns) = namespace else {
        return Vec::new();
    };
    let source = name.strip_suffix(flagger_core::primary::PRIMARY_SUFFIX);
    let references: Vec<ConfigRef> = std::iter::once(name)
        .chain(source)
        .map(|n| reference(n.to_string()))
        .collect();
    caches
        .canaries
        .state()
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
        .filter(|c| {
            crate::workload::lookup(caches, &c.spec.target_ref.kind, &ns, &c.spec.target_ref.name)
                .is_some_and(|w| {
                    w.template().and_then(|t| t.spec.as_ref()).is_some_and(|spec| {
                        let used = flagger_core::config::referenced(spec);
                        references.iter().any(|r| used.contains_key(r))
                    })
                })
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Runs until `shutdown` is cancelled.
pub async fn run(rt: Runtime, shutdown: CancellationToken) -> Result<(), RunError> {
    let namespace = rt.config.namespace.clone();
    let canary_api: Api<Canary> = match &namespace {
        Some(ns) => Api::namespaced(rt.client.clone(), ns),
        None => Api::all(rt.client.clone()),
    };
    canary_api
        .list(&ListParams::default().limit(1))
        .await
        .map_err(RunError::Crd)?;

    let options = CacheOptions {
        track_configs: rt.config.enable_config_tracking,
    };
    let (caches, triggers) = Caches::start_with(&rt.client, namespace.as_deref(), &shutdown, options);
    let webhooks = WebhookClient::new()?;
    let recorder = EventRecorder::new(rt.client.clone(), &rt.config, webhooks.clone());
    let ctx = Arc::new(Context::new(
        rt.client.clone(),
        rt.config.clone(),
        caches.clone(),
        rt.gate.clone(),
        recorder,
        rt.alerts,
        rt.analysis,
        webhooks,
        rt.metrics.clone(),
    ));

    tokio::select! {
        r = caches.wait_until_ready() => r.map_err(|_| RunError::Caches)?,
        () = shutdown.cancelled() => return Ok(()),
    }
    tracing::info!("watch caches synced");
    rt.readiness.set_ready(true);

    spawn_totals(
        caches.clone(),
        rt.metrics.clone(),
        rt.config.control_loop_interval,
        shutdown.clone(),
    );

    let store = caches.canaries.clone();
    let stop = shutdown.clone();
    let mut controller = Controller::for_stream(triggers.canaries, caches.canaries.clone())
        .watches_stream(triggers.deployments, move |d| {
            canaries_of(&store, "Deployment", d.namespace(), &d.name_any())
        });
    let store = caches.canaries.clone();
    controller = controller.watches_stream(triggers.daemonsets, move |d| {
        canaries_of(&store, "DaemonSet", d.namespace(), &d.name_any())
    });
    let store = caches.canaries.clone();
    controller = controller.watches_stream(triggers.services, move |s| {
        canaries_of(&store, "Service", s.namespace(), &s.name_any())
    });
    if let Some(config_maps) = triggers.config_maps {
        let c = caches.clone();
        controller = controller.watches_stream(config_maps, move |cm| {
            canaries_using(&c, cm.namespace(), ConfigRef::ConfigMap, &cm.name_any())
        });
    }
    if let Some(secrets) = triggers.secrets {
        let c = caches.clone();
        controller = controller.watches_stream(secrets, move |s| {
            canaries_using(&c, s.namespace(), ConfigRef::Secret, &s.name_any())
        });
    }
    let controller = controller
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller");
            }
        });
    let mut controller = std::pin::pin!(controller);
    tokio::select! {
        () = &mut controller => {}
        () = shutdown.cancelled() => {
            // Let reconciles in flight finish (their writes are still gated on leadership); requeues
            // scheduled for later are dropped: a restarted operator derives them from the status again.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut controller).await.is_err() {
                tracing::info!("stopping with reconciles still running after {SHUTDOWN_GRACE:?}");
            }
        }
    }
    Ok(())
}

/// Keeps `flagger_canary_total{namespace}` current from the cache, every control loop interval.
fn spawn_totals(
    caches: Caches,
    metrics: OperatorMetrics,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
                    for c in caches.canaries.state() {
                        *totals.entry(c.namespace().unwrap_or_default()).or_default() += 1;
                    }
                    for (ns, n) in totals {
                        metrics.set_total(&ns, n);
                    }
                }
            }
        }
    });
}
