//! **act**: applies a plan of the state machine to the cluster, in order.
//!
//! Writes go through the leader gate and name their field manager (see `flagger_k8s::managers`). Objects
//! flagger-rs owns are compared with the watch cache first and only written when they differ, so a canary
//! in its steady state costs no API request.

use flagger_api::{Canary, CanaryStatus, HookType};
use flagger_core::machine::{Action, MetricUpdate, Plan};
use flagger_core::primary;
use flagger_core::services;
use flagger_k8s::ActError;
use flagger_leader::uuid_v4;
use flagger_telemetry::metrics::AnalysisStatus;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::Value;

use crate::configs;
use crate::context::Context;
use crate::gate::NotLeader;
use crate::hooks;
use crate::observe::Observation;
use crate::router::{RouteCx, RouterError};
use crate::workload::{DesiredPrimary, Workload};

/// A plan could not be applied completely. The actions before the failing one were applied; the next
/// reconcile decides again from what the cluster shows.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A write was refused or failed.
    #[error(transparent)]
    Write(#[from] Box<ActError>),
    /// A router operation failed.
    #[error(transparent)]
    Router(Box<RouterError>),
    /// This process lost leadership.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The primary cannot be built from the target.
    #[error(transparent)]
    Primary(#[from] primary::PrimaryError),
    /// The autoscaler's primary copy or pause could not be written.
    #[error(transparent)]
    Scaler(Box<crate::scaler::ScalerError>),
}

impl ApplyError {
    /// A stable, low-cardinality name for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Write(_) => "write",
            Self::Router(_) => "router",
            Self::NotLeader(_) => "not_leader",
            Self::Primary(_) => "primary",
            Self::Scaler(_) => "autoscaler",
        }
    }
}

/// Whether every field of `desired` is present with the same value in `actual`. Objects may have more
/// fields in `actual` (server defaults, other managers); every element of a desired array must match an
/// element of the actual array.
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, v)| v.is_null() || a.get(k).is_some_and(|av| is_subset(v, av))),
        (Value::Array(d), Value::Array(a)) => d.iter().all(|dv| a.iter().any(|av| is_subset(dv, av))),
        (d, a) => d == a,
    }
}

fn service_differs(ctx: &Context, desired: &Service) -> bool {
    let ns = desired.namespace().unwrap_or_default();
    let Some(actual) = ctx.caches.service(&ns, &desired.name_any()) else {
        return true;
    };
    match (
        serde_json::to_value(desired),
        serde_json::to_value(actual.as_ref()),
    ) {
        (Ok(mut d), Ok(a)) => {
            if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("ownerReferences");
            }
            // The owner reference is compared by uid only.
            let owned = desired
                .metadata
                .owner_references
                .iter()
                .flatten()
                .all(|o| actual.owner_references().iter().any(|a| a.uid == o.uid));
            !(owned && is_subset(&d, &a))
        }
        _ => true,
    }
}

/// The Services of the canary: `[canary, primary, apex]`.
fn desired_services(obs: &Observation) -> Option<[Service; 3]> {
    let owner = flagger_k8s::owner_reference(&obs.canary)?;
    let (label, value) = obs.selector.as_ref()?;
    let containers = &obs.target.template()?.spec.as_ref()?.containers;
    let ports = if obs.canary.spec.service.port_discovery == Some(true) {
        services::discovered_ports(&obs.canary, containers)
    } else {
        Default::default()
    };
    Some(services::desired_services(
        &obs.canary,
        label,
        value,
        &ports,
        &owner,
    ))
}

async fn apply_services(ctx: &Context, services: &[Service]) -> Result<(), ApplyError> {
    for svc in services {
        if service_differs(ctx, svc) {
            ctx.gate.check()?;
            flagger_k8s::apply_service(&ctx.client, svc).await?;
        }
    }
    Ok(())
}

/// The primary as it should be after creation or promotion.
fn desired_primary(
    ctx: &Context,
    obs: &Observation,
    flagger_id: &str,
) -> Result<Option<DesiredPrimary>, ApplyError> {
    let Some(owner) = flagger_k8s::owner_reference(&obs.canary) else {
        return Ok(None);
    };
    // With an autoscaler, the primary's replicas are the autoscaler's business once it exists (Flagger
    // copies them only without one).
    let replicas = obs
        .scaler
        .as_ref()
        .and(obs.primary.as_ref())
        .and_then(Workload::replicas);
    Ok(Some(obs.target.desired_primary(
        owner,
        &ctx.config.workload,
        &obs.configs.refs(),
        replicas,
        flagger_id,
    )?))
}

