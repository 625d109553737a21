//! Gateway API router (`gatewayapi:v1`, `gatewayapi:v1beta1`): Flagger's `GatewayAPIRouter` and
//! `GatewayAPIV1Beta1Router` in one type parameterised by the `HTTPRoute` API version.
//!
//! The `HTTPRoute` is named after the apex Service and lives in the canary's namespace:
//!
//! ```yaml
//! spec:
//!   parentRefs: <service.gatewayRefs>
//!   hostnames: <service.hosts>
//!   rules:
//!   - matches: <service.match mapped, or [{path: {type: PathPrefix, value: /}}]>
//!     filters: <service.headers, service.rewrite, service.mirror, service.corsPolicy (v1)>
//!     backendRefs:
//!     - {group: "", kind: Service, name: <apex>-primary, port: <service.port>, weight: 100}
//!     - {group: "", kind: Service, name: <apex>-canary, port: <service.port>, weight: 0}
//!     timeouts: {request: <service.timeout>, backendRequest: <service.backendTimeout>}   # v1 only
//! ```
//!
//! Flagger's rules, kept here:
//!
//! - `reconcile` fails without `service.gatewayRefs` and with match selectors Gateway API cannot express,
//!   with Flagger's messages;
//! - A/B (`analysis.match`): the weighted rule matches `analysis.match × service.match` (each service match
//!   with its headers/query params replaced by the analysis ones), and a second rule sends the service
//!   matches to the primary alone;
//! - the route is rewritten only when it differs from the desired one ignoring the weights (and, with session
//!   affinity, the sticky cookie rules and backend filters; with `analysis.mirror` during Waiting,
//!   Progressing and WaitingPromotion, the rule filters), as Flagger's `cmp.Diff` does. The rewrite puts the
//!   weights back to 100/0, as Flagger does;
//! - `set_routes` rewrites the rules with the weights; blue/green mirroring (`mirrored` with `iterations`)
//!   adds a `RequestMirror` filter to `<apex>-canary`; session affinity adds the sticky cookie rules and the
//!   `Set-Cookie` response filters on the backends (v1 also the primary cookie), and expires the cookie of the
//!   finished run with `Max-Age=-1`;
//! - `get_routes` (v1) fails while a parent in `status.parents` reports `Accepted` other than `True` or for
//!   an older generation (Flagger's message; a parent without a status entry is not waited for, as in
//!   Flagger); the weights are read from the rules with two backends (with session affinity, the rule whose
//!   backends have filters); traffic is mirrored when a rule mirrors to `<apex>-canary`.
//!
//! Where flagger-rs differs (documented in `docs/differences.md`):
//!
//! - **User rules survive** (Flagger #1857). `spec.rules` is an atomic list, so server-side apply cannot merge
//!   it; instead the router owns only *its* rules. A rule is Flagger's when one of its `backendRefs` is the
//!   apex, primary or canary Service (core group, kind `Service`, the canary's namespace); every other rule
//!   (routing to other backends, or without backends, e.g. a redirect) is the user's. Every write sends
//!   Flagger's rules first, then the user's rules as they are in the cached route, in their original order.
//!   Rules sending the app's traffic to the apex Service are replaced because the canary analysis must see
//!   that traffic. Gateway API orders rules by match specificity; the list order only breaks ties, which
//!   Flagger's rules win.
//! - **Metadata is merged**, not replaced: writes are server-side applies under [`FIELD_MANAGER`] carrying only
//!   the apex labels and annotations (plus the Flux toolkit annotations), so labels and annotations of other
//!   managers stay (Flagger keeps other annotations but replaces the labels).
//! - **Takeover is revertible**: when the router first writes a pre-existing route it did not create, it
//!   stores the route's spec in [`ORIGINAL_CONFIGURATION_ANNOTATION`], and `finalize` (revertOnDeletion)
//!   restores it (plus the user rules added since). Flagger's `Finalize` does nothing.
//! - **Session cookies are not stored in the Canary status**: the router cannot write the status without
//!   racing the status write of the same tick. The canary cookie of a run is derived from the Canary's uid
//!   and `lastAppliedSpec` (stable for the run, new for each revision), the cookie to expire is read back
//!   from the route, and cookies Go Flagger left in the status are used when present.
//! - Match headers and query params come out sorted by name (Go iterates a map in random order), and
//!   comparisons apply the Gateway API defaults the API server fills in (e.g. parentRef group and kind), so
//!   a defaulted route is not rewritten on every tick.
//! - Without a cookie to expire, the session-affinity route has the weighted rule once (Flagger writes it
//!   twice), and an A/B match combined with session affinity scopes the weighted rule, not the sticky one.

use std::collections::BTreeMap;

use flagger_api::istio::{CorsPolicy, HeaderOperations, HttpMatchRequest, StringMatch};
use flagger_api::{Canary, CanaryPhase, SessionAffinity};
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

/// The API group of HTTPRoutes (and of Gateways, the default parent).
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The kind.
pub const KIND: &str = "HTTPRoute";
/// The resource (plural) name.
pub const PLURAL: &str = "httproutes";
/// The field manager of every HTTPRoute write (server-side apply).
pub const FIELD_MANAGER: &str = "flagger/router-gatewayapi";
/// The annotation holding the spec of a pre-existing route the router took over, restored by `finalize`.
pub const ORIGINAL_CONFIGURATION_ANNOTATION: &str = "flagger.kubernetes.io/original-configuration";

const COOKIE_HEADER: &str = "Cookie";
const SET_COOKIE_HEADER: &str = "Set-Cookie";

/// The HTTPRoute API version a router writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteVersion {
    /// `gateway.networking.k8s.io/v1` (`gatewayapi:v1`): timeouts, CORS, the primary cookie and the parent
    /// readiness check.
    V1,
    /// `gateway.networking.k8s.io/v1beta1` (`gatewayapi:v1beta1`).
    V1beta1,
}

impl RouteVersion {
    /// The version string, e.g. `v1beta1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
        }
    }
}

/// The HTTPRoute resource of `version`.
pub fn api_resource(version: RouteVersion) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version.as_str(), KIND), PLURAL)
}

/// The canary (or an HTTPRoute) is not in the shape the router needs; the message is Flagger's where Flagger
/// has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(pub String);

impl From<RouteError> for RouterError {
    fn from(e: RouteError) -> Self {
        Self::Invalid(e.0)
    }
}

/// Which rules to build.
#[derive(Clone, Copy, Debug)]
pub enum Shape<'a> {
    /// What `reconcile` creates and compares with: all traffic on the primary, no cookie rules.
    Initial,
    /// What `set_routes` writes.
    Weighted {
        /// The weights (and blue/green mirroring).
        routes: Routes,
        /// The session-affinity cookies (unused without session affinity).
        cookies: &'a Cookies,
    },
}

/// What a write must carry over from the existing route so server-side apply keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    /// The controller reference to the Canary (set on routes the router created).
    pub owner_reference: Option<Value>,
    /// The spec of a route that existed before the router took it over.
    pub original_configuration: Option<String>,
}

/// The Gateway API router of one HTTPRoute version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiRouter {
    version: RouteVersion,
}

impl GatewayApiRouter {
    /// The router writing HTTPRoutes of `version`.
    pub fn new(version: RouteVersion) -> Self {
        Self { version }
    }

