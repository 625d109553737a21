//! Istio router (`istio`, and every provider Flagger does not recognise): Flagger's `IstioRouter`.
//!
//! Three objects in the canary's namespace, all `networking.istio.io/v1beta1`:
//!
//! - the DestinationRules `<apex>-canary` and `<apex>-primary`: `spec: {host: <name>, trafficPolicy:
//!   <service.trafficPolicy>}`, with a controller owner reference to the Canary when created (no labels or
//!   annotations, as Flagger);
//! - the VirtualService `<apex>`:
//!
//! ```yaml
//! metadata:
//!   labels: <service.apex.labels>
//!   annotations: <service.apex.annotations> + the Flux toolkit annotations
//! spec:
//!   hosts: <service.hosts> + <apex> (unless the apex or `*` is listed)      # [] with delegation
//!   gateways: <service.gateways or [mesh]>                                  # [] with delegation
//!   http:
//!   - match: <service.match>
//!     rewrite: {uri, authority}
//!     timeout, retries, corsPolicy, headers: <service.*>
//!     route:
//!     - {destination: {host: <apex>-primary}, weight: 100}
//!     - {destination: {host: <apex>-canary}, weight: 0}
//! ```
//!
//! Flagger's rules, kept here:
//!
//! - a destination carries `port.number: <service.port>` only with `portDiscovery` and either a first
//!   gateway other than `mesh` or delegation;
//! - `appProtocol: tcp` (any case) writes `tcp: [{match: [{port} per service match], route}]` instead of
//!   `http` (no A/B, no mirroring, no session affinity);
//! - A/B (`analysis.match`): rule 1 matches `analysis.match × service.match` (each service match with its
//!   `headers` and `sourceLabels` replaced by the analysis match's; the analysis matches as they are without
//!   service matches) and routes to both, rule 2 matches the service matches and routes to the primary
//!   alone (with the primary weight of the step, as Flagger's `SetRoutes` writes it);
//! - mirroring: `http[0].mirror: {host: <apex>-canary}`, plus `mirrorPercentage.value: <mirrorWeight>` when
//!   it is positive;
//! - session affinity while the canary has traffic: rules `[sticky canary (Cookie regex → canary 100),
//!   sticky primary (primaryCookieName only → primary 100), weighted]`, the weighted rule's canary
//!   destination handing out the canary cookie (`Set-Cookie` response header, `Max-Age` = `maxAge`) and,
//!   with `primaryCookieName`, its primary destination the primary cookie (`Max-Age` = analysis interval);
//!   once the canary has no traffic: `[rule matching the finished run's cookie and expiring it with
//!   `Max-Age=-1`, weighted]`;
//! - `reconcile` rewrites the VirtualService only when its spec differs from the desired one ignoring the
//!   destination weights, `mirror` and `mirrorPercentage` (with session affinity also the sticky cookie
//!   rules and destination headers), or its labels/annotations lack what the apex metadata asks for. The
//!   rewrite puts the weights back to 100/0, as Flagger does. DestinationRules are rewritten when `host` or
//!   `trafficPolicy` differ;
//! - `get_routes` reads the weights from the last rule routing to `<apex>-canary` (with session affinity,
//!   from the destinations that set headers) and fails when both are 0, with Flagger's message; traffic is
//!   mirrored when that rule mirrors;
//! - a VirtualService that existed before the canary keeps its spec (the fields Flagger writes: `hosts`,
//!   `gateways`, `http`, `tcp`) in [`ORIGINAL_CONFIGURATION_ANNOTATION`], unless it carries kubectl's
//!   [`KUBECTL_ANNOTATION`]; `finalize` (revertOnDeletion) restores the spec from kubectl's annotation, or
//!   else from ours.
//!
//! Where flagger-rs differs:
//!
//! - **Writes are server-side applies** under [`FIELD_MANAGER`] of only what Flagger writes, so other
//!   managers' labels, annotations and spec fields Flagger does not model (`exportTo`, `tls`, user `tcp`
//!   routes next to Flagger's `http`, DestinationRule `subsets`, ...) survive; Flagger replaces the whole
//!   spec and the labels.
//! - **The original configuration is stored once**, when the router takes over a VirtualService it did not
//!   create; Flagger rewrites it at every spec change, so after a `service.hosts` edit it holds Flagger's own
//!   previous spec. `finalize` leaves a VirtualService the router created to the garbage collector.
//! - **Session cookies are not stored in the Canary status** (the router cannot write the status without
//!   racing the status write of the tick): the canary cookie of a run is derived from the Canary's uid and
//!   `lastAppliedSpec`, the cookie to expire is read back from the VirtualService, and cookies Go Flagger
//!   left in the status are used when present.
//! - Without a cookie to expire, the session-affinity spec has the weighted rule once (Flagger writes it
//!   twice); the expiring `Set-Cookie` goes to the expiring rule only (Flagger's shares the header map of
//!   `service.headers`, so it also lands on the weighted rule when `service.headers.response` is set); and a
//!   rule counts as a sticky cookie rule only when it matches the `Cookie` header with one of the cookie
//!   names (Flagger's check also ignores every rule with a match when `primaryCookieName` is empty).

use flagger_api::istio::{HttpMatchRequest, StringMatch};
use flagger_api::{Canary, SessionAffinity};
use flagger_core::machine::Routes;
use flagger_core::services::TOOLKIT_ANNOTATIONS;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Map, Value, json};

pub use super::cookies::Cookies;
use super::cookies::set_cookie_value;
use super::takeover::{owned_by, owner_reference};
use super::{RouteCx, RouterError};

/// The API group of VirtualServices and DestinationRules.
pub const GROUP: &str = "networking.istio.io";
/// The API version the router writes (Flagger's).
pub const VERSION: &str = "v1beta1";
/// The VirtualService kind.
pub const VIRTUAL_SERVICE: &str = "VirtualService";
/// The DestinationRule kind.
pub const DESTINATION_RULE: &str = "DestinationRule";
/// The field manager of every write (server-side apply).
pub const FIELD_MANAGER: &str = "flagger/router-istio";
/// The annotation holding the spec of a pre-existing VirtualService the router took over.
pub const ORIGINAL_CONFIGURATION_ANNOTATION: &str = "flagger.kubernetes.io/original-configuration";
/// kubectl's annotation; when present, `finalize` restores the spec it holds.
pub const KUBECTL_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

