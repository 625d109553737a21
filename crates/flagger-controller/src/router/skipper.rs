//! Skipper ingress router (`skipper`), Flagger's `SkipperRouter`.
//!
//! The canary Ingress `<ingressRef>-canary` is a copy of the Ingress named by `spec.ingressRef` in which
//! every path backend routing to the apex Service routes to `<apex>-primary`, followed by a duplicate of the
//! path routing to `<apex>-canary`. Skipper splits the traffic of the duplicated routes with two annotations:
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     zalando.org/backend-weights: '{"<apex>-canary":0,"<apex>-primary":100}'
//!     zalando.org/skipper-predicate: Weight(100)[ && <predicates of the ingress>]
//! ```
//!
//! `Weight(100)` makes the canary Ingress's routes win over the user's Ingress routes of the same path.
//!
//! Flagger's rules, kept here:
//!
//! - `reconcile` fails without `ingressRef` (`ingress selector is empty`) or when the Ingress is missing; the
//!   canary Ingress is created with the Ingress's labels and annotations plus the two annotations (weights
//!   100/0) and a controller owner reference to the Canary. When its spec later differs from the copy, the
//!   spec is rewritten and the annotations reset to the weights 100/0 plus the Flux toolkit annotations;
//! - `set_routes` writes the backend weights (a JSON object, keys sorted as Go's `json.Marshal` does) and puts
//!   `Weight(100)` first in the predicate; at canary weight 0 the predicate starts with `False()` instead,
//!   which disables the canary Ingress's routes (conflicting `Weight(100)`/`False()` are dropped, the other
//!   predicates kept, joined with ` && `);
//! - `get_routes` parses the backend weights (both Services must be present); never mirrored;
//! - `finalize` deletes the canary Ingress (grace period 2 s).
//!
//! Where flagger-rs differs: Flagger's "backend not found" check compares two pointers and never fires, so it
//! creates a canary Ingress without canary routes; here `reconcile` fails with Flagger's message
//! (`backend <apex> not found in ingress <name>`). The annotation rewrite of `reconcile` keeps annotations
//! other controllers put on the canary Ingress (Flagger replaces them all), and `finalize` succeeds when the
//! canary Ingress is already gone.
//!
//! I/O as the NGINX router: reads from the watch cache, a create, a spec update guarded by the
//! `resourceVersion`, merge patches of the changed annotations, under [`FIELD_MANAGER`].

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use flagger_core::services::TOOLKIT_ANNOTATIONS;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::{Value, json};

use super::nginx::{
    cached_ingress, canary_ingress, canary_ingress_name, ensure_ingress, ingress_ref, ingress_resource,
    namespace, not_found, patch_annotations,
};
use super::{RouteCx, RouterError};

/// The backend weights annotation.
pub const BACKEND_WEIGHTS: &str = "zalando.org/backend-weights";
/// The route predicate annotation.
pub const PREDICATE: &str = "zalando.org/skipper-predicate";
/// The predicate that makes the canary routes win.
pub const WEIGHT_PREDICATE: &str = "Weight(100)";
/// The predicate that disables the canary routes.
pub const DISABLE_PREDICATE: &str = "False()";

/// The Skipper router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipperRouter;

/// `predicate` first, then the predicates of `raw` (split on `&&`, trimmed) other than the empty ones,
/// `Weight(100)` and `False()`, joined with ` && `.
pub fn insert_predicate(raw: &str, predicate: &str) -> String {
    let mut out = vec![predicate];
    out.extend(
        raw.split("&&")
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != WEIGHT_PREDICATE && *p != DISABLE_PREDICATE),
    );
    out.join(" && ")
}

/// The backend weights annotation value: `{"<apex>-canary":c,"<apex>-primary":p}` (sorted keys, as Go).
pub fn backend_weights(canary: &Canary, routes: Routes) -> String {
    let apex = canary.service_name();
    let weights = BTreeMap::from([
        (format!("{apex}-primary"), routes.primary),
        (format!("{apex}-canary"), routes.canary),
    ]);
    serde_json::to_string(&weights).unwrap_or_default()
}

