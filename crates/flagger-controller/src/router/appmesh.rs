//! AWS App Mesh routers: `appmesh:v1beta2` (and every provider string with that prefix), Flagger's
//! `AppMeshv1beta2Router`, and the legacy `appmesh` (`appmesh.k8s.aws/v1beta1`), Flagger's `AppMeshRouter`.
//!
//! `appmesh:v1beta2` writes, in the canary's namespace:
//!
//! ```yaml
//! VirtualNode <apex>-primary:   # and <apex>-canary (podSelector {<label>: <target>}, host <apex>-canary...)
//!   metadata: {labels: <apex labels>, annotations: <apex annotations> + Flux toolkit annotations}
//!   spec:
//!     podSelector: {matchLabels: {<label>: <target>-primary}}
//!     listeners: [{portMapping: {port: <targetPort int or port>, protocol: http|grpc},
//!                  timeout: {http: {perRequest: {unit: ms, value: <service.timeout>}}}}]
//!     serviceDiscovery: {dns: {hostname: <apex>-primary.<ns>.svc.cluster.local.}}
//!     backends: [{virtualService: {virtualServiceRef: {name: b}}} | {virtualService: {virtualServiceARN: b}}]
//!     logging: {accessLog: {file: {path: /dev/stdout}}}   # annotation appmesh.flagger.app/accesslog: enabled
//! VirtualRouter <apex>:          # and <apex>-canary (route <apex>-canary, all traffic on the canary)
//!   spec:
//!     listeners: [{portMapping: {port, protocol}}]
//!     routes:
//!     - name: <apex>
//!       httpRoute:
//!         match: {prefix: <service.match[0].uri.prefix or />}
//!         timeout: {perRequest: ...}
//!         retryPolicy: {httpRetryEvents, maxRetries, perRetryTimeout: {unit: ms, value}}
//!         action: {weightedTargets: [{virtualNodeRef: {name: <apex>-canary}, weight: 0},
//!                                    {virtualNodeRef: {name: <apex>-primary}, weight: 100}]}
//! VirtualService <apex>:         # and <apex>-canary
//!   metadata: {annotations: gateway.appmesh.k8s.aws/* (apex only, when service.hosts is set)}
//!   spec: {provider: {virtualRouter: {virtualRouterRef: {name: <apex>}}}}
//! ```
//!
//! With `analysis.match` the apex router has two routes: `<apex>-a` (priority 10, the analysis headers,
//! weighted) and `<apex>-b` (priority 20, primary 100). The legacy router writes three VirtualNodes (`<apex>`,
//! `<apex>-primary`, `<apex>-canary`, hosts `<name>.<ns>`, `meshName`) and two VirtualServices
//! `<apex>.<ns>` and `<apex>-canary.<ns>` that embed their virtual router and routes (`http` instead of
//! `httpRoute`, no timeouts); it refuses a canary without `service.meshName` (`mesh name cannot be empty`).
//!
//! Flagger's rules, kept here:
//!
//! - objects are created with a controller owner reference to the Canary; VirtualNodes carry the apex
//!   metadata and the Flux toolkit annotations, routers carry no metadata, the apex VirtualService carries the
//!   gateway annotations;
//! - an existing VirtualNode is updated when its spec (ignoring `awsName` and `meshRef`) or metadata differs;
//!   an existing router is updated when its spec differs **ignoring the weighted targets**, and the update
//!   keeps the action (weights) of the first route;
//! - `get_routes` reads `routes[0]`'s weighted targets, which must be exactly two, with Flagger's messages;
//!   traffic is never mirrored; `set_routes` replaces the action of the first route;
//! - objects the router created are owned by the Canary and garbage-collected with it.
//!
//! Where flagger-rs differs:
//!
//! - **Writes keep what the router does not own.** Updates are JSON merge patches of the spec fields Flagger
//!   writes (a field Flagger would leave unset is removed with `null`) plus the labels and annotations the
//!   router sets, so other fields (`awsName`, `meshRef`, `backendDefaults`, …) and other metadata stay.
//!   Weights are a merge patch of `spec.routes` as cached with `routes[0]`'s action replaced. Every update goes
//!   under [`FIELD_MANAGER`] and carries the cached `resourceVersion` (a stale cache gets a conflict and the
//!   next reconcile retries).
//! - **Takeover is revertible**: when the router first updates an object it did not create, it stores the
//!   object's spec in [`ORIGINAL_CONFIGURATION_ANNOTATION`], and `finalize` (revertOnDeletion) puts the spec
//!   fields the router owns back (Flagger's `Finalize` does nothing).
//! - The v1beta2 VirtualService is created whenever it is missing (Flagger creates it only together with its
//!   router, so a failed create was never retried); it is not updated afterwards, as in Flagger.
//! - The legacy VirtualNode compares its annotations with the desired annotations (Flagger compares them with
//!   the labels, so it rewrote the node on every reconcile).
//! - Analysis match headers come out sorted by name (Go iterates a map in random order).
//! - The pod selector label is the first of Flagger's default `-selector-labels` (`app`, `name`,
//!   `app.kubernetes.io/name`, or the operator's `-selector-labels`) in the target's `spec.selector.matchLabels`, else a label whose value is the
//!   target's name, else `app`: the router context does not carry the operator's `-selector-labels`.

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use flagger_core::primary::WorkloadOptions;
use flagger_core::services::TOOLKIT_ANNOTATIONS;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Map, Value, json};

use super::{RouteCx, RouterError};
use crate::workload::{self, Workload};

/// The API group of App Mesh objects.
pub const GROUP: &str = "appmesh.k8s.aws";
/// The field manager of every App Mesh write.
pub const FIELD_MANAGER: &str = "flagger/router-appmesh";
/// The Canary annotation that turns on the virtual nodes' access log (value [`ENABLED`]).
pub const ACCESS_LOG_ANNOTATION: &str = "appmesh.flagger.app/accesslog";
/// The value of [`ACCESS_LOG_ANNOTATION`] that enables the access log.
pub const ENABLED: &str = "enabled";
/// Where the access log goes.
pub const ACCESS_LOG_PATH: &str = "/dev/stdout";
/// The App Mesh gateway annotations of the apex VirtualService.
pub const GATEWAY_EXPOSE_ANNOTATION: &str = "gateway.appmesh.k8s.aws/expose";
/// The domains (each host followed by a comma).
pub const GATEWAY_DOMAIN_ANNOTATION: &str = "gateway.appmesh.k8s.aws/domain";
/// The gateway timeout (`service.timeout`).
pub const GATEWAY_TIMEOUT_ANNOTATION: &str = "gateway.appmesh.k8s.aws/timeout";
/// The gateway retries (`service.retries.attempts`).
pub const GATEWAY_RETRIES_ANNOTATION: &str = "gateway.appmesh.k8s.aws/retries";

