//! NGINX ingress router (`nginx`), Flagger's `IngressRouter`.
//!
//! The canary Ingress `<ingressRef>-canary` is a copy of the Ingress named by `spec.ingressRef` in which
//! every path backend routing to the apex Service routes to `<apex>-canary` instead. The NGINX ingress
//! controller splits the traffic of the host/path between the two Ingresses from the canary annotations,
//! all under the `-ingress-annotations-prefix` (default [`DEFAULT_ANNOTATIONS_PREFIX`]):
//!
//! ```yaml
//! metadata:
//!   name: <ingress>-canary
//!   labels: <labels of the ingress>
//!   annotations:
//!     <annotations of the ingress, without the <prefix>/canary* keys and kubectl's last-applied>
//!     kustomize.toolkit.fluxcd.io/reconcile: disabled
//!     helm.toolkit.fluxcd.io/driftDetection: disabled
//!     <prefix>/canary: "true"
//!     <prefix>/canary-weight: "0"
//! spec: <spec of the ingress, backends <apex> → <apex>-canary>
//! ```
//!
//! Flagger's rules, kept here:
//!
//! - `reconcile` fails without `ingressRef` (`ingress selector is empty`), when the Ingress is missing and
//!   when no backend routes to the apex Service (`backend <apex> not found in ingress <name>`). The canary
//!   Ingress is created with a controller owner reference to the Canary; afterwards only its spec is
//!   rewritten, and only when it differs from the copy;
//! - `set_routes`: with `analysis.match` (A/B) the `cookie` header becomes `canary-by-cookie: <exact>`, any
//!   other header `canary-by-header: <name>`, `canary-by-header-value: <exact>`,
//!   `canary-by-header-pattern: <regex>`; otherwise `canary-weight: "<canary weight>"`. A canary weight above
//!   0 sets `canary: "true"`; a weight of 0 strips every canary annotation and puts back `canary: "true"`,
//!   `canary-weight: "0"`;
//! - `get_routes`: with `analysis.match` and a `canary-by-cookie` or `canary-by-header` annotation the
//!   canary takes all matching traffic (0/100); otherwise the canary weight is `canary-weight` and the
//!   primary gets the rest; never mirrored;
//! - `finalize` does nothing: the canary Ingress is owned by the Canary and goes with it, the user's
//!   Ingress was never changed.
//!
//! Where flagger-rs differs: Flagger's A/B path filters the existing annotations by *value* (it keeps every
//! annotation whose value does not contain `<prefix>/canary`), so a stale `canary-weight` (and stale
//! `canary-by-*` keys of an earlier match) survive next to the new `canary-by-*` ones. Here the A/B path
//! drops every `<prefix>/canary*` *key* first, as the weighted path does.
//!
//! Reads come from the watch cache. Writes are a create (POST), an update (PUT guarded by the cached
//! `resourceVersion`) of the spec, and JSON merge patches of the annotations that changed (guarded by the
//! `resourceVersion`), under the field manager [`FIELD_MANAGER`], each after checking the leader gate. A
//! conflict is retried once against the live object.

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use flagger_core::services::TOOLKIT_ANNOTATIONS;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt as _;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use super::takeover;
pub(crate) use super::takeover::namespace;
use super::{RouteCx, RouterError};

/// The default `-ingress-annotations-prefix`.
pub const DEFAULT_ANNOTATIONS_PREFIX: &str = "nginx.ingress.kubernetes.io";
/// The field manager of every write of this router.
pub const FIELD_MANAGER: &str = "flagger/router-nginx";
/// kubectl's annotation, never copied to the canary Ingress.
pub const KUBECTL_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The NGINX router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxRouter {
    annotations_prefix: String,
}

impl Default for NginxRouter {
    fn default() -> Self {
        Self::new(DEFAULT_ANNOTATIONS_PREFIX)
    }
}