impl SkipperRouter {
    /// `annotations` with the weights of `routes` and the predicate (`Weight(100)` first, or `False()` at
    /// canary weight 0 when `disable_at_zero`).
    pub fn weighted_annotations(
        canary: &Canary,
        annotations: &BTreeMap<String, String>,
        routes: Routes,
        disable_at_zero: bool,
    ) -> BTreeMap<String, String> {
        let mut out = annotations.clone();
        out.insert(BACKEND_WEIGHTS.to_owned(), backend_weights(canary, routes));
        let raw = out.get(PREDICATE).cloned().unwrap_or_default();
        let mut predicate = insert_predicate(&raw, WEIGHT_PREDICATE);
        if disable_at_zero && routes.canary == 0 {
            predicate = insert_predicate(&predicate, DISABLE_PREDICATE);
        }
        out.insert(PREDICATE.to_owned(), predicate);
        out
    }

    /// The canary Ingress Flagger creates from the user's Ingress.
    pub fn desired(canary: &Canary, ingress: &DynamicObject) -> Result<Value, String> {
        let apex = canary.service_name();
        let mut spec = ingress.data.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut found = false;
        let rules = spec.get_mut("rules").and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let Some(paths) = rule.pointer_mut("/http/paths").and_then(Value::as_array_mut) else {
                continue;
            };
            let mut added = Vec::new();
            for path in paths.iter_mut() {
                if let Some(service) = path.pointer_mut("/backend/service")
                    && service["name"] == apex
                {
                    service["name"] = json!(format!("{apex}-primary"));
                    let mut copy = path.clone();
                    copy["backend"]["service"]["name"] = json!(format!("{apex}-canary"));
                    added.push(copy);
                    found = true;
                }
            }
            paths.extend(added);
        }
        if !found {
            return Err(format!(
                "backend {apex} not found in ingress {}",
                ingress.name_any()
            ));
        }
        let annotations = Self::weighted_annotations(canary, ingress.annotations(), Routes::PRIMARY, false);
        canary_ingress(canary, ingress, &annotations, spec)
    }

    /// Creates the canary Ingress, or rewrites its spec (and resets its weights) when it differs.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let source = ingress_ref(canary)?;
        let ingress = cached_ingress(cx, ns, source, true)
            .await?
            .ok_or_else(|| RouterError::Invalid(not_found("apexIngress", source, ns)))?;
        let desired = Self::desired(canary, &ingress).map_err(RouterError::Invalid)?;
        ensure_ingress(
            cx,
            &desired,
            |current, desired| current.data["spec"] != desired["spec"],
            |next, desired| {
                next.data["spec"] = desired["spec"].clone();
                let annotations = next.annotations_mut();
                for (k, v) in desired["metadata"]["annotations"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    annotations.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                }
                for (k, v) in TOOLKIT_ANNOTATIONS {
                    annotations.insert(k.to_owned(), v.to_owned());
                }
            },
        )
        .await
    }

    /// Reads the backend weights of the cached canary Ingress.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let name = canary_ingress_name(canary).map_err(RouterError::Invalid)?;
        let current = cached_ingress(cx, ns, &name, false)
            .await?
            .ok_or_else(|| RouterError::Invalid(not_found("ingress", &name, ns)))?;
        read_routes(canary, &name, ns, current.annotations()).map_err(RouterError::Invalid)
    }

    /// Writes the weights of `routes` on the canary Ingress.
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let name = canary_ingress_name(canary).map_err(RouterError::Invalid)?;
        let current = cached_ingress(cx, ns, &name, false)
            .await?
            .ok_or_else(|| RouterError::Invalid(not_found("ingress", &name, ns)))?;
        patch_annotations(cx, current, |a| {
            Self::weighted_annotations(canary, a, routes, true)
        })
        .await
    }

    /// Deletes the canary Ingress (grace period 2 s); an Ingress already gone is fine.
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let name = canary_ingress_name(canary).map_err(RouterError::Invalid)?;
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &ingress_resource());
        cx.gate.check()?;
        match api.delete(&name, &DeleteParams::default().grace_period(2)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(RouterError::kube("delete", "Ingress", ns, &name)(e)),
        }
    }
}

