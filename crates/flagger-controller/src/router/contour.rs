//! Contour router (`contour`), Flagger's `ContourRouter`.
//!
//! The `HTTPProxy` (projectcontour.io/v1) is named after the apex Service and lives in the canary's
//! namespace:
//!
//! ```yaml
//! metadata: {labels: <service.apex.labels>, annotations: <service.apex.annotations + Flux toolkit>}
//! spec:
//!   ingressClassName: <-ingress-class, when set>
//!   routes:
//!   - conditions: [{prefix: <service.match[0].uri.prefix or />}]
//!     timeoutPolicy: {response: <service.timeout>, idle: 5m}               # when service.timeout is set
//!     retryPolicy: {count: <attempts>, perTryTimeout: <..>, retryOn: [..]}  # when service.retries is set
//!     services:
//!     - name: <apex>-primary
//!       port: <service.port>
//!       weight: 100
//!       requestHeadersPolicy: {set: [{name: l5d-dst-override, value: <apex>-primary.<ns>.svc.cluster.local:<port>}]}
//!     - name: <apex>-canary   # weight 0 is omitted, as Go's omitempty does
//!       ...
//! ```
//!
//! A/B (`analysis.match`): the first route has one condition per analysis header, `{prefix, header: {name,
//! exact}}` (`contains` for a `suffix` or `prefix` match), with the weights; a second route with the default
//! prefix condition sends everything else to the primary (100/0).
//!
//! Flagger's rules, kept here: the proxy is rewritten (weights back to 100/0) when its routes differ ignoring
//! the weights or the apex labels/annotations are missing; `get_routes` reads the primary weight of the first
//! route (the canary gets the rest) and fails without two services (`HTTPProxy <apex>.<ns> services not
//! found`); `set_routes(0, 0)` fails (`HTTPProxy <apex>.<ns> update failed: no valid weights`).
//!
//! Where flagger-rs differs:
//!
//! - Writes are server-side applies under [`FIELD_MANAGER`] of only what the router owns (`spec.routes`,
//!   `spec.ingressClassName`, the apex labels/annotations), so a user's `virtualhost`, `includes`, labels
//!   and annotations survive (Flagger replaces the whole spec and all labels/annotations).
//! - Takeover is revertible: the first write to a proxy the router did not create stores its `routes` and
//!   `ingressClassName` in [`ORIGINAL_CONFIGURATION_ANNOTATION`]; `finalize` puts them back (Flagger's
//!   `Finalize` does nothing). A proxy the router created is owned by the Canary and goes with it.
//! - An empty `service.retries.retryOn` is omitted (Go writes `retryOn: [""]`, which Contour rejects).
//! - Header conditions come out sorted by header name (Go iterates a map in random order).

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use flagger_core::services::TOOLKIT_ANNOTATIONS;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::takeover::{Kind, namespace};
use super::{RouteCx, RouterError};

/// The API group.
pub const GROUP: &str = "projectcontour.io";
/// The kind.
pub const KIND: &str = "HTTPProxy";
/// The field manager of every write.
pub const FIELD_MANAGER: &str = "flagger/router-contour";
/// Where the routes of a taken-over proxy are kept for `finalize`.
pub const ORIGINAL_CONFIGURATION_ANNOTATION: &str = "flagger.kubernetes.io/original-configuration";

/// The resource of HTTPProxies.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", KIND), "httpproxies")
}

/// The Contour router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContourRouter {
    ingress_class: String,
}

impl ContourRouter {
    /// The router setting `spec.ingressClassName` to `ingress_class` (`-ingress-class`) when not empty.
    pub fn new(ingress_class: &str) -> Self {
        Self {
            ingress_class: ingress_class.to_owned(),
        }
    }