    /// The HTTPRoute API version this router writes.
    pub fn version(&self) -> RouteVersion {
        self.version
    }

    /// The route from the watch cache, or (when the cache has not seen it) from the API server.
    async fn current(
        &self,
        cx: &RouteCx<'_>,
        live_fallback: bool,
    ) -> Result<Option<DynamicObject>, RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let resource = api_resource(self.version);
        let store = cx.caches.dynamic(&resource, true).await?;
        if let Some(cached) = store.get(&ObjectRef::new_with(apex, resource.clone()).within(ns)) {
            return Ok(Some(cached.as_ref().clone()));
        }
        if !live_fallback {
            return Ok(None);
        }
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &resource);
        api.get_opt(apex)
            .await
            .map_err(RouterError::kube("read", KIND, ns, apex))
    }

    /// Applies `object` (a whole HTTPRoute as this router owns it) after checking the leader gate.
    async fn apply(&self, cx: &RouteCx<'_>, object: &Value) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let api: Api<DynamicObject> =
            Api::namespaced_with(cx.client.clone(), ns, &api_resource(self.version));
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

    /// Creates the HTTPRoute, or rewrites it when it differs from the desired one (ignoring the weights and
    /// what Flagger ignores, see the module doc). Nothing is sent when the cached route is as desired.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        check_gateway_refs(canary)?;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let rules = flagger_rules(self.version, canary, Shape::Initial)?;
        let Some(current) = self.current(cx, true).await? else {
            let carried = Carried {
                owner_reference: owner_reference(canary),
                original_configuration: None,
            };
            let object = desired_object(self.version, canary, rules, &carried);
            self.apply(cx, &object).await?;
            tracing::info!(canary = %canary.key(), "HTTPRoute {apex}.{ns} created");
            return Ok(());
        };
        let carried = carried_from(canary, &current);
        let mut all = rules;
        all.extend(user_rules(canary, &current.data["spec"]));
        let desired = desired_object(self.version, canary, all, &carried);
        if !spec_differs(self.version, canary, &desired["spec"], &current.data["spec"])
            && !metadata_differs(&desired["metadata"], &current)
        {
            return Ok(());
        }
        self.apply(cx, &desired).await?;
        tracing::info!(canary = %canary.key(), "HTTPRoute {apex}.{ns} updated");
        Ok(())
    }

    /// Reads the weights from the cached HTTPRoute (v1: only once every parent accepted its generation).
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let canary = cx.canary;
        match self.current(cx, false).await? {
            Some(route) => Ok(read_routes(self.version, canary, &route)?),
            None => Err(not_found(canary)?.into()),
        }
    }

    /// Writes the weights: Flagger's rules for `routes` (A/B, mirroring, session affinity) followed by the
    /// user's rules.
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let Some(current) = self.current(cx, false).await? else {
            return Err(not_found(canary)?.into());
        };
        let cookies = cookies(canary, &current.data["spec"]);
        let mut rules = flagger_rules(
            self.version,
            canary,
            Shape::Weighted {
                routes,
                cookies: &cookies,
            },
        )?;
        rules.extend(user_rules(canary, &current.data["spec"]));
        let object = desired_object(self.version, canary, rules, &carried_from(canary, &current));
        self.apply(cx, &object).await
    }

    /// Restores a route that existed before the canary (revertOnDeletion): its original spec, the user rules
    /// added since, and its metadata without what the router added. A route the router created is left to
    /// the garbage collector (it is owned by the Canary).
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let Some(current) = self.current(cx, true).await? else {
            return Ok(());
        };
        if owned_by(canary, &current) {
            return Ok(());
        }
        let Some(original) = current.annotations().get(ORIGINAL_CONFIGURATION_ANNOTATION) else {
            tracing::warn!(canary = %canary.key(), "HTTPRoute {apex}.{ns} has no original configuration to restore");
            return Ok(());
        };
        let original: Value = serde_json::from_str(original).map_err(|e| {
            RouteError(format!(
                "HTTPRoute {apex}.{ns} original configuration is not JSON: {e}"
            ))
        })?;
        let object = restored_object(self.version, canary, &original, &current.data["spec"]);
        self.apply(cx, &object).await?;
        tracing::info!(canary = %canary.key(), "HTTPRoute {apex}.{ns} restored");
        Ok(())
    }
}

fn namespace(canary: &Canary) -> Result<&str, RouteError> {
    canary
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| RouteError(format!("Canary {} has no namespace", canary.key())))
}

fn not_found(canary: &Canary) -> Result<RouteError, RouteError> {
    let apex = canary.service_name();
    Ok(RouteError(format!(
        "HTTPRoute {apex}.{} get error: {PLURAL}.{GROUP} \"{apex}\" not found",
        namespace(canary)?
    )))
}

fn check_gateway_refs(canary: &Canary) -> Result<(), RouteError> {
    if canary
        .spec
        .service
        .gateway_refs
        .as_ref()
        .is_none_or(Vec::is_empty)
    {
        return Err(RouteError(
            "GatewayRefs must be specified when using Gateway API as a provider.".to_owned(),
        ));
    }
    Ok(())
}

/// What the next write must carry over from `current`: its owner reference to the canary, and the original
/// configuration (stored now when the route was not created by the router and has none yet).
pub fn carried_from(canary: &Canary, current: &DynamicObject) -> Carried {
    if owned_by(canary, current) {
        let uid = canary.metadata.uid.clone().unwrap_or_default();
        let owner = current
            .owner_references()
            .iter()
            .find(|r| r.uid == uid)
            .and_then(|r| serde_json::to_value(r).ok());
        return Carried {
            owner_reference: owner,
            original_configuration: current
                .annotations()
                .get(ORIGINAL_CONFIGURATION_ANNOTATION)
                .cloned(),
        };
    }
    let original = current
        .annotations()
        .get(ORIGINAL_CONFIGURATION_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| original_configuration(&current.data["spec"]));
    Carried {
        owner_reference: None,
        original_configuration: Some(original),
    }
}

/// The spec Flagger-rs stores when taking over a route: `parentRefs`, `hostnames` and `rules` as compact
/// JSON.
pub fn original_configuration(spec: &Value) -> String {
    let mut kept = Map::new();
    for key in ["parentRefs", "hostnames", "rules"] {
        if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
            kept.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(kept).to_string()
}

/// The whole HTTPRoute as this router applies it: name, namespace, the apex labels and annotations with the
/// Flux toolkit annotations, what `carried` says, and the spec with `rules`.
pub fn desired_object(version: RouteVersion, canary: &Canary, rules: Vec<Value>, carried: &Carried) -> Value {
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
        "apiVersion": format!("{GROUP}/{}", version.as_str()),
        "kind": KIND,
        "metadata": metadata,
        "spec": spec(canary, rules),
    })
}

/// The spec: `parentRefs` from `service.gatewayRefs`, `hostnames` from `service.hosts`, and `rules`.
fn spec(canary: &Canary, rules: Vec<Value>) -> Value {
    let mut spec = Map::new();
    let parents = canary.spec.service.gateway_refs.clone().unwrap_or_default();
    spec.insert("parentRefs".into(), json!(parents));
    if let Some(hosts) = canary.spec.service.hosts.as_ref().filter(|h| !h.is_empty()) {
        spec.insert("hostnames".into(), json!(hosts));
    }
    spec.insert("rules".into(), Value::Array(rules));
    Value::Object(spec)
}