/// The annotation holding the spec of a pre-existing object the router took over, restored by `finalize`.
pub const ORIGINAL_CONFIGURATION_ANNOTATION: &str = "flagger.kubernetes.io/original-configuration";

/// The DNS suffix of v1beta2 virtual node hosts.
const SVC_SUFFIX: &str = "svc.cluster.local.";
/// The per-retry timeout when `service.retries.perTryTimeout` is not a duration (milliseconds).
const DEFAULT_PER_RETRY_TIMEOUT_MS: i64 = 250;

/// The App Mesh API version a router writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppMeshVersion {
    /// `appmesh.k8s.aws/v1beta2`: VirtualNode, VirtualRouter, VirtualService.
    V1beta2,
    /// `appmesh.k8s.aws/v1beta1` (legacy `appmesh`): VirtualNode, VirtualService with embedded routes.
    V1beta1,
}

impl AppMeshVersion {
    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1beta2 => "v1beta2",
            Self::V1beta1 => "v1beta1",
        }
    }

    /// The key of a route's HTTP part: `httpRoute` (v1beta2) or `http` (v1beta1).
    fn http_key(self) -> &'static str {
        match self {
            Self::V1beta2 => "httpRoute",
            Self::V1beta1 => "http",
        }
    }

    /// The kind that holds the routes: `VirtualRouter` (v1beta2) or `VirtualService` (v1beta1).
    fn route_kind(self) -> Kind {
        match self {
            Self::V1beta2 => Kind::VirtualRouter,
            Self::V1beta1 => Kind::VirtualService,
        }
    }
}

/// An App Mesh kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `VirtualNode`.
    VirtualNode,
    /// `VirtualRouter` (v1beta2 only).
    VirtualRouter,
    /// `VirtualService`.
    VirtualService,
}

impl Kind {
    /// The kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VirtualNode => "VirtualNode",
            Self::VirtualRouter => "VirtualRouter",
            Self::VirtualService => "VirtualService",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::VirtualNode => "virtualnodes",
            Self::VirtualRouter => "virtualrouters",
            Self::VirtualService => "virtualservices",
        }
    }

    /// The spec fields Flagger's Go types write for this kind (the ones a router update owns).
    fn owned_spec_fields(self, version: AppMeshVersion) -> &'static [&'static str] {
        match (self, version) {
            (Self::VirtualNode, AppMeshVersion::V1beta2) => &[
                "podSelector",
                "listeners",
                "serviceDiscovery",
                "backends",
                "logging",
            ],
            (Self::VirtualNode, AppMeshVersion::V1beta1) => {
                &["meshName", "listeners", "serviceDiscovery", "backends", "logging"]
            }
            (Self::VirtualRouter, _) => &["listeners", "routes"],
            (Self::VirtualService, AppMeshVersion::V1beta2) => &["provider"],
            (Self::VirtualService, AppMeshVersion::V1beta1) => &["meshName", "virtualRouter", "routes"],
        }
    }
}

/// The resource of `kind` in `version` (`appmesh.k8s.aws/<version>`).
pub fn api_resource(version: AppMeshVersion, kind: Kind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, version.as_str(), kind.as_str()),
        kind.plural(),
    )
}

/// The canary (or an App Mesh object) is not in the shape the router needs; the message is Flagger's where
/// Flagger has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AppMeshError(pub String);

impl From<AppMeshError> for RouterError {
    fn from(e: AppMeshError) -> Self {
        Self::Invalid(e.0)
    }
}

/// One object the router wants, as built from the canary (no I/O).
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The whole object (apiVersion, kind, metadata without owner references, spec).
    pub object: Value,
    /// Whether an existing object is left alone (the v1beta2 VirtualService).
    pub create_only: bool,
}

/// The App Mesh router of one API version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppMeshRouter {
    version: AppMeshVersion,
    /// `-selector-labels`: the pod-selector keys looked for in the target's `matchLabels`.
    selector_labels: Vec<String>,
}

impl AppMeshRouter {
    /// The router writing objects of `version`.
    pub fn new(version: AppMeshVersion) -> Self {
        Self {
            version,
            selector_labels: WorkloadOptions::default().selector_labels,
        }
    }

    /// The router with the operator's `-selector-labels`.
    #[must_use]
    pub fn with_selector_labels(self, selector_labels: Vec<String>) -> Self {
        Self {
            selector_labels,
            ..self
        }
    }

    /// The API version this router writes.
    pub fn version(&self) -> AppMeshVersion {
        self.version
    }