const COOKIE_HEADER: &str = "Cookie";
const SET_COOKIE_HEADER: &str = "Set-Cookie";
const MESH_GATEWAY: &str = "mesh";
/// The spec fields Flagger's Go type knows, i.e. the ones it writes, compares and restores.
const SPEC_FIELDS: [&str; 4] = ["hosts", "gateways", "http", "tcp"];
/// The fields of an HTTP route Flagger's Go type knows.
const HTTP_ROUTE_FIELDS: [&str; 12] = [
    "name",
    "match",
    "route",
    "redirect",
    "rewrite",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrorPercentage",
    "corsPolicy",
    "headers",
];

/// The VirtualService resource (`networking.istio.io/v1beta1`, `virtualservices`).
pub fn virtual_service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, VIRTUAL_SERVICE),
        "virtualservices",
    )
}

/// The DestinationRule resource (`networking.istio.io/v1beta1`, `destinationrules`).
pub fn destination_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, DESTINATION_RULE),
        "destinationrules",
    )
}

/// The canary (or a VirtualService) is not in the shape the router needs; the message is Flagger's where
/// Flagger has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IstioError(pub String);

impl From<IstioError> for RouterError {
    fn from(e: IstioError) -> Self {
        Self::Invalid(e.0)
    }
}

/// Which VirtualService spec to build.
#[derive(Clone, Copy, Debug)]
pub enum Shape<'a> {
    /// What `reconcile` creates and compares with: all traffic on the primary.
    Initial,
    /// What `set_routes` writes.
    Weighted {
        /// The weights and mirroring.
        routes: Routes,
        /// The session-affinity cookies (unused without session affinity).
        cookies: &'a Cookies,
    },
}

/// What a VirtualService write carries over from the existing object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    /// The controller reference to the Canary (on objects the router created).
    pub owner_reference: Option<Value>,
    /// The spec of a VirtualService that existed before the router took it over.
    pub original_configuration: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------
// Operations

/// Creates or updates the DestinationRules `<apex>-canary` and `<apex>-primary`, then the VirtualService.
/// Nothing is sent for an object the watch cache shows as desired.
pub async fn reconcile(cx: &RouteCx<'_>) -> Result<(), RouterError> {
    let canary = cx.canary;
    for name in [canary.canary_service_name(), canary.primary_service_name()] {
        reconcile_destination_rule(cx, &name).await?;
    }
    reconcile_virtual_service(cx).await
}

async fn reconcile_destination_rule(cx: &RouteCx<'_>, name: &str) -> Result<(), RouterError> {
    let canary = cx.canary;
    let ns = namespace(canary)?;
    let resource = destination_rule_resource();
    let spec = destination_rule_spec(canary, name);
    let Some(current) = current(cx, &resource, name).await? else {
        let object = destination_rule(canary, name, owner_reference(canary));
        apply(cx, &resource, name, &object).await?;
        tracing::info!(canary = %canary.key(), "DestinationRule {name}.{ns} created");
        return Ok(());
    };
    if !destination_rule_differs(&spec, &current.data["spec"]) {
        return Ok(());
    }
    let owner = owned_by(canary, &current)
        .then(|| owner_reference(canary))
        .flatten();
    apply(cx, &resource, name, &destination_rule(canary, name, owner)).await?;
    tracing::info!(canary = %canary.key(), "DestinationRule {name}.{ns} updated");
    Ok(())
}

async fn reconcile_virtual_service(cx: &RouteCx<'_>) -> Result<(), RouterError> {
    let canary = cx.canary;
    let ns = namespace(canary)?;
    let apex = canary.service_name();
    let resource = virtual_service_resource();
    check_delegation(canary).map_err(|e| IstioError(format!("reconcileVirtualService failed: {e}")))?;
    let spec = desired_spec(canary, Shape::Initial)?;
    let Some(current) = current(cx, &resource, apex).await? else {
        let carried = Carried {
            owner_reference: owner_reference(canary),
            original_configuration: None,
        };
        apply(cx, &resource, apex, &virtual_service(canary, spec, &carried)).await?;
        tracing::info!(canary = %canary.key(), "VirtualService {apex}.{ns} created");
        return Ok(());
    };
    let desired = virtual_service(canary, spec, &carried_from(canary, &current));
    if !spec_differs(canary, &desired["spec"], &current.data["spec"])
        && !metadata_differs(&desired["metadata"], &current)
    {
        return Ok(());
    }
    apply(cx, &resource, apex, &desired).await?;
    tracing::info!(canary = %canary.key(), "VirtualService {apex}.{ns} updated");
    Ok(())
}

/// Reads the weights from the VirtualService (the watch cache; the API server when the cache has not seen
/// it yet).
pub async fn get_routes(cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
    let canary = cx.canary;
    let Some(vs) = current(cx, &virtual_service_resource(), canary.service_name()).await? else {
        return Err(not_found(canary)?.into());
    };
    Ok(read_routes(canary, &vs.data["spec"])?)
}

/// Writes the weights (with A/B, mirroring and session affinity as the canary asks).
pub async fn set_routes(cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
    let canary = cx.canary;
    let apex = canary.service_name();
    let resource = virtual_service_resource();
    let Some(current) = current(cx, &resource, apex).await? else {
        return Err(not_found(canary)?.into());
    };
    let cookies = cookies(canary, &current.data["spec"]);
    let spec = desired_spec(
        canary,
        Shape::Weighted {
            routes,
            cookies: &cookies,
        },
    )?;
    let object = virtual_service(canary, spec, &carried_from(canary, &current));
    apply(cx, &resource, apex, &object).await
}

/// Restores a VirtualService that existed before the canary (revertOnDeletion): the spec of kubectl's
/// last-applied annotation, or else the stored original configuration, without the router's labels and
/// annotations. A VirtualService the router created is left to the garbage collector.
pub async fn finalize(cx: &RouteCx<'_>) -> Result<(), RouterError> {
    let canary = cx.canary;
    let ns = namespace(canary)?;
    let apex = canary.service_name();
    let resource = virtual_service_resource();
    let Some(current) = current(cx, &resource, apex).await? else {
        return Ok(());
    };
    if owned_by(canary, &current) {
        return Ok(());
    }
    let Some(stored) = stored_spec(canary, &current)? else {
        tracing::warn!(
            canary = %canary.key(),
            "VirtualService {apex}.{ns} original configuration not found, unable to revert"
        );
        return Ok(());
    };
    apply(cx, &resource, apex, &restored_object(canary, &stored)).await?;
    tracing::info!(canary = %canary.key(), "VirtualService {apex}.{ns} restored");
    Ok(())
}

