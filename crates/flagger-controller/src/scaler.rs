//! The target's autoscaler and its primary copy (Flagger 1.44 §2.10): an autoscaling/v2
//! HorizontalPodAutoscaler or a KEDA ScaledObject named by `spec.autoscalerRef`.
//!
//! - `<name>-primary` is created when the canary is initialized and updated only at promotion (so a change
//!   to the source autoscaler reaches the primary with the release that carries it);
//! - a KEDA ScaledObject of the target is paused (`autoscaling.keda.sh/paused-replicas: "0"`) while the
//!   target is scaled to zero and resumed when an analysis scales it up, so KEDA does not fight the
//!   operator; an HPA needs nothing (an HPA does not scale a Deployment at zero replicas).
//!
//! Reads come from the caches (HPAs are always watched; ScaledObjects on first use); writes are
//! server-side applies with the primary's field manager (the copy) and merge patches of the one annotation
//! (the pause).

use std::collections::BTreeSet;
use std::sync::Arc;

use flagger_api::Canary;
use flagger_core::autoscaler::{self, KEDA_PAUSED_REPLICAS};
use flagger_core::primary::PRIMARY_SUFFIX;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use crate::act::is_subset;
use crate::cache::{CacheError, Caches};
use crate::context::Context;
use crate::gate::NotLeader;

/// The autoscaler of a target, as the caches show it.
#[derive(Clone, Debug)]
pub enum Scaler {
    /// A HorizontalPodAutoscaler and its primary copy, if it exists.
    Hpa {
        /// The target's HPA.
        source: Arc<HorizontalPodAutoscaler>,
        /// `<hpa>-primary`.
        primary: Option<Arc<HorizontalPodAutoscaler>>,
    },
    /// A KEDA ScaledObject and its primary copy, if it exists.
    Keda {
        /// The API resource of the ScaledObject version named in `autoscalerRef.apiVersion`.
        resource: ApiResource,
        /// The target's ScaledObject.
        source: Arc<DynamicObject>,
        /// `<so>-primary`.
        primary: Option<Arc<DynamicObject>>,
    },
}

/// Why the autoscaler cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    /// The referenced autoscaler does not exist (Flagger's message).
    #[error("{kind} {name}.{namespace} get query error: not found")]
    NotFound {
        /// `HorizontalPodAutoscaler` or `ScaledObject`.
        kind: String,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// ScaledObjects cannot be watched (the KEDA CRD is missing).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A write failed (of a primary copy, or the pause annotation of a ScaledObject).
    #[error(transparent)]
    Apply(#[from] flagger_k8s::ActError),
    /// This process lost leadership.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

impl ScalerError {
    /// Whether looking again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NotFound { .. } | Self::Cache(_) => true,
            Self::Apply(e) => e.is_transient(),
            Self::NotLeader(_) => false,
        }
    }
}

/// The ScaledObject resource of `api_version` (`keda.sh/v1alpha1` when empty).
fn scaled_object_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .split_once('/')
        .filter(|(g, v)| !g.is_empty() && !v.is_empty())
        .unwrap_or(("keda.sh", "v1alpha1"));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "ScaledObject"),
        "scaledobjects",
    )
}

/// The autoscaler of `canary`, if it has an `autoscalerRef`.
pub async fn observe(caches: &Caches, canary: &Canary) -> Result<Option<Scaler>, ScalerError> {
    let Some(reference) = &canary.spec.autoscaler_ref else {
        return Ok(None);
    };
    let ns = canary.namespace().unwrap_or_default();
    let not_found = || ScalerError::NotFound {
        kind: reference.kind.clone(),
        name: reference.name.clone(),
        namespace: ns.clone(),
    };
    let primary_name = format!("{}{PRIMARY_SUFFIX}", reference.name);
    if reference.kind == "ScaledObject" {
        let resource = scaled_object_resource(&reference.api_version);
        let store = caches.dynamic(&resource, true).await?;
        let get = |name: &str| store.get(&ObjectRef::new_with(name, resource.clone()).within(&ns));
        let source = get(&reference.name).ok_or_else(not_found)?;
        let primary = get(&primary_name);
        return Ok(Some(Scaler::Keda {
            resource,
            source,
            primary,
        }));
    }
    let source = caches.hpa(&ns, &reference.name).ok_or_else(not_found)?;
    let primary = caches.hpa(&ns, &primary_name);
    Ok(Some(Scaler::Hpa { source, primary }))
}