/// Applies `plan` for the observed canary. Returns the Canary as written when the status was written.
pub async fn apply(ctx: &Context, obs: &Observation, plan: &Plan) -> Result<Option<Canary>, ApplyError> {
    let canary = obs.canary.as_ref();
    let ns = obs.namespace();
    let target = canary.spec.target_ref.name.as_str();
    let route_cx = RouteCx {
        client: &ctx.client,
        caches: &ctx.caches,
        canary,
        gate: &ctx.gate,
    };
    let mut written = None;
    let services = desired_services(obs);
    for action in &plan.actions {
        match action {
            Action::InitializeServices => {
                if let Some([canary_svc, primary_svc, _]) = &services {
                    apply_services(ctx, &[canary_svc.clone(), primary_svc.clone()]).await?;
                }
            }
            Action::ReconcileApexService => {
                if let Some([_, _, apex]) = &services {
                    let mut apex = apex.clone();
                    // A user's own apex Service is taken over without an owner reference, as Flagger does:
                    // deleting the Canary must not garbage-collect it.
                    if ctx
                        .caches
                        .service(&ns, &apex.name_any())
                        .is_some_and(|s| !crate::finalizer::controlled_by_canary(&s))
                    {
                        apex.metadata.owner_references = None;
                    }
                    apply_services(ctx, std::slice::from_ref(&apex)).await?;
                }
            }
            Action::CheckMetricProviders => {
                let event = match ctx.analysis.check_providers(canary, &ctx.caches).await {
                    Ok(()) => {
                        flagger_core::machine::Event::normal("all the metrics providers are available!")
                    }
                    Err(e) => {
                        flagger_core::machine::Event::warning(format!("Error checking metric providers: {e}"))
                    }
                };
                ctx.recorder.record(canary, &event, &ctx.gate).await;
            }
            Action::EnsurePrimary => {
                // A Service target's canary copy follows the target on every tick (Flagger's Initialize
                // creates or updates it).
                if let Some(owner) = flagger_k8s::owner_reference(canary)
                    && let Some(copy) = obs.target.desired_canary_copy(owner, &ctx.config.workload)
                    && service_differs(ctx, &copy)
                {
                    ctx.gate.check()?;
                    flagger_k8s::apply_primary_object(&ctx.client, &copy).await?;
                }
                let key = format!("{}/{ns}/{target}{}", obs.target.kind(), primary::PRIMARY_SUFFIX);
                if obs.primary.is_none()
                    && !ctx.was_created(&key)
                    && let Some(desired) =
                        desired_primary(ctx, obs, &uuid_v4())?.map(DesiredPrimary::with_initial_traffic)
                {
                    configs::sync_primary_copies(ctx, canary, &obs.configs).await?;
                    ctx.gate.check()?;
                    desired.apply(&ctx.client).await?;
                    ctx.note_created(key);
                } else {
                    configs::ensure_copy_owners(ctx, canary, &obs.configs).await?;
                }
            }
            Action::ReconcilePrimaryScaler { init } => {
                if let Some(scaler) = &obs.scaler {
                    scaler.reconcile_primary(ctx, canary, *init).await?;
                }
            }
            Action::PauseTargetScaler | Action::ResumeTargetScaler => {
                if let Some(scaler) = &obs.scaler {
                    scaler
                        .set_paused(ctx, matches!(action, Action::PauseTargetScaler))
                        .await?;
                }
            }
            Action::ReconcileMeshRouter => obs.router.reconcile(&route_cx).await?,
            Action::ScaleToZero => {
                if !obs.target.scaled_to_zero() {
                    ctx.gate.check()?;
                    tracing::info!(
                        canary = %format!("{}.{ns}", canary.name_any()),
                        "Scaling down {} {target}.{ns}",
                        obs.target.kind()
                    );
                    obs.target.scale(&ctx.client, 0).await?;
                }
            }
            Action::ScaleFromZero => {
                // Flagger's rule: the target's own count, else the autoscaler's minimum (when above
                // one), else the primary's count, else one.
                let positive = |r: Option<i32>| r.filter(|r| *r > 0);
                let replicas = positive(obs.target.replicas()).unwrap_or_else(|| match &obs.scaler {
                    Some(scaler) => scaler.scale_from_zero_replicas(),
                    None => positive(obs.primary.as_ref().and_then(Workload::replicas)).unwrap_or(1),
                });
                ctx.gate.check()?;
                obs.target.scale(&ctx.client, replicas).await?;
            }
            Action::SetRoutes(routes) => obs.router.set_routes(&route_cx, *routes).await?,
            Action::Promote => {
                // Keep the primary's flagger-id when it already runs this template and these configs: a new
                // id would restart every primary pod for nothing (Flagger draws a new one at every promotion).
                let unchanged =
                    obs.primary_runs_target && !configs::copies_outdated(&ctx.caches, &obs.configs);
                let id = obs
                    .primary
                    .as_ref()
                    .and_then(Workload::flagger_id)
                    .filter(|_| unchanged)
                    .unwrap_or_else(uuid_v4);
                if let Some(desired) = desired_primary(ctx, obs, &id)? {
                    configs::sync_primary_copies(ctx, canary, &obs.configs).await?;
                    ctx.gate.check()?;
                    desired.apply(&ctx.client).await?;
                }
            }
            Action::WriteStatus => {
                written = Some(write_status(ctx, canary, plan).await?);
            }
            Action::Event(event) => ctx.recorder.record(canary, event, &ctx.gate).await,
            Action::Alert(alert) => {
                ctx.gate.check()?;
                ctx.alerts.send(canary, alert, &ctx.caches).await;
            }
            Action::RunPostRolloutHooks { phase } => {
                let hooks: Vec<_> = canary
                    .analysis()
                    .map(|a| a.webhooks())
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.hook_type() == HookType::PostRollout)
                    .map(|(i, h)| (i, h.name.clone()))
                    .collect();
                for (index, name) in hooks {
                    let event = match hooks::call(ctx, canary, index, *phase).await {
                        Ok(()) => {
                            flagger_core::machine::Event::normal(format!("Post-rollout check {name} passed"))
                        }
                        Err(e) => flagger_core::machine::Event::warning(format!(
                            "Post-rollout hook {name} failed {e}"
                        )),
                    };
                    ctx.recorder.record(canary, &event, &ctx.gate).await;
                }
            }
            Action::Metric(update) => {
                let (success, status) = match update {
                    MetricUpdate::Success { analysis_status, .. } => (true, *analysis_status),
                    MetricUpdate::Failure { analysis_status, .. } => (false, *analysis_status),
                };
                let status = if status == "skipped" {
                    AnalysisStatus::Skipped
                } else {
                    AnalysisStatus::Completed
                };
                // Flagger labels its canary series with the target's name.
                let name = target;
                if success {
                    ctx.metrics.inc_success(name, &ns, canary.strategy(), status);
                } else {
                    ctx.metrics.inc_failure(name, &ns, canary.strategy(), status);
                }
            }
        }
    }
    if written.is_none() && plan.tick.is_some() {
        written = Some(write_status(ctx, canary, plan).await?);
    }
    Ok(written)
}

