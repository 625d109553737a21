//! Kuma router (`kuma`): Flagger's `KumaRouter`, a **cluster-scoped** `TrafficRoute` named after the apex
//! Service:
//!
//! ```yaml
//! apiVersion: kuma.io/v1alpha1
//! kind: TrafficRoute
//! mesh: <Canary annotation kuma.io/mesh, or default>
//! spec:
//!   sources: [{match: {kuma.io/service: "*"}}]
//!   destinations: [{match: {kuma.io/service: <apex>_<ns>_svc_<port>}}]
//!   conf:
//!     split:
//!     - {weight: 100, destination: {kuma.io/service: <apex>-primary_<ns>_svc_<port>}}
//!     - {weight: 0, destination: {kuma.io/service: <apex>-canary_<ns>_svc_<port>}}
//! ```
//!
//! Flagger's rules, kept here: no owner reference (a cluster-scoped object cannot be owned by a namespaced
//! Canary), the `service.apex` labels and annotations plus the Flux toolkit annotations, `mesh` set when the
//! object is created and kept after, updates only when the spec differs ignoring the weights, `get_routes`
//! reads the weight of the split whose service (before the first `_`) is `<apex>-primary` and returns
//! `100 - primary` for the canary, failing when both are 0.
//!
//! **The name collision.** Flagger names the TrafficRoute `<apex>` without the namespace, so two canaries of
//! the same Service name in two namespaces share one object and overwrite each other's routing on every
//! tick. The name is kept (drop-in), but the router reads the namespace out of the TrafficRoute's
//! destination (`<apex>_<ns>_svc_<port>`) and refuses, with [`RouterError::Invalid`], to touch a TrafficRoute
//! that routes the same Service name of another namespace.
//!
//! Unlike Flagger, `reconcile` never resets the weights (it keeps those of the current object), writes are a
//! server-side apply under [`FIELD_MANAGER`] and a merge patch of `spec.conf` for the weights, a pre-existing
//! TrafficRoute of another shape is taken over and restored by `finalize`, and `finalize` deletes the
//! TrafficRoute the router created (nothing else would: it has no owner).

use flagger_api::Canary;
use flagger_core::machine::Routes;
use kube::ResourceExt as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::takeover::{self, Carried, Invalid, Kind};
use super::{RouteCx, RouterError};

/// The API group of TrafficRoutes.
pub const GROUP: &str = "kuma.io";
/// The API version.
pub const VERSION: &str = "v1alpha1";
/// The kind.
pub const KIND: &str = "TrafficRoute";
/// The resource (plural) name.
pub const PLURAL: &str = "trafficroutes";
/// The field manager of every TrafficRoute write.
pub const FIELD_MANAGER: &str = "flagger/router-kuma";
/// The Canary annotation naming the Kuma mesh.
pub const MESH_ANNOTATION: &str = "kuma.io/mesh";
/// The Kuma tag of a service.
pub const SERVICE_TAG: &str = "kuma.io/service";

/// The TrafficRoute resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

fn kind() -> Kind {
    Kind {
        resource: api_resource(),
        namespaced: false,
        field_manager: FIELD_MANAGER,
    }
}

/// The Kuma router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KumaRouter;

impl KumaRouter {
    /// Creates the TrafficRoute, or updates what differs from the desired one without touching the weights.
    /// Fails when the TrafficRoute of that name routes another namespace's Service.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        let kind = kind();
        let current = kind.current(cx, ns, apex, true).await?;
        if let Some(current) = &current {
            check_owner(canary, current)?;
        }
        let routes = current
            .as_ref()
            .and_then(|c| read_routes(canary, c).ok())
            .unwrap_or(Routes::PRIMARY);
        let desired = desired_object(canary, routes, current.as_ref());
        if let Some(current) = &current
            && takeover::contained(&desired["spec"], &current.data["spec"])
            && current.data.get("mesh") == desired.get("mesh")
            && !takeover::metadata_differs(&desired["metadata"], current, FIELD_MANAGER)
        {
            return Ok(());
        }
        kind.apply(cx, ns, apex, &desired).await?;
        let verb = if current.is_some() { "updated" } else { "created" };
        tracing::info!(canary = %canary.key(), "TrafficRoute {apex} {verb}");
        Ok(())
    }

    /// Reads the weights from the cached TrafficRoute.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let canary = cx.canary;
        let current = self.existing(cx).await?;
        check_owner(canary, &current)?;
        Ok(read_routes(canary, &current)?)
    }

    /// Writes the weights (`spec.conf`).
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let current = self.existing(cx).await?;
        check_owner(canary, &current)?;
        let patch = json!({"spec": {"conf": {"split": split(canary, routes)}}});
        kind().merge(cx, ns, canary.service_name(), &patch).await
    }

    /// Restores a taken-over TrafficRoute (revertOnDeletion), or deletes the one the router created: it has
    /// no owner reference, so the garbage collector never removes it.
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        let kind = kind();
        let Some(current) = kind.current(cx, ns, apex, true).await? else {
            return Ok(());
        };
        check_owner(canary, &current)?;
        if takeover::restore(cx, &kind, ns, apex).await? {
            return Ok(());
        }
        if routes_this_canary(canary, &current) {
            kind.delete(cx, ns, apex).await?;
            tracing::info!(canary = %canary.key(), "TrafficRoute {apex} deleted");
        }
        Ok(())
    }

    async fn existing(&self, cx: &RouteCx<'_>) -> Result<DynamicObject, RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        kind().current(cx, ns, apex, false).await?.ok_or_else(|| {
            RouterError::Invalid(format!(
                "TrafficRoute {apex} get query error {PLURAL}.{GROUP} \"{apex}\" not found"
            ))
        })
    }
}