impl NginxRouter {
    /// The router writing annotations under `annotations_prefix` (`-ingress-annotations-prefix`).
    pub fn new(annotations_prefix: &str) -> Self {
        Self {
            annotations_prefix: annotations_prefix.to_owned(),
        }
    }

    /// `<prefix>/<suffix>`.
    pub fn annotation(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.annotations_prefix)
    }

    /// The annotations of a canary Ingress at weight 0: `annotations` (plus the toolkit annotations) without
    /// any key containing `<prefix>/canary` or kubectl's last-applied, then `canary: "true"` and
    /// `canary-weight: "0"`.
    pub fn reset_annotations(&self, annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out = self.without_canary_keys(annotations);
        out.insert(self.annotation("canary"), "true".to_owned());
        out.insert(self.annotation("canary-weight"), "0".to_owned());
        out
    }

    /// `annotations` plus the toolkit annotations, without the canary keys and kubectl's last-applied.
    fn without_canary_keys(&self, annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let canary = self.annotation("canary");
        let mut out: BTreeMap<String, String> = annotations
            .iter()
            .filter(|(k, _)| !k.contains(&canary) && !k.contains(KUBECTL_ANNOTATION))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in TOOLKIT_ANNOTATIONS {
            out.insert(k.to_owned(), v.to_owned());
        }
        out
    }

    /// The annotations of the A/B shape: the canary keys dropped (by key; see the module doc), then
    /// `canary: "true"` and the `canary-by-*` keys of the match.
    fn header_annotations(
        &self,
        annotations: &BTreeMap<String, String>,
        canary: &Canary,
    ) -> BTreeMap<String, String> {
        let (mut cookie, mut header, mut value, mut regex) = (None, None, None, None);
        for m in canary
            .analysis()
            .map(|a| a.match_conditions())
            .unwrap_or_default()
        {
            for (name, matcher) in m.headers.iter().flatten() {
                if name == "cookie" {
                    cookie = matcher.exact.clone();
                } else {
                    header = Some(name.clone());
                    value = matcher.exact.clone();
                    regex = matcher.regex.clone();
                }
            }
        }
        let mut out = self.without_canary_keys(annotations);
        out.insert(self.annotation("canary"), "true".to_owned());
        for (suffix, v) in [
            ("canary-by-cookie", cookie),
            ("canary-by-header", header),
            ("canary-by-header-value", value),
            ("canary-by-header-pattern", regex),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                out.insert(self.annotation(suffix), v);
            }
        }
        out
    }

    /// The annotations `set_routes` writes over `current` for `routes`.
    pub fn routes_annotations(
        &self,
        canary: &Canary,
        current: &BTreeMap<String, String>,
        routes: Routes,
    ) -> BTreeMap<String, String> {
        let ab = !match_conditions(canary).is_empty();
        let mut out = if ab {
            self.header_annotations(current, canary)
        } else {
            let mut out = current.clone();
            out.insert(self.annotation("canary-weight"), routes.canary.to_string());
            out
        };
        if routes.canary > 0 {
            out.insert(self.annotation("canary"), "true".to_owned());
            out
        } else {
            self.reset_annotations(&out)
        }
    }

    /// The weights the annotations of the canary Ingress express (Flagger's `GetRoutes`).
    pub fn read_routes(
        &self,
        canary: &Canary,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Routes, String> {
        if !match_conditions(canary).is_empty()
            && (annotations.contains_key(&self.annotation("canary-by-cookie"))
                || annotations.contains_key(&self.annotation("canary-by-header")))
        {
            return Ok(Routes {
                primary: 0,
                canary: 100,
                mirrored: false,
            });
        }
        let weight = match annotations.get(&self.annotation("canary-weight")) {
            Some(v) => go_atoi(v).map_err(|e| format!("failed to convert {v} to int: {e}"))?,
            None => 0,
        };
        Ok(Routes {
            primary: 100 - weight,
            canary: weight,
            mirrored: false,
        })
    }

    /// The canary Ingress Flagger creates from the user's Ingress `ingress`.
    pub fn desired(&self, canary: &Canary, ingress: &DynamicObject) -> Result<Value, String> {
        let spec = canary_spec(canary, ingress)?;
        canary_ingress(
            canary,
            ingress,
            &self.reset_annotations(ingress.annotations()),
            spec,
        )
    }

    /// Creates the canary Ingress, or rewrites its spec when it differs from the copy of the user's Ingress.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let source = ingress_ref(canary)?;
        let ingress = cached_ingress(cx, ns, source, true)
            .await?
            .ok_or_else(|| RouterError::Invalid(not_found("ingress", source, ns)))?;
        let desired = self.desired(canary, &ingress).map_err(RouterError::Invalid)?;
        ensure_ingress(
            cx,
            &desired,
            |current, desired| current.data["spec"] != desired["spec"],
            |next, desired| {
                next.data["spec"] = desired["spec"].clone();
            },
        )
        .await
    }

    /// Reads the weights from the cached canary Ingress.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let name = canary_ingress_name(canary).map_err(RouterError::Invalid)?;
        let current = cached_ingress(cx, ns, &name, false)
            .await?
            .ok_or_else(|| RouterError::Invalid(not_found("ingress", &name, ns)))?;
        self.read_routes(canary, current.annotations())
            .map_err(RouterError::Invalid)
    }

    /// Writes the annotations of `routes` on the canary Ingress.
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let name = canary_ingress_name(canary).map_err(RouterError::Invalid)?;
        let current = cached_ingress(cx, ns, &name, false)
            .await?
            .ok_or_else(|| RouterError::Invalid(not_found("ingress", &name, ns)))?;
        patch_annotations(cx, current, |a| self.routes_annotations(canary, a, routes)).await
    }

    /// Flagger's `Finalize` does nothing for NGINX (see the module doc).
    pub async fn finalize(&self, _cx: &RouteCx<'_>) -> Result<(), RouterError> {
        Ok(())
    }
}

