//! `revertOnDeletion` and the `finalizer.flagger.app` finalizer (Flagger 1.44 §2.12).
//!
//! A Canary with `spec.revertOnDeletion: true` gets the finalizer. When it is deleted, the operator puts
//! things back the way they were before the canary, in an order that causes no downtime:
//!
//! 1. the phase becomes `Terminating` (event `Terminating canary <name>.<ns>`);
//! 2. the target's autoscaler is resumed and the target scaled back up (to the primary's replicas);
//! 3. the operator waits until the target is ready: each reconcile checks the cache and comes back a few
//!    seconds later, so no reconcile blocks while pods start;
//! 4. only then does a user's own apex Service get its selector back (from
//!    `kubectl.kubernetes.io/last-applied-configuration`, else `<label>: <value>`), so traffic moves to
//!    pods that are ready; an apex Service flagger-rs created is left to the garbage collector;
//! 5. the router restores what it can (e.g. a user's VirtualService);
//! 6. the finalizer is removed (event `Terminated canary <name>.<ns>`), and Kubernetes garbage-collects
//!    everything that carries the Canary's owner reference (the primary, generated Services, copies).
//!
//! Every step is idempotent and reads the cluster from the caches, so an operator killed half way resumes
//! on the next reconcile. Unlike Flagger, turning `revertOnDeletion` off removes the finalizer on the next
//! reconcile (Flagger does it only in its informer's update handler), and a Canary being deleted with the
//! finalizer but without `revertOnDeletion` just loses the finalizer.

use std::collections::BTreeMap;
use std::time::Duration;

use flagger_api::{Canary, CanaryPhase, CanaryStatus};
use flagger_core::machine::{Event, Readiness};
use flagger_core::primary;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::act::ApplyError;
use crate::context::Context;
use crate::observe;
use crate::router::{AnyRouter, RouteCx, RouterOptions};
use crate::workload::{self, Workload};

/// Flagger's finalizer.
pub const FINALIZER: &str = "finalizer.flagger.app";

/// How soon a finalizing reconcile looks again while the target becomes ready.
const READY_POLL: Duration = Duration::from_secs(3);

/// The annotation `kubectl apply` keeps the last applied manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the finalizer step decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Finalizing {
    /// Nothing to do: go on with the normal reconcile.
    No,
    /// The finalizer was added or removed, or the Canary is being finalized: this reconcile is done.
    Done,
    /// Finalizing waits (the target is not ready yet): look again after this long.
    WaitFor(Duration),
}

/// Whether the Canary carries flagger's finalizer.
pub fn has_finalizer(canary: &Canary) -> bool {
    canary.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds or removes the finalizer as `revertOnDeletion` asks, and finalizes a Canary being deleted.
pub async fn step(ctx: &Context, canary: &Canary) -> Result<Finalizing, ApplyError> {
    let wanted = canary.revert_on_deletion();
    let has = has_finalizer(canary);
    if canary.metadata.deletion_timestamp.is_some() {
        if !has {
            return Ok(Finalizing::Done);
        }
        if wanted && let Some(wait) = revert(ctx, canary).await? {
            return Ok(Finalizing::WaitFor(wait));
        }
        set_finalizer(ctx, canary, false).await?;
        if wanted {
            record(ctx, canary, format!("Terminated canary {}", key(canary))).await;
        }
        return Ok(Finalizing::Done);
    }
    if wanted != has {
        set_finalizer(ctx, canary, wanted).await?;
        return Ok(Finalizing::Done);
    }
    Ok(Finalizing::No)
}

fn key(canary: &Canary) -> String {
    format!("{}.{}", canary.name_any(), canary.namespace().unwrap_or_default())
}

async fn record(ctx: &Context, canary: &Canary, message: String) {
    ctx.recorder
        .record(canary, &Event::normal(message), &ctx.gate)
        .await;
}

async fn set_finalizer(ctx: &Context, canary: &Canary, present: bool) -> Result<(), ApplyError> {
    let mut finalizers: Vec<String> = canary
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_owned());
    } else if canary.metadata.deletion_timestamp.is_none() {
        tracing::info!("{} opting out, deleting finalizers", key(canary));
    }
    ctx.gate.check()?;
    let updated = flagger_k8s::set_canary_finalizers(&ctx.client, canary, &finalizers).await?;
    ctx.remember_write(canary.resource_version(), updated);
    Ok(())
}