    /// The spec Flagger writes for `routes`.
    pub fn desired_spec(&self, canary: &Canary, routes: Routes) -> Value {
        let prefix_condition = json!([{"prefix": super::route_prefix(canary)}]);
        let analysis_match = canary
            .analysis()
            .map(|a| a.match_conditions())
            .unwrap_or_default();
        let route_list = if analysis_match.is_empty() {
            vec![route(canary, prefix_condition, routes)]
        } else {
            vec![
                route(canary, Value::Array(header_conditions(canary)), routes),
                route(canary, prefix_condition, Routes::PRIMARY),
            ]
        };
        let mut spec = json!({ "routes": route_list });
        if !self.ingress_class.is_empty() {
            spec["ingressClassName"] = json!(self.ingress_class);
        }
        spec
    }

    /// The apex labels and annotations (plus the Flux toolkit annotations).
    pub fn desired_metadata(canary: &Canary) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let apex = canary.spec.service.apex.as_ref();
        let labels = apex.and_then(|a| a.labels.clone()).unwrap_or_default();
        let mut annotations = apex.and_then(|a| a.annotations.clone()).unwrap_or_default();
        for (k, v) in TOOLKIT_ANNOTATIONS {
            annotations.insert(k.to_owned(), v.to_owned());
        }
        (labels, annotations)
    }

    /// The object applied for `routes`: what this router owns of the proxy. `current` is the proxy as it
    /// is (None: it does not exist yet); the owner reference is written on creation and kept afterwards,
    /// and a taken-over proxy carries its original routes in [`ORIGINAL_CONFIGURATION_ANNOTATION`].
    pub fn desired(&self, canary: &Canary, routes: Routes, current: Option<&DynamicObject>) -> Value {
        let (labels, mut annotations) = Self::desired_metadata(canary);
        let owner = flagger_k8s::owner_reference(canary);
        let owned = match current {
            None => true,
            Some(current) => owner
                .as_ref()
                .is_some_and(|o| current.owner_references().iter().any(|r| r.uid == o.uid)),
        };
        if let Some(current) = current.filter(|_| !owned) {
            let original = match current.annotations().get(ORIGINAL_CONFIGURATION_ANNOTATION) {
                Some(stored) => stored.clone(),
                None => original_configuration(current),
            };
            annotations.insert(ORIGINAL_CONFIGURATION_ANNOTATION.to_owned(), original);
        }
        let mut metadata = json!({
            "name": canary.service_name(),
            "namespace": canary.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
        });
        if owned && let Some(owner) = owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": KIND,
            "metadata": metadata,
            "spec": self.desired_spec(canary, routes),
        })
    }

    /// Whether `current` needs a rewrite: routes differing ignoring the weights, another ingress class, or
    /// a desired label/annotation missing.
    pub fn differs(&self, canary: &Canary, current: &DynamicObject) -> bool {
        let desired = self.desired_spec(canary, Routes::PRIMARY);
        let spec = current.data.get("spec").cloned().unwrap_or(Value::Null);
        if without_weights(&desired["routes"]) != without_weights(&spec["routes"]) {
            return true;
        }
        if !self.ingress_class.is_empty() && spec["ingressClassName"] != json!(self.ingress_class) {
            return true;
        }
        let (labels, annotations) = Self::desired_metadata(canary);
        let missing = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
            want.iter().any(|(k, v)| have.get(k) != Some(v))
        };
        missing(&labels, current.labels()) || missing(&annotations, current.annotations())
    }

    /// The proxy from the watch cache or, when the cache has not seen it and `live_fallback` is set, from the
    /// API server: a user's proxy created a moment ago must be taken over, not overwritten as if new.
    async fn cached(
        &self,
        cx: &RouteCx<'_>,
        live_fallback: bool,
    ) -> Result<Option<DynamicObject>, RouterError> {
        let kind = Kind {
            resource: api_resource(),
            namespaced: true,
            field_manager: FIELD_MANAGER,
        };
        kind.current(cx, namespace(cx.canary)?, cx.canary.service_name(), live_fallback)
            .await
    }

    async fn apply(&self, cx: &RouteCx<'_>, object: &Value) -> Result<(), RouterError> {
        let ns = namespace(cx.canary)?;
        let apex = cx.canary.service_name();
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &api_resource());
        cx.gate.check()?;
        api.patch(
            apex,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(RouterError::kube("apply", KIND, ns, apex))?;
        Ok(())
    }

    /// Creates the proxy, or rewrites what this router owns of it when it differs (see the module doc).
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let current = self.cached(cx, true).await?;
        if let Some(current) = &current
            && !self.differs(cx.canary, current)
        {
            return Ok(());
        }
        let object = self.desired(cx.canary, Routes::PRIMARY, current.as_ref());
        self.apply(cx, &object).await?;
        let (ns, apex) = (namespace(cx.canary)?, cx.canary.service_name());
        let verb = if current.is_some() { "updated" } else { "created" };
        tracing::info!(canary = %cx.canary.key(), "HTTPProxy {apex}.{ns} {verb}");
        Ok(())
    }

    /// Reads the weights of the first route of the cached proxy.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let ns = namespace(cx.canary)?;
        let apex = cx.canary.service_name();
        let current = self.cached(cx, false).await?.ok_or_else(|| {
            RouterError::Invalid(format!(
                "HTTPProxy {apex}.{ns} get query error httpproxies.projectcontour.io \"{apex}\" not found"
            ))
        })?;
        read_routes(cx.canary, &current).map_err(RouterError::Invalid)
    }

    /// Writes the weights.
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let ns = namespace(cx.canary)?;
        let apex = cx.canary.service_name();
        if routes.primary == 0 && routes.canary == 0 {
            return Err(RouterError::Invalid(format!(
                "HTTPProxy {apex}.{ns} update failed: no valid weights"
            )));
        }
        let current = self.cached(cx, false).await?.ok_or_else(|| {
            RouterError::Invalid(format!(
                "HTTPProxy {apex}.{ns} query error: httpproxies.projectcontour.io \"{apex}\" not found"
            ))
        })?;
        let object = self.desired(cx.canary, routes, Some(&current));
        self.apply(cx, &object).await
    }

    /// Puts back the routes and ingress class of a taken-over proxy (nothing for a proxy this router
    /// created, which goes with the Canary).
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let ns = namespace(cx.canary)?;
        let apex = cx.canary.service_name();
        let Some(current) = self.cached(cx, true).await? else {
            return Ok(());
        };
        let Some(stored) = current.annotations().get(ORIGINAL_CONFIGURATION_ANNOTATION) else {
            return Ok(());
        };
        let original: Value = serde_json::from_str(stored).map_err(|e| {
            RouterError::Invalid(format!(
                "HTTPProxy {apex}.{ns} {ORIGINAL_CONFIGURATION_ANNOTATION} is not valid JSON: {e}"
            ))
        })?;
        // Give up ownership of everything, then restore the original fields as a plain update.
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &api_resource());
        cx.gate.check()?;
        let release = json!({"apiVersion": format!("{GROUP}/v1"), "kind": KIND, "metadata": {"name": apex, "namespace": ns}});
        api.patch(
            apex,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&release),
        )
        .await
        .map_err(RouterError::kube("apply", KIND, ns, apex))?;
        let patch = json!({
            "metadata": {"annotations": {ORIGINAL_CONFIGURATION_ANNOTATION: null}},
            "spec": {
                "routes": original.get("routes").cloned().unwrap_or(Value::Null),
                "ingressClassName": original.get("ingressClassName").cloned().unwrap_or(Value::Null),
            },
        });
        cx.gate.check()?;
        api.patch(
            apex,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(RouterError::kube("update", KIND, ns, apex))?;
        tracing::info!(canary = %cx.canary.key(), "HTTPProxy {apex}.{ns} restored");
        Ok(())
    }
}