/// The spec `finalize` restores: kubectl's last-applied spec, else the stored original configuration;
/// `None` when there is neither.
pub fn stored_spec(canary: &Canary, vs: &DynamicObject) -> Result<Option<Value>, IstioError> {
    let ns = namespace(canary)?;
    let apex = canary.service_name();
    let annotations = vs.annotations();
    let unmarshal = |key: &str| {
        IstioError(format!(
            "VirtualService {apex}.{ns} failed to unMarshal annotation {key}"
        ))
    };
    if let Some(applied) = annotations.get(KUBECTL_ANNOTATION) {
        let object: Value = serde_json::from_str(applied).map_err(|_| unmarshal(KUBECTL_ANNOTATION))?;
        if !object.is_object() {
            return Err(unmarshal(KUBECTL_ANNOTATION));
        }
        return Ok(Some(object.get("spec").cloned().unwrap_or_else(|| json!({}))));
    }
    if let Some(original) = annotations.get(ORIGINAL_CONFIGURATION_ANNOTATION) {
        let spec: Value =
            serde_json::from_str(original).map_err(|_| unmarshal(ORIGINAL_CONFIGURATION_ANNOTATION))?;
        if !spec.is_object() {
            return Err(unmarshal(ORIGINAL_CONFIGURATION_ANNOTATION));
        }
        return Ok(Some(spec));
    }
    Ok(None)
}

/// The object from the watch cache, or (when the cache has not seen it) from the API server.
async fn current(
    cx: &RouteCx<'_>,
    resource: &ApiResource,
    name: &str,
) -> Result<Option<DynamicObject>, RouterError> {
    let ns = namespace(cx.canary)?;
    let store = cx.caches.dynamic(resource, true).await?;
    if let Some(cached) = store.get(&ObjectRef::new_with(name, resource.clone()).within(ns)) {
        return Ok(Some(cached.as_ref().clone()));
    }
    let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, resource);
    api.get_opt(name)
        .await
        .map_err(RouterError::kube("read", &resource.kind, ns, name))
}

/// Applies `object` (the whole object as this router owns it) after checking the leader gate.
async fn apply(
    cx: &RouteCx<'_>,
    resource: &ApiResource,
    name: &str,
    object: &Value,
) -> Result<(), RouterError> {
    let ns = namespace(cx.canary)?;
    let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, resource);
    cx.gate.check()?;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(RouterError::kube("apply", &resource.kind, ns, name))?;
    Ok(())
}

fn namespace(canary: &Canary) -> Result<&str, IstioError> {
    canary
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| IstioError(format!("Canary {} has no namespace", canary.key())))
}

fn not_found(canary: &Canary) -> Result<IstioError, IstioError> {
    let apex = canary.service_name();
    Ok(IstioError(format!(
        "VirtualService {apex}.{} get query error virtualservices.{GROUP} \"{apex}\" not found",
        namespace(canary)?
    )))
}

fn delegation(canary: &Canary) -> bool {
    canary.spec.service.delegation == Some(true)
}

/// Flagger's refusal of a delegate VirtualService with hosts or gateways.
fn check_delegation(canary: &Canary) -> Result<(), IstioError> {
    let service = &canary.spec.service;
    let set = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if delegation(canary) && (set(&service.hosts) || set(&service.gateways)) {
        return Err(IstioError(format!(
            "VirtualService {}.{} cannot have hosts and gateways when delegation enabled",
            canary.service_name(),
            canary.metadata.namespace.as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// DestinationRules

/// The DestinationRule spec Flagger writes for `name`: `{host: <name>, trafficPolicy}`.
pub fn destination_rule_spec(canary: &Canary, name: &str) -> Value {
    let mut spec = Map::new();
    spec.insert("host".into(), name.into());
    if let Some(policy) = &canary.spec.service.traffic_policy
        && let Ok(policy) = serde_json::to_value(policy)
    {
        spec.insert("trafficPolicy".into(), policy);
    }
    Value::Object(spec)
}

/// The whole DestinationRule `name` as the router applies it.
pub fn destination_rule(canary: &Canary, name: &str, owner: Option<Value>) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    if let Some(ns) = &canary.metadata.namespace {
        metadata.insert("namespace".into(), ns.clone().into());
    }
    if let Some(owner) = owner {
        metadata.insert("ownerReferences".into(), json!([owner]));
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": DESTINATION_RULE,
        "metadata": metadata,
        "spec": destination_rule_spec(canary, name),
    })
}

/// Whether the DestinationRule's `host` or `trafficPolicy` differ from the desired ones.
pub fn destination_rule_differs(desired: &Value, current: &Value) -> bool {
    let pick = |spec: &Value| {
        let mut v = json!({"host": spec["host"], "trafficPolicy": spec["trafficPolicy"]});
        strip_empty(&mut v);
        v
    };
    pick(desired) != pick(current)
}

// ---------------------------------------------------------------------------------------------------------
// VirtualService

/// Whether the service port is Istio TCP (`appProtocol: tcp`, any case).
pub fn is_tcp(canary: &Canary) -> bool {
    canary
        .spec
        .service
        .app_protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
}

/// The VirtualService hosts: `service.hosts` plus the apex name unless the apex or `*` is listed; none with
/// delegation.
pub fn hosts(canary: &Canary) -> Vec<String> {
    if delegation(canary) {
        return Vec::new();
    }
    let apex = canary.service_name();
    let mut hosts = canary.spec.service.hosts.clone().unwrap_or_default();
    if !hosts.iter().any(|h| h == apex || h == "*") {
        hosts.push(apex.to_owned());
    }
    hosts
}

/// The VirtualService gateways: `service.gateways`, or `[mesh]` when empty; none with delegation.
pub fn gateways(canary: &Canary) -> Vec<String> {
    if delegation(canary) {
        return Vec::new();
    }
    canary.spec.service.istio_gateways()
}

/// A route destination to `host` with `weight`; with `portDiscovery`, and a first gateway other than
/// `mesh` or delegation, also the service port.
pub fn destination(canary: &Canary, host: &str, weight: i32) -> Value {
    let service = &canary.spec.service;
    let gateways = service.gateways.as_deref().unwrap_or_default();
    let with_port = service.port_discovery == Some(true)
        && (gateways.first().is_some_and(|g| g != MESH_GATEWAY) || delegation(canary));
    let mut dest = Map::new();
    dest.insert("host".into(), host.into());
    if with_port
        && let Ok(port) = u32::try_from(service.port)
        && port != 0
    {
        dest.insert("port".into(), json!({"number": port}));
    }
    json!({"destination": dest, "weight": weight})
}

/// Removes what Go's `omitempty` leaves out of the Istio types: nulls, empty strings, `false`, zero numbers,
/// empty lists and empty maps (`add`, `set` and the match maps).
fn omit_empty(v: &mut Value) -> bool {
    const MAPS: [&str; 6] = [
        "add",
        "set",
        "headers",
        "queryParams",
        "withoutHeaders",
        "sourceLabels",
    ];
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(items) => {
            items.retain_mut(omit_empty);
            !items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|k, v| {
                omit_empty(v) && !(MAPS.contains(&k.as_str()) && v.as_object().is_some_and(Map::is_empty))
            });
            true
        }
    }
}

fn go_json<T: serde::Serialize>(value: &T) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    omit_empty(&mut v);
    v
}

