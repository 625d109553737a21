//! Gloo Edge router (`gloo` and any provider starting with `gloo`): Flagger's `GlooRouter`.
//!
//! Two Upstreams (gloo.solo.io/v1) in the canary's namespace, `<ns>-<apex>-primaryupstream-<port>` and
//! `<ns>-<apex>-canaryupstream-<port>`, each `spec.kube{serviceName: <apex>-primary|-canary, serviceNamespace,
//! servicePort, selector: <that Service's selector>}` plus the settings of the Upstream named by
//! `spec.upstreamRef` (labels, sslConfig, circuitBreakers, connectionConfig, loadBalancerConfig, useHttp2,
//! initialStreamWindowSize, initialConnectionWindowSize, httpProxyHostName). An existing Upstream only gets
//! `spec.loadBalancerConfig` replaced (merge patch, with the policies it no longer has removed) when the
//! referenced one has another. And the RouteTable `<apex>`
//! (gateway.solo.io/v1):
//!
//! ```yaml
//! spec:
//!   routes:
//!   - matchers: [{headers: [{name, value, regex}], methods: [...]}]   # A/B only (analysis.match)
//!     routeAction:
//!       multi:
//!         destinations:
//!         - {destination: {upstream: {name: <primary upstream>, namespace: <ns>}}, weight: 100}
//!         - {destination: {upstream: {name: <canary upstream>, namespace: <ns>}}}    # weight 0 omitted
//!     inheritablePathMatchers: true
//! ```
//!
//! Flagger's rules, kept here: the RouteTable carries the `service.apex` labels and annotations plus the
//! Flux toolkit annotations and an owner reference; it is updated only when it differs ignoring the weights;
//! header matchers take `exact`, or `regex` with `regex: true`; methods take `exact`; A/B has no fallback
//! route; `get_routes` needs two destinations in the first route and returns `100 - primary` for the canary;
//! `set_routes(0, 0)` fails with `no valid weights`.
//!
//! Where flagger-rs differs: `reconcile` keeps the current weights instead of resetting them; headers are
//! sorted by name (Go iterates a map); a RouteTable without routes is an error instead of a panic; the
//! Upstream labels are not filtered by `-include-label-prefix` (the router does not get the flag; with its
//! default Flagger copies none, so none are copied); writes are server-side applies under [`FIELD_MANAGER`]
//! and merge patches; a taken-over RouteTable is restored by `finalize`.

use flagger_api::Canary;
use flagger_core::machine::Routes;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Map, Value, json};

use super::takeover::{self, Carried, Invalid, Kind};
use super::{RouteCx, RouterError};

/// The API group of RouteTables.
pub const ROUTE_TABLE_GROUP: &str = "gateway.solo.io";
/// The API group of Upstreams.
pub const UPSTREAM_GROUP: &str = "gloo.solo.io";
/// The API version of both.
pub const VERSION: &str = "v1";
/// The field manager of every Gloo write.
pub const FIELD_MANAGER: &str = "flagger/router-gloo";

/// The RouteTable resource.
pub fn route_table_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(ROUTE_TABLE_GROUP, VERSION, "RouteTable"),
        "routetables",
    )
}

/// The Upstream resource.
pub fn upstream_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(UPSTREAM_GROUP, VERSION, "Upstream"),
        "upstreams",
    )
}

fn route_tables() -> Kind {
    Kind {
        resource: route_table_resource(),
        namespaced: true,
        field_manager: FIELD_MANAGER,
    }
}

fn upstreams() -> Kind {
    Kind {
        resource: upstream_resource(),
        namespaced: true,
        field_manager: FIELD_MANAGER,
    }
}

/// The Upstream settings copied from `upstreamRef`.
const COPIED: [&str; 9] = [
    "labels",
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostName",
];

/// The Gloo router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlooRouter;

/// `<ns>-<apex>-primaryupstream-<port>` (`canary` false) or `<ns>-<apex>-canaryupstream-<port>`.
pub fn upstream_name(canary: &Canary, is_canary: bool) -> String {
    format!(
        "{}-{}-{}upstream-{}",
        canary.metadata.namespace.as_deref().unwrap_or_default(),
        canary.service_name(),
        if is_canary { "canary" } else { "primary" },
        canary.spec.service.port
    )
}