/// `{"routes": .., "ingressClassName": ..}` of a proxy as JSON (absent fields left out).
fn original_configuration(current: &DynamicObject) -> String {
    let mut original = Map::new();
    for field in ["routes", "ingressClassName"] {
        if let Some(v) = current.data.get("spec").and_then(|s| s.get(field)) {
            original.insert(field.to_owned(), v.clone());
        }
    }
    Value::Object(original).to_string()
}

/// The weights of a proxy: the primary weight of the first route; the canary gets the rest.
pub fn read_routes(canary: &Canary, proxy: &DynamicObject) -> Result<Routes, String> {
    let apex = canary.service_name();
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let services = proxy
        .data
        .pointer("/spec/routes/0/services")
        .and_then(Value::as_array)
        .filter(|s| s.len() >= 2)
        .ok_or_else(|| format!("HTTPProxy {apex}.{ns} services not found"))?;
    let primary_name = format!("{apex}-primary");
    let mut routes = Routes {
        primary: 0,
        canary: 0,
        mirrored: false,
    };
    if let Some(primary) = services.iter().find(|s| s["name"] == primary_name.as_str()) {
        let weight = primary["weight"].as_i64().unwrap_or(0);
        routes.primary = i32::try_from(weight)
            .map_err(|_| format!("HTTPProxy {apex}.{ns} weight {weight} out of range"))?;
        routes.canary = 100 - routes.primary;
    }
    Ok(routes)
}