fn match_json(matches: &[HttpMatchRequest]) -> Value {
    Value::Array(matches.iter().map(go_json).collect())
}

/// One HTTP route with the service settings (rewrite, timeout, retries, CORS, headers), `matches` and
/// `route`.
fn http_rule(canary: &Canary, matches: &[HttpMatchRequest], route: Vec<Value>) -> Value {
    let service = &canary.spec.service;
    let mut rule = Map::new();
    if !matches.is_empty() {
        rule.insert("match".into(), match_json(matches));
    }
    if let Some(rewrite) = &service.rewrite {
        // Flagger's `GetIstioRewrite`: only the URI and the authority.
        let mut r = Map::new();
        for (key, value) in [("uri", &rewrite.uri), ("authority", &rewrite.authority)] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                r.insert(key.into(), value.into());
            }
        }
        rule.insert("rewrite".into(), Value::Object(r));
    }
    if let Some(timeout) = service.timeout.as_deref().filter(|t| !t.is_empty()) {
        rule.insert("timeout".into(), timeout.into());
    }
    if let Some(retries) = &service.retries {
        let mut r = go_json(retries);
        // `attempts` has no omitempty in Flagger's type.
        r["attempts"] = json!(retries.attempts.unwrap_or_default());
        rule.insert("retries".into(), r);
    }
    if let Some(cors) = &service.cors_policy {
        rule.insert("corsPolicy".into(), go_json(cors));
    }
    if let Some(headers) = &service.headers {
        rule.insert("headers".into(), go_json(headers));
    }
    rule.insert("route".into(), Value::Array(route));
    Value::Object(rule)
}

/// Flagger's `mergeMatchConditions`: each service match once per analysis match, with its `headers` and
/// `sourceLabels` replaced by the analysis match's when it has them; the analysis matches as they are when
/// there are no service matches.
pub fn merge_matches(analysis: &[HttpMatchRequest], service: &[HttpMatchRequest]) -> Vec<HttpMatchRequest> {
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * service.len());
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            if a.headers.is_some() {
                m.headers.clone_from(&a.headers);
            }
            if a.source_labels.is_some() {
                m.source_labels.clone_from(&a.source_labels);
            }
            merged.push(m);
        }
    }
    merged
}

/// The sticky match on the `Cookie` header: regex `.*<name>.*<value>.*` for `cookie` = `name=value`.
fn cookie_match(cookie: &str) -> HttpMatchRequest {
    let mut parts = cookie.split('=');
    let name = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    HttpMatchRequest {
        headers: Some(
            [(
                COOKIE_HEADER.to_owned(),
                StringMatch {
                    regex: Some(format!(".*{name}.*{value}.*")),
                    ..StringMatch::default()
                },
            )]
            .into(),
        ),
        ..HttpMatchRequest::default()
    }
}

fn set_cookie_headers(value: String) -> Value {
    json!({"response": {"add": {SET_COOKIE_HEADER: value}}})
}

/// The VirtualService spec Flagger writes for `canary` in the given shape (`hosts`, `gateways` and `http` or
/// `tcp`).
pub fn desired_spec(canary: &Canary, shape: Shape<'_>) -> Result<Value, IstioError> {
    let (primary, canary_host) = (canary.primary_service_name(), canary.canary_service_name());
    let routes = match shape {
        Shape::Initial => Routes::PRIMARY,
        Shape::Weighted { routes, .. } => routes,
    };
    let (pw, cw) = (routes.primary, routes.canary);
    let mut spec = Map::new();
    spec.insert("hosts".into(), json!(hosts(canary)));
    let gateways = gateways(canary);
    if !gateways.is_empty() || delegation(canary) {
        // An explicit empty list with delegation, so gateways of another manager do not stay.
        spec.insert("gateways".into(), json!(gateways));
    }
    let weighted_route = || {
        vec![
            destination(canary, &primary, pw),
            destination(canary, &canary_host, cw),
        ]
    };
    let service_matches = canary.spec.service.match_.as_deref().unwrap_or_default();
    if is_tcp(canary) {
        let mut rule = Map::new();
        let matches: Vec<Value> = service_matches
            .iter()
            .map(|m| match m.port.filter(|p| *p != 0) {
                Some(port) => json!({"port": port}),
                None => json!({}),
            })
            .collect();
        if !matches.is_empty() {
            rule.insert("match".into(), Value::Array(matches));
        }
        rule.insert("route".into(), Value::Array(weighted_route()));
        spec.insert("tcp".into(), json!([rule]));
        return Ok(Value::Object(spec));
    }
    let weighted = http_rule(canary, service_matches, weighted_route());
    let analysis = canary.analysis();
    let mut http = match (shape, analysis.and_then(|a| a.session_affinity.as_ref())) {
        (Shape::Weighted { cookies, .. }, Some(affinity)) => {
            session_affinity_rules(canary, affinity, cookies, cw, weighted)?
        }
        _ => vec![weighted],
    };
    if routes.mirrored
        && let Some(first) = http.first_mut()
    {
        first["mirror"] = json!({"host": canary_host});
        let mirror_weight = analysis.and_then(|a| a.mirror_weight).unwrap_or_default();
        if mirror_weight > 0 {
            first["mirrorPercentage"] = json!({"value": mirror_weight});
        }
    }
    let ab_matches = analysis.map(|a| a.match_conditions()).unwrap_or_default();
    if !ab_matches.is_empty() {
        http = vec![
            http_rule(
                canary,
                &merge_matches(ab_matches, service_matches),
                weighted_route(),
            ),
            http_rule(canary, service_matches, vec![destination(canary, &primary, pw)]),
        ];
    }
    spec.insert("http".into(), Value::Array(http));
    Ok(Value::Object(spec))
}

