//! What the Traefik, Kuma, APISIX and Gloo routers share (Istio and Gateway API use its metadata comparison): reading a routing object from the watch cache,
//! writing it with server-side apply under a field manager of the router, the apex metadata Flagger puts on
//! it, and taking over (and later restoring) an object that existed before the canary.
//!
//! Writes never drop fields the router does not model: a whole routing object is applied (server-side apply,
//! forced, under the router's field manager) with only the fields the router owns, and the weights are
//! merge-patched. Labels and annotations of other managers stay.
//!
//! **Takeover.** When a router first writes an object it did not create (no controller owner reference to
//! the Canary), it stores the object's spec as JSON in [`ORIGINAL_CONFIGURATION_ANNOTATION`]; `finalize`
//! (revertOnDeletion) applies that spec back and drops the router's labels and annotations. Flagger's
//! `Finalize` of these routers does nothing.

use std::collections::{BTreeMap, BTreeSet};

use flagger_api::Canary;
use flagger_core::services::TOOLKIT_ANNOTATIONS;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Map, Value, json};

use super::{RouteCx, RouterError};

/// The annotation holding the spec of a pre-existing object a router took over, restored by `finalize`.
pub const ORIGINAL_CONFIGURATION_ANNOTATION: &str = "flagger.kubernetes.io/original-configuration";

/// A routing object (or the canary) is not in the shape a router needs; the message is Flagger's where
/// Flagger has one. Becomes [`RouterError::Invalid`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<Invalid> for RouterError {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e.0)
    }
}

/// One kind of routing object as a router writes it.
#[derive(Clone, Debug)]
pub struct Kind {
    /// The API resource.
    pub resource: ApiResource,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// The field manager of the router's writes.
    pub field_manager: &'static str,
}

impl Kind {
    /// The API of the kind in `ns` (cluster-wide for a cluster-scoped kind).
    pub fn api(&self, cx: &RouteCx<'_>, ns: &str) -> Api<DynamicObject> {
        if self.namespaced {
            Api::namespaced_with(cx.client.clone(), ns, &self.resource)
        } else {
            Api::all_with(cx.client.clone(), &self.resource)
        }
    }

    /// The object `name` (in `ns` for a namespaced kind) from the watch cache or, when the cache has not seen
    /// it and `live_fallback` is set, from the API server.
    pub async fn current(
        &self,
        cx: &RouteCx<'_>,
        ns: &str,
        name: &str,
        live_fallback: bool,
    ) -> Result<Option<DynamicObject>, RouterError> {
        let store = cx.caches.dynamic(&self.resource, self.namespaced).await?;
        let mut key = ObjectRef::new_with(name, self.resource.clone());
        if self.namespaced {
            key = key.within(ns);
        }
        if let Some(cached) = store.get(&key) {
            return Ok(Some(cached.as_ref().clone()));
        }
        if !live_fallback {
            return Ok(None);
        }
        self.api(cx, ns)
            .get_opt(name)
            .await
            .map_err(self.error("read", ns, name))
    }

    /// Applies `object` (everything the router owns of it) after checking the leader gate.
    pub async fn apply(
        &self,
        cx: &RouteCx<'_>,
        ns: &str,
        name: &str,
        object: &Value,
    ) -> Result<(), RouterError> {
        cx.gate.check()?;
        self.api(cx, ns)
            .patch(
                name,
                &PatchParams::apply(self.field_manager).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(self.error("apply", ns, name))?;
        Ok(())
    }

    /// JSON-merge-patches `patch` into the object after checking the leader gate.
    pub async fn merge(
        &self,
        cx: &RouteCx<'_>,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<(), RouterError> {
        cx.gate.check()?;
        let params = PatchParams {
            field_manager: Some(self.field_manager.to_owned()),
            ..PatchParams::default()
        };
        self.api(cx, ns)
            .patch(name, &params, &Patch::Merge(patch))
            .await
            .map_err(self.error("update", ns, name))?;
        Ok(())
    }

    /// Deletes the object (a missing one is not an error) after checking the leader gate.
    pub async fn delete(&self, cx: &RouteCx<'_>, ns: &str, name: &str) -> Result<(), RouterError> {
        cx.gate.check()?;
        match self.api(cx, ns).delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(e) => Err(self.error("delete", ns, name)(e)),
        }
    }