/// The routes with the service weights removed.
fn without_weights(routes: &Value) -> Value {
    let mut routes = routes.clone();
    for route in routes.as_array_mut().into_iter().flatten() {
        for service in route
            .get_mut("services")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(s) = service.as_object_mut() {
                s.remove("weight");
            }
        }
    }
    routes
}

/// One condition per analysis header: `exact`, or `contains` for a suffix (then prefix) match.
fn header_conditions(canary: &Canary) -> Vec<Value> {
    let prefix = super::route_prefix(canary);
    let mut out = Vec::new();
    for m in canary
        .analysis()
        .map(|a| a.match_conditions())
        .unwrap_or_default()
    {
        for (name, matcher) in m.headers.iter().flatten() {
            let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
            let mut header = json!({ "name": name });
            if let Some(contains) = nonempty(&matcher.prefix).or_else(|| nonempty(&matcher.suffix)) {
                header["contains"] = json!(contains);
            } else if let Some(exact) = nonempty(&matcher.exact) {
                header["exact"] = json!(exact);
            }
            out.push(json!({"prefix": prefix, "header": header}));
        }
    }
    out
}

/// One route with `conditions`, the timeout/retry policies and the two weighted services.
fn route(canary: &Canary, conditions: Value, routes: Routes) -> Value {
    let apex = canary.service_name();
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let port = canary.spec.service.port;
    let service = |name: String, weight: i32| {
        let mut s = json!({
            "name": name,
            "port": port,
            "requestHeadersPolicy": {"set": [{
                "name": "l5d-dst-override",
                "value": format!("{name}.{ns}.svc.cluster.local:{port}"),
            }]},
        });
        if weight != 0 {
            s["weight"] = json!(weight);
        }
        s
    };
    let mut route = json!({ "conditions": conditions });
    if let Some(timeout) = canary.spec.service.timeout.as_deref().filter(|t| !t.is_empty()) {
        route["timeoutPolicy"] = json!({"response": timeout, "idle": "5m"});
    }
    if let Some(retries) = &canary.spec.service.retries {
        let mut policy = json!({ "count": retries.attempts.unwrap_or(0) });
        if let Some(t) = retries.per_try_timeout.as_deref().filter(|t| !t.is_empty()) {
            policy["perTryTimeout"] = json!(t);
        }
        if let Some(on) = retries.retry_on.as_deref().filter(|o| !o.is_empty()) {
            policy["retryOn"] = json!(on.split(',').collect::<Vec<_>>());
        }
        route["retryPolicy"] = policy;
    }
    route["services"] = json!([
        service(format!("{apex}-primary"), routes.primary),
        service(format!("{apex}-canary"), routes.canary),
    ]);
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(service: Value, analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "uid-1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": analysis,
            },
        }))
        .unwrap()
    }

    #[test]
    fn the_weighted_route_with_policies() {
        let c = canary(
            json!({"port": 9898, "timeout": "15s", "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "5xx,gateway-error"},
                   "match": [{"uri": {"prefix": "/api"}}]}),
            json!({"interval": "1m"}),
        );
        let spec = ContourRouter::new("contour").desired_spec(
            &c,
            Routes {
                primary: 75,
                canary: 25,
                mirrored: false,
            },
        );
        assert_eq!(
            spec,
            json!({"ingressClassName": "contour", "routes": [{
                "conditions": [{"prefix": "/api"}],
                "timeoutPolicy": {"response": "15s", "idle": "5m"},
                "retryPolicy": {"count": 3, "perTryTimeout": "5s", "retryOn": ["5xx", "gateway-error"]},
                "services": [
                    {"name": "podinfo-primary", "port": 9898, "weight": 75, "requestHeadersPolicy": {"set": [
                        {"name": "l5d-dst-override", "value": "podinfo-primary.test.svc.cluster.local:9898"}]}},
                    {"name": "podinfo-canary", "port": 9898, "weight": 25, "requestHeadersPolicy": {"set": [
                        {"name": "l5d-dst-override", "value": "podinfo-canary.test.svc.cluster.local:9898"}]}},
                ],
            }]})
        );
    }

    #[test]
    fn ab_header_conditions() {
        let c = canary(
            json!({"port": 80}),
            json!({"interval": "1m", "iterations": 2, "match": [
                {"headers": {"x-canary": {"exact": "insider"}, "user-agent": {"suffix": "Firefox"}}},
                {"headers": {"cookie": {"prefix": "canary"}}},
            ]}),
        );
        let spec = ContourRouter::default().desired_spec(
            &c,
            Routes {
                primary: 0,
                canary: 100,
                mirrored: false,
            },
        );
        assert_eq!(
            spec["routes"][0]["conditions"],
            json!([
                {"prefix": "/", "header": {"name": "user-agent", "contains": "Firefox"}},
                {"prefix": "/", "header": {"name": "x-canary", "exact": "insider"}},
                {"prefix": "/", "header": {"name": "cookie", "contains": "canary"}},
            ])
        );
        assert!(spec["routes"][0]["services"][0].get("weight").is_none());
        assert_eq!(spec["routes"][0]["services"][1]["weight"], 100);
        assert_eq!(spec["routes"][1]["conditions"], json!([{"prefix": "/"}]));
        assert_eq!(spec["routes"][1]["services"][0]["weight"], 100);
        assert!(spec.get("ingressClassName").is_none());
    }

    #[test]
    fn routes_are_read_from_the_first_route() {
        let c = canary(json!({"port": 80}), json!({"interval": "1m"}));
        let r = ContourRouter::default();
        let proxy = |spec: Value| -> DynamicObject {
            serde_json::from_value(json!({"metadata": {"name": "podinfo"}, "spec": spec})).unwrap()
        };
        let weighted = proxy(r.desired_spec(
            &c,
            Routes {
                primary: 60,
                canary: 40,
                mirrored: false,
            },
        ));
        assert_eq!(
            read_routes(&c, &weighted).unwrap(),
            Routes {
                primary: 60,
                canary: 40,
                mirrored: false
            }
        );
        assert_eq!(
            read_routes(&c, &proxy(json!({"routes": []}))).unwrap_err(),
            "HTTPProxy podinfo.test services not found"
        );
        assert!(!r.differs(&c, &{
            let mut p = weighted.clone();
            p.metadata.annotations = Some(ContourRouter::desired_metadata(&c).1);
            p
        }));
        assert!(r.differs(&c, &weighted), "the toolkit annotations are missing");
    }
}