/// Flagger's `getSessionAffinityRouteRules` for the weighted rule `weighted`.
fn session_affinity_rules(
    canary: &Canary,
    affinity: &SessionAffinity,
    cookies: &Cookies,
    canary_weight: i32,
    mut weighted: Value,
) -> Result<Vec<Value>, IstioError> {
    let (primary, canary_host) = (canary.primary_service_name(), canary.canary_service_name());
    let service_matches = canary.spec.service.match_.as_deref().unwrap_or_default();
    let sticky = |cookie: &str, route: Vec<Value>| {
        let mut rule = weighted.clone();
        rule["match"] = match_json(&merge_matches(&[cookie_match(cookie)], service_matches));
        rule["route"] = Value::Array(route);
        rule
    };
    if canary_weight == 0 {
        let Some(previous) = &cookies.previous else {
            return Ok(vec![weighted]);
        };
        let mut expire = sticky(
            previous,
            weighted["route"].as_array().cloned().unwrap_or_default(),
        );
        let headers = expire
            .as_object_mut()
            .map(|r| r.entry("headers").or_insert_with(|| json!({})));
        if let Some(headers) = headers {
            set_response_cookie(headers, format!("{previous}; Max-Age=-1"));
        }
        return Ok(vec![expire, weighted]);
    }
    let primary_cookie = affinity
        .primary_cookie_name
        .as_deref()
        .is_some_and(|n| !n.is_empty());
    let mut rules = vec![sticky(
        &cookies.canary,
        vec![
            destination(canary, &primary, 0),
            destination(canary, &canary_host, 100),
        ],
    )];
    if primary_cookie {
        rules.push(sticky(
            &cookies.primary,
            vec![
                destination(canary, &primary, 100),
                destination(canary, &canary_host, 0),
            ],
        ));
    }
    let primary_max_age = if primary_cookie {
        let interval = canary
            .analysis()
            .and_then(|a| a.interval.clone())
            .unwrap_or_default();
        Some(go_duration_seconds(&interval).ok_or_else(|| {
            IstioError(format!(
                "failed to parse canary interval: time: invalid duration {}",
                Value::from(interval.clone())
            ))
        })?)
    } else {
        None
    };
    for dest in weighted["route"].as_array_mut().into_iter().flatten() {
        let host = dest["destination"]["host"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if host == canary_host {
            dest["headers"] = set_cookie_headers(affinity.build_cookie(&cookies.canary, affinity.max_age()));
        } else if host == primary
            && let Some(max_age) = primary_max_age
        {
            dest["headers"] = set_cookie_headers(affinity.build_cookie(&cookies.primary, max_age));
        }
    }
    rules.push(weighted);
    Ok(rules)
}

/// Sets `headers.response.add["Set-Cookie"]` in a rule's `headers` object.
fn set_response_cookie(headers: &mut Value, value: String) {
    if !headers["response"].is_object() {
        headers["response"] = json!({});
    }
    if !headers["response"]["add"].is_object() {
        headers["response"]["add"] = json!({});
    }
    headers["response"]["add"][SET_COOKIE_HEADER] = value.into();
}

/// Seconds of a Go duration string (`time.ParseDuration`), truncated; `None` when it does not parse.
fn go_duration_seconds(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let d: kube::core::Duration = s.parse().ok()?;
    let secs = i64::try_from(std::time::Duration::from(d).as_secs()).ok()?;
    Some(if d.is_negative() { -secs } else { secs })
}

/// The whole VirtualService as this router applies it: name, namespace, the apex labels and annotations with
/// the Flux toolkit annotations, what `carried` says, and `spec`.
pub fn virtual_service(canary: &Canary, spec: Value, carried: &Carried) -> Value {
    let apex_meta = canary.spec.service.apex.clone().unwrap_or_default();
    let labels = apex_meta.labels.unwrap_or_default();
    let mut annotations = apex_meta.annotations.unwrap_or_default();
    for (k, v) in TOOLKIT_ANNOTATIONS {
        annotations.insert(k.to_owned(), v.to_owned());
    }
    if let Some(original) = &carried.original_configuration {
        annotations.insert(ORIGINAL_CONFIGURATION_ANNOTATION.to_owned(), original.clone());
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), canary.service_name().into());
    if let Some(ns) = &canary.metadata.namespace {
        metadata.insert("namespace".into(), ns.clone().into());
    }
    if !labels.is_empty() {
        metadata.insert("labels".into(), json!(labels));
    }
    metadata.insert("annotations".into(), json!(annotations));
    if let Some(owner) = &carried.owner_reference {
        metadata.insert("ownerReferences".into(), json!([owner]));
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": VIRTUAL_SERVICE,
        "metadata": metadata,
        "spec": spec,
    })
}

/// What the next write must carry over from `current`: its owner reference to the canary, or, for a
/// VirtualService the router did not create and kubectl did not apply, the original configuration (stored
/// now when missing).
pub fn carried_from(canary: &Canary, current: &DynamicObject) -> Carried {
    if owned_by(canary, current) {
        return Carried {
            owner_reference: owner_reference(canary),
            original_configuration: current
                .annotations()
                .get(ORIGINAL_CONFIGURATION_ANNOTATION)
                .cloned(),
        };
    }
    let annotations = current.annotations();
    let original = match annotations.get(ORIGINAL_CONFIGURATION_ANNOTATION) {
        Some(stored) => Some(stored.clone()),
        None if annotations.contains_key(KUBECTL_ANNOTATION) => None,
        None => Some(original_configuration(&current.data["spec"])),
    };
    Carried {
        owner_reference: None,
        original_configuration: original,
    }
}

fn project(v: &Value, keys: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k).filter(|x| !x.is_null()) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    out
}

/// The spec stored when taking over a VirtualService: the fields Flagger writes (`hosts`, `gateways`,
/// `http`, `tcp`) as compact JSON.
pub fn original_configuration(spec: &Value) -> String {
    Value::Object(project(spec, &SPEC_FIELDS)).to_string()
}

/// The object `finalize` applies: the stored spec's `hosts`, `gateways`, `http` and `tcp`, and no labels or
/// annotations of the router's.
pub fn restored_object(canary: &Canary, stored: &Value) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": VIRTUAL_SERVICE,
        "metadata": {"name": canary.service_name(), "namespace": canary.metadata.namespace},
        "spec": project(stored, &SPEC_FIELDS),
    })
}

// ---------------------------------------------------------------------------------------------------------
// Comparison

/// Removes nulls, empty strings, `false`, empty lists and empty objects (what Go's decoding and `omitempty`
/// make equal).
fn strip_empty(v: &mut Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        Value::Array(items) => {
            items.retain_mut(strip_empty);
            !items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|_, v| strip_empty(v));
            !map.is_empty()
        }
    }
}