/// Steps 1–5. `Some(wait)` while the target is not ready yet.
async fn revert(ctx: &Context, canary: &Canary) -> Result<Option<Duration>, ApplyError> {
    let ns = canary.namespace().unwrap_or_default();
    if canary.status.as_ref().map(CanaryStatus::phase) != Some(CanaryPhase::Terminating) {
        let mut status = canary.status.clone().unwrap_or_default();
        status.phase = Some(CanaryPhase::Terminating);
        ctx.gate.check()?;
        let updated = flagger_k8s::patch_canary_status(&ctx.client, canary, &status).await?;
        ctx.remember_write(canary.resource_version(), updated);
        record(ctx, canary, format!("Terminating canary {}", key(canary))).await;
    }

    // The target must not stay at zero because KEDA was told to hold it there.
    match crate::scaler::observe(&ctx.caches, canary).await {
        Ok(Some(scaler)) => scaler.set_paused(ctx, false).await?,
        Ok(None) => {}
        Err(e) => tracing::warn!("{} cannot resume the target's autoscaler: {e}", key(canary)),
    }

    let target_name = canary.spec.target_ref.name.as_str();
    let kind = canary.spec.target_ref.kind.as_str();
    if crate::knative::targets_knative(canary) {
        // Nothing to scale: the router gives the Service back (its primary annotation goes).
        return finalize_router(ctx, canary).await.map(|()| None);
    }
    let Some(target) = workload::lookup(&ctx.caches, kind, &ns, target_name) else {
        // Nothing to give traffic back to (the target is gone, e.g. the namespace is being deleted).
        tracing::info!(
            "{} target {target_name} not found, nothing to revert",
            key(canary)
        );
        return Ok(None);
    };
    let primary = workload::lookup(
        &ctx.caches,
        kind,
        &ns,
        &format!("{target_name}{}", primary::PRIMARY_SUFFIX),
    );
    // Flagger's Finalize: a Deployment gets the primary's replicas (1 when unset), or without a primary
    // ScaleFromZero's rule; a DaemonSet loses its scale-to-zero nodeSelector.
    let revert = match &target {
        Workload::Deployment(d) => {
            let replicas = match &primary {
                Some(p) => p.replicas().unwrap_or(1),
                None => d.spec.replicas.filter(|r| *r > 0).unwrap_or(1),
            };
            (d.spec.replicas != Some(replicas)).then_some(replicas)
        }
        Workload::DaemonSet(_) => target.scaled_to_zero().then_some(1),
        Workload::Service(_) | Workload::Knative(_) => None,
    };
    if let Some(replicas) = revert {
        ctx.gate.check()?;
        target.scale(&ctx.client, replicas).await?;
        tracing::info!("{} {kind} {target_name}.{ns} reverted", key(canary));
        return Ok(Some(READY_POLL));
    }
    let analysis = canary.analysis().cloned().unwrap_or_default();
    if let Readiness::NotReady { message, .. } =
        target.readiness(canary, analysis.canary_ready_threshold(), Timestamp::now())
    {
        tracing::info!("{} canary not ready during finalizing: {message}", key(canary));
        return Ok(Some(READY_POLL));
    }

    // The target serves: give the user's apex Service its selector back.
    if let Ok(Some((label, value))) = target.selector_label(&ctx.config.workload)
        && let Some(service) = ctx.caches.service(&ns, canary.service_name())
        && !controlled_by_canary(&service)
    {
        let selector = last_applied_selector(&service).unwrap_or_else(|| BTreeMap::from([(label, value)]));
        if service.spec.as_ref().and_then(|s| s.selector.as_ref()) != Some(&selector) {
            ctx.gate.check()?;
            flagger_k8s::set_service_selector(&ctx.client, &service, &selector).await?;
        }
    }

    finalize_router(ctx, canary).await?;
    Ok(None)
}

/// Step 5: the router restores what it can.
async fn finalize_router(ctx: &Context, canary: &Canary) -> Result<(), ApplyError> {
    if let Ok(provider) = observe::provider(canary, &ctx.config.mesh_provider) {
        let cx = RouteCx {
            client: &ctx.client,
            caches: &ctx.caches,
            canary,
            gate: &ctx.gate,
        };
        AnyRouter::with_options(&provider, &RouterOptions::from_config(&ctx.config))
            .finalize(&cx)
            .await?;
    }
    Ok(())
}

/// Whether a Canary is the controller of the Service (flagger created it, so it is garbage-collected).
pub fn controlled_by_canary(service: &Service) -> bool {
    service
        .owner_references()
        .iter()
        .any(|o| o.kind == "Canary" && o.controller == Some(true))
}

/// The selector of the manifest `kubectl apply` last applied, if the annotation holds one.
fn last_applied_selector(service: &Service) -> Option<BTreeMap<String, String>> {
    let raw = service.annotations().get(LAST_APPLIED)?;
    let manifest: serde_json::Value = serde_json::from_str(raw).ok()?;
    serde_json::from_value(manifest.get("spec")?.get("selector")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn service(annotations: &[(&str, &str)], owner: Option<&str>) -> Service {
        let mut s = Service::default();
        s.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s.metadata.owner_references = owner.map(|kind| {
            vec![OwnerReference {
                kind: kind.into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        s
    }

    #[test]
    fn the_last_applied_selector_is_read_from_kubectls_annotation() {
        let s = service(
            &[(
                LAST_APPLIED,
                r#"{"apiVersion":"v1","kind":"Service","spec":{"selector":{"app":"web","tier":"front"}}}"#,
            )],
            None,
        );
        assert_eq!(
            last_applied_selector(&s),
            Some(BTreeMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "front".into())
            ]))
        );
        assert_eq!(
            last_applied_selector(&service(&[(LAST_APPLIED, "not json")], None)),
            None
        );
        assert_eq!(last_applied_selector(&service(&[], None)), None);
    }

    #[test]
    fn only_services_a_canary_controls_are_left_to_the_garbage_collector() {
        assert!(controlled_by_canary(&service(&[], Some("Canary"))));
        assert!(!controlled_by_canary(&service(&[], Some("Deployment"))));
        assert!(!controlled_by_canary(&service(&[], None)));
    }
}