/// The object `finalize` applies: the original `parentRefs`/`hostnames`/`rules`, followed by the user rules
/// of `current` the original did not have, and no labels or annotations of the router's.
pub fn restored_object(version: RouteVersion, canary: &Canary, original: &Value, current: &Value) -> Value {
    let mut rules: Vec<Value> = original["rules"].as_array().cloned().unwrap_or_default();
    for rule in user_rules(canary, current) {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    let mut spec = Map::new();
    for key in ["parentRefs", "hostnames"] {
        if let Some(v) = original.get(key).filter(|v| !v.is_null()) {
            spec.insert(key.to_owned(), v.clone());
        }
    }
    spec.insert("rules".into(), Value::Array(rules));
    json!({
        "apiVersion": format!("{GROUP}/{}", version.as_str()),
        "kind": KIND,
        "metadata": {"name": canary.service_name(), "namespace": canary.metadata.namespace},
        "spec": spec,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Rules

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Go's `%+v` of an Istio `StringMatch` value.
fn go_string_match(m: &StringMatch) -> String {
    let f = |s: &Option<String>| s.clone().unwrap_or_default();
    format!(
        "{{Exact:{} Prefix:{} Suffix:{} Regex:{}}}",
        f(&m.exact),
        f(&m.prefix),
        f(&m.suffix),
        f(&m.regex)
    )
}

/// Go's `%+v` of a `map[string]StringMatch` (keys sorted, as `fmt` prints maps).
fn go_string_match_map(m: Option<&BTreeMap<String, StringMatch>>) -> String {
    let entries: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}:{}", go_string_match(v)))
        .collect();
    format!("map[{}]", entries.join(" "))
}

fn typed_matches(
    map: Option<&BTreeMap<String, StringMatch>>,
    exact: &str,
    regex: &str,
    what: &str,
) -> Result<Vec<Value>, RouteError> {
    let mut out = Vec::new();
    for (name, m) in map.into_iter().flatten() {
        let (ty, value) = if let Some(v) = non_empty(&m.exact) {
            (exact, v)
        } else if let Some(v) = non_empty(&m.regex) {
            (regex, v)
        } else {
            return Err(RouteError(format!(
                "Gateway API doesn't support the specified {what} matching selector: {}\n",
                go_string_match_map(map)
            )));
        };
        out.push(json!({"type": ty, "name": name, "value": value}));
    }
    Ok(out)
}

/// Maps Istio-style request matches to HTTPRoute matches as Flagger does: uri regex/exact/prefix → path,
/// method exact, headers and query params exact/regex (sorted by name). Anything else is an error with
/// Flagger's message (which names the headers for a method, as Flagger's does).
pub fn map_matches(matches: &[HttpMatchRequest]) -> Result<Vec<Value>, RouteError> {
    let mut out = Vec::new();
    for m in matches {
        let mut obj = Map::new();
        if let Some(uri) = &m.uri {
            let (ty, value) = if let Some(v) = non_empty(&uri.regex) {
                ("RegularExpression", v)
            } else if let Some(v) = non_empty(&uri.exact) {
                ("Exact", v)
            } else if let Some(v) = non_empty(&uri.prefix) {
                ("PathPrefix", v)
            } else {
                return Err(RouteError(format!(
                    "Gateway API doesn't support the specified path matching selector: &{}\n",
                    go_string_match(uri)
                )));
            };
            obj.insert("path".into(), json!({"type": ty, "value": value}));
        }
        if let Some(method) = &m.method {
            let Some(v) = non_empty(&method.exact) else {
                return Err(RouteError(format!(
                    "Gateway API doesn't support the specified header matching selector: {}\n",
                    go_string_match_map(m.headers.as_ref())
                )));
            };
            obj.insert("method".into(), v.into());
        }
        let headers = typed_matches(m.headers.as_ref(), "Exact", "RegularExpression", "header")?;
        if !headers.is_empty() {
            obj.insert("headers".into(), Value::Array(headers));
        }
        let query = typed_matches(m.query_params.as_ref(), "Exact", "RegularExpression", "query")?;
        if !query.is_empty() {
            obj.insert("queryParams".into(), Value::Array(query));
        }
        if !obj.is_empty() {
            out.push(Value::Object(obj));
        }
    }
    Ok(out)
}

/// The service matches, or the default `[{path: {type: PathPrefix, value: /}}]`; errors wrapped as Flagger's.
fn service_matches(canary: &Canary) -> Result<Vec<Value>, RouteError> {
    let matches = map_matches(canary.spec.service.match_.as_deref().unwrap_or_default())
        .map_err(|e| RouteError(format!("Invalid request matching selectors: {e}")))?;
    if matches.is_empty() {
        return Ok(vec![json!({"path": {"type": "PathPrefix", "value": "/"}})]);
    }
    Ok(matches)
}

/// Flagger's `mergeMatchConditions`: every service match once per analysis match, with its headers and
/// query params replaced by the analysis match's (when it has them).
pub fn merge_matches(analysis: &[Value], service: &[Value]) -> Vec<Value> {
    if analysis.is_empty() {
        return service.to_vec();
    }
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * service.len());
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            for key in ["headers", "queryParams"] {
                if a[key].as_array().is_some_and(|v| !v.is_empty()) {
                    m[key] = a[key].clone();
                }
            }
            merged.push(m);
        }
    }
    merged
}

fn header_list(map: Option<&BTreeMap<String, String>>) -> Option<Value> {
    let map = map.filter(|m| !m.is_empty())?;
    Some(Value::Array(
        map.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    ))
}

fn header_modifier(ops: &HeaderOperations) -> Value {
    let mut f = Map::new();
    if let Some(add) = header_list(ops.add.as_ref()) {
        f.insert("add".into(), add);
    }
    if let Some(set) = header_list(ops.set.as_ref()) {
        f.insert("set".into(), set);
    }
    if let Some(remove) = ops.remove.as_ref().filter(|r| !r.is_empty()) {
        f.insert("remove".into(), json!(remove));
    }
    Value::Object(f)
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

fn cors_filter(cors: &CorsPolicy) -> Value {
    if cors.allow_origins.as_ref().is_some_and(|o| !o.is_empty()) {
        tracing::error!(
            "'corsPolicy.allowOrigins' is not supported by Gateway API, use 'corsPolicy.allowOrigin' instead"
        );
    }
    let mut c = Map::new();
    let lists = [
        ("allowOrigins", &cors.allow_origin),
        ("allowMethods", &cors.allow_methods),
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ];
    for (key, list) in lists {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            c.insert(key.into(), json!(list));
        }
    }
    if cors.allow_credentials == Some(true) {
        c.insert("allowCredentials".into(), true.into());
    }
    let max_age = cors
        .max_age
        .as_deref()
        .and_then(go_duration_seconds)
        .and_then(|s| i32::try_from(s).ok())
        .filter(|s| *s != 0);
    if let Some(max_age) = max_age {
        c.insert("maxAge".into(), max_age.into());
    }
    json!({"type": "CORS", "cors": c})
}