    /// Creates the virtual nodes, routers and services, or updates those that differ (see the module doc).
    /// Nothing is sent for objects the watch cache shows as desired.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let label = selector_label(cx, &self.selector_labels);
        for desired in desired_objects(self.version, canary, &label)? {
            self.ensure(cx, &desired).await?;
        }
        Ok(())
    }

    async fn ensure(&self, cx: &RouteCx<'_>, desired: &Desired) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let name = desired.name.as_str();
        let resource = api_resource(self.version, desired.kind);
        let store = cx.caches.dynamic(&resource, true).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &resource);
        let current = match store.get(&ObjectRef::new_with(name, resource.clone()).within(ns)) {
            Some(current) => current.as_ref().clone(),
            None => {
                let mut object = desired.object.clone();
                if let Some(owner) = flagger_k8s::owner_reference(canary) {
                    object["metadata"]["ownerReferences"] = json!([owner]);
                }
                let object: DynamicObject = serde_json::from_value(object).map_err(|e| {
                    AppMeshError(format!("{} {name} is not valid: {e}", desired.kind.as_str()))
                })?;
                cx.gate.check()?;
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                match api.create(&params, &object).await {
                    Ok(_) => {
                        tracing::info!(canary = %canary.key(), "{} {name}.{ns} created", desired.kind.as_str());
                        return Ok(());
                    }
                    // The cache has not seen an object that exists: compare with the live one.
                    Err(kube::Error::Api(status)) if status.is_already_exists() => api
                        .get(name)
                        .await
                        .map_err(RouterError::kube("read", desired.kind.as_str(), ns, name))?,
                    Err(e) => return Err(RouterError::kube("create", desired.kind.as_str(), ns, name)(e)),
                }
            }
        };
        if desired.create_only {
            return Ok(());
        }
        let Some(mut patch) = update_patch(self.version, desired, &current) else {
            return Ok(());
        };
        if !owned_by(canary, &current)
            && !current
                .annotations()
                .contains_key(ORIGINAL_CONFIGURATION_ANNOTATION)
        {
            // Taking over an object the router did not create: keep its spec for `finalize`.
            let original = serde_json::to_string(&current.data["spec"])
                .map_err(|e| AppMeshError(format!("{} {name} spec: {e}", desired.kind.as_str())))?;
            patch["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION] = Value::from(original);
        }
        cx.gate.check()?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        api.patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(RouterError::kube("update", desired.kind.as_str(), ns, name))?;
        tracing::info!(canary = %canary.key(), "{} {name} updated", desired.kind.as_str());
        Ok(())
    }

    /// The object holding the apex routes, from the watch cache.
    async fn routes_object(&self, cx: &RouteCx<'_>) -> Result<DynamicObject, RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let kind = self.version.route_kind();
        let name = routes_object_name(self.version, canary)?;
        let resource = api_resource(self.version, kind);
        let store = cx.caches.dynamic(&resource, true).await?;
        match store.get(&ObjectRef::new_with(&name, resource.clone()).within(ns)) {
            Some(object) => Ok(object.as_ref().clone()),
            None => Err(AppMeshError(format!(
                "{} {name} get query error: {}.{GROUP} \"{name}\" not found",
                kind.as_str(),
                kind.plural()
            ))
            .into()),
        }
    }

    /// Reads the weights of the apex routes (`routes[0]`, exactly two weighted targets).
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let object = self.routes_object(cx).await?;
        Ok(read_routes(self.version, cx.canary, &object.data)?)
    }

    /// Writes the weights: the action of the apex `routes[0]` becomes the canary and the primary target
    /// with `routes`' weights (mirroring is not supported and ignored).
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let kind = self.version.route_kind();
        let mut object = self.routes_object(cx).await?;
        let name = routes_object_name(self.version, canary)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(cx.client.clone(), ns, &api_resource(self.version, kind));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let mut retried = false;
        loop {
            let next = with_weights(self.version, canary, &object.data, routes)?;
            // The whole list (a merge patch replaces arrays), guarded by the resourceVersion it was read at.
            let patch = json!({
                "metadata": {"resourceVersion": object.metadata.resource_version},
                "spec": {"routes": next["spec"]["routes"]},
            });
            cx.gate.check()?;
            match api.patch(&name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // The cache was behind: once more against the live object.
                Err(kube::Error::Api(status)) if status.is_conflict() && !retried => {
                    retried = true;
                    object =
                        api.get(&name)
                            .await
                            .map_err(RouterError::kube("read", kind.as_str(), ns, &name))?;
                }
                Err(e) => return Err(RouterError::kube("update", kind.as_str(), ns, &name)(e)),
            }
        }
    }

    /// Restores the objects the router took over (revertOnDeletion): the spec fields it owns go back to the
    /// values stored in [`ORIGINAL_CONFIGURATION_ANNOTATION`], and the annotation is removed. Objects the
    /// router created are owned by the Canary and left to the garbage collector. Flagger's App Mesh routers
    /// do not finalize.
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        for (kind, name) in object_names(self.version, canary)? {
            let resource = api_resource(self.version, kind);
            let store = cx.caches.dynamic(&resource, true).await?;
            let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &resource);
            let current = match store.get(&ObjectRef::new_with(&name, resource.clone()).within(ns)) {
                Some(current) => current.as_ref().clone(),
                None => match api.get_opt(&name).await.map_err(RouterError::kube(
                    "read",
                    kind.as_str(),
                    ns,
                    &name,
                ))? {
                    Some(current) => current,
                    None => continue,
                },
            };
            if owned_by(canary, &current) {
                continue;
            }
            let Some(original) = current.annotations().get(ORIGINAL_CONFIGURATION_ANNOTATION) else {
                continue;
            };
            let original: Value = serde_json::from_str(original).map_err(|e| {
                AppMeshError(format!(
                    "{} {name}.{ns} original configuration is not JSON: {e}",
                    kind.as_str()
                ))
            })?;
            let patch = restore_patch(self.version, kind, &original, &current);
            cx.gate.check()?;
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            api.patch(&name, &params, &Patch::Merge(&patch))
                .await
                .map_err(RouterError::kube("update", kind.as_str(), ns, &name))?;
            tracing::info!(canary = %canary.key(), "{} {name}.{ns} restored", kind.as_str());
        }
        Ok(())
    }
}

/// Whether `object` has an owner reference to `canary` (the router created it).
fn owned_by(canary: &Canary, object: &DynamicObject) -> bool {
    let uid = canary.metadata.uid.as_deref();
    uid.is_some()
        && object
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| Some(r.uid.as_str()) == uid)
}

/// The kinds and names of the objects the router updates (not the create-only v1beta2 VirtualServices).
pub fn object_names(version: AppMeshVersion, canary: &Canary) -> Result<Vec<(Kind, String)>, AppMeshError> {
    let ns = namespace(canary)?;
    let apex = canary.service_name().to_owned();
    let (primary, canary_name) = (canary.primary_service_name(), canary.canary_service_name());
    Ok(match version {
        AppMeshVersion::V1beta2 => vec![
            (Kind::VirtualNode, primary),
            (Kind::VirtualNode, canary_name.clone()),
            (Kind::VirtualRouter, apex),
            (Kind::VirtualRouter, canary_name),
        ],
        AppMeshVersion::V1beta1 => vec![
            (Kind::VirtualNode, apex.clone()),
            (Kind::VirtualNode, primary),
            (Kind::VirtualNode, canary_name.clone()),
            (Kind::VirtualService, format!("{apex}.{ns}")),
            (Kind::VirtualService, format!("{canary_name}.{ns}")),
        ],
    })
}

/// The merge patch restoring a taken-over object: each owned spec field as in `original` (removed when the
/// original did not have it), without the original-configuration annotation.
pub fn restore_patch(
    version: AppMeshVersion,
    kind: Kind,
    original: &Value,
    current: &DynamicObject,
) -> Value {
    let spec: Map<String, Value> = kind
        .owned_spec_fields(version)
        .iter()
        .map(|f| ((*f).to_owned(), original.get(*f).cloned().unwrap_or(Value::Null)))
        .collect();
    json!({
        "metadata": {
            "annotations": {ORIGINAL_CONFIGURATION_ANNOTATION: null},
            "resourceVersion": current.metadata.resource_version,
        },
        "spec": spec,
    })
}

fn namespace(canary: &Canary) -> Result<&str, AppMeshError> {
    canary
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| AppMeshError(format!("Canary {} has no namespace", canary.key())))
}

