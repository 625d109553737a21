//! The I/O side of flagger-rs: writes what `flagger-core` computes into the cluster.
//!
//! Every write names its field manager (see [`managers`]) so `kubectl get -o yaml --show-managed-fields`
//! tells which part of flagger-rs owns a field. Objects flagger-rs owns outright (the primary, generated
//! Services) are written with forced server-side apply of the complete desired object; objects a user owns
//! (the target workload, the Canary) are only ever patched in the few fields flagger-rs manages, so nothing
//! a user or another controller wrote is lost.

use flagger_api::{Canary, CanaryStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

/// Field managers, one per kind of write.
pub mod managers {
    /// The `<target>-primary` workload.
    pub const PRIMARY: &str = "flagger/primary";
    /// The apex, primary and canary Services.
    pub const SERVICES: &str = "flagger/services";
    /// Scaling the target workload.
    pub const SCALE: &str = "flagger/scale";
    /// The Canary's status.
    pub const STATUS: &str = "flagger/status";
    /// A Canary's owner reference on a `-primary` config copy it shares with other Canaries.
    pub const OWNERS: &str = "flagger/owners";
}

/// A failed write, naming what was being written.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}: {source}")]
pub struct ActError {
    pub action: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

impl ActError {
    /// True when the write was refused because the object changed since it was read (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status) if status.code == 409)
    }

    /// True when retrying the same write later may succeed (conflicts, throttling, server errors,
    /// connection problems); false for requests the API server rejects as invalid or forbidden.
    pub fn is_transient(&self) -> bool {
        match &self.source {
            kube::Error::Api(status) => matches!(status.code, 409 | 429) || status.code >= 500,
            _ => true,
        }
    }
}

fn act_error<K: Resource<DynamicType = ()>>(
    action: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ActError {
    let kind = match K::kind(&()) {
        std::borrow::Cow::Borrowed(kind) => kind,
        std::borrow::Cow::Owned(_) => "object",
    };
    let (namespace, name) = (namespace.to_string(), name.to_string());
    move |source| ActError {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

/// The controller owner reference to `canary` (with `blockOwnerDeletion`, as Flagger sets it), which makes
/// Kubernetes garbage-collect generated objects with it. `None` when the Canary has no uid (it was never stored).
pub fn owner_reference(canary: &Canary) -> Option<OwnerReference> {
    // As Go's `metav1.NewControllerRef`: controller and blockOwnerDeletion.
    Some(OwnerReference {
        block_owner_deletion: Some(true),
        ..canary.controller_owner_ref(&())?
    })
}

fn namespaced<K>(client: &Client, obj: &K) -> (Api<K>, String, String)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    (Api::namespaced(client.clone(), &ns), ns, name)
}

/// Parameters of a non-apply patch (merge, JSON) that records `name` as the field manager.
fn manager(name: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(name.to_string()),
        ..PatchParams::default()
    }
}

/// Server-side applies an object flagger-rs owns for the primary (the primary Deployment or DaemonSet, the
/// `-primary` copies of tracked ConfigMaps and Secrets, the primary HorizontalPodAutoscaler) with the
/// primary's field manager, taking ownership of every field in it.
pub async fn apply_primary_object<K>(client: &Client, desired: &K) -> Result<K, ActError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let (api, ns, name) = namespaced(client, desired);
    let params = PatchParams::apply(managers::PRIMARY).force();
    api.patch(&name, &params, &Patch::Apply(desired))
        .await
        .map_err(act_error::<K>("apply", &ns, &name))
}

/// Adds `owner` to the owner references of `obj`, keeping the others (a strategic merge patch keyed by uid),
/// on the condition that `obj` is still at its resource version. A 409 Conflict means another writer came
/// first: read the object again and decide again.
pub async fn add_owner_reference<K>(client: &Client, obj: &K, owner: &OwnerReference) -> Result<K, ActError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let (api, ns, name) = namespaced(client, obj);
    let patch = json!({"metadata": {
        "resourceVersion": obj.meta().resource_version,
        "ownerReferences": [owner],
    }});
    api.patch(&name, &manager(managers::OWNERS), &Patch::Strategic(patch))
        .await
        .map_err(act_error::<K>("add an owner to", &ns, &name))
}

/// Server-side applies a generated Service. A pre-existing Service of the same name (a user's apex
/// Service) is taken over for the fields flagger-rs sets (selector, ports, its labels and annotations);
/// fields other managers own, such as annotations added by other controllers, stay.
pub async fn apply_service(client: &Client, desired: &Service) -> Result<Service, ActError> {
    let (api, ns, name) = namespaced(client, desired);
    let params = PatchParams::apply(managers::SERVICES).force();
    api.patch(&name, &params, &Patch::Apply(desired))
        .await
        .map_err(act_error::<Service>("apply", &ns, &name))
}

