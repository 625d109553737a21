//! APISIX router (`apisix`): Flagger's `ApisixRouter`. From the ApisixRoute named by `spec.routeRef` it
//! writes the ApisixRoute `<routeRef>-<apex>-canary` (apisix.apache.org/v2) in the canary's namespace:
//!
//! ```yaml
//! metadata: {labels: <routeRef's labels>, annotations: <routeRef's annotations>}
//! spec:
//!   http:
//!   - <the routeRef http route whose backend is <apex>, as it is, with>
//!     priority: 10000
//!     backends:
//!     - {serviceName: <apex>-primary, servicePort: <its port>, weight: 100, ...its other fields}
//!     - {serviceName: <apex>-canary, servicePort: <its port>, resolveGranularity, subset, weight: 0}
//!   stream: <routeRef's stream routes>
//! ```
//!
//! Flagger's rules and errors, kept here: `apisix route selector is empty` without `routeRef`, `spec.http is
//! empty`, `Can not find <apex> backend on apisix route ...` and `only one http backend is supported`;
//! updates only when the spec differs ignoring the weights; `get_routes` reads the primary backend's weight
//! and returns `100 - primary` for the canary; `set_routes(0, 0)` fails with `no valid weights`.
//!
//! Where flagger-rs differs: the http route is copied as JSON, so fields Flagger's Go types do not know
//! survive; `reconcile` keeps the current weights instead of resetting them to 100/0; the labels and
//! annotations follow the referenced route (without `kubectl.kubernetes.io/last-applied-configuration`),
//! merged with other managers'; writes are a server-side apply under [`FIELD_MANAGER`] and a merge patch of
//! `spec.http` for the weights; `finalize` (revertOnDeletion) deletes the canary route, so the referenced
//! route serves alone again at once (a taken-over route of that name is restored instead).

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::takeover::{self, Invalid, Kind};
use super::{RouteCx, RouterError};

/// The API group of ApisixRoutes.
pub const GROUP: &str = "apisix.apache.org";
/// The API version.
pub const VERSION: &str = "v2";
/// The kind.
pub const KIND: &str = "ApisixRoute";
/// The resource (plural) name.
pub const PLURAL: &str = "apisixroutes";
/// The field manager of every ApisixRoute write.
pub const FIELD_MANAGER: &str = "flagger/router-apisix";
/// The priority of the canary route (Flagger's `maxPriority`).
pub const PRIORITY: i64 = 10000;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The ApisixRoute resource.
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

/// The APISIX router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApisixRouter;

/// The name of the referenced ApisixRoute (`spec.routeRef.name`).
pub fn route_ref(canary: &Canary) -> Result<&str, Invalid> {
    canary
        .spec
        .route_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Invalid("apisix route selector is empty".to_owned()))
}

/// `<routeRef>-<apex>-canary`.
pub fn canary_route_name(canary: &Canary) -> Result<String, Invalid> {
    Ok(format!("{}-{}-canary", route_ref(canary)?, canary.service_name()))
}

impl ApisixRouter {
    /// Creates the canary ApisixRoute from the referenced one, or updates it when its spec differs ignoring
    /// the weights (the current weights are kept).
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let reference_name = route_ref(canary)?;
        let kind = kind();
        let Some(reference) = kind.current(cx, ns, reference_name, true).await? else {
            return Err(RouterError::Invalid(format!(
                "APISIX route {reference_name}.{ns} get query error: {PLURAL}.{GROUP} \"{reference_name}\" not found"
            )));
        };
        let name = canary_route_name(canary)?;
        let current = kind.current(cx, ns, &name, true).await?;
        let routes = current
            .as_ref()
            .and_then(|c| read_routes(canary, c).ok())
            .unwrap_or(Routes::PRIMARY);
        let desired = desired_object(canary, &reference, routes, current.as_ref())?;
        if let Some(current) = &current
            && takeover::contained(&desired["spec"], &current.data["spec"])
            && !takeover::metadata_differs(&desired["metadata"], current, FIELD_MANAGER)
        {
            return Ok(());
        }
        kind.apply(cx, ns, &name, &desired).await?;
        let verb = if current.is_some() { "updated" } else { "created" };
        tracing::info!(canary = %canary.key(), "APISIX route {name}.{ns} {verb}");
        Ok(())
    }

    /// Reads the weights from the cached canary ApisixRoute.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let current = self.existing(cx).await?;
        Ok(read_routes(cx.canary, &current)?)
    }

    /// Writes the weights of the primary and canary backends (`spec.http`).
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        if routes.primary == 0 && routes.canary == 0 {
            return Err(RouterError::Invalid(format!(
                "RoutingRule {}.{ns} update failed: no valid weights",
                canary.service_name()
            )));
        }
        let current = self.existing(cx).await?;
        let http = weighted_http(canary, &current, routes)?;
        let name = canary_route_name(canary)?;
        kind()
            .merge(cx, ns, &name, &json!({"spec": {"http": http}}))
            .await
    }

    /// Deletes the canary ApisixRoute (revertOnDeletion), or restores it when the router took it over.
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let name = canary_route_name(canary)?;
        let kind = kind();
        if takeover::restore(cx, &kind, ns, &name).await? {
            return Ok(());
        }
        if kind.current(cx, ns, &name, true).await?.is_some() {
            kind.delete(cx, ns, &name).await?;
            tracing::info!(canary = %canary.key(), "APISIX route {name}.{ns} deleted");
        }
        Ok(())
    }

    async fn existing(&self, cx: &RouteCx<'_>) -> Result<DynamicObject, RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let name = canary_route_name(canary)?;
        kind().current(cx, ns, &name, false).await?.ok_or_else(|| {
            RouterError::Invalid(format!(
                "apisix route {name}.{ns} query error: {PLURAL}.{GROUP} \"{name}\" not found"
            ))
        })
    }
}