/// The name of the object holding the apex routes: VirtualRouter `<apex>` (v1beta2) or VirtualService
/// `<apex>.<ns>` (v1beta1).
pub fn routes_object_name(version: AppMeshVersion, canary: &Canary) -> Result<String, AppMeshError> {
    let apex = canary.service_name();
    Ok(match version {
        AppMeshVersion::V1beta2 => apex.to_owned(),
        AppMeshVersion::V1beta1 => format!("{apex}.{}", namespace(canary)?),
    })
}

/// The label key of the virtual nodes' pod selector, from the target's `spec.selector.matchLabels` (see the
/// module doc).
fn selector_label(cx: &RouteCx<'_>, keys: &[String]) -> String {
    let canary = cx.canary;
    let target = &canary.spec.target_ref;
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let match_labels = match workload::lookup(cx.caches, &target.kind, ns, &target.name) {
        Some(Workload::Deployment(d)) => d.spec.selector.match_labels.clone(),
        Some(Workload::DaemonSet(d)) => d.spec.selector.match_labels.clone(),
        _ => None,
    };
    pick_selector_label(match_labels.as_ref(), &target.name, keys)
}

/// The first of `keys` (`-selector-labels`) in `match_labels`, else a label whose value is `target`, else the
/// first key.
pub fn pick_selector_label(
    match_labels: Option<&BTreeMap<String, String>>,
    target: &str,
    defaults: &[String],
) -> String {
    let Some(labels) = match_labels else {
        return defaults.first().cloned().unwrap_or_default();
    };
    defaults
        .iter()
        .find(|key| labels.contains_key(key.as_str()))
        .cloned()
        .or_else(|| labels.iter().find(|(_, v)| *v == target).map(|(k, _)| k.clone()))
        .unwrap_or_else(|| defaults.first().cloned().unwrap_or_default())
}

/// Every object the router wants for `canary`, in Flagger's order: the virtual nodes, then the apex and the
/// canary routers (v1beta2: each VirtualRouter followed by its VirtualService).
pub fn desired_objects(
    version: AppMeshVersion,
    canary: &Canary,
    label: &str,
) -> Result<Vec<Desired>, AppMeshError> {
    let ns = namespace(canary)?;
    let apex = canary.service_name();
    let primary = canary.primary_service_name();
    let canary_name = canary.canary_service_name();
    let target = canary.spec.target_ref.name.as_str();
    let node = |name: &str, object: Value| Desired {
        kind: Kind::VirtualNode,
        name: name.to_owned(),
        object,
        create_only: false,
    };
    match version {
        AppMeshVersion::V1beta2 => {
            let mut all = vec![
                node(
                    &primary,
                    virtual_node_v1beta2(
                        canary,
                        &primary,
                        label,
                        &format!("{target}-primary"),
                        &format!("{primary}.{ns}.{SVC_SUFFIX}"),
                    ),
                ),
                node(
                    &canary_name,
                    virtual_node_v1beta2(
                        canary,
                        &canary_name,
                        label,
                        target,
                        &format!("{canary_name}.{ns}.{SVC_SUFFIX}"),
                    ),
                ),
            ];
            for (name, weight) in [(apex.to_owned(), 0), (canary_name.clone(), 100)] {
                all.push(Desired {
                    kind: Kind::VirtualRouter,
                    name: name.clone(),
                    object: virtual_router_v1beta2(canary, &name, weight),
                    create_only: false,
                });
                all.push(Desired {
                    kind: Kind::VirtualService,
                    name: name.clone(),
                    object: virtual_service_v1beta2(canary, &name, weight),
                    create_only: true,
                });
            }
            Ok(all)
        }
        AppMeshVersion::V1beta1 => {
            if canary
                .spec
                .service
                .mesh_name
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                return Err(AppMeshError("mesh name cannot be empty".to_owned()));
            }
            let mut all = Vec::new();
            for (name, host) in [
                (apex.to_owned(), format!("{primary}.{ns}")),
                (primary.clone(), format!("{primary}.{ns}")),
                (canary_name.clone(), format!("{canary_name}.{ns}")),
            ] {
                all.push(node(&name, virtual_node_v1beta1(canary, &name, &host)));
            }
            for (name, weight) in [(format!("{apex}.{ns}"), 0), (format!("{canary_name}.{ns}"), 100)] {
                all.push(Desired {
                    kind: Kind::VirtualService,
                    name: name.clone(),
                    object: virtual_service_v1beta1(canary, &name, weight),
                    create_only: false,
                });
            }
            Ok(all)
        }
    }
}

fn type_meta(version: AppMeshVersion, kind: Kind) -> (String, &'static str) {
    (format!("{GROUP}/{}", version.as_str()), kind.as_str())
}

fn object(
    version: AppMeshVersion,
    kind: Kind,
    canary: &Canary,
    name: &str,
    metadata: Map<String, Value>,
    spec: Value,
) -> Value {
    let (api_version, kind) = type_meta(version, kind);
    let mut meta = Map::new();
    meta.insert("name".to_owned(), Value::from(name));
    meta.insert("namespace".to_owned(), json!(canary.metadata.namespace));
    meta.extend(metadata);
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec})
}

/// The virtual nodes' labels and annotations: the apex metadata plus the Flux toolkit annotations.
fn node_metadata(canary: &Canary) -> Map<String, Value> {
    let apex = canary.spec.service.apex.as_ref();
    let labels: BTreeMap<String, String> = apex.and_then(|m| m.labels.clone()).unwrap_or_default();
    let mut annotations: BTreeMap<String, String> =
        apex.and_then(|m| m.annotations.clone()).unwrap_or_default();
    for (k, v) in TOOLKIT_ANNOTATIONS {
        annotations.insert(k.to_owned(), v.to_owned());
    }
    let mut meta = Map::new();
    if !labels.is_empty() {
        meta.insert("labels".to_owned(), json!(labels));
    }
    meta.insert("annotations".to_owned(), json!(annotations));
    meta
}

fn access_log_enabled(canary: &Canary) -> bool {
    canary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACCESS_LOG_ANNOTATION))
        .is_some_and(|v| v == ENABLED)
}

/// `http`, or `grpc` when the port name contains `grpc`.
fn protocol(canary: &Canary) -> &'static str {
    if canary
        .spec
        .service
        .port_name
        .as_deref()
        .unwrap_or_default()
        .contains("grpc")
    {
        "grpc"
    } else {
        "http"
    }
}

/// The listener port: an integer `targetPort` above zero, else `port`.
fn container_port(canary: &Canary) -> i64 {
    match canary.spec.service.target_port {
        Some(IntOrString::Int(port)) if port > 0 => i64::from(port),
        _ => i64::from(canary.spec.service.port),
    }
}