/// Whether `rule` is a sticky session rule: one of its matches has a `Cookie` regex naming one of `names`.
fn is_cookie_rule(rule: &Value, names: &[&str]) -> bool {
    rule["match"].as_array().into_iter().flatten().any(|m| {
        m["headers"][COOKIE_HEADER]["regex"]
            .as_str()
            .is_some_and(|r| names.iter().any(|n| !n.is_empty() && r.contains(n)))
    })
}

fn normalize_destinations(route: &Value, drop_headers: bool) -> Value {
    Value::Array(
        route
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let mut d = project(d, &["destination", "headers"]);
                if drop_headers {
                    d.remove("headers");
                }
                Value::Object(d)
            })
            .collect(),
    )
}

fn normalize_spec(canary: &Canary, spec: &Value) -> Value {
    let affinity = canary.analysis().and_then(|a| a.session_affinity.as_ref());
    let mut out = Map::new();
    if !delegation(canary) {
        // Flagger blanks both sides' hosts and gateways with delegation.
        for key in ["hosts", "gateways"] {
            out.insert(key.into(), spec[key].clone());
        }
    }
    if is_tcp(canary) {
        let tcp: Vec<Value> = spec["tcp"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| json!({"match": r["match"], "route": normalize_destinations(&r["route"], false)}))
            .collect();
        out.insert("tcp".into(), Value::Array(tcp));
    } else {
        let names: Vec<&str> = affinity
            .map(|a| {
                vec![
                    a.cookie_name.as_str(),
                    a.primary_cookie_name.as_deref().unwrap_or_default(),
                ]
            })
            .unwrap_or_default();
        let http: Vec<Value> = spec["http"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| affinity.is_none() || !is_cookie_rule(r, &names))
            .map(|r| {
                let mut r = project(r, &HTTP_ROUTE_FIELDS);
                r.remove("mirror");
                r.remove("mirrorPercentage");
                let route = normalize_destinations(&r["route"], affinity.is_some());
                r.insert("route".into(), route);
                Value::Object(r)
            })
            .collect();
        out.insert("http".into(), Value::Array(http));
    }
    let mut out = Value::Object(out);
    strip_empty(&mut out);
    out
}

/// Whether the current VirtualService spec differs from the desired one as Flagger compares them: ignoring
/// the destination weights, `mirror` and `mirrorPercentage`, empty-versus-missing fields, fields Flagger
/// does not write (and, with delegation, hosts and gateways); with session affinity also the sticky cookie
/// rules and the destination headers.
pub fn spec_differs(canary: &Canary, desired: &Value, current: &Value) -> bool {
    normalize_spec(canary, desired) != normalize_spec(canary, current)
}

