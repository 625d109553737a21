//! Knative targets (Flagger 1.44 §2.7, §2.8, §3.12): a `serving.knative.dev/v1` Service with
//! `spec.provider: knative`.
//!
//! Knative keeps every revision, so there is no primary workload to create: the primary is the revision
//! named in the Service's annotation `flagger.app/primary-revision`, the canary is
//! `status.latestCreatedRevisionName`, and traffic is split between them in the Service's `spec.traffic`
//! (read back from `status.traffic`, where Knative reports what it applied). Initialization writes the
//! annotation and the all-to-primary traffic; promotion moves the annotation to the latest revision.
//!
//! Services and Revisions are read from caches watched on first use. Their changes do not trigger
//! reconciles (the kinds may not exist), so a Knative canary is looked at every analysis interval, as
//! Flagger does.

use std::sync::Arc;

use flagger_api::Canary;
use flagger_core::machine::Readiness;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use crate::cache::{CacheError, Caches};

/// The annotation holding the primary revision's name.
pub const PRIMARY_REVISION: &str = "flagger.app/primary-revision";

/// The field manager of flagger-rs's writes to a Knative Service.
pub const FIELD_MANAGER: &str = "flagger/router-knative";

/// `serving.knative.dev/v1` `Service`.
pub fn service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("serving.knative.dev", "v1", "Service"),
        "services",
    )
}

/// `serving.knative.dev/v1` `Revision`.
pub fn revision_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("serving.knative.dev", "v1", "Revision"),
        "revisions",
    )
}

/// One revision of a Knative Service: the target's latest, or the primary.
#[derive(Clone, Debug)]
pub struct KnativeRevision {
    /// The Knative Service.
    pub service: Arc<DynamicObject>,
    /// The revision's name.
    pub revision: String,
    /// Whether the revision is ready (Knative's `Ready` condition; not-ready is always retriable).
    pub ready: Readiness,
}

/// The primary revision of a Knative Service (its annotation), if set.
pub fn primary_revision(service: &DynamicObject) -> Option<String> {
    service.annotations().get(PRIMARY_REVISION).cloned()
}

/// `status.latestCreatedRevisionName`.
pub fn latest_revision(service: &DynamicObject) -> Option<String> {
    service
        .data
        .pointer("/status/latestCreatedRevisionName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn revision_readiness(
    revisions: &kube::runtime::reflector::Store<DynamicObject>,
    namespace: &str,
    name: &str,
) -> Readiness {
    let not_ready = |message: String| Readiness::NotReady {
        message,
        retriable: true,
    };
    let Some(revision) = revisions.get(&ObjectRef::new_with(name, revision_resource()).within(namespace))
    else {
        return not_ready(format!("revision {name}.{namespace} not found"));
    };
    let ready = revision
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    match ready {
        Some(c) if c["status"] == "True" => Readiness::Ready,
        Some(c) => not_ready(format!(
            "revision {name}.{namespace} is not ready: {}",
            c["message"]
                .as_str()
                .or(c["reason"].as_str())
                .unwrap_or("Ready is not True")
        )),
        None => not_ready(format!("revision {name}.{namespace} is not ready")),
    }
}

/// The target (latest revision) and the primary (annotated revision, if any) of a Knative canary. `None`
/// when the Service does not exist or has no revision yet.
pub async fn observe(
    caches: &Caches,
    namespace: &str,
    name: &str,
) -> Result<Option<(KnativeRevision, Option<KnativeRevision>)>, CacheError> {
    let services = caches.dynamic(&service_resource(), true).await?;
    let revisions = caches.dynamic(&revision_resource(), true).await?;
    let Some(service) = services.get(&ObjectRef::new_with(name, service_resource()).within(namespace)) else {
        return Ok(None);
    };
    let Some(latest) = latest_revision(&service) else {
        return Ok(None);
    };
    let target = KnativeRevision {
        ready: revision_readiness(&revisions, namespace, &latest),
        revision: latest,
        service: service.clone(),
    };
    let primary = primary_revision(&service).map(|revision| KnativeRevision {
        ready: revision_readiness(&revisions, namespace, &revision),
        revision,
        service,
    });
    Ok(Some((target, primary)))
}

/// Points the primary at `revision`; at initialization (`initial_traffic`) also sends all traffic to it
/// (Flagger's `Initialize`: latest revision 0%, primary 100%).
pub async fn set_primary(
    client: &kube::Client,
    service: &DynamicObject,
    revision: &str,
    initial_traffic: bool,
) -> Result<(), kube::Error> {
    let mut patch = json!({"metadata": {"annotations": {PRIMARY_REVISION: revision}}});
    if initial_traffic {
        patch["spec"] = json!({"traffic": traffic(revision, 100, 0)});
    }
    patch_service(client, service, &patch).await
}

/// The `spec.traffic` of a split: the latest revision gets `canary`, the primary revision `primary`.
pub fn traffic(primary_revision: &str, primary: i32, canary: i32) -> Value {
    json!([
        {"latestRevision": true, "percent": canary},
        {"revisionName": primary_revision, "percent": primary},
    ])
}

/// A JSON merge patch of a Knative Service under flagger-rs's field manager.
pub async fn patch_service(
    client: &kube::Client,
    service: &DynamicObject,
    patch: &Value,
) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &service.namespace().unwrap_or_default(),
        &service_resource(),
    );
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&service.name_any(), &params, &Patch::Merge(patch))
        .await
        .map(drop)
}

/// Whether a canary targets a Knative Service (`serving.knative.dev/v1` exactly, as validation and the
/// built-in metrics decide and as Flagger's `IsKnativeService` does).
pub fn targets_knative(canary: &Canary) -> bool {
    canary.is_knative_target()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_splits_latest_and_primary_like_flagger() {
        assert_eq!(
            traffic("podinfo-00001", 75, 25),
            json!([
                {"latestRevision": true, "percent": 25},
                {"revisionName": "podinfo-00001", "percent": 75},
            ])
        );
    }
}