fn has_backend(route: &Value, service: &str) -> bool {
    route["backends"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["serviceName"].as_str() == Some(service)))
}

/// The index of the first http route with a backend named `service` (Flagger's `getTargetHttpRoute`).
fn target_index(canary: &Canary, route: &DynamicObject, service: &str) -> Result<usize, Invalid> {
    route.data["spec"]["http"]
        .as_array()
        .and_then(|http| http.iter().position(|r| has_backend(r, service)))
        .ok_or_else(|| {
            Invalid(format!(
                "Can not find {service} backend on apisix route {}.{} ",
                canary
                    .spec
                    .route_ref
                    .as_ref()
                    .map(|r| r.name.as_str())
                    .unwrap_or_default(),
                canary.metadata.namespace.as_deref().unwrap_or_default()
            ))
        })
}

/// The spec of the canary route built from the referenced route, with the weights `routes`.
pub fn desired_spec(canary: &Canary, reference: &DynamicObject, routes: Routes) -> Result<Value, Invalid> {
    let reference_name = route_ref(canary)?;
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let http = reference.data["spec"]["http"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if http.is_empty() {
        return Err(Invalid(format!(
            "APISIX route {reference_name}.{ns}'s spec.http is empty"
        )));
    }
    let mut target = http[target_index(canary, reference, canary.service_name())?].clone();
    let backends = target["backends"].as_array().cloned().unwrap_or_default();
    let [backend] = backends.as_slice() else {
        return Err(Invalid(format!(
            "APISIX route {reference_name}.{ns}'s http route {} only one http backend is supported",
            target["name"].as_str().unwrap_or_default()
        )));
    };
    target["priority"] = json!(PRIORITY);
    let mut primary = backend.clone();
    primary["serviceName"] = json!(canary.primary_service_name());
    primary["weight"] = json!(routes.primary);
    let mut canary_backend = serde_json::Map::new();
    canary_backend.insert("serviceName".into(), json!(canary.canary_service_name()));
    canary_backend.insert("servicePort".into(), backend["servicePort"].clone());
    for key in ["resolveGranularity", "subset"] {
        if let Some(v) = backend
            .get(key)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            canary_backend.insert(key.into(), v.clone());
        }
    }
    canary_backend.insert("weight".into(), json!(routes.canary));
    target["backends"] = json!([primary, Value::Object(canary_backend)]);
    let mut spec = serde_json::Map::new();
    spec.insert("http".into(), json!([target]));
    if let Some(stream) = reference.data["spec"].get("stream").filter(|s| !s.is_null()) {
        spec.insert("stream".into(), stream.clone());
    }
    Ok(Value::Object(spec))
}

/// The whole canary ApisixRoute as the router applies it.
pub fn desired_object(
    canary: &Canary,
    reference: &DynamicObject,
    routes: Routes,
    current: Option<&DynamicObject>,
) -> Result<Value, Invalid> {
    let name = canary_route_name(canary)?;
    let labels = reference.metadata.labels.clone().unwrap_or_default();
    let annotations: BTreeMap<String, String> = reference
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != LAST_APPLIED)
        .collect();
    let carried = takeover::carried(canary, current);
    Ok(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": takeover::metadata(canary, &name, true, &labels, &annotations, &carried),
        "spec": desired_spec(canary, reference, routes)?,
    }))
}