/// A Go duration in whole milliseconds (truncated, as Go's `Duration.Milliseconds`), `None` when it does
/// not parse.
fn millis(duration: &str) -> Option<i64> {
    flagger_core::duration::parse_go_duration_nanos(duration)
        .ok()
        .map(|nanos| nanos / 1_000_000)
}

/// `service.timeout` as an App Mesh duration (`{unit: ms, value}`), when it is a Go duration.
fn timeout(canary: &Canary) -> Option<Value> {
    let timeout = canary.spec.service.timeout.as_deref().unwrap_or_default();
    if timeout.is_empty() {
        return None;
    }
    millis(timeout).map(|value| json!({"unit": "ms", "value": value}))
}

/// The retry policy of `service.retries`: `attempts` (default 1), `perTryTimeout` (default 250ms) and the
/// comma-separated `retryOn` events (default `gateway-error`).
fn retry_policy(version: AppMeshVersion, canary: &Canary) -> Option<Value> {
    let retries = canary.spec.service.retries.as_ref()?;
    let per_retry = millis(retries.per_try_timeout.as_deref().unwrap_or_default())
        .unwrap_or(DEFAULT_PER_RETRY_TIMEOUT_MS);
    let attempts = match retries.attempts {
        Some(n) if n > 0 => i64::from(n),
        _ => 1,
    };
    let events: Vec<&str> = match retries.retry_on.as_deref() {
        Some(on) if !on.is_empty() => on.split(',').collect(),
        _ => vec!["gateway-error"],
    };
    Some(match version {
        AppMeshVersion::V1beta2 => json!({
            "httpRetryEvents": events,
            "maxRetries": attempts,
            "perRetryTimeout": {"unit": "ms", "value": per_retry},
        }),
        AppMeshVersion::V1beta1 => json!({
            "perRetryTimeoutMillis": per_retry,
            "maxRetries": attempts,
            "httpRetryEvents": events,
        }),
    })
}

/// The header matches of `analysis.match` (every header of every match, sorted by name within a match).
fn header_matches(canary: &Canary) -> Vec<Value> {
    let matches = canary
        .analysis()
        .and_then(|a| a.match_.as_deref())
        .unwrap_or_default();
    let mut headers = Vec::new();
    for m in matches {
        for (name, value) in m.headers.iter().flatten() {
            let mut method = Map::new();
            for (key, v) in [
                ("exact", &value.exact),
                ("prefix", &value.prefix),
                ("regex", &value.regex),
                ("suffix", &value.suffix),
            ] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    method.insert(key.to_owned(), Value::from(v));
                }
            }
            headers.push(json!({"name": name, "match": method}));
        }
    }
    headers
}

fn has_analysis_match(canary: &Canary) -> bool {
    canary
        .analysis()
        .and_then(|a| a.match_.as_deref())
        .is_some_and(|m| !m.is_empty())
}

/// A weighted target of `version` sending `weight` to the virtual node `node`.
fn weighted_target(version: AppMeshVersion, node: &str, weight: i64) -> Value {
    match version {
        AppMeshVersion::V1beta2 => json!({"virtualNodeRef": {"name": node}, "weight": weight}),
        AppMeshVersion::V1beta1 => json!({"virtualNodeName": node, "weight": weight}),
    }
}

/// The action of the apex route for `routes`: canary target first, then primary.
pub fn action(version: AppMeshVersion, canary: &Canary, routes: Routes) -> Value {
    json!({"weightedTargets": [
        weighted_target(version, &canary.canary_service_name(), i64::from(routes.canary)),
        weighted_target(version, &canary.primary_service_name(), i64::from(routes.primary)),
    ]})
}

/// The routes of the router `<apex>` (canary weight 0) or `<apex>-canary` (canary weight 100); with
/// `analysis.match` the apex router gets the A/B routes `<apex>-a` and `<apex>-b`.
pub fn desired_routes(version: AppMeshVersion, canary: &Canary, canary_weight: i64) -> Vec<Value> {
    let apex = canary.service_name();
    let canary_node = canary.canary_service_name();
    let primary_node = canary.primary_service_name();
    let route_name = if canary_weight > 0 {
        canary_node.clone()
    } else {
        apex.to_owned()
    };
    let http = |headers: Vec<Value>, targets: Vec<Value>| {
        let mut matcher = Map::new();
        if !headers.is_empty() {
            matcher.insert("headers".to_owned(), Value::Array(headers));
        }
        matcher.insert("prefix".to_owned(), Value::from(super::route_prefix(canary)));
        let mut route = Map::new();
        route.insert("match".to_owned(), Value::Object(matcher));
        route.insert("action".to_owned(), json!({"weightedTargets": targets}));
        if let Some(policy) = retry_policy(version, canary) {
            route.insert("retryPolicy".to_owned(), policy);
        }
        if version == AppMeshVersion::V1beta2
            && let Some(t) = timeout(canary)
        {
            route.insert("timeout".to_owned(), json!({"perRequest": t}));
        }
        Value::Object(route)
    };
    let weighted = || {
        vec![
            weighted_target(version, &canary_node, canary_weight),
            weighted_target(version, &primary_node, 100 - canary_weight),
        ]
    };
    let key = version.http_key();
    if has_analysis_match(canary) && canary_weight == 0 {
        return vec![
            json!({"name": format!("{apex}-a"), "priority": 10, key: http(header_matches(canary), weighted())}),
            json!({
                "name": format!("{apex}-b"),
                "priority": 20,
                key: http(Vec::new(), vec![weighted_target(version, &primary_node, 100)]),
            }),
        ];
    }
    vec![json!({"name": route_name, key: http(Vec::new(), weighted())})]
}

/// The gateway annotations of the apex virtual service: none without `service.hosts`.
pub fn gateway_annotations(canary: &Canary) -> BTreeMap<String, String> {
    let service = &canary.spec.service;
    let domains: String = service.hosts.iter().flatten().map(|h| format!("{h},")).collect();
    let mut a = BTreeMap::new();
    if domains.is_empty() {
        return a;
    }
    a.insert(GATEWAY_EXPOSE_ANNOTATION.to_owned(), "true".to_owned());
    a.insert(GATEWAY_DOMAIN_ANNOTATION.to_owned(), domains);
    if let Some(t) = service.timeout.as_deref().filter(|t| !t.is_empty()) {
        a.insert(GATEWAY_TIMEOUT_ANNOTATION.to_owned(), t.to_owned());
    }
    if let Some(n) = service
        .retries
        .as_ref()
        .and_then(|r| r.attempts)
        .filter(|n| *n > 0)
    {
        a.insert(GATEWAY_RETRIES_ANNOTATION.to_owned(), n.to_string());
    }
    a
}

