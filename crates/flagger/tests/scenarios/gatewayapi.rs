//! Releases routed through a Gateway API HTTPRoute (`gatewayapi:v1`, `gatewayapi:v1beta1`). The cluster has
//! no gateway controller: [`Route::record`] plays one, writing `Accepted=True` for the route's current
//! generation to `status.parents` whenever the generation moves, and records every spec the operator wrote,
//! in order, from a watch.

use std::sync::{Arc, Mutex};

use flagger_api::CanaryPhase as P;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use testkit::TestNamespace;
use testkit::hooks::Receiver;

use crate::support::*;

/// The HTTPRoute CRD (a test fixture of the Gateway API router).
const HTTP_ROUTE_CRD: &str = include_str!("../../../flagger-controller/testdata/crds/gatewayapi.yaml");

/// A namespace with Flagger's CRDs and the HTTPRoute CRD.
async fn gateway_namespace(prefix: &str) -> TestNamespace {
    namespace_with_crds(prefix, HTTP_ROUTE_CRD).await
}

fn routes_api(ns: &TestNamespace, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", version, "HTTPRoute");
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

/// A Canary `podinfo` with `provider`, attached to Gateway `infra/gateway`, and the `analysis` lines.
fn gateway_canary(provider: &str, analysis: &str) -> String {
    canary_yaml(provider, analysis).replace(
        "  service: {port: 9898}",
        "  service: {port: 9898, hosts: [app.example.com], gatewayRefs: [{name: gateway, namespace: infra}]}",
    )
}

/// The `(primary, canary)` weights of a route spec as the router reads them: from the rule whose backends
/// carry filters (session affinity), else from the last rule with two backends.
fn weights(spec: &Value) -> Option<(i64, i64)> {
    let rules = spec["rules"].as_array()?;
    let pair = |rule: &Value| -> Option<(i64, i64)> {
        let refs = rule["backendRefs"].as_array()?;
        let weight = |name: &str| refs.iter().find(|b| b["name"] == name)?["weight"].as_i64();
        Some((weight("podinfo-primary")?, weight("podinfo-canary")?))
    };
    let with_filters = rules.iter().rev().find(|r| {
        r["backendRefs"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|b| b["filters"].is_array()))
    });
    match with_filters {
        Some(rule) => pair(rule),
        None => rules
            .iter()
            .rev()
            .filter(|r| r["backendRefs"].as_array().is_some_and(|b| b.len() == 2))
            .find_map(pair),
    }
}

/// The route `podinfo` as the operator wrote it, every distinct spec in order.
#[derive(Clone, Default)]
struct Route(Arc<Mutex<Vec<Value>>>);

impl Route {
    /// Starts watching the HTTPRoute `podinfo` of `version`, recording each spec and accepting each new
    /// generation for every parent, as a gateway controller would.
    fn record(ns: &TestNamespace, version: &str) -> Self {
        let route = Self::default();
        let api = routes_api(ns, version);
        let seen = route.clone();
        let mut stream = watcher::watch_object(api.clone(), "podinfo").boxed();
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let Ok(Some(obj)) = item else { continue };
                {
                    let mut all = seen.0.lock().unwrap();
                    if all.last() != Some(&obj.data["spec"]) {
                        all.push(obj.data["spec"].clone());
                    }
                }
                accept(&api, &obj).await;
            }
        });
        route
    }

    fn specs(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    /// Every distinct weight pair, in order.
    fn pairs(&self) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for w in self.specs().iter().filter_map(weights) {
            if out.last() != Some(&w) {
                out.push(w);
            }
        }
        out
    }

    fn last(&self) -> Value {
        self.specs().last().cloned().unwrap_or_default()
    }
}

