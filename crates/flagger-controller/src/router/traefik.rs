//! Traefik router (`traefik`): Flagger's `TraefikRouter`, a weighted `TraefikService` named after the apex
//! Service in the canary's namespace:
//!
//! ```yaml
//! apiVersion: traefik.io/v1alpha1
//! kind: TraefikService
//! spec:
//!   weighted:
//!     services:
//!     - {name: <apex>-primary, namespace: <ns>, port: <service.port>, weight: 100}
//!     - {name: <apex>-canary, namespace: <ns>, port: <service.port>, weight: <w>}   # only when w > 0
//! ```
//!
//! Flagger's rules, kept here: the canary entry is written only while its weight is above 0 (Traefik
//! ignores a TraefikService with a service without endpoints, the promoted canary), a weight of 0 is omitted
//! (`omitempty`), `get_routes` reads the primary weight and returns `100 - primary` for the canary, and
//! `set_routes(0, 0)` fails with `no valid weights`. The object carries the `service.apex` labels and
//! annotations plus the Flux toolkit annotations, and a controller owner reference to the Canary when the
//! router created it.
//!
//! **No reconcile loop (Flagger PR #1692).** When Flagger's `Reconcile` finds a difference (for example new
//! apex labels) it rewrites the spec with weight 100 on *both* entries (a 50/50 split) or drops the canary
//! entry, and `GetRoutes` then reads a canary weight that the scheduler did not set, so a promotion with
//! `stepWeightPromotion` never converges. Here `reconcile` never changes weights: the desired object is built
//! with the weights (and the canary entry) of the current object, so an update only fixes what is not a
//! weight. Weights change only in `set_routes`.
//!
//! Writes: server-side apply under [`FIELD_MANAGER`] (everything the router owns) and a JSON merge patch of
//! `spec.weighted.services` for the weights; a taken-over TraefikService is restored by `finalize` (see
//! [`super::takeover`]).

use flagger_api::Canary;
use flagger_core::machine::Routes;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Map, Value, json};

use super::takeover::{self, Carried, Invalid, Kind};
use super::{RouteCx, RouterError};

/// The API group of TraefikServices.
pub const GROUP: &str = "traefik.io";
/// The API version.
pub const VERSION: &str = "v1alpha1";
/// The kind.
pub const KIND: &str = "TraefikService";
/// The resource (plural) name.
pub const PLURAL: &str = "traefikservices";
/// The field manager of every TraefikService write.
pub const FIELD_MANAGER: &str = "flagger/router-traefik";

/// The TraefikService resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

fn kind() -> Kind {
    Kind {
        resource: api_resource(),
        namespaced: true,
        field_manager: FIELD_MANAGER,
    }
}

/// The Traefik router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraefikRouter;

impl TraefikRouter {
    /// Creates the TraefikService, or updates what differs from the desired one without touching the
    /// weights. Nothing is sent when the cached object is as desired.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        let kind = kind();
        let current = kind.current(cx, ns, apex, true).await?;
        let carried = takeover::carried(canary, current.as_ref());
        let kept = current.as_ref().map(|c| kept_weights(canary, c));
        let desired = desired_object(canary, kept.unwrap_or(Routes::PRIMARY), &carried);
        if let Some(current) = &current
            && takeover::contained(&desired["spec"], &current.data["spec"])
            && !takeover::metadata_differs(&desired["metadata"], current, FIELD_MANAGER)
        {
            return Ok(());
        }
        kind.apply(cx, ns, apex, &desired).await?;
        let verb = if current.is_some() { "updated" } else { "created" };
        tracing::info!(canary = %canary.key(), "TraefikService {apex}.{ns} {verb}");
        Ok(())
    }

    /// Reads the weights from the cached TraefikService.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        match kind().current(cx, ns, apex, false).await? {
            Some(current) => Ok(read_routes(canary, &current)?),
            None => Err(RouterError::Invalid(format!(
                "TraefikService {apex}.{ns} query error: {PLURAL}.{GROUP} \"{apex}\" not found"
            ))),
        }
    }

    /// Writes the weights (`spec.weighted.services`).
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        if routes.primary == 0 && routes.canary == 0 {
            return Err(RouterError::Invalid(format!(
                "RoutingRule {apex}.{ns} update failed: no valid weights"
            )));
        }
        let kind = kind();
        if kind.current(cx, ns, apex, true).await?.is_none() {
            return Err(RouterError::Invalid(format!(
                "TraefikService {apex}.{ns} query error: {PLURAL}.{GROUP} \"{apex}\" not found"
            )));
        }
        let patch = json!({"spec": {"weighted": {"services": services(canary, routes)}}});
        kind.merge(cx, ns, apex, &patch).await
    }

    /// Restores a TraefikService that existed before the canary (revertOnDeletion). One the router created
    /// is owned by the Canary and left to the garbage collector.
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let ns = takeover::namespace(cx.canary)?;
        takeover::restore(cx, &kind(), ns, cx.canary.service_name()).await?;
        Ok(())
    }
}

fn service(canary: &Canary, name: String, weight: i32) -> Value {
    let mut s = Map::new();
    s.insert("name".into(), name.into());
    s.insert(
        "namespace".into(),
        canary.metadata.namespace.clone().unwrap_or_default().into(),
    );
    s.insert("port".into(), canary.spec.service.port.into());
    // Go's `uint` with omitempty.
    if weight != 0 {
        s.insert("weight".into(), weight.into());
    }
    Value::Object(s)
}