fn gateway_metadata(canary: &Canary, canary_weight: i64) -> Map<String, Value> {
    let mut meta = Map::new();
    let a = gateway_annotations(canary);
    if canary_weight == 0 && !a.is_empty() {
        meta.insert("annotations".to_owned(), json!(a));
    }
    meta
}

fn listener_port(canary: &Canary, port: i64) -> Value {
    json!({"portMapping": {"port": port, "protocol": protocol(canary)}})
}

fn access_log() -> Value {
    json!({"accessLog": {"file": {"path": ACCESS_LOG_PATH}}})
}

/// The v1beta2 VirtualNode `name` selecting pods labelled `<label>: <pod_selector>` at `host`.
pub fn virtual_node_v1beta2(
    canary: &Canary,
    name: &str,
    label: &str,
    pod_selector: &str,
    host: &str,
) -> Value {
    let mut listener = listener_port(canary, container_port(canary));
    if let Some(t) = timeout(canary) {
        listener["timeout"] = json!({"http": {"perRequest": t}});
    }
    let mut spec = Map::new();
    spec.insert(
        "podSelector".to_owned(),
        json!({"matchLabels": {label: pod_selector}}),
    );
    spec.insert("listeners".to_owned(), json!([listener]));
    spec.insert("serviceDiscovery".to_owned(), json!({"dns": {"hostname": host}}));
    let backends: Vec<Value> = canary
        .spec
        .service
        .backends
        .iter()
        .flatten()
        .map(|b| {
            if b.starts_with("arn:aws") {
                json!({"virtualService": {"virtualServiceARN": b}})
            } else {
                json!({"virtualService": {"virtualServiceRef": {"name": b}}})
            }
        })
        .collect();
    if !backends.is_empty() {
        spec.insert("backends".to_owned(), Value::Array(backends));
    }
    if access_log_enabled(canary) {
        spec.insert("logging".to_owned(), access_log());
    }
    object(
        AppMeshVersion::V1beta2,
        Kind::VirtualNode,
        canary,
        name,
        node_metadata(canary),
        Value::Object(spec),
    )
}

/// The v1beta2 VirtualRouter `name` (`<apex>` with canary weight 0, `<apex>-canary` with 100).
pub fn virtual_router_v1beta2(canary: &Canary, name: &str, canary_weight: i64) -> Value {
    let spec = json!({
        "listeners": [listener_port(canary, container_port(canary))],
        "routes": desired_routes(AppMeshVersion::V1beta2, canary, canary_weight),
    });
    object(
        AppMeshVersion::V1beta2,
        Kind::VirtualRouter,
        canary,
        name,
        Map::new(),
        spec,
    )
}

/// The v1beta2 VirtualService `name`, provided by the VirtualRouter of the same name.
pub fn virtual_service_v1beta2(canary: &Canary, name: &str, canary_weight: i64) -> Value {
    let spec = json!({"provider": {"virtualRouter": {"virtualRouterRef": {"name": name}}}});
    object(
        AppMeshVersion::V1beta2,
        Kind::VirtualService,
        canary,
        name,
        gateway_metadata(canary, canary_weight),
        spec,
    )
}

/// The legacy (v1beta1) VirtualNode `name` at `host`.
pub fn virtual_node_v1beta1(canary: &Canary, name: &str, host: &str) -> Value {
    let mut spec = Map::new();
    spec.insert("meshName".to_owned(), json!(canary.spec.service.mesh_name));
    spec.insert(
        "listeners".to_owned(),
        json!([listener_port(canary, i64::from(canary.spec.service.port))]),
    );
    spec.insert("serviceDiscovery".to_owned(), json!({"dns": {"hostName": host}}));
    let backends: Vec<Value> = canary
        .spec
        .service
        .backends
        .iter()
        .flatten()
        .map(|b| json!({"virtualService": {"virtualServiceName": b}}))
        .collect();
    if !backends.is_empty() {
        spec.insert("backends".to_owned(), Value::Array(backends));
    }
    if access_log_enabled(canary) {
        spec.insert("logging".to_owned(), access_log());
    }
    object(
        AppMeshVersion::V1beta1,
        Kind::VirtualNode,
        canary,
        name,
        node_metadata(canary),
        Value::Object(spec),
    )
}

/// The legacy (v1beta1) VirtualService `name` (`<apex>.<ns>` with canary weight 0, `<apex>-canary.<ns>` with
/// 100) embedding its virtual router and routes.
pub fn virtual_service_v1beta1(canary: &Canary, name: &str, canary_weight: i64) -> Value {
    let apex = canary.service_name();
    let router_name = if canary_weight > 0 {
        canary.canary_service_name()
    } else {
        apex.to_owned()
    };
    let spec = json!({
        "meshName": canary.spec.service.mesh_name,
        "virtualRouter": {
            "name": router_name,
            "listeners": [listener_port(canary, i64::from(canary.spec.service.port))],
        },
        "routes": desired_routes(AppMeshVersion::V1beta1, canary, canary_weight),
    });
    object(
        AppMeshVersion::V1beta1,
        Kind::VirtualService,
        canary,
        name,
        gateway_metadata(canary, canary_weight),
        spec,
    )
}

/// `object` (an App Mesh object holding routes) with the action of its first route set for `routes`: what
/// `set_routes` writes.
pub fn with_weights(
    version: AppMeshVersion,
    canary: &Canary,
    object: &Value,
    routes: Routes,
) -> Result<Value, AppMeshError> {
    let mut next = object.clone();
    let http = version.http_key();
    let first = next
        .get_mut("spec")
        .and_then(|s| s.get_mut("routes"))
        .and_then(|r| r.get_mut(0))
        .and_then(|r| r.get_mut(http))
        .and_then(Value::as_object_mut);
    match first {
        Some(route) => {
            route.insert("action".to_owned(), action(version, canary, routes));
            Ok(next)
        }
        None => Err(AppMeshError(format!(
            "{} routes {} not found",
            version.route_kind().as_str(),
            routes_object_name(version, canary)?
        ))),
    }
}