impl Scaler {
    /// The replicas the target gets when scaled up from zero with this autoscaler: its minimum when above
    /// one, else one (Flagger's rule).
    pub fn scale_from_zero_replicas(&self) -> i32 {
        let min = match self {
            Self::Hpa { source, .. } => source.spec.min_replicas,
            Self::Keda { source, .. } => source
                .data
                .pointer("/spec/minReplicaCount")
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok()),
        };
        min.filter(|m| *m > 1).unwrap_or(1)
    }

    /// Creates the primary copy when missing; with `init == false` (a promotion), also updates it when it
    /// differs from what the source says now.
    pub async fn reconcile_primary(
        &self,
        ctx: &Context,
        canary: &Canary,
        init: bool,
    ) -> Result<(), ScalerError> {
        let Some(owner) = flagger_k8s::owner_reference(canary) else {
            return Ok(());
        };
        match self {
            Self::Hpa { source, primary } => {
                let desired = autoscaler::primary_hpa(canary, source, owner);
                let write = match primary {
                    None => true,
                    Some(_) if init => false,
                    Some(actual) => differs(&desired, actual.as_ref(), "/spec/metrics"),
                };
                if write {
                    ctx.gate.check()?;
                    flagger_k8s::apply_primary_object(&ctx.client, &desired).await?;
                    tracing::info!("HorizontalPodAutoscaler {} synced", desired.name_any());
                }
            }
            Self::Keda {
                resource,
                source,
                primary,
            } => {
                let source_json = serde_json::to_value(source.as_ref()).unwrap_or_default();
                let desired = autoscaler::primary_scaled_object(canary, &source_json, owner);
                let write = match primary {
                    None => true,
                    Some(_) if init => false,
                    Some(actual) => differs(&desired, actual.as_ref(), "/spec/triggers"),
                };
                if write {
                    let ns = canary.namespace().unwrap_or_default();
                    let name = desired["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, resource);
                    ctx.gate.check()?;
                    api.patch(
                        &name,
                        &PatchParams::apply(flagger_k8s::managers::PRIMARY).force(),
                        &Patch::Apply(&desired),
                    )
                    .await
                    .map_err(|source| flagger_k8s::ActError {
                        action: "apply",
                        kind: "ScaledObject",
                        namespace: ns.clone(),
                        name: name.clone(),
                        source,
                    })?;
                    tracing::info!("ScaledObject {name} synced");
                }
            }
        }
        Ok(())
    }

    /// Pauses (`true`) or resumes (`false`) the target's ScaledObject; nothing for an HPA.
    pub async fn set_paused(&self, ctx: &Context, paused: bool) -> Result<(), ScalerError> {
        let Self::Keda { resource, source, .. } = self else {
            return Ok(());
        };
        let is_paused = source.annotations().get(KEDA_PAUSED_REPLICAS).map(String::as_str) == Some("0");
        if is_paused == paused {
            return Ok(());
        }
        let ns = source.namespace().unwrap_or_default();
        let name = source.name_any();
        let value = if paused { json!("0") } else { Value::Null };
        let patch = json!({"metadata": {"annotations": {KEDA_PAUSED_REPLICAS: value}}});
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, resource);
        ctx.gate.check()?;
        let params = PatchParams {
            field_manager: Some(flagger_k8s::managers::SCALE.to_owned()),
            ..PatchParams::default()
        };
        api.patch(&name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|source| flagger_k8s::ActError {
                action: if paused { "pause" } else { "resume" },
                kind: "ScaledObject",
                namespace: ns.clone(),
                name: name.clone(),
                source,
            })?;
        Ok(())
    }
}

/// Whether the copy must be updated: a desired field is missing or different, or the list at `list` (the
/// HPA's metrics, the ScaledObject's triggers) has another length (an entry was removed at the source).
fn differs<D: serde::Serialize, A: serde::Serialize>(desired: &D, actual: &A, list: &str) -> bool {
    let (Ok(mut d), Ok(a)) = (serde_json::to_value(desired), serde_json::to_value(actual)) else {
        return true;
    };
    let owner_uids = |v: &Value| -> BTreeSet<String> {
        v.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| Some(r.get("uid")?.as_str()?.to_owned()))
            .collect()
    };
    let owned = owner_uids(&d).is_subset(&owner_uids(&a));
    if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        // Compared by uid above; the server may add fields to the reference.
        meta.remove("ownerReferences");
    }
    let len = |v: &Value| v.pointer(list).and_then(Value::as_array).map(Vec::len);
    !owned
        || !is_subset(&d["spec"], &a["spec"])
        || !is_subset(&d["metadata"], &a["metadata"])
        || len(&d) != len(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_object_versions_come_from_the_reference() {
        assert_eq!(
            scaled_object_resource("keda.sh/v1alpha1").api_version,
            "keda.sh/v1alpha1"
        );
        assert_eq!(scaled_object_resource("").api_version, "keda.sh/v1alpha1");
        assert_eq!(scaled_object_resource("keda.sh/v2").version, "v2");
        assert_eq!(scaled_object_resource("keda.sh/v2").plural, "scaledobjects");
    }

    #[test]
    fn another_owner_is_a_difference() {
        let owner = |uid: &str| json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "a", "uid": uid});
        let desired = json!({"metadata": {"name": "a", "ownerReferences": [owner("new")]}, "spec": {}});
        let actual = json!({"metadata": {"name": "a", "ownerReferences": [owner("old")]}, "spec": {}});
        assert!(
            differs(&desired, &actual, "/spec/metrics"),
            "a recreated Canary owns the copy"
        );
        let mut same = actual.clone();
        same["metadata"]["ownerReferences"][0]["uid"] = json!("new");
        same["metadata"]["ownerReferences"][0]["controller"] = json!(true);
        assert!(
            !differs(&desired, &same, "/spec/metrics"),
            "server-side additions to the reference"
        );
    }

    #[test]
    fn a_removed_metric_is_a_difference() {
        let desired = json!({"metadata": {"name": "a"}, "spec": {"metrics": [{"type": "Resource"}]}});
        let actual = json!({"metadata": {"name": "a", "uid": "x"}, "spec": {"metrics": [{"type": "Resource"}, {"type": "Pods"}]}});
        assert!(differs(&desired, &actual, "/spec/metrics"));
        assert!(!differs(&desired, &desired, "/spec/metrics"));
        let changed = json!({"metadata": {"name": "a"}, "spec": {"metrics": [{"type": "Pods"}]}});
        assert!(differs(&changed, &desired, "/spec/metrics"));
    }
}