/// The rule filters from `service`: request and response header modifiers, URL rewrite, one request mirror
/// per `service.mirror` entry and (v1) CORS, in Flagger's order.
pub fn service_filters(version: RouteVersion, canary: &Canary) -> Vec<Value> {
    let service = &canary.spec.service;
    let mut filters = Vec::new();
    if let Some(headers) = &service.headers {
        if let Some(request) = &headers.request {
            filters.push(
                json!({"type": "RequestHeaderModifier", "requestHeaderModifier": header_modifier(request)}),
            );
        }
        if let Some(response) = &headers.response {
            filters.push(
                json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": header_modifier(response)}),
            );
        }
    }
    if let Some(rewrite) = &service.rewrite {
        let mut r = Map::new();
        if let Some(host) = non_empty(&rewrite.authority) {
            r.insert("hostname".into(), host.into());
        }
        if let Some(uri) = non_empty(&rewrite.uri) {
            let ty = rewrite.gateway_api_type();
            let key = if ty == "ReplaceFullPath" {
                "replaceFullPath"
            } else {
                "replacePrefixMatch"
            };
            r.insert("path".into(), json!({"type": ty, key: uri}));
        }
        filters.push(json!({"type": "URLRewrite", "urlRewrite": r}));
    }
    for mirror in service.mirror.iter().flatten() {
        filters.push(json!({"type": "RequestMirror", "requestMirror": mirror}));
    }
    if version == RouteVersion::V1
        && let Some(cors) = &service.cors_policy
    {
        filters.push(cors_filter(cors));
    }
    filters
}

/// A backend reference to a Service of the canary's namespace on the service port.
pub fn backend_ref(name: &str, weight: i32, port: i32) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}

fn timeouts(version: RouteVersion, canary: &Canary) -> Option<Value> {
    if version != RouteVersion::V1 {
        return None;
    }
    let service = &canary.spec.service;
    let (request, backend) = (non_empty(&service.timeout), non_empty(&service.backend_timeout));
    if request.is_none() && backend.is_none() {
        return None;
    }
    let mut t = Map::new();
    if let Some(r) = request {
        t.insert("request".into(), r.into());
    }
    if let Some(b) = backend {
        t.insert("backendRequest".into(), b.into());
    }
    Some(Value::Object(t))
}

fn rule(matches: &[Value], filters: &[Value], backend_refs: Vec<Value>, timeouts: Option<&Value>) -> Value {
    let mut r = Map::new();
    r.insert("matches".into(), Value::Array(matches.to_vec()));
    if !filters.is_empty() {
        r.insert("filters".into(), Value::Array(filters.to_vec()));
    }
    r.insert("backendRefs".into(), Value::Array(backend_refs));
    if let Some(t) = timeouts {
        r.insert("timeouts".into(), t.clone());
    }
    Value::Object(r)
}

fn set_cookie_filter(value: String) -> Value {
    json!({
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": SET_COOKIE_HEADER, "value": value}]},
    })
}

/// The match on the `Cookie` header Flagger uses for sticky routing: `.*<name>.*<value>.*`.
fn cookie_match(cookie: &str) -> Value {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    let value = value.split('=').next().unwrap_or_default();
    json!({"headers": [{"type": "RegularExpression", "name": COOKIE_HEADER, "value": format!(".*{name}.*{value}.*")}]})
}

/// Flagger's rules (without the user's) for `canary` in the given shape.
pub fn flagger_rules(
    version: RouteVersion,
    canary: &Canary,
    shape: Shape<'_>,
) -> Result<Vec<Value>, RouteError> {
    let service = &canary.spec.service;
    let port = service.port;
    let (primary, canary_svc) = (canary.primary_service_name(), canary.canary_service_name());
    let matches = service_matches(canary)?;
    let filters = service_filters(version, canary);
    let timeouts = timeouts(version, canary);
    let analysis = canary.analysis();
    let ab_matches = analysis.map(|a| a.match_conditions()).unwrap_or_default();

    let (pw, cw) = match shape {
        Shape::Initial => (100, 0),
        Shape::Weighted { routes, .. } => (routes.primary, routes.canary),
    };
    let mut weighted_filters = filters.clone();
    if let Shape::Weighted { routes, .. } = shape
        && routes.mirrored
        && analysis.is_some_and(|a| a.iterations() > 0)
    {
        weighted_filters.push(json!({
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": canary_svc, "port": port}},
        }));
    }
    let weighted_matches = if ab_matches.is_empty() {
        matches.clone()
    } else {
        // Flagger ignores errors of the analysis matches (then only the service matches apply).
        merge_matches(&map_matches(ab_matches).unwrap_or_default(), &matches)
    };
    let mut rules = match (shape, analysis.and_then(|a| a.session_affinity.as_ref())) {
        (Shape::Weighted { cookies, .. }, Some(affinity)) => session_affinity_rules(
            version,
            canary,
            affinity,
            cookies,
            (pw, cw),
            &weighted_matches,
            &weighted_filters,
            timeouts.as_ref(),
        )?,
        _ => vec![rule(
            &weighted_matches,
            &weighted_filters,
            vec![
                backend_ref(&primary, pw, port),
                backend_ref(&canary_svc, cw, port),
            ],
            timeouts.as_ref(),
        )],
    };
    if !ab_matches.is_empty() {
        rules.push(rule(
            &matches,
            &filters,
            vec![backend_ref(&primary, 100, port)],
            timeouts.as_ref(),
        ));
    }
    Ok(rules)
}

#[allow(clippy::too_many_arguments)]
fn session_affinity_rules(
    version: RouteVersion,
    canary: &Canary,
    affinity: &SessionAffinity,
    cookies: &Cookies,
    (primary_weight, canary_weight): (i32, i32),
    weighted_matches: &[Value],
    filters: &[Value],
    timeouts: Option<&Value>,
) -> Result<Vec<Value>, RouteError> {
    let port = canary.spec.service.port;
    let (primary, canary_svc) = (canary.primary_service_name(), canary.canary_service_name());
    // The sticky rules match the cookie within the service matches as written (not defaulted), as Flagger's.
    let svc_matches = map_matches(canary.spec.service.match_.as_deref().unwrap_or_default())
        .map_err(|e| RouteError(format!("Invalid request matching selectors: {e}")))?;
    let mut primary_ref = backend_ref(&primary, primary_weight, port);
    let mut canary_ref = backend_ref(&canary_svc, canary_weight, port);
    if canary_weight == 0 {
        let weighted = rule(weighted_matches, filters, vec![primary_ref, canary_ref], timeouts);
        let Some(previous) = &cookies.previous else {
            return Ok(vec![weighted]);
        };
        let mut expire = filters.to_vec();
        expire.push(set_cookie_filter(format!("{previous}; Max-Age=-1")));
        let sticky = rule(
            &merge_matches(&[cookie_match(previous)], &svc_matches),
            &expire,
            vec![
                backend_ref(&primary, primary_weight, port),
                backend_ref(&canary_svc, 0, port),
            ],
            timeouts,
        );
        return Ok(vec![sticky, weighted]);
    }
    canary_ref["filters"] = json!([set_cookie_filter(
        affinity.build_cookie(&cookies.canary, affinity.max_age())
    )]);
    let primary_cookie = (version == RouteVersion::V1)
        .then(|| affinity.primary_cookie_name.as_deref().filter(|n| !n.is_empty()))
        .flatten();
    if primary_cookie.is_some() {
        let interval = canary
            .analysis()
            .and_then(|a| a.interval.clone())
            .unwrap_or_default();
        let seconds = go_duration_seconds(&interval).ok_or_else(|| {
            RouteError(format!(
                "failed to parse canary interval: time: invalid duration {}",
                serde_json::Value::from(interval.clone())
            ))
        })?;
        primary_ref["filters"] = json!([set_cookie_filter(
            affinity.build_cookie(&cookies.primary, seconds)
        )]);
    }
    let weighted = rule(weighted_matches, filters, vec![primary_ref, canary_ref], timeouts);
    let mut rules = vec![rule(
        &merge_matches(&[cookie_match(&cookies.canary)], &svc_matches),
        filters,
        vec![
            backend_ref(&primary, 0, port),
            backend_ref(&canary_svc, 100, port),
        ],
        timeouts,
    )];
    if primary_cookie.is_some() {
        rules.push(rule(
            &merge_matches(&[cookie_match(&cookies.primary)], &svc_matches),
            filters,
            vec![
                backend_ref(&primary, 100, port),
                backend_ref(&canary_svc, 0, port),
            ],
            timeouts,
        ));
    }
    rules.push(weighted);
    Ok(rules)
}