/// Reads the weights from `data` (the object holding the apex routes): the targets of `routes[0]`, which
/// must be exactly two, with Flagger's messages.
pub fn read_routes(version: AppMeshVersion, canary: &Canary, data: &Value) -> Result<Routes, AppMeshError> {
    let kind = version.route_kind().as_str();
    let name = routes_object_name(version, canary)?;
    let apex = canary.service_name();
    let targets = data["spec"]["routes"][0][version.http_key()]["action"]["weightedTargets"].as_array();
    let Some(targets) = targets.filter(|t| t.len() == 2) else {
        return Err(AppMeshError(format!("{kind} routes {name} not found")));
    };
    let (canary_node, primary_node) = (canary.canary_service_name(), canary.primary_service_name());
    let mut routes = Routes {
        primary: 0,
        canary: 0,
        mirrored: false,
    };
    for t in targets {
        let node = match version {
            AppMeshVersion::V1beta2 => &t["virtualNodeRef"]["name"],
            AppMeshVersion::V1beta1 => &t["virtualNodeName"],
        };
        let weight = t["weight"]
            .as_i64()
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or_default();
        if *node == *canary_node {
            routes.canary = weight;
        }
        if *node == *primary_node {
            routes.primary = weight;
        }
    }
    if routes.primary == 0 && routes.canary == 0 {
        return Err(AppMeshError(format!(
            "{kind} {name} does not contain routes for {apex}-primary and {apex}-canary"
        )));
    }
    Ok(routes)
}

/// Removes the weighted targets of every route (compared ignoring them, as Flagger does).
fn without_targets(routes: &Value) -> Value {
    let mut routes = routes.clone();
    for route in routes.as_array_mut().into_iter().flatten() {
        for key in ["httpRoute", "http2Route", "grpcRoute", "tcpRoute", "http", "tcp"] {
            if let Some(action) = route
                .get_mut(key)
                .and_then(|r| r.get_mut("action"))
                .and_then(Value::as_object_mut)
            {
                action.remove("weightedTargets");
            }
        }
    }
    routes
}

