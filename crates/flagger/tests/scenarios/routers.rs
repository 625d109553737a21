//! Releases through the ingress and edge routers (NGINX, Skipper, Contour, Traefik, Kuma, APISIX, Gloo): one
//! canary per provider with stepWeight 25 and maxWeight 50 is promoted, with the routing object read from a
//! watch at every step, then a release whose rollout webhook fails returns the router to 100/0. The
//! providers' controllers are not running; their objects are plain resources (CRDs from the routers' test
//! fixtures; Ingresses are built in).

use flagger_api::CanaryPhase as P;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
use serde_json::Value;
use testkit::TestNamespace;
use testkit::hooks::Receiver;
use testkit::kube::apply_yaml;

use crate::support::*;

/// How one provider is set up and how its routing object shows the weights.
struct Provider {
    /// `spec.provider`.
    name: &'static str,
    /// CRD documents to install (empty for built-in kinds).
    crds: &'static str,
    /// The kind of the routing object.
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// Objects the canary refers to, created before it (YAML, may be empty).
    setup: &'static str,
    /// Extra `spec` lines of the Canary (indented by two spaces).
    spec: &'static str,
    /// The routing object's name (`{name}` is the apex Service's name).
    object: &'static str,
    /// `(primary, canary)` weights of the routing object, `{ns}` and `{name}` substituted in the service keys.
    weights: fn(&DynamicObject, &str, &str) -> Option<(i64, i64)>,
}

fn weight_of(entries: &Value, key: &str, value: &str) -> Option<i64> {
    let entry = entries
        .as_array()?
        .iter()
        .find(|e| e.pointer(key).and_then(Value::as_str) == Some(value));
    // A weight of 0 is left out (Go's omitempty), and some routers drop a 0-weight entry entirely.
    Some(entry.map_or(0, |e| e["weight"].as_i64().unwrap_or(0)))
}

fn pair(primary: Option<i64>, canary: Option<i64>) -> Option<(i64, i64)> {
    let (p, c) = (primary?, canary?);
    (p + c == 100).then_some((p, c))
}

fn canary_annotation_weights(o: &DynamicObject, _: &str, _: &str) -> Option<(i64, i64)> {
    let canary: i64 = o
        .metadata
        .annotations
        .as_ref()?
        .get("nginx.ingress.kubernetes.io/canary-weight")?
        .parse()
        .ok()?;
    Some((100 - canary, canary))
}

fn skipper_weights(o: &DynamicObject, _: &str, name: &str) -> Option<(i64, i64)> {
    let raw = o
        .metadata
        .annotations
        .as_ref()?
        .get("zalando.org/backend-weights")?;
    let weights: serde_json::Map<String, Value> = serde_json::from_str(raw).ok()?;
    let w = |svc: String| weights.get(&svc).and_then(Value::as_i64);
    pair(w(format!("{name}-primary")), w(format!("{name}-canary")))
}

fn contour_weights(o: &DynamicObject, _: &str, name: &str) -> Option<(i64, i64)> {
    let services = &o.data["spec"]["routes"][0]["services"];
    pair(
        weight_of(services, "/name", &format!("{name}-primary")),
        weight_of(services, "/name", &format!("{name}-canary")),
    )
}

fn traefik_weights(o: &DynamicObject, _: &str, name: &str) -> Option<(i64, i64)> {
    let services = &o.data["spec"]["weighted"]["services"];
    pair(
        weight_of(services, "/name", &format!("{name}-primary")),
        weight_of(services, "/name", &format!("{name}-canary")),
    )
}

fn kuma_weights(o: &DynamicObject, ns: &str, name: &str) -> Option<(i64, i64)> {
    let split = &o.data["spec"]["conf"]["split"];
    let key = "/destination/kuma.io~1service";
    pair(
        weight_of(split, key, &format!("{name}-primary_{ns}_svc_9898")),
        weight_of(split, key, &format!("{name}-canary_{ns}_svc_9898")),
    )
}

fn apisix_weights(o: &DynamicObject, _: &str, name: &str) -> Option<(i64, i64)> {
    let backends = &o.data["spec"]["http"][0]["backends"];
    pair(
        weight_of(backends, "/serviceName", &format!("{name}-primary")),
        weight_of(backends, "/serviceName", &format!("{name}-canary")),
    )
}

fn gloo_weights(o: &DynamicObject, ns: &str, name: &str) -> Option<(i64, i64)> {
    let destinations = &o.data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"];
    let key = "/destination/upstream/name";
    pair(
        weight_of(destinations, key, &format!("{ns}-{name}-primaryupstream-9898")),
        weight_of(destinations, key, &format!("{ns}-{name}-canaryupstream-9898")),
    )
}

const INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: podinfo}
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: podinfo, port: {number: 9898}}}}
";

const INGRESS_REF: &str = "  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n";

const NGINX: Provider = Provider {
    name: "nginx",
    crds: "",
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
    namespaced: true,
    setup: INGRESS,
    spec: INGRESS_REF,
    object: "podinfo-canary",
    weights: canary_annotation_weights,
};

const SKIPPER: Provider = Provider {
    name: "skipper",
    weights: skipper_weights,
    ..NGINX
};

const CONTOUR: Provider = Provider {
    name: "contour",
    crds: include_str!("../../../flagger-controller/testdata/crds/contour-httpproxy.yaml"),
    group: "projectcontour.io",
    version: "v1",
    kind: "HTTPProxy",
    plural: "httpproxies",
    namespaced: true,
    setup: "",
    spec: "",
    object: "{name}",
    weights: contour_weights,
};