/// The A/B conditions of the canary (empty when none).
fn match_conditions(canary: &Canary) -> &[flagger_api::istio::HttpMatchRequest] {
    canary
        .analysis()
        .map(|a| a.match_conditions())
        .unwrap_or_default()
}

/// Go's `strconv.Atoi` (optional sign, decimal digits, 64-bit) with its error texts, bounded to `i32`.
pub(crate) fn go_atoi(text: &str) -> Result<i32, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {text:?}: invalid syntax"));
    }
    text.parse::<i32>()
        .map_err(|_| format!("strconv.Atoi: parsing {text:?}: value out of range"))
}

/// `<ingressRef.name>-canary`, or Flagger's `ingress selector is empty`.
pub(crate) fn canary_ingress_name(canary: &Canary) -> Result<String, String> {
    ingress_ref(canary)
        .map(|name| format!("{name}-canary"))
        .map_err(|e| e.to_string())
}

/// The name in `spec.ingressRef`, or Flagger's `ingress selector is empty`.
#[allow(clippy::result_large_err)] // the router's own error type, as every operation returns
pub(crate) fn ingress_ref(canary: &Canary) -> Result<&str, RouterError> {
    match canary.spec.ingress_ref.as_ref() {
        Some(r) if !r.name.is_empty() => Ok(&r.name),
        _ => Err(RouterError::Invalid("ingress selector is empty".to_owned())),
    }
}

/// The user's Ingress spec with every backend `<apex>` routed to `<apex>-canary`.
fn canary_spec(canary: &Canary, ingress: &DynamicObject) -> Result<Value, String> {
    let apex = canary.service_name();
    let mut spec = ingress.data.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut found = false;
    for_each_path(&mut spec, |path| {
        if let Some(service) = path.pointer_mut("/backend/service")
            && service["name"] == apex
        {
            service["name"] = json!(format!("{apex}-canary"));
            found = true;
        }
    });
    if !found {
        return Err(format!(
            "backend {apex} not found in ingress {}",
            ingress.name_any()
        ));
    }
    Ok(spec)
}