/// Whether the labels, annotations or owner reference differ (see [`super::takeover::metadata_differs`]).
pub fn metadata_differs(desired: &Value, current: &DynamicObject) -> bool {
    super::takeover::metadata_differs(desired, current, FIELD_MANAGER)
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/// Reads the weights of a VirtualService spec as Flagger does: from the last rule (HTTP or TCP) routing to
/// `<apex>-canary`; with session affinity, from the destinations that set headers. Fails with Flagger's
/// message when both weights are 0.
pub fn read_routes(canary: &Canary, spec: &Value) -> Result<Routes, IstioError> {
    let ns = namespace(canary)?;
    let apex = canary.service_name();
    let (primary, canary_host) = (canary.primary_service_name(), canary.canary_service_name());
    let host = |d: &Value| d["destination"]["host"].as_str().unwrap_or_default().to_owned();
    let weight = |d: &Value| i32::try_from(d["weight"].as_i64().unwrap_or_default()).unwrap_or_default();
    let tcp = is_tcp(canary);
    let rules = spec[if tcp { "tcp" } else { "http" }]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let chosen = rules.iter().rev().find(|r| {
        r["route"]
            .as_array()
            .is_some_and(|route| route.iter().any(|d| host(d) == canary_host))
    });
    let mut routes = Routes::default();
    if let Some(rule) = chosen {
        for d in rule["route"].as_array().into_iter().flatten() {
            if host(d) == primary {
                routes.primary = weight(d);
            }
            if host(d) == canary_host {
                routes.canary = weight(d);
            }
        }
        routes.mirrored = !tcp && rule["mirror"]["host"].as_str().is_some_and(|h| !h.is_empty());
    }
    if !tcp && canary.analysis().is_some_and(|a| a.session_affinity.is_some()) {
        for d in rules
            .iter()
            .flat_map(|r| r["route"].as_array().into_iter().flatten())
            .filter(|d| !d["headers"].is_null())
        {
            if host(d) == primary {
                routes.primary = weight(d);
            }
            if host(d) == canary_host {
                routes.canary = weight(d);
            }
        }
    }
    if routes.primary == 0 && routes.canary == 0 {
        return Err(IstioError(format!(
            "VirtualService {apex}.{ns} does not contain routes for {apex}-primary and {apex}-canary"
        )));
    }
    Ok(routes)
}

// ---------------------------------------------------------------------------------------------------------
// Session cookies

/// The `name=value` part of the `Set-Cookie` response header of a `headers` object when it sets the cookie
/// `name` (and, with `expired`, only when it expires it).
fn set_cookie_in(headers: &Value, name: &str, expired: bool) -> Option<String> {
    set_cookie_value(
        headers["response"]["add"][SET_COOKIE_HEADER].as_str()?,
        name,
        expired,
    )
}

/// The canary cookie the VirtualService hands out (on a canary destination) or expires (on a rule).
pub fn cookie_in_spec(canary: &Canary, spec: &Value, name: &str) -> Option<String> {
    let canary_host = canary.canary_service_name();
    let rules = spec["http"].as_array()?;
    let active = rules.iter().find_map(|r| {
        r["route"]
            .as_array()?
            .iter()
            .filter(|d| d["destination"]["host"] == canary_host.as_str())
            .find_map(|d| set_cookie_in(&d["headers"], name, false))
    });
    active.or_else(|| {
        rules
            .iter()
            .find_map(|r| set_cookie_in(&r["headers"], name, true))
    })
}

/// The cookies of the next weight change (see [`super::cookies`]).
pub fn cookies(canary: &Canary, current_spec: &Value) -> Cookies {
    super::cookies::cookies(canary, |name| cookie_in_spec(canary, current_spec, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "5d1b4c4e-0000-4000-8000-000000000001";

    fn canary(service: Value, analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": UID},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": analysis,
            },
        }))
        .unwrap()
    }

    fn basic() -> Canary {
        canary(
            json!({"port": 9898}),
            json!({"interval": "15s", "threshold": 2, "stepWeight": 25}),
        )
    }

    fn step(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            mirrored: false,
        }
    }

    fn weighted(c: &Canary, routes: Routes, cookies: &Cookies) -> Value {
        desired_spec(c, Shape::Weighted { routes, cookies }).unwrap()
    }

    fn vs(data: Value) -> DynamicObject {
        let mut obj: DynamicObject = serde_json::from_value(data).unwrap();
        obj.metadata.namespace = Some("test".into());
        obj
    }

    #[test]
    fn resources_are_v1beta1() {
        let r = virtual_service_resource();
        assert_eq!(r.api_version, "networking.istio.io/v1beta1");
        assert_eq!(r.plural, "virtualservices");
        let r = destination_rule_resource();
        assert_eq!(r.kind, "DestinationRule");
        assert_eq!(r.plural, "destinationrules");
    }

    #[test]
    fn hosts_and_gateways_follow_flagger() {
        let c = canary(
            json!({"port": 80, "hosts": ["app.example.com"], "gateways": ["public-gateway"]}),
            json!({}),
        );
        assert_eq!(hosts(&c), ["app.example.com", "podinfo"]);
        assert_eq!(gateways(&c), ["public-gateway"]);
        let star = canary(json!({"port": 80, "hosts": ["*"]}), json!({}));
        assert_eq!(hosts(&star), ["*"]);
        assert_eq!(gateways(&star), ["mesh"]);
        let delegate = canary(json!({"port": 80, "delegation": true}), json!({}));
        assert!(hosts(&delegate).is_empty());
        assert_eq!(
            desired_spec(&delegate, Shape::Initial).unwrap()["gateways"],
            json!([])
        );
        let bad = canary(json!({"port": 80, "delegation": true, "hosts": ["a"]}), json!({}));
        assert_eq!(
            check_delegation(&bad),
            Err(IstioError(
                "VirtualService podinfo.test cannot have hosts and gateways when delegation enabled".into()
            ))
        );
    }

    #[test]
    fn destination_ports_only_with_port_discovery_off_mesh() {
        let port = |service: Value| destination(&canary(service, json!({})), "x", 1)["destination"].clone();
        assert_eq!(port(json!({"port": 80})), json!({"host": "x"}));
        assert_eq!(
            port(json!({"port": 80, "portDiscovery": true})),
            json!({"host": "x"})
        );
        assert_eq!(
            port(json!({"port": 80, "portDiscovery": true, "gateways": ["mesh", "gw"]})),
            json!({"host": "x"})
        );
        assert_eq!(
            port(json!({"port": 80, "portDiscovery": true, "gateways": ["gw"]})),
            json!({"host": "x", "port": {"number": 80}})
        );
        assert_eq!(
            port(json!({"port": 80, "portDiscovery": true, "delegation": true})),
            json!({"host": "x", "port": {"number": 80}})
        );
        assert_eq!(
            port(json!({"port": 80, "gateways": ["gw"]})),
            json!({"host": "x"})
        );
    }

    #[test]
    fn merge_replaces_headers_and_source_labels() {
        let a: Vec<HttpMatchRequest> = serde_json::from_value(json!([
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"sourceLabels": {"app": "frontend"}},
        ]))
        .unwrap();
        let s: Vec<HttpMatchRequest> = serde_json::from_value(json!([
            {"uri": {"prefix": "/api"}, "headers": {"x-svc": {"exact": "1"}}},
        ]))
        .unwrap();
        assert_eq!(
            serde_json::to_value(merge_matches(&a, &s)).unwrap(),
            json!([
                {"uri": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "insider"}}},
                {"uri": {"prefix": "/api"}, "headers": {"x-svc": {"exact": "1"}}, "sourceLabels": {"app": "frontend"}},
            ])
        );
        assert_eq!(merge_matches(&a, &[]), a);
    }

    #[test]
    fn routes_are_read_from_the_last_rule_to_the_canary() {
        let c = basic();
        let spec = weighted(&c, step(75, 25), &Cookies::default());
        assert_eq!(read_routes(&c, &spec).unwrap(), step(75, 25));
        let mirrored = weighted(
            &c,
            Routes {
                primary: 100,
                canary: 0,
                mirrored: true,
            },
            &Cookies::default(),
        );
        assert!(read_routes(&c, &mirrored).unwrap().mirrored);
        let message =
            "VirtualService podinfo.test does not contain routes for podinfo-primary and podinfo-canary";
        for spec in [
            json!({}),
            json!({"http": [{"route": [{"destination": {"host": "other"}, "weight": 100}]}]}),
            json!({"http": [{"route": [{"destination": {"host": "podinfo-canary"}}]}]}),
        ] {
            assert_eq!(read_routes(&c, &spec), Err(IstioError(message.into())));
        }
        // A/B: the match rule carries both weights, the default rule only the primary.
        let ab = canary(
            json!({"port": 80}),
            json!({"iterations": 2, "match": [{"headers": {"x": {"exact": "y"}}}]}),
        );
        assert_eq!(
            read_routes(&ab, &weighted(&ab, step(0, 100), &Cookies::default())).unwrap(),
            step(0, 100)
        );
        let tcp = canary(json!({"port": 80, "appProtocol": "TCP"}), json!({}));
        assert_eq!(
            read_routes(&tcp, &weighted(&tcp, step(50, 50), &Cookies::default())).unwrap(),
            step(50, 50)
        );
    }

    #[test]
    fn session_affinity_weights_come_from_the_cookie_setting_destinations() {
        let c = canary(
            json!({"port": 80}),
            json!({"interval": "1m", "stepWeight": 10, "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
        );
        let cookies = Cookies {
            canary: "c=abc".into(),
            primary: "p=def".into(),
            previous: None,
        };
        let spec = weighted(&c, step(90, 10), &cookies);
        assert_eq!(spec["http"].as_array().unwrap().len(), 3);
        assert_eq!(read_routes(&c, &spec).unwrap(), step(90, 10));
        assert_eq!(
            spec["http"][2]["route"][0]["headers"]["response"]["add"]["Set-Cookie"],
            "p=def; Max-Age=60"
        );
        assert_eq!(cookie_in_spec(&c, &spec, "c").as_deref(), Some("c=abc"));
        // The interval must parse when there is a primary cookie.
        let bad = canary(
            json!({"port": 80}),
            json!({"interval": "soon", "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
        );
        assert_eq!(
            desired_spec(
                &bad,
                Shape::Weighted {
                    routes: step(90, 10),
                    cookies: &cookies
                }
            ),
            Err(IstioError(
                "failed to parse canary interval: time: invalid duration \"soon\"".into()
            ))
        );
    }

    #[test]
    fn the_finished_runs_cookie_is_read_back_and_expired() {
        let c = canary(
            json!({"port": 80}),
            json!({"interval": "1m", "stepWeight": 10, "sessionAffinity": {"cookieName": "c"}}),
        );
        let during = weighted(
            &c,
            step(90, 10),
            &Cookies {
                canary: "c=abc".into(),
                ..Cookies::default()
            },
        );
        let found = cookies(&c, &during);
        assert_eq!(found.previous.as_deref(), Some("c=abc"));
        let after = weighted(&c, Routes::PRIMARY, &found);
        assert_eq!(
            after["http"][0]["headers"]["response"]["add"]["Set-Cookie"],
            "c=abc; Max-Age=-1"
        );
        assert!(after["http"][1].get("headers").is_none(), "{after}");
        // The expired cookie is read back from the expiring rule, so later writes keep expiring it.
        assert_eq!(cookies(&c, &after).previous.as_deref(), Some("c=abc"));
        assert!(read_routes(&c, &after).is_ok());
        // Without a cookie to expire: the weighted rule alone.
        let none = weighted(&c, Routes::PRIMARY, &cookies(&c, &json!({})));
        assert_eq!(none["http"].as_array().unwrap().len(), 1);
        // The derived cookie is ten letters, stable for one revision.
        let derived = cookies(&c, &json!({})).canary;
        assert_eq!(derived.len(), "c=".len() + 10);
        assert_eq!(derived, cookies(&c, &json!({})).canary);
    }

    #[test]
    fn comparison_ignores_weights_mirror_and_unknown_fields() {
        let c = basic();
        let desired = desired_spec(&c, Shape::Initial).unwrap();
        assert!(!spec_differs(&c, &desired, &desired));
        let mut moved = weighted(
            &c,
            Routes {
                primary: 50,
                canary: 50,
                mirrored: true,
            },
            &Cookies::default(),
        );
        moved["exportTo"] = json!(["."]);
        moved["http"][0]["delegate"] = json!({"name": "x"});
        assert!(!spec_differs(&c, &desired, &moved));
        let mut other = desired.clone();
        other["hosts"] = json!(["other"]);
        assert!(spec_differs(&c, &desired, &other));
        let mut faulty = desired.clone();
        faulty["http"][0]["fault"] = json!({"abort": {"httpStatus": 500}});
        assert!(spec_differs(&c, &desired, &faulty));
        // Delegation ignores hosts and gateways, as Flagger blanks both sides.
        let delegate = canary(json!({"port": 80, "delegation": true}), json!({}));
        let d = desired_spec(&delegate, Shape::Initial).unwrap();
        let mut with_hosts = d.clone();
        with_hosts["hosts"] = json!(["x"]);
        assert!(!spec_differs(&delegate, &d, &with_hosts));
    }

    #[test]
    fn sticky_rules_and_destination_headers_are_ignored_with_session_affinity() {
        let c = canary(
            json!({"port": 80, "match": [{"uri": {"prefix": "/"}}]}),
            json!({"interval": "1m", "stepWeight": 10, "sessionAffinity": {"cookieName": "c"}}),
        );
        let initial = desired_spec(&c, Shape::Initial).unwrap();
        let cookies = Cookies {
            canary: "c=abc".into(),
            ..Cookies::default()
        };
        let during = weighted(&c, step(90, 10), &cookies);
        assert_eq!(during["http"].as_array().unwrap().len(), 2);
        assert!(!spec_differs(&c, &initial, &during));
        // A changed service match is still seen (Flagger's check would ignore every rule with a match).
        let mut changed = during.clone();
        changed["http"][1]["match"] = json!([{"uri": {"prefix": "/v2"}}]);
        assert!(spec_differs(&c, &initial, &changed));
    }

    #[test]
    fn original_configuration_is_stored_only_for_taken_over_services() {
        let c = basic();
        let user = vs(json!({
            "metadata": {"name": "podinfo", "annotations": {"note": "x"}},
            "spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}}]}], "exportTo": ["."]},
        }));
        let carried = carried_from(&c, &user);
        assert_eq!(carried.owner_reference, None);
        assert_eq!(
            carried.original_configuration.as_deref(),
            Some(r#"{"hosts":["podinfo"],"http":[{"route":[{"destination":{"host":"podinfo"}}]}]}"#)
        );
        let applied = vs(json!({
            "metadata": {"name": "podinfo", "annotations": {KUBECTL_ANNOTATION: r#"{"spec":{"hosts":["a"]}}"#}},
            "spec": {"hosts": ["b"]},
        }));
        assert_eq!(carried_from(&c, &applied).original_configuration, None);
        assert_eq!(stored_spec(&c, &applied).unwrap(), Some(json!({"hosts": ["a"]})));
        let owned = vs(json!({
            "metadata": {"name": "podinfo", "ownerReferences": [{"apiVersion": "flagger.app/v1beta1",
                "kind": "Canary", "name": "podinfo", "uid": UID, "controller": true}]},
            "spec": {},
        }));
        let carried = carried_from(&c, &owned);
        assert!(carried.owner_reference.is_some());
        assert_eq!(carried.original_configuration, None);
        let broken = vs(json!({
            "metadata": {"name": "podinfo", "annotations": {ORIGINAL_CONFIGURATION_ANNOTATION: "{"}},
        }));
        assert_eq!(
            stored_spec(&c, &broken),
            Err(IstioError(
                "VirtualService podinfo.test failed to unMarshal annotation flagger.kubernetes.io/original-configuration".into()
            ))
        );
    }

    #[test]
    fn go_omitempty_is_applied_to_service_settings() {
        let c = canary(
            json!({"port": 80, "retries": {"retryOn": "5xx"}, "corsPolicy": {"allowOrigin": ["a"], "allowCredentials": false},
                   "match": [{"uri": {"prefix": "/"}, "ignoreUriCase": false, "port": 0}]}),
            json!({}),
        );
        let rule = &desired_spec(&c, Shape::Initial).unwrap()["http"][0];
        assert_eq!(rule["retries"], json!({"attempts": 0, "retryOn": "5xx"}));
        assert_eq!(rule["corsPolicy"], json!({"allowOrigin": ["a"]}));
        assert_eq!(rule["match"], json!([{"uri": {"prefix": "/"}}]));
    }
}