const TRAEFIK: Provider = Provider {
    name: "traefik",
    crds: include_str!("../../../flagger-controller/testdata/crds/traefik.yaml"),
    group: "traefik.io",
    version: "v1alpha1",
    kind: "TraefikService",
    plural: "traefikservices",
    namespaced: true,
    setup: "",
    spec: "",
    object: "{name}",
    weights: traefik_weights,
};

const KUMA: Provider = Provider {
    name: "kuma",
    crds: include_str!("../../../flagger-controller/testdata/crds/kuma.yaml"),
    group: "kuma.io",
    version: "v1alpha1",
    kind: "TrafficRoute",
    plural: "trafficroutes",
    namespaced: false,
    setup: "",
    spec: "",
    object: "{name}",
    weights: kuma_weights,
};

const APISIX: Provider = Provider {
    name: "apisix",
    crds: include_str!("../../../flagger-controller/testdata/crds/apisix.yaml"),
    group: "apisix.apache.org",
    version: "v2",
    kind: "ApisixRoute",
    plural: "apisixroutes",
    namespaced: true,
    setup: "apiVersion: apisix.apache.org/v2
kind: ApisixRoute
metadata: {name: podinfo}
spec:
  http:
  - name: main
    match: {hosts: [app.example.com], paths: [/*]}
    backends: [{serviceName: podinfo, servicePort: 9898}]
",
    spec: "  routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}\n",
    object: "podinfo-{name}-canary",
    weights: apisix_weights,
};

const GLOO: Provider = Provider {
    name: "gloo",
    crds: include_str!("../../../flagger-controller/testdata/crds/gloo.yaml"),
    group: "gateway.solo.io",
    version: "v1",
    kind: "RouteTable",
    plural: "routetables",
    namespaced: true,
    setup: "",
    spec: "",
    object: "{name}",
    weights: gloo_weights,
};

/// A release promoted with weights 0 → 25 → 50 → 0, then a release whose rollout webhook fails, rolled
/// back to 100/0.
async fn release_through(p: Provider) {
    let ns = namespace_with_crds(p.name, p.crds).await;
    // Cluster-scoped routing objects (Kuma) are named after the apex Service: give each run its own.
    let name = if p.namespaced {
        "podinfo".to_owned()
    } else {
        format!("podinfo-{}", ns.name)
    };
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    if !p.setup.is_empty() {
        apply_yaml(&ns.client, &ns.name, p.setup).await.unwrap();
    }
    let hooks = Receiver::start().await.unwrap();
    let analysis = format!(
        "interval: 10s\nthreshold: 2\nstepWeight: 25\nmaxWeight: 50\nwebhooks:\n- {{name: load, url: \"{}\", timeout: 2s}}",
        hooks.url("load")
    );
    let mut yaml = canary_named(&name, p.name, &analysis);
    if !p.spec.is_empty() {
        yaml = yaml.replace("spec:\n", &format!("spec:\n{}", p.spec));
    }
    apply_canary(&ns, &yaml).await;

    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(p.group, p.version, p.kind), p.plural);
    let api: Api<DynamicObject> = if p.namespaced {
        Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
    } else {
        Api::all_with(ns.client.clone(), &resource)
    };
    let object = p.object.replace("{name}", &name);
    let (namespace, apex, read) = (ns.name.clone(), name.clone(), p.weights);
    let seen = Weights::watch(api.clone(), &object, move |o| read(o, &namespace, &apex));
    let op = operator(&ns, &[&format!("-mesh-provider={}", p.name)]).await;
    wait_named_phase(&ns, &name, P::Initialized).await;

    set_image(&ns, "podinfo:2.0.0").await;
    wait_named_phase(&ns, &name, P::Succeeded).await;
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    assert_eq!(
        seen.canary(),
        vec![0, 25, 50, 0],
        "{}: {:?}\n{}",
        p.name,
        seen.pairs(),
        op.logs()
    );

    // The next release gets traffic, then its rollout webhook starts failing: it is rolled back.
    let before = seen.pairs().len();
    set_image(&ns, "podinfo:3.0.0").await;
    testkit::kube::poll("the canary to get traffic", RELEASE, || async {
        let pairs = seen.pairs();
        Ok(if pairs[before..].iter().any(|(_, c)| *c > 0) {
            Ok(())
        } else {
            Err(pairs)
        })
    })
    .await
    .unwrap();
    hooks.set_status("load", 500);
    wait_named_phase(&ns, &name, P::Failed).await;
    let pairs = settled_pairs(|| seen.pairs(), |p| p.last() == Some(&(100, 0)), RELEASE).await;
    assert_eq!(
        pairs.last(),
        Some(&(100, 0)),
        "{}: {pairs:?}\n{}",
        p.name,
        op.logs()
    );
    assert_eq!(
        image_of(&deployment(&ns, "podinfo-primary").await),
        "podinfo:2.0.0"
    );
    drop(op);
    if !p.namespaced {
        // Nothing garbage-collects a cluster-scoped routing object of a namespace that goes away.
        let _ = api.delete(&object, &DeleteParams::default()).await;
    }
}

async fn wait_named_phase(ns: &TestNamespace, name: &str, phase: P) {
    wait_phase(ns, name, phase, RELEASE * 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_canary_ingress_weights() {
    release_through(NGINX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipper_backend_weights() {
    release_through(SKIPPER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contour_httpproxy_weights() {
    release_through(CONTOUR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_service_weights() {
    release_through(TRAEFIK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_traffic_route_weights() {
    release_through(KUMA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apisix_route_weights() {
    release_through(APISIX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gloo_route_table_weights() {
    release_through(GLOO).await;
}