    /// The error of a failed request about the object `name`.
    pub fn error(
        &self,
        action: &'static str,
        ns: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> RouterError {
        let namespace = if self.namespaced { ns } else { "" };
        RouterError::kube(action, &self.resource.kind, namespace, name)
    }
}

/// The canary's namespace.
pub fn namespace(canary: &Canary) -> Result<&str, Invalid> {
    canary
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| Invalid(format!("Canary {} has no namespace", canary.key())))
}

/// The controller owner reference to the canary (Go's `metav1.NewControllerRef`), as JSON.
pub fn owner_reference(canary: &Canary) -> Option<Value> {
    flagger_k8s::owner_reference(canary).and_then(|r| serde_json::to_value(r).ok())
}

/// Whether `object` has an owner reference to `canary` (the router created it).
pub fn owned_by(canary: &Canary, object: &DynamicObject) -> bool {
    let Some(uid) = canary.metadata.uid.as_deref() else {
        return false;
    };
    object.owner_references().iter().any(|r| r.uid == uid)
}

/// What a write must carry over from the object as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    /// The owner reference to send (`None` for a taken-over or cluster-scoped object).
    pub owner_reference: Option<Value>,
    /// The spec to restore at `finalize`, as JSON (a taken-over object only).
    pub original_configuration: Option<String>,
}

/// What to carry for a namespaced object: a new object gets the owner reference, an object the router
/// created keeps it, and a pre-existing object keeps (or gets now) its original configuration.
pub fn carried(canary: &Canary, current: Option<&DynamicObject>) -> Carried {
    match current {
        None => Carried {
            owner_reference: owner_reference(canary),
            original_configuration: None,
        },
        Some(current) if owned_by(canary, current) => Carried {
            owner_reference: owner_reference(canary),
            original_configuration: current
                .annotations()
                .get(ORIGINAL_CONFIGURATION_ANNOTATION)
                .cloned(),
        },
        Some(current) => Carried {
            owner_reference: None,
            original_configuration: Some(original_configuration(current)),
        },
    }
}

/// The original configuration of `current`: the stored one, or its spec now.
pub fn original_configuration(current: &DynamicObject) -> String {
    current
        .annotations()
        .get(ORIGINAL_CONFIGURATION_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| current.data.get("spec").cloned().unwrap_or(json!({})).to_string())
}

/// The metadata Flagger's routers put on the apex routing object: name, namespace (when `namespaced`), the
/// `service.apex` labels, the `service.apex` annotations plus the Flux toolkit annotations, and what
/// `carried` says.
pub fn apex_metadata(canary: &Canary, name: &str, namespaced: bool, carried: &Carried) -> Value {
    let apex = canary.spec.service.apex.clone().unwrap_or_default();
    let mut annotations = apex.annotations.unwrap_or_default();
    for (k, v) in TOOLKIT_ANNOTATIONS {
        annotations.insert(k.to_owned(), v.to_owned());
    }
    metadata(
        canary,
        name,
        namespaced,
        &apex.labels.unwrap_or_default(),
        &annotations,
        carried,
    )
}

/// Metadata with the given labels and annotations and what `carried` says.
pub fn metadata(
    canary: &Canary,
    name: &str,
    namespaced: bool,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    carried: &Carried,
) -> Value {
    let mut annotations = annotations.clone();
    if let Some(original) = &carried.original_configuration {
        annotations.insert(ORIGINAL_CONFIGURATION_ANNOTATION.to_owned(), original.clone());
    }
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    if namespaced && let Some(ns) = &canary.metadata.namespace {
        meta.insert("namespace".into(), ns.clone().into());
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), json!(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), json!(annotations));
    }
    if let Some(owner) = &carried.owner_reference {
        meta.insert("ownerReferences".into(), json!([owner]));
    }
    Value::Object(meta)
}

/// Whether `desired` is contained in `current`: every key of a desired object is in the current one with a
/// contained value, arrays have the same length and contained items, and other values are equal. Fields set
/// by others (or defaulted by the API server) do not count as a difference.
pub fn contained(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => {
            d.iter().all(|(k, v)| c.get(k).is_some_and(|cv| contained(v, cv)))
        }
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(d, c)| contained(d, c))
        }
        (d, c) => d == c,
    }
}