fn is_unset(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

/// The JSON merge patch that brings `current` to `desired`, `None` when nothing differs: the owned spec
/// fields (weighted targets ignored for routes, the current first route's action kept) and the desired
/// labels and annotations, guarded by the current `resourceVersion`.
pub fn update_patch(version: AppMeshVersion, desired: &Desired, current: &DynamicObject) -> Option<Value> {
    let want = &desired.object["spec"];
    let have = &current.data["spec"];
    let mut spec_patch = Map::new();
    let mut differs = false;
    for field in desired.kind.owned_spec_fields(version) {
        let (w, h) = (want.get(*field), have.get(*field));
        let same = match (*field, is_unset(w), is_unset(h)) {
            (_, true, true) => true,
            (_, true, false) | (_, false, true) => false,
            ("routes", false, false) => {
                without_targets(w.unwrap_or(&Value::Null)) == without_targets(h.unwrap_or(&Value::Null))
            }
            _ => w == h,
        };
        differs |= !same;
        spec_patch.insert((*field).to_owned(), w.cloned().unwrap_or(Value::Null));
    }
    // The update keeps the weights of the first route.
    let http = version.http_key();
    if let (Some(routes), Some(action)) = (
        spec_patch.get_mut("routes"),
        have["routes"][0][http].get("action").cloned(),
    ) && let Some(first) = routes
        .get_mut(0)
        .and_then(|r| r.get_mut(http))
        .and_then(Value::as_object_mut)
    {
        first.insert("action".to_owned(), action);
    }
    let mut meta_patch = Map::new();
    for key in ["labels", "annotations"] {
        let Some(wanted) = desired.object["metadata"][key].as_object() else {
            continue;
        };
        let have = match key {
            "labels" => current.metadata.labels.as_ref(),
            _ => current.metadata.annotations.as_ref(),
        };
        let missing = wanted
            .iter()
            .any(|(k, v)| have.and_then(|h| h.get(k)).map(|s| Value::from(s.as_str())) != Some(v.clone()));
        if missing {
            differs = true;
        }
        meta_patch.insert(key.to_owned(), Value::Object(wanted.clone()));
    }
    if !differs {
        return None;
    }
    meta_patch.insert(
        "resourceVersion".to_owned(),
        json!(current.metadata.resource_version),
    );
    Some(json!({"metadata": meta_patch, "spec": spec_patch}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(provider: &str, service: Value, analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
            "spec": {
                "provider": provider,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": analysis,
            },
        }))
        .unwrap()
    }

    fn v2(service: Value) -> Canary {
        canary(
            "appmesh:v1beta2",
            service,
            json!({"interval": "1m", "stepWeight": 10}),
        )
    }

    fn live(object: &Value) -> DynamicObject {
        let mut o: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        o.metadata.resource_version = Some("7".into());
        o
    }

    fn find(objects: &[Desired], kind: Kind, name: &str) -> Desired {
        objects
            .iter()
            .find(|d| d.kind == kind && d.name == name)
            .unwrap()
            .clone()
    }

    #[test]
    fn versions_have_their_api_resource() {
        let res = api_resource(AppMeshVersion::V1beta1, Kind::VirtualService);
        assert_eq!(res.api_version, "appmesh.k8s.aws/v1beta1");
        assert_eq!(res.plural, "virtualservices");
    }

    #[test]
    fn the_selector_label_follows_the_target() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let keys = WorkloadOptions::default().selector_labels;
        assert_eq!(pick_selector_label(None, "podinfo", &keys), "app");
        assert_eq!(
            pick_selector_label(
                Some(&labels(&[("name", "podinfo"), ("tier", "web")])),
                "podinfo",
                &keys
            ),
            "name"
        );
        assert_eq!(
            pick_selector_label(
                Some(&labels(&[("app.kubernetes.io/name", "x"), ("name", "podinfo")])),
                "podinfo",
                &keys
            ),
            "name"
        );
        assert_eq!(
            pick_selector_label(Some(&labels(&[("k8s-app", "podinfo")])), "podinfo", &keys),
            "k8s-app"
        );
        assert_eq!(
            pick_selector_label(Some(&labels(&[("k8s-app", "other")])), "podinfo", &keys),
            "app"
        );
        // A custom -selector-labels list comes first.
        let custom = vec!["k8s-app".to_owned()];
        assert_eq!(
            pick_selector_label(
                Some(&labels(&[("app", "podinfo"), ("k8s-app", "x")])),
                "podinfo",
                &custom
            ),
            "k8s-app"
        );
    }

    #[test]
    fn ports_protocols_prefixes_and_retries_follow_flagger() {
        let c = v2(
            json!({"port": 80, "targetPort": "http", "portName": "grpc", "match": [{"uri": {"prefix": ""}}],
            "retries": {"perTryTimeout": "1500us"}}),
        );
        assert_eq!(container_port(&c), 80);
        assert_eq!(protocol(&c), "grpc");
        assert_eq!(super::super::route_prefix(&c), "/");
        assert_eq!(
            retry_policy(AppMeshVersion::V1beta2, &c),
            Some(json!({"httpRetryEvents": ["gateway-error"], "maxRetries": 1,
                "perRetryTimeout": {"unit": "ms", "value": 1}}))
        );
        let c = v2(json!({"port": 80, "targetPort": 0, "timeout": "bad"}));
        assert_eq!(container_port(&c), 80);
        assert_eq!(timeout(&c), None);
        assert_eq!(retry_policy(AppMeshVersion::V1beta2, &c), None);
        // Bad timeouts give no timeout, but the gateway annotation copies the text.
        let c = v2(json!({"port": 80, "timeout": "bad", "hosts": ["a"], "retries": {"attempts": 2}}));
        assert_eq!(gateway_annotations(&c)[GATEWAY_TIMEOUT_ANNOTATION], "bad");
        assert_eq!(gateway_annotations(&c)[GATEWAY_RETRIES_ANNOTATION], "2");
        assert!(gateway_annotations(&v2(json!({"port": 80, "timeout": "5s"}))).is_empty());
    }

    #[test]
    fn the_legacy_router_needs_a_mesh_name() {
        let c = canary("appmesh", json!({"port": 80}), json!({"interval": "1m"}));
        assert_eq!(
            desired_objects(AppMeshVersion::V1beta1, &c, "app"),
            Err(AppMeshError("mesh name cannot be empty".into()))
        );
    }

    #[test]
    fn an_unchanged_object_needs_no_update_and_weights_are_ignored() {
        let c = v2(json!({"port": 9898}));
        let objects = desired_objects(AppMeshVersion::V1beta2, &c, "app").unwrap();
        for d in &objects {
            assert_eq!(
                update_patch(AppMeshVersion::V1beta2, d, &live(&d.object)),
                None,
                "{}",
                d.name
            );
        }
        let vr = find(&objects, Kind::VirtualRouter, "podinfo");
        let moved = with_weights(
            AppMeshVersion::V1beta2,
            &c,
            &vr.object,
            Routes {
                primary: 40,
                canary: 60,
                mirrored: false,
            },
        )
        .unwrap();
        assert_eq!(update_patch(AppMeshVersion::V1beta2, &vr, &live(&moved)), None);
        // Fields the router does not own and metadata of others are no difference.
        let mut extra = moved.clone();
        extra["spec"]["awsName"] = json!("x");
        extra["metadata"]["labels"] = json!({"other": "y"});
        assert_eq!(update_patch(AppMeshVersion::V1beta2, &vr, &live(&extra)), None);
    }

    #[test]
    fn an_update_keeps_the_first_route_action_and_removes_unwanted_owned_fields() {
        let before = v2(json!({"port": 9898}));
        let after = v2(json!({"port": 8080}));
        let old = desired_objects(AppMeshVersion::V1beta2, &before, "app").unwrap();
        let new = desired_objects(AppMeshVersion::V1beta2, &after, "app").unwrap();
        let vr_old = find(&old, Kind::VirtualRouter, "podinfo");
        let moved = with_weights(
            AppMeshVersion::V1beta2,
            &before,
            &vr_old.object,
            Routes {
                primary: 70,
                canary: 30,
                mirrored: false,
            },
        )
        .unwrap();
        let patch = update_patch(
            AppMeshVersion::V1beta2,
            &find(&new, Kind::VirtualRouter, "podinfo"),
            &live(&moved),
        )
        .unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["spec"]["listeners"][0]["portMapping"]["port"], 8080);
        assert_eq!(
            patch["spec"]["routes"][0]["httpRoute"]["action"],
            moved["spec"]["routes"][0]["httpRoute"]["action"]
        );

        let mut node = find(&old, Kind::VirtualNode, "podinfo-primary").object;
        node["spec"]["backends"] = json!([{"virtualService": {"virtualServiceRef": {"name": "gone"}}}]);
        let patch = update_patch(
            AppMeshVersion::V1beta2,
            &find(&new, Kind::VirtualNode, "podinfo-primary"),
            &live(&node),
        )
        .unwrap();
        assert_eq!(patch["spec"]["backends"], Value::Null);
        assert!(patch["spec"].as_object().unwrap().contains_key("logging"));

        // A missing toolkit annotation is a difference.
        let mut node = find(&new, Kind::VirtualNode, "podinfo-primary").object;
        node["metadata"]["annotations"] = json!({});
        assert!(
            update_patch(
                AppMeshVersion::V1beta2,
                &find(&new, Kind::VirtualNode, "podinfo-primary"),
                &live(&node)
            )
            .is_some()
        );
    }

    #[test]
    fn reads_fail_with_flaggers_messages() {
        let c = canary(
            "appmesh",
            json!({"port": 80, "meshName": "m"}),
            json!({"interval": "1m"}),
        );
        let one = json!({"spec": {"routes": [{"name": "podinfo", "http": {"action": {"weightedTargets": [
            {"virtualNodeName": "podinfo-primary", "weight": 100}]}}}]}});
        assert_eq!(
            read_routes(AppMeshVersion::V1beta1, &c, &one),
            Err(AppMeshError(
                "VirtualService routes podinfo.test not found".into()
            ))
        );
        let zero = json!({"spec": {"routes": [{"name": "podinfo", "http": {"action": {"weightedTargets": [
            {"virtualNodeName": "podinfo-primary", "weight": 0}, {"virtualNodeName": "x", "weight": 100}]}}}]}});
        assert_eq!(
            read_routes(AppMeshVersion::V1beta1, &c, &zero),
            Err(AppMeshError(
                "VirtualService podinfo.test does not contain routes for podinfo-primary and podinfo-canary"
                    .into()
            ))
        );
        assert_eq!(
            with_weights(AppMeshVersion::V1beta2, &c, &json!({"spec": {}}), Routes::PRIMARY),
            Err(AppMeshError("VirtualRouter routes podinfo not found".into()))
        );
    }

    #[test]
    fn restoring_puts_back_the_owned_fields_only() {
        let original =
            json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}], "awsName": "a"});
        let current = live(
            &json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode",
            "metadata": {"name": "podinfo-primary"}, "spec": {}}),
        );
        let patch = restore_patch(AppMeshVersion::V1beta2, Kind::VirtualNode, &original, &current);
        assert_eq!(
            patch["spec"],
            json!({"podSelector": null, "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "serviceDiscovery": null, "backends": null, "logging": null})
        );
        assert_eq!(
            patch["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION],
            Value::Null
        );
    }
}