// ---------------------------------------------------------------------------------------------------------
// Rule ownership

/// Whether `backend` (a backendRef) is one of `names`, a Service of namespace `ns`.
fn is_service(backend: &Value, ns: &str, names: &[&str]) -> bool {
    backend["group"].as_str().unwrap_or("").is_empty()
        && backend["kind"].as_str().unwrap_or("Service") == "Service"
        && backend["namespace"].as_str().is_none_or(|n| n == ns)
        && backend["name"].as_str().is_some_and(|n| names.contains(&n))
}

/// Whether `rule` is Flagger's: one of its backends is the apex, primary or canary Service.
pub fn is_flagger_rule(canary: &Canary, rule: &Value) -> bool {
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let (primary, canary_svc) = (canary.primary_service_name(), canary.canary_service_name());
    let names = [canary.service_name(), primary.as_str(), canary_svc.as_str()];
    rule["backendRefs"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|b| is_service(b, ns, &names)))
}

/// The user's rules of a route spec, in their order (every rule that is not Flagger's).
pub fn user_rules(canary: &Canary, spec: &Value) -> Vec<Value> {
    spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !is_flagger_rule(canary, r))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Comparison

/// Removes nulls, empty lists and empty objects (Flagger compares with `cmpopts.EquateEmpty`).
fn strip_empty(v: &mut Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(items) => {
            items.retain_mut(strip_empty);
            !items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|_, v| strip_empty(v));
            !map.is_empty()
        }
        _ => true,
    }
}

fn set_default(obj: &mut Value, key: &str, default: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.entry(key).or_insert(default);
    }
}

/// Fills the defaults the API server writes into every `backendRef` (group `""`, kind `Service`) and CORS
/// filter (`maxAge: 5`) found in `v`.
fn default_nested(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "backendRef" && child.is_object() {
                    set_default(child, "group", json!(""));
                    set_default(child, "kind", json!("Service"));
                }
                if key == "cors" && child.is_object() {
                    set_default(child, "maxAge", json!(5));
                }
                default_nested(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(default_nested),
        _ => {}
    }
}

fn project(v: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k).filter(|x| !x.is_null()) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

const PARENT_REF_KEYS: [&str; 6] = ["group", "kind", "namespace", "name", "sectionName", "port"];

/// A parentRef with the API server's defaults (group `gateway.networking.k8s.io`, kind `Gateway`).
fn normalize_parent(p: &Value) -> Value {
    let mut p = project(p, &PARENT_REF_KEYS);
    set_default(&mut p, "group", json!(GROUP));
    set_default(&mut p, "kind", json!("Gateway"));
    p
}

fn normalize_match(m: &Value) -> Value {
    let mut m = project(m, &["path", "headers", "queryParams", "method"]);
    set_default(&mut m, "path", json!({}));
    set_default(&mut m["path"], "type", json!("PathPrefix"));
    set_default(&mut m["path"], "value", json!("/"));
    for key in ["headers", "queryParams"] {
        if let Some(items) = m[key].as_array_mut() {
            for item in items {
                set_default(item, "type", json!("Exact"));
            }
        }
    }
    m
}

struct Ignore {
    backend_filters: bool,
    rule_filters: bool,
}