/// Writes the plan's status (or only the tick time) over the observed Canary.
async fn write_status(ctx: &Context, canary: &Canary, plan: &Plan) -> Result<Canary, ApplyError> {
    let mut status: CanaryStatus = plan
        .status
        .clone()
        .unwrap_or_else(|| canary.status.clone().unwrap_or_default());
    if let Some(tick) = plan.tick {
        status.last_tick_time = Some(Time(tick));
    }
    ctx.gate.check()?;
    let updated = flagger_k8s::patch_canary_status(&ctx.client, canary, &status).await?;
    ctx.remember_write(canary.resource_version(), updated.clone());
    Ok(updated)
}

impl From<RouterError> for ApplyError {
    fn from(e: RouterError) -> Self {
        Self::Router(Box::new(e))
    }
}

impl From<ActError> for ApplyError {
    fn from(e: ActError) -> Self {
        Self::Write(Box::new(e))
    }
}

impl From<crate::scaler::ScalerError> for ApplyError {
    fn from(e: crate::scaler::ScalerError) -> Self {
        Self::Scaler(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subset_ignores_extra_fields_and_array_order() {
        let desired = json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}});
        let actual = json!({"spec": {"ports": [{"port": 9}, {"port": 80, "protocol": "TCP"}], "selector": {"app": "x"}, "clusterIP": "1.2.3.4"}});
        assert!(is_subset(&desired, &actual));
        let changed = json!({"spec": {"selector": {"app": "y"}}});
        assert!(!is_subset(&changed, &actual));
        let missing = json!({"metadata": {"labels": {"a": "b"}}});
        assert!(!is_subset(&missing, &actual));
    }
}