/// The weights of the backend weights annotation, with Flagger's messages.
pub fn read_routes(
    canary: &Canary,
    name: &str,
    ns: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Routes, String> {
    let apex = canary.service_name();
    let raw = annotations.get(BACKEND_WEIGHTS).ok_or_else(|| {
        format!(
            "ingress {name}.{ns} get backendWeights error: Annotation.Skipper Canary Ingress \"{BACKEND_WEIGHTS}\" not found"
        )
    })?;
    let weights: BTreeMap<String, i32> = serde_json::from_str(raw)
        .map_err(|e| format!("ingress {name}.{ns} get backendWeights error: {e}"))?;
    let primary = *weights
        .get(&format!("{apex}-primary"))
        .ok_or_else(|| format!("ingress {name}.{ns} could not get weights[primarySvcName]"))?;
    let canary_weight = *weights
        .get(&format!("{apex}-canary"))
        .ok_or_else(|| format!("ingress {name}.{ns} could not get weights[canarySvcName]"))?;
    Ok(Routes {
        primary,
        canary: canary_weight,
        mirrored: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "uid-1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web"},
                "service": {"port": 80},
            },
        }))
        .unwrap()
    }

    #[test]
    fn predicates_are_inserted_first_and_conflicts_dropped() {
        assert_eq!(insert_predicate("", WEIGHT_PREDICATE), "Weight(100)");
        assert_eq!(
            insert_predicate("Host(/x/) &&  Weight(100) && False()&&", DISABLE_PREDICATE),
            "False() && Host(/x/)"
        );
        assert_eq!(
            insert_predicate("Method(\"GET\")", WEIGHT_PREDICATE),
            "Weight(100) && Method(\"GET\")"
        );
    }

    #[test]
    fn the_canary_ingress_has_primary_and_canary_paths() {
        let c = canary();
        let user: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "test", "annotations": {PREDICATE: "Method(\"GET\")"}},
            "spec": {"rules": [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
            ]}}]},
        }))
        .unwrap();
        let d = SkipperRouter::desired(&c, &user).unwrap();
        assert_eq!(d["metadata"]["name"], "web-canary");
        let paths = &d["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(paths[0]["backend"]["service"]["name"], "podinfo-primary");
        assert_eq!(paths[1]["backend"]["service"]["name"], "podinfo-canary");
        assert_eq!(
            d["metadata"]["annotations"],
            json!({BACKEND_WEIGHTS: "{\"podinfo-canary\":0,\"podinfo-primary\":100}", PREDICATE: "Weight(100) && Method(\"GET\")"})
        );
    }

    #[test]
    fn weights_round_trip_with_flaggers_messages() {
        let c = canary();
        let routes = Routes {
            primary: 75,
            canary: 25,
            mirrored: false,
        };
        let a = SkipperRouter::weighted_annotations(&c, &BTreeMap::new(), routes, true);
        assert_eq!(read_routes(&c, "web-canary", "test", &a).unwrap(), routes);
        assert_eq!(a.get(PREDICATE).unwrap(), "Weight(100)");
        let zero = SkipperRouter::weighted_annotations(&c, &a, Routes::PRIMARY, true);
        assert_eq!(zero.get(PREDICATE).unwrap(), "False()");
        assert_eq!(
            read_routes(&c, "web-canary", "test", &BTreeMap::new()).unwrap_err(),
            "ingress web-canary.test get backendWeights error: Annotation.Skipper Canary Ingress \"zalando.org/backend-weights\" not found"
        );
        let only_primary =
            BTreeMap::from([(BACKEND_WEIGHTS.to_owned(), "{\"podinfo-primary\":100}".to_owned())]);
        assert_eq!(
            read_routes(&c, "web-canary", "test", &only_primary).unwrap_err(),
            "ingress web-canary.test could not get weights[canarySvcName]"
        );
    }
}
