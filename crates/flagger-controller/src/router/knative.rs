//! Knative router (`knative`, Flagger's `KnativeRouter`): traffic between the primary revision (the
//! Service's `flagger.app/primary-revision` annotation) and the latest revision, in the Knative Service's
//! own `spec.traffic`:
//!
//! ```yaml
//! spec:
//!   traffic:
//!   - {latestRevision: true, percent: <canary>}
//!   - {revisionName: <primary revision>, percent: <primary>}
//! ```
//!
//! Weights are read back from `status.traffic`, i.e. what Knative has applied. `reconcile` sets the
//! annotation when it is missing (the target's initialization normally did), `finalize` removes it.
//! Writes are JSON merge patches of exactly those fields under [`crate::knative::FIELD_MANAGER`].

use flagger_core::machine::Routes;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use super::{RouteCx, RouterError};
use crate::knative::{self, PRIMARY_REVISION};

fn kube_error(action: &'static str, cx: &RouteCx<'_>, source: kube::Error) -> RouterError {
    let ns = cx.canary.namespace().unwrap_or_default();
    RouterError::kube(
        action,
        "Service.serving.knative.dev",
        &ns,
        &cx.canary.spec.target_ref.name,
    )(source)
}

/// The target Knative Service: from the cache, or read from the API server when the cache does not show
/// the primary annotation yet (it was written a moment ago by this same reconcile).
async fn service(cx: &RouteCx<'_>, need_annotation: bool) -> Result<DynamicObject, RouterError> {
    let ns = cx.canary.namespace().unwrap_or_default();
    let name = &cx.canary.spec.target_ref.name;
    let store = cx.caches.dynamic(&knative::service_resource(), true).await?;
    let cached = store.get(&ObjectRef::new_with(name, knative::service_resource()).within(&ns));
    if let Some(s) = &cached
        && (!need_annotation || knative::primary_revision(s).is_some())
    {
        return Ok(s.as_ref().clone());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), &ns, &knative::service_resource());
    api.get(name).await.map_err(|e| kube_error("read", cx, e))
}

fn annotation_missing(cx: &RouteCx<'_>) -> RouterError {
    RouterError::Invalid(format!(
        "Knative Service {}.{} annotation not found",
        cx.canary.spec.target_ref.name,
        cx.canary.namespace().unwrap_or_default()
    ))
}

/// Sets the primary annotation when missing.
pub async fn reconcile(cx: &RouteCx<'_>) -> Result<(), RouterError> {
    let svc = service(cx, false).await?;
    if knative::primary_revision(&svc).is_some() {
        return Ok(());
    }
    let Some(latest) = knative::latest_revision(&svc) else {
        return Ok(());
    };
    cx.gate.check()?;
    knative::set_primary(cx.client, &svc, &latest, false)
        .await
        .map_err(|e| kube_error("update", cx, e))
}

/// The weights Knative applied, from `status.traffic`.
pub async fn get_routes(cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
    let svc = service(cx, false).await?;
    let Some(primary) = knative::primary_revision(&svc) else {
        return Err(RouterError::Invalid(format!(
            "service {}.{} annotation not found",
            cx.canary.spec.target_ref.name,
            cx.canary.namespace().unwrap_or_default()
        )));
    };
    routes_from_status(&svc.data, &primary).map_err(|what| {
        RouterError::Invalid(format!(
            "Knative Service {}.{} {what}",
            cx.canary.spec.target_ref.name,
            cx.canary.namespace().unwrap_or_default()
        ))
    })
}

/// Flagger's reading of `status.traffic`: the latest-revision entry is the canary, the entry of the
/// primary revision the primary. `Err` is the end of Flagger's message.
pub fn routes_from_status(service: &Value, primary: &str) -> Result<Routes, &'static str> {
    let traffic = service
        .pointer("/status/traffic")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let canary = traffic.iter().find(|t| t["latestRevision"] == true);
    // Knative names the revision of the latest-revision entry too: once promoted, the primary and the
    // latest revision are the same, and the primary's entry is the other one (Flagger takes the first
    // match, the latest-revision entry, and reads the primary's weight as the canary's).
    let primary = traffic
        .iter()
        .find(|t| t["revisionName"] == primary && t["latestRevision"] != true)
        .or_else(|| traffic.iter().find(|t| t["revisionName"] == primary));
    let (Some(canary), Some(primary)) = (canary, primary) else {
        return Err("traffic spec invalid");
    };
    let percent = |t: &Value| t["percent"].as_i64().and_then(|p| i32::try_from(p).ok());
    let primary = percent(primary).ok_or("primary revision traffic percent does not exist")?;
    let canary = percent(canary).ok_or("canary revision traffic percent does not exist")?;
    Ok(Routes {
        primary,
        canary,
        mirrored: false,
    })
}

/// Writes the split into `spec.traffic`.
pub async fn set_routes(cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
    let svc = service(cx, true).await?;
    let primary = knative::primary_revision(&svc).ok_or_else(|| annotation_missing(cx))?;
    let desired = knative::traffic(&primary, routes.primary, routes.canary);
    if svc.data.pointer("/spec/traffic") == Some(&desired) {
        return Ok(());
    }
    cx.gate.check()?;
    knative::patch_service(cx.client, &svc, &json!({"spec": {"traffic": desired}}))
        .await
        .map_err(|e| kube_error("update", cx, e))
}

/// Removes the primary annotation.
pub async fn finalize(cx: &RouteCx<'_>) -> Result<(), RouterError> {
    let svc = service(cx, false).await?;
    if knative::primary_revision(&svc).is_none() {
        return Ok(());
    }
    cx.gate.check()?;
    knative::patch_service(
        cx.client,
        &svc,
        &json!({"metadata": {"annotations": {PRIMARY_REVISION: Value::Null}}}),
    )
    .await
    .map_err(|e| kube_error("update", cx, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_read_from_the_applied_traffic() {
        let svc = json!({"status": {"traffic": [
            {"latestRevision": true, "revisionName": "podinfo-00002", "percent": 25},
            {"latestRevision": false, "revisionName": "podinfo-00001", "percent": 75},
        ]}});
        assert_eq!(
            routes_from_status(&svc, "podinfo-00001"),
            Ok(Routes {
                primary: 75,
                canary: 25,
                mirrored: false
            })
        );
        assert_eq!(
            routes_from_status(&svc, "podinfo-00009"),
            Err("traffic spec invalid")
        );
        let no_percent = json!({"status": {"traffic": [
            {"latestRevision": true, "percent": 25},
            {"revisionName": "podinfo-00001"},
        ]}});
        assert_eq!(
            routes_from_status(&no_percent, "podinfo-00001"),
            Err("primary revision traffic percent does not exist")
        );
        assert_eq!(routes_from_status(&json!({}), "p"), Err("traffic spec invalid"));
        // After promotion both entries name the same revision: the primary is the pinned one.
        let promoted = json!({"status": {"traffic": [
            {"latestRevision": true, "revisionName": "podinfo-00002", "percent": 0},
            {"latestRevision": false, "revisionName": "podinfo-00002", "percent": 100},
        ]}});
        assert_eq!(
            routes_from_status(&promoted, "podinfo-00002"),
            Ok(Routes {
                primary: 100,
                canary: 0,
                mirrored: false
            })
        );
    }
}