/// Writes `Accepted=True` at the route's generation for each parentRef, unless the status already says so.
async fn accept(api: &Api<DynamicObject>, route: &DynamicObject) {
    let generation = route.metadata.generation.unwrap_or_default();
    let parents = route.data["spec"]["parentRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let current = route.data["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let up_to_date = current.len() == parents.len()
        && current
            .iter()
            .all(|p| p["conditions"][0]["observedGeneration"].as_i64() == Some(generation));
    if up_to_date {
        return;
    }
    let statuses: Vec<Value> = parents
        .iter()
        .map(|p| {
            json!({"parentRef": p, "controllerName": "example.com/scenario-gateway", "conditions": [{
                "type": "Accepted", "status": "True", "reason": "Accepted", "message": "accepted by the scenario",
                "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
        })
        .collect();
    // A conflict or a deleted route is answered by the next watch event.
    let _ = api
        .patch_status(
            &route.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"parents": statuses}})),
        )
        .await;
}

/// Waits until a recorded spec satisfies `check`.
async fn wait_spec(route: &Route, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    testkit::kube::poll(what, RELEASE, || async {
        Ok(match route.specs().into_iter().find(|s| check(s)) {
            Some(s) => Ok(s),
            None => Err(route.specs()),
        })
    })
    .await
    .unwrap()
}

/// One promoted release through `provider`; returns the recorder and the operator.
async fn promoted_release(
    ns: &TestNamespace,
    provider: &str,
    version: &str,
    analysis: &str,
) -> (Route, testkit::operator::Operator) {
    deploy_podinfo(ns, "podinfo:1.0.0").await;
    apply_canary(ns, &gateway_canary(provider, analysis)).await;
    let route = Route::record(ns, version);
    let op = operator(ns, &[&format!("-mesh-provider={provider}")]).await;
    wait_phase(ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(ns, "podinfo:2.0.0").await;
    let done = wait_phase(ns, "podinfo", P::Succeeded, RELEASE * 2).await;
    assert_eq!(done.status.unwrap().canary_weight(), 0, "{}", op.logs());
    assert_eq!(
        image_of(&deployment(ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    (route, op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_steps_to_max_weight_promotes_and_rolls_back() {
    let ns = gateway_namespace("gw-v1").await;
    let hooks = Receiver::start().await.unwrap();
    let analysis = format!(
        "interval: 10s\nthreshold: 1\nstepWeight: 25\nmaxWeight: 50\nwebhooks:\n- {{name: load, url: \"{}\", timeout: 10s}}",
        hooks.url("load")
    );
    let (route, op) = promoted_release(&ns, "gatewayapi:v1", "v1", &analysis).await;
    assert_eq!(
        route.pairs(),
        vec![(100, 0), (75, 25), (50, 50), (100, 0)],
        "{}",
        op.logs()
    );
    let spec = route.last();
    assert_eq!(
        spec["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway", "namespace": "infra"}])
    );
    assert_eq!(spec["hostnames"], json!(["app.example.com"]));

    // A failing canary: the rollout hook fails, the release is rolled back to the primary.
    hooks.set_status("load", 500);
    set_image(&ns, "podinfo:3.0.0").await;
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    assert_eq!(failed.status.unwrap().canary_weight(), 0);
    let pairs = settled_pairs(|| route.pairs(), |p| p.last() == Some(&(100, 0)), RELEASE).await;
    assert_eq!(&pairs[4..], &[(75, 25), (100, 0)], "{pairs:?}\n{}", op.logs());
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_steps_to_max_weight_and_promotes() {
    let ns = gateway_namespace("gw-v1beta1").await;
    let (route, op) = promoted_release(
        &ns,
        "gatewayapi:v1beta1",
        "v1beta1",
        "interval: 10s\nthreshold: 2\nstepWeight: 25\nmaxWeight: 50",
    )
    .await;
    assert_eq!(
        route.pairs(),
        vec![(100, 0), (75, 25), (50, 50), (100, 0)],
        "{}",
        op.logs()
    );
}

/// The header matches of each rule of a spec.
fn rule_headers(spec: &Value) -> Vec<Vec<Value>> {
    spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r["matches"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["headers"].as_array().cloned().unwrap_or_default())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_ab_routes_header_and_cookie_matches_to_the_canary() {
    let ns = gateway_namespace("gw-ab").await;
    let analysis = r#"interval: 10s
threshold: 2
iterations: 2
match:
- headers: {x-canary: {exact: insider}}
- headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}"#;
    let (route, op) = promoted_release(&ns, "gatewayapi:v1", "v1", analysis).await;
    let header = json!({"type": "Exact", "name": "x-canary", "value": "insider"});
    let cookie =
        json!({"type": "RegularExpression", "name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$"});
    // During the analysis: the matching requests all go to the canary, the rest to the primary.
    let during = wait_spec(&route, "the A/B rules with the canary at 100", |s| {
        s["rules"][0]["backendRefs"][1]["weight"] == 100
    })
    .await;
    assert_eq!(
        rule_headers(&during),
        vec![vec![header.clone(), cookie.clone()], vec![]],
        "{during}\n{}",
        op.logs()
    );
    assert_eq!(during["rules"][1]["backendRefs"].as_array().unwrap().len(), 1);
    assert_eq!(during["rules"][1]["backendRefs"][0]["name"], "podinfo-primary");
    // After the promotion the A/B rule stays, with all traffic on the primary (as in Flagger).
    let after = route.last();
    assert_eq!(weights(&after), Some((100, 0)));
    assert_eq!(rule_headers(&after), vec![vec![header, cookie], vec![]]);
    assert_eq!(route.pairs(), vec![(100, 0), (0, 100), (100, 0)]);
}

fn mirrors_to_canary(spec: &Value) -> bool {
    spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["filters"].as_array().cloned().unwrap_or_default())
        .any(|f| f["type"] == "RequestMirror" && f["requestMirror"]["backendRef"]["name"] == "podinfo-canary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_blue_green_mirrors_then_switches() {
    let ns = gateway_namespace("gw-mirror").await;
    let (route, op) = promoted_release(
        &ns,
        "gatewayapi:v1",
        "v1",
        "interval: 10s\nthreshold: 2\niterations: 2\nmirror: true",
    )
    .await;
    let shapes: Vec<(Option<(i64, i64)>, bool)> = route
        .specs()
        .iter()
        .map(|s| (weights(s), mirrors_to_canary(s)))
        .fold(Vec::new(), |mut out, shape| {
            if out.last() != Some(&shape) {
                out.push(shape);
            }
            out
        });
    assert_eq!(
        shapes,
        vec![
            (Some((100, 0)), false),
            (Some((100, 0)), true),
            (Some((0, 100)), false),
            (Some((100, 0)), false),
        ],
        "{}",
        op.logs()
    );
}

/// The `Set-Cookie` values of a list of filters.
fn set_cookies(filters: &Value) -> Vec<String> {
    filters
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| {
            f["responseHeaderModifier"]["add"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|h| h["name"] == "Set-Cookie")
        .filter_map(|h| h["value"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_session_affinity_sets_then_expires_the_canary_cookie() {
    let ns = gateway_namespace("gw-sticky").await;
    let (route, op) = promoted_release(
        &ns,
        "gatewayapi:v1",
        "v1",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50\nsessionAffinity: {cookieName: flagger-cookie, maxAge: 60}",
    )
    .await;
    let during = wait_spec(&route, "the sticky rule", |s| weights(s) == Some((50, 50))).await;
    let rules = during["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{during}\n{}", op.logs());
    // The weighted rule hands out the canary cookie from the canary backend.
    let canary_backend = &rules[1]["backendRefs"][1];
    assert_eq!(canary_backend["name"], "podinfo-canary");
    let cookies = set_cookies(&canary_backend["filters"]);
    assert_eq!(cookies.len(), 1, "{during}");
    let (cookie, attributes) = cookies[0].split_once("; ").unwrap();
    assert_eq!(attributes, "Max-Age=60");
    let value = cookie.strip_prefix("flagger-cookie=").unwrap();
    assert_eq!(value.len(), 10);
    // The sticky rule sends requests carrying the cookie to the canary.
    assert_eq!(
        rules[0]["matches"][0]["headers"],
        json!([{"type": "RegularExpression", "name": "Cookie", "value": format!(".*flagger-cookie.*{value}.*")}])
    );
    assert_eq!(weights(&json!({"rules": [rules[0].clone()]})), Some((0, 100)));

    // Promoted: the cookie is expired on the sticky rule and no longer handed out.
    let after = route.last();
    let rules = after["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{after}");
    assert_eq!(
        set_cookies(&rules[0]["filters"]),
        vec![format!("{cookie}; Max-Age=-1")]
    );
    assert!(
        set_cookies(&rules[1]["backendRefs"][1]["filters"]).is_empty(),
        "{after}"
    );
    assert_eq!(weights(&after), Some((100, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_rule_and_annotation_on_the_apex_route_survive_a_release() {
    let ns = gateway_namespace("gw-user").await;
    let api = routes_api(&ns, "v1");
    let user_rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "legacy", "port": 8080, "weight": 1}],
    });
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "annotations": {"example.com/team": "web"}},
        "spec": {
            "parentRefs": [{"name": "gateway", "namespace": "infra"}],
            "rules": [user_rule.clone(), {
                "backendRefs": [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}],
            }],
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &existing).await.unwrap();
    let (route, op) = promoted_release(
        &ns,
        "gatewayapi:v1",
        "v1",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50",
    )
    .await;
    assert_eq!(route.pairs(), vec![(100, 0), (50, 50), (100, 0)], "{}", op.logs());
    // Every spec the operator wrote kept the user's rule after its own.
    for spec in route.specs().iter().skip(1) {
        let rules = spec["rules"].as_array().unwrap();
        assert_eq!(rules.last(), Some(&user_rule), "{spec}");
        assert_eq!(rules[0]["backendRefs"][0]["name"], "podinfo-primary", "{spec}");
    }
    let last = api.get("podinfo").await.unwrap();
    assert_eq!(
        last.annotations().get("example.com/team").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        last.annotations()
            .get("kustomize.toolkit.fluxcd.io/reconcile")
            .map(String::as_str),
        Some("disabled")
    );
    assert!(
        last.annotations()
            .contains_key("flagger.kubernetes.io/original-configuration")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_restores_a_taken_over_route() {
    let ns = gateway_namespace("gw-revert").await;
    let api = routes_api(&ns, "v1");
    let original_rules = json!([{
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898, "weight": 1}],
    }]);
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "annotations": {"example.com/team": "web"}},
        "spec": {"parentRefs": [{"name": "gateway", "namespace": "infra"}], "rules": original_rules},
    }))
    .unwrap();
    api.create(&PostParams::default(), &existing).await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let yaml = gateway_canary(
        "gatewayapi:v1",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50",
    )
    .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
    apply_canary(&ns, &yaml).await;
    let route = Route::record(&ns, "v1");
    let op = operator(&ns, &["-mesh-provider=gatewayapi:v1"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    let taken = wait_spec(&route, "the route taken over", |s| weights(s) == Some((100, 0))).await;
    assert_eq!(taken["rules"].as_array().unwrap().len(), 1, "{taken}");

    let canaries: Api<flagger_api::Canary> = ns.api();
    canaries
        .delete("podinfo", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    testkit::kube::poll("the Canary to be gone", RELEASE, || async {
        Ok(match canaries.get_opt("podinfo").await? {
            None => Ok(()),
            Some(c) => Err(c.metadata.finalizers),
        })
    })
    .await
    .unwrap();
    let restored = api.get("podinfo").await.unwrap();
    assert_eq!(restored.data["spec"]["rules"], original_rules, "{}", op.logs());
    assert_eq!(
        restored.data["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway", "namespace": "infra"}])
    );
    assert!(restored.data["spec"].get("hostnames").is_none(), "{restored:?}");
    let annotations = restored.annotations();
    assert_eq!(
        annotations.get("example.com/team").map(String::as_str),
        Some("web")
    );
    assert!(
        !annotations.contains_key("flagger.kubernetes.io/original-configuration"),
        "{annotations:?}"
    );
    assert!(
        !annotations.contains_key("kustomize.toolkit.fluxcd.io/reconcile"),
        "{annotations:?}"
    );
}