/// The weighted services for `routes`: the primary, then the canary only when its weight is above 0.
pub fn services(canary: &Canary, routes: Routes) -> Value {
    let mut list = vec![service(canary, canary.primary_service_name(), routes.primary)];
    if routes.canary > 0 {
        list.push(service(canary, canary.canary_service_name(), routes.canary));
    }
    Value::Array(list)
}

/// The whole TraefikService as the router applies it, with the weights `routes`.
pub fn desired_object(canary: &Canary, routes: Routes, carried: &Carried) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": takeover::apex_metadata(canary, canary.service_name(), true, carried),
        "spec": {"weighted": {"services": services(canary, routes)}},
    })
}

fn entries(current: &DynamicObject) -> Vec<(String, i64)> {
    current.data["spec"]["weighted"]["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_owned(),
                        s["weight"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The weights `reconcile` keeps: those of the current entries when the primary is there (the canary entry
/// only when present), else all traffic on the primary (an object the router has not written yet).
pub fn kept_weights(canary: &Canary, current: &DynamicObject) -> Routes {
    let list = entries(current);
    let weight = |name: &str| {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| i32::try_from(*w).unwrap_or(0))
    };
    match weight(&canary.primary_service_name()) {
        Some(primary) => Routes {
            primary,
            canary: weight(&canary.canary_service_name()).unwrap_or(0),
            mirrored: false,
        },
        None => Routes::PRIMARY,
    }
}

/// The weights as Flagger reads them: the primary entry's weight and `100 - primary` for the canary;
/// `(0, 0)` without a primary entry; an error without entries.
pub fn read_routes(canary: &Canary, current: &DynamicObject) -> Result<Routes, Invalid> {
    let list = entries(current);
    if list.is_empty() {
        return Err(Invalid(format!(
            "TraefikService {}.{} services not found",
            canary.service_name(),
            current.metadata.namespace.as_deref().unwrap_or_default()
        )));
    }
    let primary_name = canary.primary_service_name();
    Ok(match list.iter().find(|(n, _)| *n == primary_name) {
        Some((_, w)) => {
            let primary = i32::try_from(*w).unwrap_or(0);
            Routes {
                primary,
                canary: 100 - primary,
                mirrored: false,
            }
        }
        None => Routes {
            primary: 0,
            canary: 0,
            mirrored: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "5d1b4c4e-0000-4000-8000-000000000001"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898, "apex": {"labels": {"app": "podinfo"}, "annotations": {"a": "b"}}},
            },
        }))
        .unwrap()
    }

    fn object(services: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"weighted": {"services": services}},
        }))
        .unwrap()
    }

    fn routes(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            mirrored: false,
        }
    }

    #[test]
    fn the_canary_entry_only_with_a_weight() {
        let c = canary();
        assert_eq!(
            services(&c, Routes::PRIMARY),
            json!([{"name": "podinfo-primary", "namespace": "test", "port": 9898, "weight": 100}])
        );
        assert_eq!(
            services(&c, routes(0, 100)),
            json!([
                {"name": "podinfo-primary", "namespace": "test", "port": 9898},
                {"name": "podinfo-canary", "namespace": "test", "port": 9898, "weight": 100},
            ])
        );
    }

    #[test]
    fn the_new_object_has_apex_metadata_toolkit_annotations_and_owner() {
        let c = canary();
        let o = desired_object(&c, Routes::PRIMARY, &takeover::carried(&c, None));
        assert_eq!(o["metadata"]["labels"], json!({"app": "podinfo"}));
        assert_eq!(
            o["metadata"]["annotations"],
            json!({"a": "b", "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
                   "helm.toolkit.fluxcd.io/driftDetection": "disabled"})
        );
        assert_eq!(o["metadata"]["ownerReferences"][0]["controller"], json!(true));
    }

    #[test]
    fn reads_primary_and_derives_canary() {
        let c = canary();
        let two = object(json!([
            {"name": "podinfo-primary", "weight": 60}, {"name": "podinfo-canary", "weight": 40}]));
        assert_eq!(read_routes(&c, &two).unwrap(), routes(60, 40));
        assert_eq!(kept_weights(&c, &two), routes(60, 40));
        let promoted =
            object(json!([{"name": "podinfo-primary"}, {"name": "podinfo-canary", "weight": 100}]));
        assert_eq!(read_routes(&c, &promoted).unwrap(), routes(0, 100));
        let other = object(json!([{"name": "elsewhere", "weight": 100}]));
        assert_eq!(read_routes(&c, &other).unwrap(), routes(0, 0));
        assert_eq!(kept_weights(&c, &other), Routes::PRIMARY);
        match read_routes(&c, &object(json!([]))) {
            Err(Invalid(m)) => assert_eq!(m, "TraefikService podinfo.test services not found"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reconcile_keeps_the_current_weights() {
        // The desired object of an object at 60/40 is that object: nothing to update, no 50/50 rewrite.
        let c = canary();
        let current = object(services(&c, routes(60, 40)));
        let desired = desired_object(&c, kept_weights(&c, &current), &Carried::default());
        assert!(takeover::contained(&desired["spec"], &current.data["spec"]));
    }
}