/// Sets `spec.replicas` of a user's Deployment (the target) with a merge patch, which changes nothing else
/// and takes no server-side-apply ownership away from the user's own tooling.
pub async fn scale_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> Result<(), ActError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(name, &manager(managers::SCALE), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(act_error::<Deployment>("scale", namespace, name))
}

/// Scales a user's DaemonSet (the target) to zero or back, Flagger's way: the nodeSelector
/// `flagger.app/scale-to-zero: "true"` (no node has it) is added or removed with a merge patch that changes
/// nothing else.
pub async fn scale_daemonset(
    client: &Client,
    namespace: &str,
    name: &str,
    to_zero: bool,
) -> Result<(), ActError> {
    let api: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::namespaced(client.clone(), namespace);
    let value = if to_zero {
        json!("true")
    } else {
        serde_json::Value::Null
    };
    let patch = json!({"spec": {"template": {"spec": {"nodeSelector": {flagger_core::hash::SCALE_TO_ZERO_NODE_SELECTOR: value}}}}});
    api.patch(name, &manager(managers::SCALE), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(act_error::<k8s_openapi::api::apps::v1::DaemonSet>(
            "scale", namespace, name,
        ))
}

/// Writes the Canary's status with a merge patch on the status subresource. The patch carries the
/// resourceVersion of `canary`, the object the decision was made on, so a status computed from an outdated
/// Canary is refused with a conflict (retried after a fresh read) instead of overwriting newer state.
pub async fn patch_canary_status(
    client: &Client,
    canary: &Canary,
    status: &CanaryStatus,
) -> Result<Canary, ActError> {
    let ns = canary.namespace().unwrap_or_default();
    let name = canary.name_any();
    let api: Api<Canary> = Api::namespaced(client.clone(), &ns);
    let mut patch = json!({"status": status});
    if let Some(rv) = canary.resource_version() {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    api.patch_status(&name, &manager(managers::STATUS), &Patch::Merge(&patch))
        .await
        .map_err(act_error::<Canary>("update status of", &ns, &name))
}

/// Replaces the Canary's `status.conditions` (`None` removes the field), guarded by the resourceVersion of
/// `canary` like [`patch_canary_status`]. Used for conditions the state machine does not manage.
pub async fn patch_canary_conditions(
    client: &Client,
    canary: &Canary,
    conditions: Option<&[flagger_api::CanaryCondition]>,
) -> Result<Canary, ActError> {
    let ns = canary.namespace().unwrap_or_default();
    let name = canary.name_any();
    let api: Api<Canary> = Api::namespaced(client.clone(), &ns);
    let mut patch = json!({"status": {"conditions": conditions}});
    if let Some(rv) = canary.resource_version() {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    api.patch_status(&name, &manager(managers::STATUS), &Patch::Merge(&patch))
        .await
        .map_err(act_error::<Canary>("update conditions of", &ns, &name))
}

/// Sets the Canary's `metadata.finalizers` to `finalizers`, guarded by the resourceVersion of `canary` (a
/// JSON patch that tests it first), so finalizers added meanwhile by others are never dropped.
pub async fn set_canary_finalizers(
    client: &Client,
    canary: &Canary,
    finalizers: &[String],
) -> Result<Canary, ActError> {
    let ns = canary.namespace().unwrap_or_default();
    let name = canary.name_any();
    let api: Api<Canary> = Api::namespaced(client.clone(), &ns);
    let mut ops = Vec::new();
    if let Some(rv) = canary.resource_version() {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
    }
    ops.push(json!({"op": "add", "path": "/metadata/finalizers", "value": finalizers}));
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| ActError {
            action: "update finalizers of",
            kind: "Canary",
            namespace: ns.clone(),
            name: name.clone(),
            source: kube::Error::SerdeError(e),
        })?;
    api.patch(&name, &manager(managers::STATUS), &Patch::Json::<()>(patch))
        .await
        .map_err(act_error::<Canary>("update finalizers of", &ns, &name))
}

/// Replaces the selector of a Service (used to give a user's apex Service its own selector back). Keys of
/// the current selector that `selector` lacks are removed.
pub async fn set_service_selector(
    client: &Client,
    service: &Service,
    selector: &std::collections::BTreeMap<String, String>,
) -> Result<(), ActError> {
    let (api, ns, name) = namespaced(client, service);
    let mut patch = serde_json::Map::new();
    for key in service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !selector.contains_key(key) {
            patch.insert(key.clone(), serde_json::Value::Null);
        }
    }
    for (k, v) in selector {
        patch.insert(k.clone(), json!(v));
    }
    let patch = json!({"spec": {"selector": patch}});
    api.patch(&name, &manager(managers::SERVICES), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(act_error::<Service>("restore the selector of", &ns, &name))
}