/// `<name>_<ns>_svc_<port>`, the `kuma.io/service` tag of a Kubernetes Service.
pub fn service_tag(canary: &Canary, name: &str) -> String {
    format!(
        "{name}_{}_svc_{}",
        canary.metadata.namespace.as_deref().unwrap_or_default(),
        canary.spec.service.port
    )
}

/// The split for `routes`: the primary, then the canary.
pub fn split(canary: &Canary, routes: Routes) -> Value {
    json!([
        {"weight": routes.primary, "destination": {SERVICE_TAG: service_tag(canary, &canary.primary_service_name())}},
        {"weight": routes.canary, "destination": {SERVICE_TAG: service_tag(canary, &canary.canary_service_name())}},
    ])
}

/// The spec with the weights `routes`.
pub fn desired_spec(canary: &Canary, routes: Routes) -> Value {
    json!({
        "sources": [{"match": {SERVICE_TAG: "*"}}],
        "destinations": [{"match": {SERVICE_TAG: service_tag(canary, canary.service_name())}}],
        "conf": {"split": split(canary, routes)},
    })
}

/// The mesh of a new TrafficRoute: the Canary annotation `kuma.io/mesh`, or `default`.
pub fn mesh(canary: &Canary) -> String {
    canary
        .annotations()
        .get(MESH_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| "default".to_owned())
}

/// What to carry over: never an owner reference; the original configuration of a pre-existing TrafficRoute
/// that does not route this canary's Service (one Flagger wrote for this canary is not a takeover).
fn carried(canary: &Canary, current: Option<&DynamicObject>) -> Carried {
    let original_configuration = current.and_then(|c| {
        let stored = c
            .annotations()
            .get(takeover::ORIGINAL_CONFIGURATION_ANNOTATION)
            .cloned();
        match stored {
            Some(s) => Some(s),
            None if routes_this_canary(canary, c) => None,
            None => Some(takeover::original_configuration(c)),
        }
    });
    Carried {
        owner_reference: None,
        original_configuration,
    }
}

/// The whole TrafficRoute as the router applies it, with the weights `routes`; `mesh` is kept from
/// `current` when it has one.
pub fn desired_object(canary: &Canary, routes: Routes, current: Option<&DynamicObject>) -> Value {
    let mesh = current
        .and_then(|c| c.data.get("mesh").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| mesh(canary));
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": takeover::apex_metadata(canary, canary.service_name(), false, &carried(canary, current)),
        "mesh": mesh,
        "spec": desired_spec(canary, routes),
    })
}

/// The namespaces of the Services named `<apex>` that the TrafficRoute's destinations route.
fn destination_namespaces<'a>(canary: &Canary, current: &'a DynamicObject) -> Vec<&'a str> {
    let apex = canary.service_name();
    current.data["spec"]["destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["match"][SERVICE_TAG].as_str())
        .filter_map(|tag| {
            let parts: Vec<&str> = tag.split('_').collect();
            match parts.as_slice() {
                [name, ns, "svc", _port] if *name == apex => Some(*ns),
                _ => None,
            }
        })
        .collect()
}

/// Whether the TrafficRoute routes this canary's apex Service.
fn routes_this_canary(canary: &Canary, current: &DynamicObject) -> bool {
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    destination_namespaces(canary, current).contains(&ns)
}