/// Calls `f` on every `spec.rules[].http.paths[]` entry.
/// The canary Ingress `<ingress>-canary` (NGINX and Skipper): the user's Ingress labels, `annotations`,
/// `spec` and the Canary as controller owner.
pub(crate) fn canary_ingress(
    canary: &Canary,
    ingress: &DynamicObject,
    annotations: &BTreeMap<String, String>,
    spec: Value,
) -> Result<Value, String> {
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": canary_ingress_name(canary)?,
            "namespace": canary.metadata.namespace,
            "labels": ingress.labels(),
            "annotations": annotations,
            "ownerReferences": flagger_k8s::owner_reference(canary).map(|r| vec![r]),
        },
        "spec": spec,
    }))
}

pub(crate) fn for_each_path(spec: &mut Value, mut f: impl FnMut(&mut Value)) {
    let rules = spec.get_mut("rules").and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten() {
        let paths = rule.pointer_mut("/http/paths").and_then(Value::as_array_mut);
        for path in paths.into_iter().flatten() {
            f(path);
        }
    }
}

/// Flagger's message for a missing Ingress (`ingress <name>.<ns> get query error: ...`).
pub(crate) fn not_found(what: &str, name: &str, ns: &str) -> String {
    format!("{what} {name}.{ns} get query error: ingresses.networking.k8s.io \"{name}\" not found")
}

/// The resource of Ingresses.
pub fn ingress_resource() -> ApiResource {
    ApiResource::erase::<Ingress>(&())
}

/// Ingresses as the NGINX and Skipper routers read and write them.
fn ingresses() -> takeover::Kind {
    takeover::Kind {
        resource: ingress_resource(),
        namespaced: true,
        field_manager: FIELD_MANAGER,
    }
}

/// An Ingress from the watch cache or, when the cache has not seen it and `live_fallback` is set, from the
/// API server (a user's Ingress created a moment before its canary is found at once).
pub(crate) async fn cached_ingress(
    cx: &RouteCx<'_>,
    ns: &str,
    name: &str,
    live_fallback: bool,
) -> Result<Option<DynamicObject>, RouterError> {
    ingresses().current(cx, ns, name, live_fallback).await
}