impl GlooRouter {
    /// Creates the two Upstreams (or syncs their load balancer config) and creates or updates the RouteTable
    /// without touching its weights.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let config = self.config_upstream(cx).await?;
        for is_canary in [false, true] {
            self.upstream(cx, is_canary, config.as_ref()).await.map_err(|e| {
                let which = if is_canary { "canary" } else { "primary" };
                match e {
                    RouterError::Invalid(m) => {
                        RouterError::Invalid(format!("error creating flagger {which} upstream: {m}"))
                    }
                    other => other,
                }
            })?;
        }
        let apex = canary.service_name();
        let kind = route_tables();
        let current = kind.current(cx, ns, apex, true).await?;
        let carried = takeover::carried(canary, current.as_ref());
        let routes = current
            .as_ref()
            .and_then(|c| read_routes(canary, c).ok())
            .unwrap_or(Routes::PRIMARY);
        let desired = desired_route_table(canary, routes, &carried);
        if let Some(current) = &current
            && takeover::contained(&desired["spec"], &current.data["spec"])
            && !takeover::metadata_differs(&desired["metadata"], current, FIELD_MANAGER)
        {
            return Ok(());
        }
        kind.apply(cx, ns, apex, &desired).await?;
        let verb = if current.is_some() { "updated" } else { "created" };
        tracing::info!(canary = %canary.key(), "RouteTable {apex}.{ns} {verb}");
        Ok(())
    }

    /// The Upstream named by `spec.upstreamRef` (from the watch cache, else the API server).
    async fn config_upstream(&self, cx: &RouteCx<'_>) -> Result<Option<DynamicObject>, RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let Some(reference) = &canary.spec.upstream_ref else {
            return Ok(None);
        };
        let ref_ns = reference
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(ns);
        match upstreams().current(cx, ref_ns, &reference.name, true).await? {
            Some(u) => Ok(Some(u)),
            None => Err(RouterError::Invalid(format!(
                "config upstream {}.{ns} get query error: upstreams.{UPSTREAM_GROUP} \"{}\" not found",
                reference.name, reference.name
            ))),
        }
    }

    /// Creates the primary or canary Upstream, or syncs its `loadBalancerConfig` with the referenced one.
    async fn upstream(
        &self,
        cx: &RouteCx<'_>,
        is_canary: bool,
        config: Option<&DynamicObject>,
    ) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let name = upstream_name(canary, is_canary);
        let kind = upstreams();
        if let Some(current) = kind.current(cx, ns, &name, true).await? {
            let wanted = config
                .and_then(|c| c.data["spec"].get("loadBalancerConfig"))
                .filter(|v| !v.is_null());
            if let Some(lb) = wanted
                && current.data["spec"].get("loadBalancerConfig") != Some(lb)
            {
                // A policy the referenced upstream no longer has is removed (a plain merge would keep it
                // beside the new one, as Flagger's patch does).
                let mut lb = lb.clone();
                if let (Some(new), Some(old)) = (
                    lb.as_object_mut(),
                    current.data["spec"]["loadBalancerConfig"].as_object(),
                ) {
                    for key in old.keys() {
                        new.entry(key.clone()).or_insert(Value::Null);
                    }
                }
                let patch = json!({"spec": {"loadBalancerConfig": lb}});
                kind.merge(cx, ns, &name, &patch).await?;
            }
            return Ok(());
        }
        let service_name = if is_canary {
            canary.canary_service_name()
        } else {
            canary.primary_service_name()
        };
        let services: Api<Service> = Api::namespaced(cx.client.clone(), ns);
        let service = services.get(&service_name).await.map_err(RouterError::kube(
            "read",
            "Service",
            ns,
            &service_name,
        ))?;
        let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
        let object = desired_upstream(canary, is_canary, &json!(selector), config);
        cx.gate.check()?;
        let object: DynamicObject = serde_json::from_value(object)
            .map_err(|e| RouterError::Invalid(format!("upstream {name}: {e}")))?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match kind.api(cx, ns).create(&params, &object).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
            Err(e) => Err(kind.error("create", ns, &name)(e)),
        }
    }

    /// Reads the weights from the cached RouteTable.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let current = self.existing(cx, "get query error").await?;
        Ok(read_routes(cx.canary, &current)?)
    }

    /// Writes the weights (`spec.routes`, rebuilt as Flagger does).
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        if routes.primary == 0 && routes.canary == 0 {
            return Err(RouterError::Invalid(format!(
                "RoutingRule {apex}.{ns} update failed: no valid weights"
            )));
        }
        self.existing(cx, "query error").await?;
        let patch = json!({"spec": route_table_spec(canary, routes)});
        route_tables().merge(cx, ns, apex, &patch).await
    }

    /// Restores a RouteTable that existed before the canary (revertOnDeletion). The objects the router
    /// created are owned by the Canary and left to the garbage collector.
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let ns = takeover::namespace(cx.canary)?;
        takeover::restore(cx, &route_tables(), ns, cx.canary.service_name()).await?;
        Ok(())
    }

    async fn existing(&self, cx: &RouteCx<'_>, what: &str) -> Result<DynamicObject, RouterError> {
        let canary = cx.canary;
        let ns = takeover::namespace(canary)?;
        let apex = canary.service_name();
        route_tables().current(cx, ns, apex, false).await?.ok_or_else(|| {
            RouterError::Invalid(format!(
                "RouteTable {apex}.{ns} {what}: routetables.{ROUTE_TABLE_GROUP} \"{apex}\" not found"
            ))
        })
    }
}