/// The label or annotation keys the last apply of `field_manager` set on `object`.
fn applied_keys(object: &DynamicObject, field_manager: &str, field: &str) -> BTreeSet<String> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(field_manager) && m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.fields_v1.as_ref())
        .filter_map(|f| {
            f.0.get("f:metadata")?
                .get(format!("f:{field}"))?
                .as_object()
                .cloned()
        })
        .flat_map(|keys| {
            keys.into_iter()
                .filter_map(|(k, _)| k.strip_prefix("f:").map(str::to_owned))
        })
        .collect()
}

/// Whether the labels, annotations or owner references of `current` differ from the `desired` metadata: a
/// desired key is missing or has another value, or a key the router applied before is no longer desired.
pub fn metadata_differs(desired: &Value, current: &DynamicObject, field_manager: &str) -> bool {
    let current_meta = serde_json::to_value(&current.metadata).unwrap_or_default();
    for field in ["labels", "annotations"] {
        let want = desired.get(field).cloned().unwrap_or(json!({}));
        let have = current_meta.get(field).cloned().unwrap_or(json!({}));
        if !contained(&want, &have) {
            return true;
        }
        let wanted: BTreeSet<&String> = want.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        if applied_keys(current, field_manager, field)
            .iter()
            .any(|k| !wanted.contains(k))
        {
            return true;
        }
    }
    match desired.get("ownerReferences").and_then(|o| o.get(0)) {
        Some(owner) => {
            let uid = owner.get("uid");
            !current_meta["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == uid))
        }
        None => false,
    }
}

/// The object `finalize` applies to restore a taken-over object: its original spec and no labels or
/// annotations of the router's.
pub fn restored_object(
    resource: &ApiResource,
    name: &str,
    ns: Option<&str>,
    original: &str,
) -> Result<Value, Invalid> {
    let spec: Value = serde_json::from_str(original).map_err(|e| {
        Invalid(format!(
            "{} {name} original configuration is not JSON: {e}",
            resource.kind
        ))
    })?;
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    if let Some(ns) = ns {
        meta.insert("namespace".into(), ns.into());
    }
    Ok(json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": meta,
        "spec": spec,
    }))
}

/// Restores a taken-over object (revertOnDeletion): applies its original spec back. An object without
/// original configuration (the router created it) is left alone. Returns whether something was restored.
pub async fn restore(cx: &RouteCx<'_>, kind: &Kind, ns: &str, name: &str) -> Result<bool, RouterError> {
    let Some(current) = kind.current(cx, ns, name, true).await? else {
        return Ok(false);
    };
    if owned_by(cx.canary, &current) {
        return Ok(false);
    }
    let Some(original) = current.annotations().get(ORIGINAL_CONFIGURATION_ANNOTATION) else {
        return Ok(false);
    };
    let object = restored_object(&kind.resource, name, kind.namespaced.then_some(ns), original)?;
    kind.apply(cx, ns, name, &object).await?;
    tracing::info!(canary = %cx.canary.key(), "{} {name} restored", kind.resource.kind);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_ignores_extra_fields_but_not_list_lengths() {
        let d = json!({"a": [{"x": 1}], "b": "s"});
        assert!(contained(
            &d,
            &json!({"a": [{"x": 1, "y": 2}], "b": "s", "c": true})
        ));
        assert!(!contained(&d, &json!({"a": [{"x": 1}, {"x": 2}], "b": "s"})));
        assert!(!contained(&d, &json!({"a": [{"x": 2}], "b": "s"})));
        assert!(!contained(&d, &json!({"a": [{"x": 1}]})));
    }

    #[test]
    fn the_restored_object_has_the_original_spec_and_bare_metadata() {
        let r = ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("traefik.io", "v1alpha1", "TraefikService"),
            "traefikservices",
        );
        let o = restored_object(&r, "podinfo", Some("test"), r#"{"weighted":{}}"#).unwrap();
        assert_eq!(
            o,
            json!({"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
                   "metadata": {"name": "podinfo", "namespace": "test"}, "spec": {"weighted": {}}})
        );
        assert!(restored_object(&r, "podinfo", None, "{").is_err());
    }
}