/// Creates the Ingress `desired` when the cache does not have it; otherwise, when `differs(current,
/// desired)`, replaces the object with `update` applied to it (PUT guarded by its `resourceVersion`; one
/// retry against the live object on conflict).
pub(crate) async fn ensure_ingress(
    cx: &RouteCx<'_>,
    desired: &Value,
    differs: impl Fn(&DynamicObject, &Value) -> bool,
    update: impl Fn(&mut DynamicObject, &Value),
) -> Result<(), RouterError> {
    let canary = cx.canary;
    let ns = namespace(canary)?;
    let name = desired["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api = ingresses().api(cx, ns);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let mut current = match cached_ingress(cx, ns, &name, false).await? {
        Some(current) => current,
        None => {
            let object: DynamicObject = serde_json::from_value(desired.clone())
                .map_err(|e| RouterError::Invalid(format!("ingress {name}.{ns} create error: {e}")))?;
            cx.gate.check()?;
            match api.create(&params, &object).await {
                Ok(_) => {
                    tracing::info!(canary = %canary.key(), "Ingress {name}.{ns} created");
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() => api
                    .get(&name)
                    .await
                    .map_err(RouterError::kube("read", "Ingress", ns, &name))?,
                Err(e) => return Err(RouterError::kube("create", "Ingress", ns, &name)(e)),
            }
        }
    };
    let mut retried = false;
    loop {
        if !differs(&current, desired) {
            return Ok(());
        }
        let mut next = current.clone();
        next.metadata.managed_fields = None;
        update(&mut next, desired);
        cx.gate.check()?;
        match api.replace(&name, &params, &next).await {
            Ok(_) => {
                tracing::info!(canary = %canary.key(), "Ingress {name} updated");
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.is_conflict() && !retried => {
                retried = true;
                current = api
                    .get(&name)
                    .await
                    .map_err(RouterError::kube("read", "Ingress", ns, &name))?;
            }
            Err(e) => return Err(RouterError::kube("update", "Ingress", ns, &name)(e)),
        }
    }
}

/// Writes `next(annotations of current)` as a JSON merge patch of the keys that changed (removed keys as
/// `null`), guarded by the `resourceVersion`; nothing is sent when nothing changes. A conflict is retried
/// once against the live object.
pub(crate) async fn patch_annotations(
    cx: &RouteCx<'_>,
    mut current: DynamicObject,
    next: impl Fn(&BTreeMap<String, String>) -> BTreeMap<String, String>,
) -> Result<(), RouterError> {
    let ns = namespace(cx.canary)?;
    let name = current.name_any();
    let api = ingresses().api(cx, ns);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let mut retried = false;
    loop {
        let have = current.annotations();
        let want = next(have);
        let Some(changes) = annotation_changes(have, &want) else {
            return Ok(());
        };
        let patch = json!({"metadata": {
            "resourceVersion": current.resource_version(),
            "annotations": changes,
        }});
        cx.gate.check()?;
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() && !retried => {
                retried = true;
                current = api
                    .get(&name)
                    .await
                    .map_err(RouterError::kube("read", "Ingress", ns, &name))?;
            }
            Err(e) => return Err(RouterError::kube("update", "Ingress", ns, &name)(e)),
        }
    }
}

/// The merge patch turning `have` into `want` (`None` when equal).
pub(crate) fn annotation_changes(
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> Option<Map<String, Value>> {
    let mut changes = Map::new();
    for (k, v) in want {
        if have.get(k) != Some(v) {
            changes.insert(k.clone(), json!(v));
        }
    }
    for k in have.keys().filter(|k| !want.contains_key(*k)) {
        changes.insert(k.clone(), Value::Null);
    }
    (!changes.is_empty()).then_some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "uid-1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
                "service": {"port": 80},
                "analysis": analysis,
            },
        }))
        .unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ingress(annotations: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}, "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"path": "/other", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}},
            ]}}]},
        }))
        .unwrap()
    }

    const P: &str = "nginx.ingress.kubernetes.io";

    #[test]
    fn the_canary_ingress_copies_the_ingress_with_the_canary_backend() {
        let c = canary(json!({"interval": "1m"}));
        let user = ingress(json!({
            "kubernetes.io/ingress.class": "nginx",
            "nginx.ingress.kubernetes.io/canary-by-header": "stale",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        }));
        let desired = NginxRouter::default().desired(&c, &user).unwrap();
        assert_eq!(desired["metadata"]["name"], "podinfo-canary");
        assert_eq!(desired["metadata"]["labels"], json!({"app": "podinfo"}));
        assert_eq!(
            desired["metadata"]["annotations"],
            json!({
                "kubernetes.io/ingress.class": "nginx",
                "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
                "helm.toolkit.fluxcd.io/driftDetection": "disabled",
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "0",
            })
        );
        let paths = &desired["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(paths[0]["backend"]["service"]["name"], "podinfo-canary");
        assert_eq!(paths[1]["backend"]["service"]["name"], "other");
        assert_eq!(desired["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    }

    #[test]
    fn flaggers_errors() {
        let c = canary(json!({"interval": "1m"}));
        let mut other = ingress(json!({}));
        other.data["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("x");
        assert_eq!(
            NginxRouter::default().desired(&c, &other).unwrap_err(),
            "backend podinfo not found in ingress podinfo"
        );
        let mut no_ref = c.clone();
        no_ref.spec.ingress_ref = None;
        assert_eq!(
            canary_ingress_name(&no_ref).unwrap_err(),
            "ingress selector is empty"
        );
        let r = NginxRouter::default();
        let bad = map(&[(&format!("{P}/canary-weight"), "x5")]);
        assert_eq!(
            r.read_routes(&c, &bad).unwrap_err(),
            "failed to convert x5 to int: strconv.Atoi: parsing \"x5\": invalid syntax"
        );
    }

    #[test]
    fn weights_set_and_read() {
        let c = canary(json!({"interval": "1m"}));
        let r = NginxRouter::default();
        let start = r.reset_annotations(&map(&[("a", "b")]));
        let routes = |canary| Routes {
            primary: 100 - canary,
            canary,
            mirrored: false,
        };
        let at25 = r.routes_annotations(&c, &start, routes(25));
        assert_eq!(at25.get(&format!("{P}/canary-weight")).unwrap(), "25");
        assert_eq!(at25.get(&format!("{P}/canary")).unwrap(), "true");
        assert_eq!(r.read_routes(&c, &at25).unwrap(), routes(25));
        let back = r.routes_annotations(&c, &at25, routes(0));
        assert_eq!(back, start);
        assert_eq!(r.read_routes(&c, &back).unwrap(), Routes::PRIMARY);
        assert_eq!(r.read_routes(&c, &map(&[])).unwrap(), Routes::PRIMARY);
    }

    #[test]
    fn ab_drops_the_stale_weight_by_key() {
        let c = canary(json!({"interval": "1m", "iterations": 2, "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"exact": "canary"}}},
        ]}));
        let r = NginxRouter::new("custom.ingress.kubernetes.io");
        let start = r.reset_annotations(&map(&[("a", "b")]));
        let ab = r.routes_annotations(
            &c,
            &start,
            Routes {
                primary: 0,
                canary: 100,
                mirrored: false,
            },
        );
        assert_eq!(
            ab,
            map(&[
                ("a", "b"),
                ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
                ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
                ("custom.ingress.kubernetes.io/canary", "true"),
                ("custom.ingress.kubernetes.io/canary-by-cookie", "canary"),
                ("custom.ingress.kubernetes.io/canary-by-header", "x-canary"),
                ("custom.ingress.kubernetes.io/canary-by-header-value", "insider"),
            ])
        );
        assert_eq!(r.read_routes(&c, &ab).unwrap().canary, 100);
        let done = r.routes_annotations(&c, &ab, Routes::PRIMARY);
        assert_eq!(done, start);
        // A pattern match.
        let regex = canary(json!({"interval": "1m", "iterations": 2, "match": [
            {"headers": {"user-agent": {"regex": ".*Firefox.*"}}},
        ]}));
        let ab = r.routes_annotations(
            &regex,
            &start,
            Routes {
                primary: 0,
                canary: 100,
                mirrored: false,
            },
        );
        assert_eq!(
            ab.get("custom.ingress.kubernetes.io/canary-by-header-pattern")
                .unwrap(),
            ".*Firefox.*"
        );
        assert!(!ab.contains_key("custom.ingress.kubernetes.io/canary-by-header-value"));
        assert!(!ab.contains_key("custom.ingress.kubernetes.io/canary-weight"));
    }

    #[test]
    fn annotation_changes_are_minimal() {
        assert_eq!(annotation_changes(&map(&[("a", "1")]), &map(&[("a", "1")])), None);
        let changes = annotation_changes(&map(&[("a", "1"), ("b", "2")]), &map(&[("a", "3")])).unwrap();
        assert_eq!(Value::Object(changes), json!({"a": "3", "b": null}));
    }

    #[test]
    fn atoi_like_go() {
        assert_eq!(go_atoi("25"), Ok(25));
        assert_eq!(go_atoi("+7"), Ok(7));
        assert_eq!(go_atoi("-3"), Ok(-3));
        assert!(go_atoi("").is_err());
        assert!(go_atoi("1.5").is_err());
        assert_eq!(
            go_atoi("99999999999"),
            Err("strconv.Atoi: parsing \"99999999999\": value out of range".to_owned())
        );
    }
}
