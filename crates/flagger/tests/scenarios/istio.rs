//! Releases routed through Istio (`-mesh-provider=istio`): a VirtualService `podinfo` and DestinationRules
//! `podinfo-canary`/`podinfo-primary`. The cluster runs no Istio (the CRDs are a test fixture);
//! [`Vs::record`] records every spec the operator wrote to the VirtualService, in order, from a watch.

use std::sync::{Arc, Mutex};

use flagger_api::CanaryPhase as P;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use testkit::TestNamespace;
use testkit::hooks::Receiver;
use testkit::kube::poll;

use crate::support::*;

/// The VirtualService and DestinationRule CRDs (a test fixture of the Istio router).
const ISTIO_CRDS: &str = include_str!("../../../flagger-controller/testdata/crds/istio.yaml");

/// A namespace with Flagger's CRDs and the Istio CRDs (Established).
async fn istio_namespace(prefix: &str) -> TestNamespace {
    namespace_with_crds(prefix, ISTIO_CRDS).await
}

fn istio_api(ns: &TestNamespace, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1beta1", kind);
    Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn virtual_services(ns: &TestNamespace) -> Api<DynamicObject> {
    istio_api(ns, "VirtualService", "virtualservices")
}

/// A Canary `podinfo` with the Istio provider, the extra `service` fields and the `analysis` lines.
fn istio_canary(service: &str, analysis: &str) -> String {
    canary_yaml("istio", analysis).replace(
        "  service: {port: 9898}",
        &format!("  service: {{port: 9898{service}}}"),
    )
}

/// `(host, weight)` pairs of a route.
fn destinations(route: &Value) -> Vec<(String, i64)> {
    route
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap_or_default().to_owned(),
                d["weight"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The `(primary, canary)` weights of a VirtualService spec as Flagger reads them: from the destinations
/// that set headers (session affinity), else from the last rule routing to the canary.
fn weights(spec: &Value) -> Option<(i64, i64)> {
    let rules = spec["http"].as_array()?;
    let pick = |dests: Vec<(String, i64)>| {
        let w = |host: &str| dests.iter().find(|(h, _)| h == host).map(|(_, w)| *w);
        Some((w("podinfo-primary")?, w("podinfo-canary")?))
    };
    let with_headers: Vec<(String, i64)> = rules
        .iter()
        .flat_map(|r| r["route"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["headers"].is_object())
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap_or_default().to_owned(),
                d["weight"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    if with_headers.len() == 2 {
        return pick(with_headers);
    }
    rules
        .iter()
        .rev()
        .map(|r| destinations(&r["route"]))
        .find(|d| d.iter().any(|(h, _)| h == "podinfo-canary"))
        .and_then(pick)
}

/// The VirtualService `podinfo` as the operator wrote it, every distinct spec in order.
#[derive(Clone, Default)]
struct Vs(Arc<Mutex<Vec<Value>>>);

impl Vs {
    fn record(ns: &TestNamespace) -> Self {
        let vs = Self::default();
        let seen = vs.clone();
        let mut stream = watcher::watch_object(virtual_services(ns), "podinfo").boxed();
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let Ok(Some(obj)) = item else { continue };
                let mut all = seen.0.lock().unwrap();
                if all.last() != Some(&obj.data["spec"]) {
                    all.push(obj.data["spec"].clone());
                }
            }
        });
        vs
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

/// Waits until a recorded spec satisfies `check`.
async fn wait_spec(vs: &Vs, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    poll(what, RELEASE, || async {
        Ok(match vs.specs().into_iter().find(|s| check(s)) {
            Some(s) => Ok(s),
            None => Err(vs.specs()),
        })
    })
    .await
    .unwrap()
}

/// One promoted release; returns the recorder and the operator.
async fn promoted_release(
    ns: &TestNamespace,
    service: &str,
    analysis: &str,
) -> (Vs, testkit::operator::Operator) {
    deploy_podinfo(ns, "podinfo:1.0.0").await;
    apply_canary(ns, &istio_canary(service, analysis)).await;
    let vs = Vs::record(ns);
    let op = operator(ns, &["-mesh-provider=istio"]).await;
    wait_phase(ns, "podinfo", P::Initialized, RELEASE).await;
    set_image(ns, "podinfo:2.0.0").await;
    let done = wait_phase(ns, "podinfo", P::Succeeded, RELEASE * 2).await;
    assert_eq!(done.status.unwrap().canary_weight(), 0, "{}", op.logs());
    assert_eq!(
        image_of(&deployment(ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    (vs, op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_steps_to_max_weight_promotes_and_rolls_back() {
    let ns = istio_namespace("istio-progressive").await;
    let hooks = Receiver::start().await.unwrap();
    let analysis = format!(
        "interval: 10s\nthreshold: 1\nstepWeight: 25\nmaxWeight: 50\nwebhooks:\n- {{name: load, url: \"{}\", timeout: 10s}}",
        hooks.url("load")
    );
    let (vs, op) = promoted_release(&ns, ", hosts: [app.example.com]", &analysis).await;
    assert_eq!(
        vs.pairs(),
        vec![(100, 0), (75, 25), (50, 50), (100, 0)],
        "{}",
        op.logs()
    );
    let spec = vs.last();
    assert_eq!(spec["hosts"], json!(["app.example.com", "podinfo"]));
    assert_eq!(spec["gateways"], json!(["mesh"]));
    let rules: Api<DynamicObject> = istio_api(&ns, "DestinationRule", "destinationrules");
    for name in ["podinfo-canary", "podinfo-primary"] {
        assert_eq!(rules.get(name).await.unwrap().data["spec"], json!({"host": name}));
    }

    // A failing canary: the rollout hook fails, the release is rolled back to the primary.
    hooks.set_status("load", 500);
    set_image(&ns, "podinfo:3.0.0").await;
    let failed = wait_phase(&ns, "podinfo", P::Failed, RELEASE).await;
    assert_eq!(failed.status.unwrap().canary_weight(), 0);
    let pairs = settled_pairs(|| vs.pairs(), |p| p.last() == Some(&(100, 0)), RELEASE).await;
    assert_eq!(&pairs[4..], &[(75, 25), (100, 0)], "{pairs:?}\n{}", op.logs());
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_ab_routes_header_and_cookie_matches_to_the_canary() {
    let ns = istio_namespace("istio-ab").await;
    let analysis = r#"interval: 10s
threshold: 2
iterations: 2
match:
- headers: {x-canary: {exact: insider}}
- headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}"#;
    let (vs, op) = promoted_release(&ns, "", analysis).await;
    let matches = json!([
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
    ]);
    // During the analysis: the matching requests all go to the canary, the rest to the primary.
    let during = wait_spec(&vs, "the A/B rules with the canary at 100", |s| {
        weights(s) == Some((0, 100))
    })
    .await;
    let rules = during["http"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{during}\n{}", op.logs());
    assert_eq!(rules[0]["match"], matches);
    assert_eq!(
        destinations(&rules[0]["route"]),
        [
            ("podinfo-primary".to_owned(), 0),
            ("podinfo-canary".to_owned(), 100)
        ]
    );
    assert!(rules[1].get("match").is_none(), "{during}");
    assert_eq!(
        destinations(&rules[1]["route"]),
        [("podinfo-primary".to_owned(), 0)]
    );
    // After the promotion every rule sends everything to the primary; Flagger keeps the match rule.
    let after = vs.last();
    let rules = after["http"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{after}");
    assert_eq!(rules[0]["match"], matches);
    assert_eq!(
        destinations(&rules[0]["route"]),
        [
            ("podinfo-primary".to_owned(), 100),
            ("podinfo-canary".to_owned(), 0)
        ]
    );
    assert_eq!(
        destinations(&rules[1]["route"]),
        [("podinfo-primary".to_owned(), 100)]
    );
    assert_eq!(vs.pairs(), vec![(100, 0), (0, 100), (100, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mirrors_a_step_before_shifting_traffic() {
    let ns = istio_namespace("istio-mirror").await;
    let (vs, op) = promoted_release(
        &ns,
        "",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50\nmirror: true\nmirrorWeight: 30",
    )
    .await;
    let mirrored = wait_spec(&vs, "the mirrored step", |s| s["http"][0]["mirror"].is_object()).await;
    assert_eq!(mirrored["http"][0]["mirror"], json!({"host": "podinfo-canary"}));
    assert_eq!(mirrored["http"][0]["mirrorPercentage"], json!({"value": 30}));
    let shapes: Vec<(Option<(i64, i64)>, bool)> = vs
        .specs()
        .iter()
        .map(|s| (weights(s), s["http"][0]["mirror"].is_object()))
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
            (Some((50, 50)), false),
            (Some((100, 0)), false),
        ],
        "{}",
        op.logs()
    );
}

/// The `Set-Cookie` response header a `headers` object adds.
fn set_cookie(headers: &Value) -> Option<String> {
    headers["response"]["add"]["Set-Cookie"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_session_affinity_sets_then_expires_the_canary_cookie() {
    let ns = istio_namespace("istio-sticky").await;
    let (vs, op) = promoted_release(
        &ns,
        "",
        "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50\nsessionAffinity: {cookieName: flagger-cookie, maxAge: 60}",
    )
    .await;
    let during = wait_spec(&vs, "the sticky rule", |s| weights(s) == Some((50, 50))).await;
    let rules = during["http"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{during}\n{}", op.logs());
    // The weighted rule hands out the canary cookie from the canary destination.
    let canary_route = &rules[1]["route"][1];
    assert_eq!(canary_route["destination"]["host"], "podinfo-canary");
    let handed_out = set_cookie(&canary_route["headers"]).unwrap();
    let (cookie, attributes) = handed_out.split_once("; ").unwrap();
    assert_eq!(attributes, "Max-Age=60");
    let value = cookie.strip_prefix("flagger-cookie=").unwrap();
    assert_eq!(value.len(), 10);
    assert!(rules[1]["route"][0].get("headers").is_none(), "{during}");
    // The sticky rule sends requests carrying the cookie to the canary.
    assert_eq!(
        rules[0]["match"],
        json!([{"headers": {"Cookie": {"regex": format!(".*flagger-cookie.*{value}.*")}}}])
    );
    assert_eq!(
        destinations(&rules[0]["route"]),
        [
            ("podinfo-primary".to_owned(), 0),
            ("podinfo-canary".to_owned(), 100)
        ]
    );

    // Promoted: the cookie is expired by the sticky rule and no longer handed out.
    let after = vs.last();
    let rules = after["http"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{after}");
    assert_eq!(
        set_cookie(&rules[0]["headers"]),
        Some(format!("{cookie}; Max-Age=-1"))
    );
    assert!(
        rules[1]["route"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d.get("headers").is_none()),
        "{after}"
    );
    assert_eq!(weights(&after), Some((100, 0)));
    assert_eq!(vs.pairs(), vec![(100, 0), (50, 50), (100, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_revert_on_deletion_restores_a_users_virtual_service() {
    let ns = istio_namespace("istio-revert").await;
    let api = virtual_services(&ns);
    let original = json!({
        "hosts": ["podinfo.example.com"],
        "gateways": ["istio-system/public-gateway"],
        "http": [{
            "match": [{"uri": {"prefix": "/"}}],
            "timeout": "5s",
            "route": [{"destination": {"host": "podinfo"}}],
        }],
    });
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo", "annotations": {"example.com/team": "web"}},
        "spec": original,
    }))
    .unwrap();
    api.create(&PostParams::default(), &existing).await.unwrap();
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let yaml = istio_canary("", "interval: 10s\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50")
        .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
    apply_canary(&ns, &yaml).await;
    let vs = Vs::record(&ns);
    let op = operator(&ns, &["-mesh-provider=istio"]).await;
    wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    let taken = wait_spec(&vs, "the VirtualService taken over", |s| {
        weights(s) == Some((100, 0))
    })
    .await;
    assert_eq!(taken["hosts"], json!(["podinfo"]), "{taken}");
    let stored = api.get("podinfo").await.unwrap();
    assert_eq!(
        stored
            .annotations()
            .get("flagger.kubernetes.io/original-configuration")
            .map(|s| serde_json::from_str::<Value>(s).unwrap()),
        Some(original.clone())
    );

    let canaries: Api<flagger_api::Canary> = ns.api();
    canaries
        .delete("podinfo", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    poll("the Canary to be gone", RELEASE, || async {
        Ok(match canaries.get_opt("podinfo").await? {
            None => Ok(()),
            Some(c) => Err(c.metadata.finalizers),
        })
    })
    .await
    .unwrap();
    let restored = api.get("podinfo").await.unwrap();
    assert_eq!(restored.data["spec"], original, "{}", op.logs());
    let annotations = restored.annotations();
    assert_eq!(
        annotations.get("example.com/team").map(String::as_str),
        Some("web")
    );
    for key in [
        "flagger.kubernetes.io/original-configuration",
        "kustomize.toolkit.fluxcd.io/reconcile",
    ] {
        assert!(!annotations.contains_key(key), "{key}: {annotations:?}");
    }
}