/// The Upstream the router creates: the copied settings of `config` and `spec.kube` for the primary or
/// canary Service with `selector`.
pub fn desired_upstream(
    canary: &Canary,
    is_canary: bool,
    selector: &Value,
    config: Option<&DynamicObject>,
) -> Value {
    let mut spec = Map::new();
    if let Some(config) = config {
        for key in COPIED {
            if let Some(v) = config.data["spec"].get(key).filter(|v| !v.is_null()) {
                spec.insert(key.to_owned(), v.clone());
            }
        }
    }
    let mut kube = Map::new();
    let service = if is_canary {
        canary.canary_service_name()
    } else {
        canary.primary_service_name()
    };
    kube.insert("serviceName".into(), service.into());
    kube.insert(
        "serviceNamespace".into(),
        canary.metadata.namespace.clone().unwrap_or_default().into(),
    );
    if canary.spec.service.port != 0 {
        kube.insert("servicePort".into(), canary.spec.service.port.into());
    }
    if selector.as_object().is_some_and(|s| !s.is_empty()) {
        kube.insert("selector".into(), selector.clone());
    }
    spec.insert("kube".into(), Value::Object(kube));
    let carried = Carried {
        owner_reference: takeover::owner_reference(canary),
        original_configuration: None,
    };
    let mut metadata = takeover::metadata(
        canary,
        &upstream_name(canary, is_canary),
        true,
        &Default::default(),
        &Default::default(),
        &carried,
    );
    if let Some(obj) = metadata.as_object_mut() {
        obj.remove("annotations");
    }
    json!({
        "apiVersion": format!("{UPSTREAM_GROUP}/{VERSION}"),
        "kind": "Upstream",
        "metadata": metadata,
        "spec": spec,
    })
}

/// Flagger's matchers for `analysis.match`: one matcher with the header matchers (`exact`, or `regex` with
/// `regex: true`; sorted by name) and the methods (`exact`), or none.
pub fn matchers(canary: &Canary) -> Option<Value> {
    let mut headers = Vec::new();
    let mut methods = Vec::new();
    for m in canary
        .analysis()
        .and_then(|a| a.match_.as_deref())
        .unwrap_or_default()
    {
        for (name, sm) in m.headers.iter().flatten() {
            let mut h = Map::new();
            h.insert("name".into(), name.clone().into());
            match sm.regex.as_deref().filter(|r| !r.is_empty()) {
                Some(regex) => {
                    h.insert("value".into(), regex.into());
                    h.insert("regex".into(), true.into());
                }
                None => {
                    if let Some(exact) = sm.exact.as_deref().filter(|e| !e.is_empty()) {
                        h.insert("value".into(), exact.into());
                    }
                }
            }
            headers.push(Value::Object(h));
        }
        if let Some(method) = &m.method {
            methods.push(Value::from(method.exact.clone().unwrap_or_default()));
        }
    }
    if headers.is_empty() && methods.is_empty() {
        return None;
    }
    let mut matcher = Map::new();
    if !headers.is_empty() {
        matcher.insert("headers".into(), Value::Array(headers));
    }
    if !methods.is_empty() {
        matcher.insert("methods".into(), Value::Array(methods));
    }
    Some(json!([matcher]))
}

fn destination(canary: &Canary, is_canary: bool, weight: i32) -> Value {
    let mut d = Map::new();
    d.insert(
        "destination".into(),
        json!({"upstream": {"name": upstream_name(canary, is_canary), "namespace": canary.metadata.namespace}}),
    );
    // Go's uint32 with omitempty.
    if weight != 0 {
        d.insert("weight".into(), weight.into());
    }
    Value::Object(d)
}