fn normalize_rule(r: &Value, ignore: &Ignore) -> Value {
    let mut r = project(
        r,
        &[
            "name",
            "matches",
            "filters",
            "backendRefs",
            "timeouts",
            "retry",
            "sessionPersistence",
        ],
    );
    let matches: Vec<Value> = r["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(normalize_match)
        .collect();
    r["matches"] = if matches.is_empty() {
        json!([normalize_match(&json!({}))])
    } else {
        Value::Array(matches)
    };
    if ignore.rule_filters
        && let Some(map) = r.as_object_mut()
    {
        map.remove("filters");
    }
    if let Some(refs) = r["backendRefs"].as_array_mut() {
        for b in refs {
            if let Some(map) = b.as_object_mut() {
                map.remove("weight");
                if ignore.backend_filters {
                    map.remove("filters");
                }
            }
            set_default(b, "group", json!(""));
            set_default(b, "kind", json!("Service"));
        }
    }
    default_nested(&mut r);
    r
}

/// Whether `rule` is a sticky session rule Flagger's comparison skips: a `Cookie` regular-expression header
/// match whose value contains `name`.
fn is_cookie_rule(rule: &Value, name: &str) -> bool {
    rule["matches"].as_array().into_iter().flatten().any(|m| {
        m["headers"].as_array().into_iter().flatten().any(|h| {
            h["type"] == "RegularExpression"
                && h["name"] == COOKIE_HEADER
                && h["value"].as_str().is_some_and(|v| v.contains(name))
        })
    })
}

fn normalize_spec(version: RouteVersion, canary: &Canary, spec: &Value) -> Value {
    let analysis = canary.analysis();
    let affinity = analysis.and_then(|a| a.session_affinity.as_ref());
    let phase = canary.status.as_ref().map(|s| s.phase()).unwrap_or_default();
    let in_progress = matches!(
        phase,
        CanaryPhase::Waiting | CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
    );
    let ignore = Ignore {
        backend_filters: affinity.is_some(),
        rule_filters: analysis.is_some_and(|a| a.mirror()) && in_progress,
    };
    let mut cookie_names: Vec<&str> = Vec::new();
    if let Some(a) = affinity {
        cookie_names.push(&a.cookie_name);
        if version == RouteVersion::V1 {
            cookie_names.push(a.primary_cookie_name.as_deref().unwrap_or_default());
        }
    }
    let rules: Vec<Value> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !cookie_names.iter().any(|n| is_cookie_rule(r, n)))
        .map(|r| normalize_rule(r, &ignore))
        .collect();
    let parents: Vec<Value> = spec["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(normalize_parent)
        .collect();
    let mut out = json!({"parentRefs": parents, "hostnames": spec["hostnames"], "rules": rules});
    strip_empty(&mut out);
    out
}

/// Whether the current spec differs from the desired one as Flagger compares them: ignoring the backend
/// weights, empty-versus-missing fields and the Gateway API defaults; with session affinity also the sticky
/// cookie rules and backend filters; with `analysis.mirror` during Waiting, Progressing and
/// WaitingPromotion also the rule filters.
pub fn spec_differs(version: RouteVersion, canary: &Canary, desired: &Value, current: &Value) -> bool {
    normalize_spec(version, canary, desired) != normalize_spec(version, canary, current)
}

/// Whether the labels, annotations or owner reference differ (see [`super::takeover::metadata_differs`]).
pub fn metadata_differs(desired: &Value, current: &DynamicObject) -> bool {
    super::takeover::metadata_differs(desired, current, FIELD_MANAGER)
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/// Reads the weights of a route as Flagger does. v1 first checks that no parent in `status.parents`
/// reports `Accepted` other than `True` or for an older generation (Flagger's message).
pub fn read_routes(
    version: RouteVersion,
    canary: &Canary,
    route: &DynamicObject,
) -> Result<Routes, RouteError> {
    let apex = canary.service_name();
    let ns = namespace(canary)?;
    let spec = &route.data["spec"];
    if version == RouteVersion::V1 {
        let generation = route.metadata.generation.unwrap_or_default();
        for parent in spec["parentRefs"].as_array().into_iter().flatten() {
            let wanted = project(parent, &PARENT_REF_KEYS);
            for status in route.data["status"]["parents"].as_array().into_iter().flatten() {
                if project(&status["parentRef"], &PARENT_REF_KEYS) != wanted {
                    continue;
                }
                for c in status["conditions"].as_array().into_iter().flatten() {
                    let observed = c["observedGeneration"].as_i64().unwrap_or_default();
                    if c["type"] == "Accepted" && (c["status"] != "True" || observed < generation) {
                        return Err(RouteError(format!(
                            "HTTPRoute {apex}.{ns} parent {} is not ready (status: {}, observed generation: {observed}, current generation: {generation})",
                            parent["name"].as_str().unwrap_or_default(),
                            c["status"].as_str().unwrap_or_default(),
                        )));
                    }
                }
            }
        }
    }
    let (primary, canary_svc) = (canary.primary_service_name(), canary.canary_service_name());
    let affinity = canary.analysis().is_some_and(|a| a.session_affinity.is_some());
    let weight = |b: &Value| i32::try_from(b["weight"].as_i64().unwrap_or(1)).unwrap_or_default();
    let mut routes = Routes::default();
    let mut weighted_rule = None;
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let refs = rule["backendRefs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if affinity
            && refs
                .iter()
                .any(|b| b["filters"].as_array().is_some_and(|f| !f.is_empty()))
        {
            weighted_rule = Some(refs);
        }
        if refs.len() == 2 {
            for b in refs {
                if b["name"] == primary.as_str() {
                    routes.primary = weight(b);
                }
                if b["name"] == canary_svc.as_str() {
                    routes.canary = weight(b);
                }
            }
        }
        for f in rule["filters"].as_array().into_iter().flatten() {
            if f["type"] == "RequestMirror" && f["requestMirror"]["backendRef"]["name"] == canary_svc.as_str()
            {
                routes.mirrored = true;
            }
        }
    }
    for b in weighted_rule.into_iter().flatten() {
        if b["name"] == primary.as_str() {
            routes.primary = weight(b);
        }
        if b["name"] == canary_svc.as_str() {
            routes.canary = weight(b);
        }
    }
    Ok(routes)
}

// ---------------------------------------------------------------------------------------------------------
// Session cookies

/// The `name=value` part of a `Set-Cookie` value of `filters` for the cookie `name` (and, with
/// `expired`, only one that expires it).
fn set_cookie_in(filters: &Value, name: &str, expired: bool) -> Option<String> {
    filters.as_array().into_iter().flatten().find_map(|f| {
        f["responseHeaderModifier"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|h| {
                let v = h["value"].as_str().filter(|_| h["name"] == SET_COOKIE_HEADER)?;
                set_cookie_value(v, name, expired)
            })
    })
}

/// The canary cookie the route currently hands out (on the canary backend) or expires (on a sticky rule).
pub fn cookie_in_route(canary: &Canary, spec: &Value, name: &str) -> Option<String> {
    let canary_svc = canary.canary_service_name();
    let rules = spec["rules"].as_array()?;
    let active = rules.iter().find_map(|r| {
        r["backendRefs"]
            .as_array()?
            .iter()
            .filter(|b| b["name"] == canary_svc.as_str())
            .find_map(|b| set_cookie_in(&b["filters"], name, false))
    });
    active.or_else(|| {
        rules
            .iter()
            .find_map(|r| set_cookie_in(&r["filters"], name, true))
    })
}

/// The cookies of the next weight change (see [`super::cookies`]).
pub fn cookies(canary: &Canary, current_spec: &Value) -> Cookies {
    super::cookies::cookies(canary, |name| cookie_in_route(canary, current_spec, name))
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
            json!({"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": "infra"}]}),
            json!({"interval": "15s", "threshold": 2, "stepWeight": 25}),
        )
    }

    fn route(data: Value) -> DynamicObject {
        let mut obj: DynamicObject = serde_json::from_value(data).unwrap();
        obj.metadata.namespace = Some("test".into());
        obj
    }

    fn weighted(canary: &Canary, primary: i32, weight: i32) -> Vec<Value> {
        flagger_rules(
            RouteVersion::V1,
            canary,
            Shape::Weighted {
                routes: Routes {
                    primary,
                    canary: weight,
                    mirrored: false,
                },
                cookies: &Cookies::default(),
            },
        )
        .unwrap()
    }

    #[test]
    fn versions_have_their_api_resource() {
        let r = api_resource(RouteVersion::V1beta1);
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.plural.as_str()),
            ("gateway.networking.k8s.io/v1beta1", "HTTPRoute", "httproutes")
        );
    }

    #[test]
    fn gateway_refs_are_required_with_flaggers_message() {
        let c = canary(json!({"port": 80}), json!({}));
        assert_eq!(
            check_gateway_refs(&c),
            Err(RouteError(
                "GatewayRefs must be specified when using Gateway API as a provider.".into()
            ))
        );
        assert_eq!(check_gateway_refs(&basic()), Ok(()));
    }

    #[test]
    fn unsupported_selectors_fail_with_flaggers_messages() {
        let m = |v: Value| -> Vec<HttpMatchRequest> { serde_json::from_value(v).unwrap() };
        assert_eq!(
            map_matches(&m(json!([{"uri": {"suffix": "/x"}}]))),
            Err(RouteError(
                "Gateway API doesn't support the specified path matching selector: &{Exact: Prefix: Suffix:/x Regex:}\n"
                    .into()
            ))
        );
        assert_eq!(
            map_matches(&m(json!([{"headers": {"a": {"exact": "1"}, "b": {"prefix": "p"}}}]))),
            Err(RouteError(
                "Gateway API doesn't support the specified header matching selector: map[a:{Exact:1 Prefix: Suffix: Regex:} b:{Exact: Prefix:p Suffix: Regex:}]\n"
                    .into()
            ))
        );
        // A method other than exact: Flagger's message names the headers.
        assert_eq!(
            map_matches(&m(json!([{"method": {"prefix": "GE"}}]))),
            Err(RouteError(
                "Gateway API doesn't support the specified header matching selector: map[]\n".into()
            ))
        );
        assert_eq!(
            map_matches(&m(json!([{"queryParams": {"q": {"prefix": "1"}}}]))),
            Err(RouteError(
                "Gateway API doesn't support the specified query matching selector: map[q:{Exact: Prefix:1 Suffix: Regex:}]\n"
                    .into()
            ))
        );
        let bad = canary(
            json!({"port": 80, "gatewayRefs": [{"name": "gw"}], "match": [{"uri": {"suffix": "/x"}}]}),
            json!({}),
        );
        assert_eq!(
            flagger_rules(RouteVersion::V1, &bad, Shape::Initial),
            Err(RouteError(
                "Invalid request matching selectors: Gateway API doesn't support the specified path matching selector: &{Exact: Prefix: Suffix:/x Regex:}\n"
                    .into()
            ))
        );
    }

    #[test]
    fn matches_map_uri_method_headers_and_query_params() {
        let m: Vec<HttpMatchRequest> = serde_json::from_value(json!([
            {"uri": {"prefix": "/api"}, "method": {"exact": "GET"},
             "headers": {"x-b": {"regex": "b.*"}, "x-a": {"exact": "a"}},
             "queryParams": {"v": {"exact": "2"}}},
            {"uri": {"regex": "/r.*"}},
            {"uri": {"exact": "/e"}},
            {"name": "only-a-name"},
        ]))
        .unwrap();
        assert_eq!(
            map_matches(&m).unwrap(),
            vec![
                json!({"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET",
                       "headers": [{"type": "Exact", "name": "x-a", "value": "a"},
                                   {"type": "RegularExpression", "name": "x-b", "value": "b.*"}],
                       "queryParams": [{"type": "Exact", "name": "v", "value": "2"}]}),
                json!({"path": {"type": "RegularExpression", "value": "/r.*"}}),
                json!({"path": {"type": "Exact", "value": "/e"}}),
            ]
        );
    }

    #[test]
    fn merged_matches_replace_headers_and_query_params_of_each_service_match() {
        let analysis = [
            json!({"headers": [{"name": "x", "value": "1"}]}),
            json!({"queryParams": [{"name": "q", "value": "1"}], "path": {"value": "/ignored"}}),
        ];
        let service = [
            json!({"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "s", "value": "s"}]}),
            json!({"path": {"type": "Exact", "value": "/b"}}),
        ];
        assert_eq!(
            merge_matches(&analysis, &service),
            vec![
                json!({"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "x", "value": "1"}]}),
                json!({"path": {"type": "Exact", "value": "/b"}, "headers": [{"name": "x", "value": "1"}]}),
                json!({"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "s", "value": "s"}],
                       "queryParams": [{"name": "q", "value": "1"}]}),
                json!({"path": {"type": "Exact", "value": "/b"}, "queryParams": [{"name": "q", "value": "1"}]}),
            ]
        );
        assert_eq!(merge_matches(&[], &service), service.to_vec());
        assert_eq!(merge_matches(&analysis, &[]), analysis.to_vec());
    }

    #[test]
    fn cors_maps_allow_origin_and_max_age_seconds() {
        let cors: CorsPolicy = serde_json::from_value(json!({
            "allowOrigin": ["https://a.example"], "allowMethods": ["GET"], "allowHeaders": ["x-h"],
            "exposeHeaders": ["x-e"], "maxAge": "24h", "allowCredentials": true,
        }))
        .unwrap();
        assert_eq!(
            cors_filter(&cors),
            json!({"type": "CORS", "cors": {"allowOrigins": ["https://a.example"], "allowMethods": ["GET"],
                   "allowHeaders": ["x-h"], "exposeHeaders": ["x-e"], "allowCredentials": true, "maxAge": 86400}})
        );
        // Go's ParseDuration does not know days: no maxAge.
        let days: CorsPolicy = serde_json::from_value(json!({"maxAge": "1d"})).unwrap();
        assert_eq!(cors_filter(&days), json!({"type": "CORS", "cors": {}}));
    }

    #[test]
    fn owned_rules_are_those_routing_to_the_apex_primary_or_canary_service() {
        let c = basic();
        let r = |backends: Value| json!({"backendRefs": backends});
        assert!(is_flagger_rule(&c, &r(json!([{"name": "podinfo-primary"}]))));
        assert!(is_flagger_rule(&c, &r(json!([{"name": "podinfo", "port": 80}]))));
        assert!(is_flagger_rule(
            &c,
            &r(
                json!([{"name": "x"}, {"name": "podinfo-canary", "namespace": "test", "kind": "Service", "group": ""}])
            )
        ));
        assert!(!is_flagger_rule(
            &c,
            &r(json!([{"name": "podinfo-primary", "namespace": "other"}]))
        ));
        assert!(!is_flagger_rule(
            &c,
            &r(json!([{"name": "podinfo", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"}]))
        ));
        assert!(!is_flagger_rule(&c, &r(json!([{"name": "legacy"}]))));
        assert!(!is_flagger_rule(
            &c,
            &json!({"filters": [{"type": "RequestRedirect"}]})
        ));
        let spec = json!({"rules": [
            {"backendRefs": [{"name": "a"}]},
            {"backendRefs": [{"name": "podinfo"}]},
            {"filters": [{"type": "RequestRedirect"}]},
        ]});
        assert_eq!(
            user_rules(&c, &spec),
            vec![
                json!({"backendRefs": [{"name": "a"}]}),
                json!({"filters": [{"type": "RequestRedirect"}]})
            ]
        );
    }

    #[test]
    fn a_defaulted_route_does_not_differ_and_weights_are_ignored() {
        let c = basic();
        let desired = spec(&c, flagger_rules(RouteVersion::V1, &c, Shape::Initial).unwrap());
        // What the API server returns: defaults filled in, weights moved.
        let mut stored = desired.clone();
        stored["parentRefs"][0]["group"] = json!(GROUP);
        stored["parentRefs"][0]["kind"] = json!("Gateway");
        stored["rules"][0]["backendRefs"][0]["weight"] = json!(60);
        stored["rules"][0]["backendRefs"][1]["weight"] = json!(40);
        assert!(!spec_differs(RouteVersion::V1, &c, &desired, &stored));
        let mut moved = stored.clone();
        moved["hostnames"] = json!(["app.example.com"]);
        assert!(spec_differs(RouteVersion::V1, &c, &desired, &moved));
        let mut other_port = stored.clone();
        other_port["rules"][0]["backendRefs"][1]["port"] = json!(80);
        assert!(spec_differs(RouteVersion::V1, &c, &desired, &other_port));
        // A match without path is the default PathPrefix "/".
        let mut no_path = stored.clone();
        no_path["rules"][0]["matches"] = json!([{}]);
        assert!(!spec_differs(RouteVersion::V1, &c, &desired, &no_path));
    }

    #[test]
    fn mirror_filters_are_ignored_only_while_a_mirrored_run_is_in_progress() {
        let mut c = canary(
            json!({"port": 80, "gatewayRefs": [{"name": "gw"}]}),
            json!({"interval": "10s", "threshold": 2, "iterations": 3, "mirror": true}),
        );
        let desired = spec(&c, flagger_rules(RouteVersion::V1, &c, Shape::Initial).unwrap());
        let mirrored = spec(
            &c,
            flagger_rules(
                RouteVersion::V1,
                &c,
                Shape::Weighted {
                    routes: Routes {
                        primary: 100,
                        canary: 0,
                        mirrored: true,
                    },
                    cookies: &Cookies::default(),
                },
            )
            .unwrap(),
        );
        assert_eq!(
            mirrored["rules"][0]["filters"],
            json!([{"type": "RequestMirror", "requestMirror": {"backendRef":
                {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 80}}}])
        );
        assert!(spec_differs(RouteVersion::V1, &c, &desired, &mirrored));
        c.status = Some(serde_json::from_value(json!({"phase": "Progressing"})).unwrap());
        assert!(!spec_differs(RouteVersion::V1, &c, &desired, &mirrored));
        let routes = read_routes(
            RouteVersion::V1,
            &c,
            &route(json!({"metadata": {"name": "podinfo"}, "spec": mirrored})),
        )
        .unwrap();
        assert_eq!(
            routes,
            Routes {
                primary: 100,
                canary: 0,
                mirrored: true
            }
        );
    }

    #[test]
    fn parents_must_accept_the_current_generation_in_v1() {
        let c = basic();
        let status = |status: &str, observed: i64| {
            json!({"parents": [{"parentRef": {"group": GROUP, "kind": "Gateway", "name": "gw", "namespace": "infra"},
                "controllerName": "x", "conditions": [{"type": "Accepted", "status": status, "observedGeneration": observed}]}]})
        };
        let rules = weighted(&c, 75, 25);
        let obj = |status: Value| {
            route(json!({"metadata": {"name": "podinfo", "generation": 3},
                "spec": {"parentRefs": [{"group": GROUP, "kind": "Gateway", "name": "gw", "namespace": "infra"}], "rules": rules},
                "status": status}))
        };
        let want = Routes {
            primary: 75,
            canary: 25,
            mirrored: false,
        };
        assert_eq!(
            read_routes(RouteVersion::V1, &c, &obj(status("True", 3))),
            Ok(want)
        );
        assert_eq!(read_routes(RouteVersion::V1, &c, &obj(json!(null))), Ok(want));
        assert_eq!(
            read_routes(RouteVersion::V1, &c, &obj(status("True", 2))),
            Err(RouteError(
                "HTTPRoute podinfo.test parent gw is not ready (status: True, observed generation: 2, current generation: 3)".into()
            ))
        );
        assert_eq!(
            read_routes(RouteVersion::V1, &c, &obj(status("False", 3))),
            Err(RouteError(
                "HTTPRoute podinfo.test parent gw is not ready (status: False, observed generation: 3, current generation: 3)".into()
            ))
        );
        // v1beta1 does not check the parents.
        assert_eq!(
            read_routes(RouteVersion::V1beta1, &c, &obj(status("False", 1))),
            Ok(want)
        );
    }

    #[test]
    fn session_cookies_are_derived_per_revision_and_read_back_from_the_route() {
        let mut c = canary(
            json!({"port": 80, "gatewayRefs": [{"name": "gw"}]}),
            json!({"interval": "15s", "threshold": 2, "stepWeight": 25,
                   "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "maxAge": 300}}),
        );
        c.status = Some(serde_json::from_value(json!({"lastAppliedSpec": "frs1-aaaa"})).unwrap());
        let first = cookies(&c, &json!({}));
        assert!(first.canary.starts_with("flagger-cookie="), "{first:?}");
        assert_eq!(first.canary.len(), "flagger-cookie=".len() + 10);
        assert!(first.primary.starts_with("primary-cookie="), "{first:?}");
        assert_eq!(first.previous, None);
        assert_eq!(cookies(&c, &json!({})), first, "stable within a run");
        let rules = flagger_rules(
            RouteVersion::V1,
            &c,
            Shape::Weighted {
                routes: Routes {
                    primary: 75,
                    canary: 25,
                    mirrored: false,
                },
                cookies: &first,
            },
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        let during = json!({"rules": rules});
        let later = cookies(&c, &during);
        assert_eq!(later.previous.as_deref(), Some(first.canary.as_str()));
        // Promoted: the expiring rule carries the cookie on.
        let promoted = flagger_rules(
            RouteVersion::V1,
            &c,
            Shape::Weighted {
                routes: Routes::PRIMARY,
                cookies: &later,
            },
        )
        .unwrap();
        assert_eq!(
            promoted[0]["filters"][0]["responseHeaderModifier"]["add"][0]["value"],
            json!(format!("{}; Max-Age=-1", first.canary))
        );
        assert_eq!(
            cookies(&c, &json!({"rules": promoted})).previous.as_deref(),
            Some(first.canary.as_str())
        );
        // The next revision gets a new cookie.
        c.status = Some(serde_json::from_value(json!({"lastAppliedSpec": "frs1-bbbb"})).unwrap());
        assert_ne!(cookies(&c, &json!({})).canary, first.canary);
        // Cookies Go Flagger left in the status win.
        c.status = Some(
            serde_json::from_value(json!({"sessionAffinityCookie": "flagger-cookie=fromstatus"})).unwrap(),
        );
        assert_eq!(cookies(&c, &json!({})).canary, "flagger-cookie=fromstatus");
        assert_eq!(
            cookies(&c, &json!({})).previous.as_deref(),
            Some("flagger-cookie=fromstatus")
        );
    }

    #[test]
    fn the_primary_cookie_needs_a_parsable_interval() {
        let c = canary(
            json!({"port": 80, "gatewayRefs": [{"name": "gw"}]}),
            json!({"interval": "soon", "threshold": 2, "stepWeight": 25,
                   "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
        );
        let cookies = Cookies {
            canary: "c=x".into(),
            primary: "p=y".into(),
            previous: None,
        };
        let shape = Shape::Weighted {
            routes: Routes {
                primary: 50,
                canary: 50,
                mirrored: false,
            },
            cookies: &cookies,
        };
        assert_eq!(
            flagger_rules(RouteVersion::V1, &c, shape),
            Err(RouteError(
                "failed to parse canary interval: time: invalid duration \"soon\"".into()
            ))
        );
        // v1beta1 has no primary cookie, so no interval to parse.
        assert_eq!(flagger_rules(RouteVersion::V1beta1, &c, shape).unwrap().len(), 2);
    }

    #[test]
    fn metadata_differs_when_a_desired_entry_is_missing() {
        let c = basic();
        let desired = desired_object(RouteVersion::V1, &c, vec![], &Carried::default());
        let current = route(json!({"metadata": {"name": "podinfo", "annotations": {
            "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
            "helm.toolkit.fluxcd.io/driftDetection": "disabled",
            "other": "kept"}}}));
        assert!(!metadata_differs(&desired["metadata"], &current));
        let bare = route(json!({"metadata": {"name": "podinfo"}}));
        assert!(metadata_differs(&desired["metadata"], &bare));
    }
}