/// The `spec.http` of `current` with the weights of the primary and canary backends set to `routes`.
pub fn weighted_http(canary: &Canary, current: &DynamicObject, routes: Routes) -> Result<Value, Invalid> {
    let primary_name = canary.primary_service_name();
    let canary_name = canary.canary_service_name();
    let index = target_index(canary, current, &primary_name)?;
    let mut http = current.data["spec"]["http"].clone();
    if let Some(backends) = http[index]["backends"].as_array_mut() {
        for b in backends {
            if b["serviceName"].as_str() == Some(primary_name.as_str()) {
                b["weight"] = json!(routes.primary);
            } else if b["serviceName"].as_str() == Some(canary_name.as_str()) {
                b["weight"] = json!(routes.canary);
            }
        }
    }
    Ok(http)
}

/// The weights as Flagger reads them: the primary backend's weight and `100 - primary` for the canary.
pub fn read_routes(canary: &Canary, current: &DynamicObject) -> Result<Routes, Invalid> {
    let primary_name = canary.primary_service_name();
    let index = target_index(canary, current, &primary_name)?;
    let primary = current.data["spec"]["http"][index]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["serviceName"].as_str() == Some(primary_name.as_str()))
        .and_then(|b| b["weight"].as_i64())
        .and_then(|w| i32::try_from(w).ok())
        .unwrap_or(0);
    Ok(Routes {
        primary,
        canary: 100 - primary,
        mirrored: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(route_ref: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "routeRef": route_ref,
                "service": {"port": 80},
            },
        }))
        .unwrap()
    }

    fn route(http: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
            "metadata": {"name": "podinfo", "namespace": "test"}, "spec": {"http": http},
        }))
        .unwrap()
    }

    fn msg(r: Result<Value, Invalid>) -> String {
        match r {
            Err(Invalid(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flaggers_errors() {
        let c =
            canary(json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"}));
        assert_eq!(
            msg(desired_spec(
                &canary(json!(null)),
                &route(json!([])),
                Routes::PRIMARY
            )),
            "apisix route selector is empty"
        );
        assert_eq!(
            msg(desired_spec(&c, &route(json!([])), Routes::PRIMARY)),
            "APISIX route podinfo.test's spec.http is empty"
        );
        assert_eq!(
            msg(desired_spec(
                &c,
                &route(json!([{"name": "r", "backends": [{"serviceName": "x"}]}])),
                Routes::PRIMARY
            )),
            "Can not find podinfo backend on apisix route podinfo.test "
        );
        let two = json!([{"name": "r", "backends": [{"serviceName": "podinfo"}, {"serviceName": "x"}]}]);
        assert_eq!(
            msg(desired_spec(&c, &route(two), Routes::PRIMARY)),
            "APISIX route podinfo.test's http route r only one http backend is supported"
        );
    }

    #[test]
    fn the_canary_route_copies_the_target_http_route() {
        let c =
            canary(json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"}));
        let reference = route(json!([
            {"name": "other", "backends": [{"serviceName": "web", "servicePort": 80}]},
            {"name": "method", "match": {"paths": ["/*"], "hosts": ["app.example.com"]},
             "plugins": [{"name": "prometheus", "enable": true}],
             "backends": [{"serviceName": "podinfo", "servicePort": 80, "resolveGranularity": "service"}]},
        ]));
        let spec = desired_spec(&c, &reference, Routes::PRIMARY).unwrap();
        assert_eq!(
            spec,
            json!({"http": [{
                "name": "method", "priority": 10000,
                "match": {"paths": ["/*"], "hosts": ["app.example.com"]},
                "plugins": [{"name": "prometheus", "enable": true}],
                "backends": [
                    {"serviceName": "podinfo-primary", "servicePort": 80, "resolveGranularity": "service", "weight": 100},
                    {"serviceName": "podinfo-canary", "servicePort": 80, "resolveGranularity": "service", "weight": 0},
                ],
            }]})
        );
        let current = route(spec["http"].clone());
        let weighted = weighted_http(
            &c,
            &current,
            Routes {
                primary: 75,
                canary: 25,
                mirrored: false,
            },
        )
        .unwrap();
        assert_eq!(weighted[0]["backends"][1]["weight"], json!(25));
        let after = route(weighted);
        assert_eq!(
            read_routes(&c, &after).unwrap(),
            Routes {
                primary: 75,
                canary: 25,
                mirrored: false
            }
        );
    }
}