/// Refuses a TrafficRoute that routes the Service of the same name in another namespace (another Canary's).
pub fn check_owner(canary: &Canary, current: &DynamicObject) -> Result<(), Invalid> {
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let apex = canary.service_name();
    if let Some(other) = destination_namespaces(canary, current)
        .into_iter()
        .find(|other| *other != ns)
    {
        return Err(Invalid(format!(
            "TrafficRoute {apex} routes service {apex} of namespace {other}, not of {ns}: Kuma TrafficRoutes \
             are cluster-scoped and named after the apex service, so it belongs to the canary of namespace \
             {other}; give this canary another service name (spec.service.name)"
        )));
    }
    Ok(())
}

/// The weights as Flagger reads them: the split whose service (before the first `_`) is `<apex>-primary`
/// gives the primary weight, the canary gets `100 - primary`; an error when both are 0.
pub fn read_routes(canary: &Canary, current: &DynamicObject) -> Result<Routes, Invalid> {
    let (primary_name, canary_name) = (canary.primary_service_name(), canary.canary_service_name());
    let (mut primary, mut canary_weight) = (0, 0);
    for s in current.data["spec"]["conf"]["split"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let service = s["destination"][SERVICE_TAG].as_str().unwrap_or_default();
        if service.split('_').next() == Some(primary_name.as_str()) {
            primary = s["weight"]
                .as_i64()
                .and_then(|w| i32::try_from(w).ok())
                .unwrap_or(0);
            canary_weight = 100 - primary;
        }
    }
    if primary == 0 && canary_weight == 0 {
        return Err(Invalid(format!(
            "TrafficRoute {} does not contain routes for {primary_name} and {canary_name}",
            canary.service_name()
        )));
    }
    Ok(Routes {
        primary,
        canary: canary_weight,
        mirrored: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(annotations: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1", "annotations": annotations},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
            },
        }))
        .unwrap()
    }

    fn route(spec: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute",
            "metadata": {"name": "podinfo"}, "mesh": "default", "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn mesh_from_the_annotation_or_default() {
        assert_eq!(mesh(&canary(json!({}))), "default");
        assert_eq!(mesh(&canary(json!({"kuma.io/mesh": "edge"}))), "edge");
        let o = desired_object(&canary(json!({"kuma.io/mesh": "edge"})), Routes::PRIMARY, None);
        assert_eq!(o["mesh"], json!("edge"));
        assert!(o["metadata"].get("ownerReferences").is_none());
        assert!(o["metadata"].get("namespace").is_none());
    }

    #[test]
    fn flaggers_service_tags() {
        let c = canary(json!({}));
        assert_eq!(
            desired_spec(&c, Routes::PRIMARY),
            json!({
                "sources": [{"match": {"kuma.io/service": "*"}}],
                "destinations": [{"match": {"kuma.io/service": "podinfo_test_svc_9898"}}],
                "conf": {"split": [
                    {"weight": 100, "destination": {"kuma.io/service": "podinfo-primary_test_svc_9898"}},
                    {"weight": 0, "destination": {"kuma.io/service": "podinfo-canary_test_svc_9898"}},
                ]},
            })
        );
    }

    #[test]
    fn reads_the_primary_split() {
        let c = canary(json!({}));
        let r = route(desired_spec(
            &c,
            Routes {
                primary: 75,
                canary: 25,
                mirrored: false,
            },
        ));
        assert_eq!(read_routes(&c, &r).unwrap().canary, 25);
        match read_routes(&c, &route(json!({"conf": {"split": []}}))) {
            Err(Invalid(m)) => assert_eq!(
                m,
                "TrafficRoute podinfo does not contain routes for podinfo-primary and podinfo-canary"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_route_of_another_namespace_is_refused() {
        let c = canary(json!({}));
        let mine = route(desired_spec(&c, Routes::PRIMARY));
        assert!(check_owner(&c, &mine).is_ok());
        assert!(routes_this_canary(&c, &mine));
        let theirs =
            route(json!({"destinations": [{"match": {"kuma.io/service": "podinfo_prod_svc_9898"}}]}));
        match check_owner(&c, &theirs) {
            Err(Invalid(m)) => {
                assert!(
                    m.starts_with("TrafficRoute podinfo routes service podinfo of namespace prod"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A user's route of another shape is taken over, not refused.
        let users = route(json!({"destinations": [{"match": {"kuma.io/service": "web"}}]}));
        assert!(check_owner(&c, &users).is_ok());
        assert!(carried(&c, Some(&users)).original_configuration.is_some());
        assert!(carried(&c, Some(&mine)).original_configuration.is_none());
    }
}