/// The RouteTable spec with the weights `routes`.
pub fn route_table_spec(canary: &Canary, routes: Routes) -> Value {
    let mut route = Map::new();
    if let Some(m) = matchers(canary) {
        route.insert("matchers".into(), m);
    }
    route.insert(
        "routeAction".into(),
        json!({"multi": {"destinations": [
            destination(canary, false, routes.primary),
            destination(canary, true, routes.canary),
        ]}}),
    );
    route.insert("inheritablePathMatchers".into(), true.into());
    json!({"routes": [route]})
}

/// The whole RouteTable as the router applies it.
pub fn desired_route_table(canary: &Canary, routes: Routes, carried: &Carried) -> Value {
    json!({
        "apiVersion": format!("{ROUTE_TABLE_GROUP}/{VERSION}"),
        "kind": "RouteTable",
        "metadata": takeover::apex_metadata(canary, canary.service_name(), true, carried),
        "spec": route_table_spec(canary, routes),
    })
}

/// The weights as Flagger reads them from the first route: the primary upstream's weight and `100 -
/// primary`; an error with fewer than two destinations.
pub fn read_routes(canary: &Canary, current: &DynamicObject) -> Result<Routes, Invalid> {
    let destinations = current.data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if destinations.len() < 2 {
        return Err(Invalid(format!(
            "RouteTable {}.{} destinations not found",
            canary.service_name(),
            canary.metadata.namespace.as_deref().unwrap_or_default()
        )));
    }
    let primary_name = upstream_name(canary, false);
    Ok(
        match destinations
            .iter()
            .find(|d| d["destination"]["upstream"]["name"].as_str() == Some(primary_name.as_str()))
        {
            Some(d) => {
                let primary = d["weight"]
                    .as_i64()
                    .and_then(|w| i32::try_from(w).ok())
                    .unwrap_or(0);
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
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": analysis,
            },
        }))
        .unwrap()
    }

    #[test]
    fn upstream_names() {
        let c = canary(json!({}));
        assert_eq!(upstream_name(&c, false), "test-podinfo-primaryupstream-9898");
        assert_eq!(upstream_name(&c, true), "test-podinfo-canaryupstream-9898");
    }

    #[test]
    fn ab_matchers_from_headers_and_methods() {
        let c = canary(json!({"match": [
            {"headers": {"x-canary": {"exact": "insider"}, "user-agent": {"regex": ".*Firefox.*"}}},
            {"method": {"exact": "GET"}},
        ]}));
        assert_eq!(
            matchers(&c),
            Some(json!([{
                "headers": [
                    {"name": "user-agent", "value": ".*Firefox.*", "regex": true},
                    {"name": "x-canary", "value": "insider"},
                ],
                "methods": ["GET"],
            }]))
        );
        assert_eq!(matchers(&canary(json!({}))), None);
    }

    #[test]
    fn zero_weights_are_omitted_and_read_back() {
        let c = canary(json!({}));
        let spec = route_table_spec(&c, Routes::PRIMARY);
        let dests = &spec["routes"][0]["routeAction"]["multi"]["destinations"];
        assert_eq!(dests[0]["weight"], json!(100));
        assert!(dests[1].get("weight").is_none());
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.solo.io/v1", "kind": "RouteTable",
            "metadata": {"name": "podinfo"}, "spec": spec,
        }))
        .unwrap();
        assert_eq!(read_routes(&c, &obj).unwrap(), Routes::PRIMARY);
    }

    #[test]
    fn upstreams_copy_the_referenced_settings() {
        let c = canary(json!({}));
        let config: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "metadata": {"name": "cfg"},
            "spec": {"connectionConfig": {"maxRequestsPerConnection": 1}, "useHttp2": true,
                     "kube": {"serviceName": "nope"}, "discoveryMetadata": {}},
        }))
        .unwrap();
        let u = desired_upstream(&c, true, &json!({"app": "podinfo"}), Some(&config));
        assert_eq!(
            u["spec"],
            json!({
                "connectionConfig": {"maxRequestsPerConnection": 1}, "useHttp2": true,
                "kube": {"serviceName": "podinfo-canary", "serviceNamespace": "test", "servicePort": 9898,
                         "selector": {"app": "podinfo"}},
            })
        );
        assert_eq!(u["metadata"]["ownerReferences"][0]["kind"], json!("Canary"));
    }
}
