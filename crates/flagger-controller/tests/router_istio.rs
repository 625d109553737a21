//! The Istio router against the local control plane: VirtualServices and DestinationRules of
//! `networking.istio.io/v1beta1`, each test in its own namespace, reading through the watch caches.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). The Istio CRDs are a fixture
//! (`testdata/crds/istio.yaml`) applied by every test; applying them is idempotent.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::istio;
use flagger_controller::router::{AnyRouter, RouteCx, RouterError};
use flagger_core::machine::Routes;
use flagger_core::provider::MeshProvider;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use testkit::kube::poll;
use testkit::{TestNamespace, apply_yaml, install_crds, wait_for};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long the watch cache may take to show a write.
const DEADLINE: Duration = Duration::from_secs(20);

const ISTIO_CRDS: &str = include_str!("../testdata/crds/istio.yaml");

/// Applies the VirtualService and DestinationRule CRDs and waits until both are Established.
async fn install_istio_crds(client: &Client) -> Result<()> {
    apply_yaml(client, "default", ISTIO_CRDS).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
    ] {
        wait_for(&api, name, "Established", DEADLINE, |crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        })
        .await?;
    }
    Ok(())
}

/// A namespace with Flagger's CRDs, the Istio CRDs, Canary `podinfo` (stored, so it has a uid) and watch
/// caches of the namespace.
struct Env {
    ns: TestNamespace,
    canary: Canary,
    caches: Caches,
    router: AnyRouter,
    _stop: DropGuard,
}

impl Env {
    async fn new(prefix: &str, service: Value, analysis: Value) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        install_istio_crds(&ns.client).await?;
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": ns.name},
            "spec": {
                "provider": "istio",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": analysis,
            },
        }))?;
        let canary = ns
            .api::<Canary>()
            .create(&PostParams::default(), &canary)
            .await
            .context("creating the Canary")?;
        let token = CancellationToken::new();
        let (caches, _triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
        Ok(Self {
            ns,
            canary,
            caches,
            router: AnyRouter::for_provider(&MeshProvider::Istio),
            _stop: token.drop_guard(),
        })
    }

    fn cx<'a>(&'a self, canary: &'a Canary, gate: &'a WriteGate) -> RouteCx<'a> {
        RouteCx {
            client: &self.ns.client,
            caches: &self.caches,
            canary,
            gate,
        }
    }

    fn virtual_services(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ns.client.clone(),
            &self.ns.name,
            &istio::virtual_service_resource(),
        )
    }

    fn destination_rules(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ns.client.clone(),
            &self.ns.name,
            &istio::destination_rule_resource(),
        )
    }

    /// Polls `get_routes` until it returns `expected`.
    async fn wait_for_routes(&self, canary: &Canary, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(match self.router.get_routes(&self.cx(canary, &gate)).await {
                Ok(routes) if routes == expected => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await
    }

    /// Waits until the cache shows `name` of `resource` at `resource_version` (or later writes).
    async fn wait_for_cache(
        &self,
        resource: &kube::api::ApiResource,
        name: &str,
        version: &str,
    ) -> Result<()> {
        poll("the cache to show the write", DEADLINE, || async {
            let store = self.caches.dynamic(resource, true).await?;
            let seen = store.state().iter().any(|r| {
                r.name_any() == name
                    && r.resource_version().and_then(|v| v.parse::<u64>().ok()) >= version.parse::<u64>().ok()
            });
            Ok(if seen { Ok(()) } else { Err(store.state().len()) })
        })
        .await
    }

    /// Waits until the cache shows the VirtualService and both DestinationRules as they are now.
    async fn settle(&self) -> Result<()> {
        let vs = self.virtual_services().get("podinfo").await?;
        self.wait_for_cache(
            &istio::virtual_service_resource(),
            "podinfo",
            &vs.resource_version().unwrap_or_default(),
        )
        .await?;
        for name in ["podinfo-canary", "podinfo-primary"] {
            if let Some(dr) = self.destination_rules().get_opt(name).await? {
                self.wait_for_cache(
                    &istio::destination_rule_resource(),
                    name,
                    &dr.resource_version().unwrap_or_default(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A gate that refuses every write.
fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

fn analysis() -> Value {
    json!({"interval": "10s", "threshold": 2, "maxWeight": 50, "stepWeight": 25})
}

fn step(primary: i32, canary: i32) -> Routes {
    Routes {
        primary,
        canary,
        mirrored: false,
    }
}

/// `(host, weight)` of each destination of `http[index]`.
fn weights(vs: &DynamicObject, index: usize) -> Vec<(String, i64)> {
    vs.data["spec"]["http"][index]["route"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap().to_owned(),
                d["weight"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn weights_of(primary: i64, canary: i64) -> Vec<(String, i64)> {
    vec![
        ("podinfo-primary".to_owned(), primary),
        ("podinfo-canary".to_owned(), canary),
    ]
}

fn owned_by_flagger(obj: &DynamicObject) -> bool {
    obj.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(istio::FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
    })
}

/// Create, no-op reconcile, the leader gate, weights, updates of the DestinationRules and the
/// VirtualService, and finalize of objects the router created.
#[tokio::test]
async fn creates_the_virtual_service_and_destination_rules_and_sets_weights() {
    let service = json!({
        "port": 9898,
        "hosts": ["app.example.com"],
        "gateways": ["istio-system/public-gateway"],
        "timeout": "30s",
        "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error"},
        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
        "apex": {"labels": {"team": "a"}, "annotations": {"apex": "yes"}},
    });
    let env = Env::new("istio-create", service, analysis()).await.unwrap();
    let (vs_api, dr_api) = (env.virtual_services(), env.destination_rules());
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();

    match env.router.get_routes(&env.cx(&env.canary, &open)).await {
        Err(RouterError::Invalid(m)) => assert_eq!(
            m,
            format!(
                "VirtualService podinfo.{ns} get query error virtualservices.networking.istio.io \"podinfo\" not found"
            )
        ),
        other => panic!("expected a get error, got {other:?}"),
    }
    match env.router.reconcile(&env.cx(&env.canary, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => panic!("a closed gate must refuse the create, got {other:?}"),
    }
    assert!(dr_api.get_opt("podinfo-canary").await.unwrap().is_none());
    assert!(vs_api.get_opt("podinfo").await.unwrap().is_none());

    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    let owner = json!([{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                        "uid": env.canary.uid().unwrap(), "controller": true, "blockOwnerDeletion": true}]);
    for name in ["podinfo-canary", "podinfo-primary"] {
        let dr = dr_api.get(name).await.unwrap();
        assert_eq!(
            dr.data["spec"],
            json!({"host": name, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
        );
        assert_eq!(
            serde_json::to_value(&dr.metadata.owner_references).unwrap(),
            owner
        );
        assert!(dr.metadata.annotations.is_none(), "{dr:?}");
        assert!(owned_by_flagger(&dr));
    }
    let created = vs_api.get("podinfo").await.unwrap();
    assert_eq!(
        created.data["spec"],
        json!({
            "hosts": ["app.example.com", "podinfo"],
            "gateways": ["istio-system/public-gateway"],
            "http": [{
                "timeout": "30s",
                "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error"},
                "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 100},
                    {"destination": {"host": "podinfo-canary"}, "weight": 0},
                ],
            }],
        })
    );
    assert_eq!(
        serde_json::to_value(&created.metadata.owner_references).unwrap(),
        owner
    );
    assert_eq!(
        serde_json::to_value(created.annotations()).unwrap(),
        json!({"apex": "yes", "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
               "helm.toolkit.fluxcd.io/driftDetection": "disabled"})
    );
    assert_eq!(
        serde_json::to_value(created.labels()).unwrap(),
        json!({"team": "a"})
    );
    assert!(owned_by_flagger(&created));

    env.wait_for_routes(&env.canary, Routes::PRIMARY).await.unwrap();
    env.settle().await.unwrap();
    // Everything is as desired: reconcile sends nothing, with or without the gate.
    let rv = created.resource_version().unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    env.router.reconcile(&env.cx(&env.canary, &closed)).await.unwrap();
    assert_eq!(
        vs_api.get("podinfo").await.unwrap().resource_version().unwrap(),
        rv
    );

    // Weights: refused without the gate, written with it, read back; mirroring on the first rule.
    match env
        .router
        .set_routes(&env.cx(&env.canary, &closed), step(75, 25))
        .await
    {
        Err(RouterError::NotLeader(_)) => {}
        other => panic!("a closed gate must refuse set_routes, got {other:?}"),
    }
    env.router
        .set_routes(&env.cx(&env.canary, &open), step(75, 25))
        .await
        .unwrap();
    let stepped = vs_api.get("podinfo").await.unwrap();
    assert_eq!(weights(&stepped, 0), weights_of(75, 25));
    env.wait_for_routes(&env.canary, step(75, 25)).await.unwrap();
    let mirrored = Routes {
        primary: 100,
        canary: 0,
        mirrored: true,
    };
    env.router
        .set_routes(&env.cx(&env.canary, &open), mirrored)
        .await
        .unwrap();
    let mirror = vs_api.get("podinfo").await.unwrap();
    assert_eq!(
        mirror.data["spec"]["http"][0]["mirror"],
        json!({"host": "podinfo-canary"})
    );
    env.wait_for_routes(&env.canary, mirrored).await.unwrap();

    // Weights and mirroring alone never make reconcile write.
    env.settle().await.unwrap();
    let rv = vs_api.get("podinfo").await.unwrap().resource_version().unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    assert_eq!(
        vs_api.get("podinfo").await.unwrap().resource_version().unwrap(),
        rv
    );

    // A new traffic policy updates both DestinationRules; a new host rewrites the VirtualService (weights
    // back to the primary and no mirror, as in Flagger).
    let mut moved = env.canary.clone();
    moved.spec.service.hosts = Some(vec!["other.example.com".into()]);
    moved.spec.service.traffic_policy =
        Some(serde_json::from_value(json!({"loadBalancer": {"simple": "LEAST_REQUEST"}})).unwrap());
    env.router.reconcile(&env.cx(&moved, &open)).await.unwrap();
    for name in ["podinfo-canary", "podinfo-primary"] {
        assert_eq!(
            dr_api.get(name).await.unwrap().data["spec"],
            json!({"host": name, "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}})
        );
    }
    let updated = vs_api.get("podinfo").await.unwrap();
    assert_eq!(
        updated.data["spec"]["hosts"],
        json!(["other.example.com", "podinfo"])
    );
    assert_eq!(weights(&updated, 0), weights_of(100, 0));
    assert!(updated.data["spec"]["http"][0].get("mirror").is_none());

    // Objects the router created belong to the Canary: finalize leaves them to the garbage collector.
    env.settle().await.unwrap();
    env.router.finalize(&env.cx(&moved, &closed)).await.unwrap();
    assert_eq!(
        vs_api.get("podinfo").await.unwrap().resource_version(),
        updated.resource_version()
    );
}

/// A pre-existing VirtualService is taken over: the user's labels, annotations and spec fields Flagger
/// does not write survive; its spec is kept in the original-configuration annotation; finalize restores it
/// and drops what the router added.
#[tokio::test]
async fn taking_over_a_virtual_service_keeps_user_fields_and_finalize_restores_it() {
    let env = Env::new(
        "istio-takeover",
        json!({"port": 9898, "apex": {"labels": {"team": "a"}}}),
        analysis(),
    )
    .await
    .unwrap();
    let vs_api = env.virtual_services();
    let open = WriteGate::open();
    let user_http = json!([{
        "match": [{"uri": {"prefix": "/"}}],
        "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 1}}},
        "route": [{"destination": {"host": "podinfo", "port": {"number": 9898}}}],
    }]);
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo", "labels": {"owner": "user"}, "annotations": {"note": "kept"}},
        "spec": {
            "hosts": ["podinfo.example.com"],
            "gateways": ["istio-system/public-gateway"],
            "exportTo": ["."],
            "http": user_http,
        },
    }))
    .unwrap();
    // Created through `networking.istio.io/v1`, as users write it today.
    let v1: Api<DynamicObject> = Api::namespaced_with(
        env.ns.client.clone(),
        &env.ns.name,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
            "virtualservices",
        ),
    );
    let existing = v1.create(&PostParams::default(), &existing).await.unwrap();
    env.wait_for_cache(
        &istio::virtual_service_resource(),
        "podinfo",
        &existing.resource_version().unwrap(),
    )
    .await
    .unwrap();

    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    let taken = vs_api.get("podinfo").await.unwrap();
    assert_eq!(
        taken.data["spec"],
        json!({
            "hosts": ["podinfo"],
            "gateways": ["mesh"],
            "exportTo": ["."],
            "http": [{"route": [
                {"destination": {"host": "podinfo-primary"}, "weight": 100},
                {"destination": {"host": "podinfo-canary"}, "weight": 0},
            ]}],
        }),
        "the user's exportTo stays, Flagger's fields are replaced"
    );
    assert_eq!(taken.labels().get("owner").map(String::as_str), Some("user"));
    assert_eq!(taken.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(taken.annotations().get("note").map(String::as_str), Some("kept"));
    assert!(
        taken.metadata.owner_references.is_none(),
        "a taken-over VirtualService gets no owner"
    );
    let stored: Value = serde_json::from_str(
        taken
            .annotations()
            .get(istio::ORIGINAL_CONFIGURATION_ANNOTATION)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stored,
        json!({"hosts": ["podinfo.example.com"], "gateways": ["istio-system/public-gateway"], "http": user_http})
    );

    // Once taken over, reconcile has nothing to do.
    env.settle().await.unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    assert_eq!(
        vs_api.get("podinfo").await.unwrap().resource_version(),
        taken.resource_version()
    );

    // The user adds an annotation during the release; weights keep it and the stored spec.
    let edited = vs_api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"later": "kept"}}})),
        )
        .await
        .unwrap();
    env.wait_for_cache(
        &istio::virtual_service_resource(),
        "podinfo",
        &edited.resource_version().unwrap(),
    )
    .await
    .unwrap();
    env.router
        .set_routes(&env.cx(&env.canary, &open), step(50, 50))
        .await
        .unwrap();
    let stepped = vs_api.get("podinfo").await.unwrap();
    assert_eq!(weights(&stepped, 0), weights_of(50, 50));
    assert_eq!(
        stepped.annotations().get("later").map(String::as_str),
        Some("kept")
    );
    assert_eq!(
        stepped
            .annotations()
            .get(istio::ORIGINAL_CONFIGURATION_ANNOTATION),
        taken.annotations().get(istio::ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    env.wait_for_routes(&env.canary, step(50, 50)).await.unwrap();
    env.settle().await.unwrap();

    // Revert on deletion: the original spec comes back; the router's labels and annotations go, the
    // user's stay.
    match env.router.finalize(&env.cx(&env.canary, &closed_gate())).await {
        Err(RouterError::NotLeader(_)) => {}
        other => panic!("a closed gate must refuse finalize, got {other:?}"),
    }
    env.router.finalize(&env.cx(&env.canary, &open)).await.unwrap();
    let restored = vs_api.get("podinfo").await.unwrap();
    assert_eq!(
        restored.data["spec"],
        json!({
            "hosts": ["podinfo.example.com"],
            "gateways": ["istio-system/public-gateway"],
            "exportTo": ["."],
            "http": user_http,
        })
    );
    let annotations = restored.annotations();
    for key in [
        istio::ORIGINAL_CONFIGURATION_ANNOTATION,
        "kustomize.toolkit.fluxcd.io/reconcile",
        "helm.toolkit.fluxcd.io/driftDetection",
    ] {
        assert!(!annotations.contains_key(key), "{key}: {annotations:?}");
    }
    assert_eq!(annotations.get("note").map(String::as_str), Some("kept"));
    assert_eq!(annotations.get("later").map(String::as_str), Some("kept"));
    assert!(!restored.labels().contains_key("team"), "{:?}", restored.labels());
    assert_eq!(restored.labels().get("owner").map(String::as_str), Some("user"));
}

/// A VirtualService applied with kubectl keeps no copy of its spec: finalize restores the spec of kubectl's
/// last-applied annotation.
#[tokio::test]
async fn finalize_restores_kubectls_last_applied_spec() {
    let env = Env::new("istio-kubectl", json!({"port": 9898}), analysis())
        .await
        .unwrap();
    let vs_api = env.virtual_services();
    let open = WriteGate::open();
    let applied = json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo", "namespace": env.ns.name},
        "spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}}]}]},
    });
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo", "annotations": {istio::KUBECTL_ANNOTATION: applied.to_string()}},
        "spec": applied["spec"],
    }))
    .unwrap();
    vs_api.create(&PostParams::default(), &existing).await.unwrap();
    env.wait_for_cache(&istio::virtual_service_resource(), "podinfo", "0")
        .await
        .unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    let taken = vs_api.get("podinfo").await.unwrap();
    assert!(
        !taken
            .annotations()
            .contains_key(istio::ORIGINAL_CONFIGURATION_ANNOTATION),
        "{:?}",
        taken.annotations()
    );
    assert_eq!(weights(&taken, 0), weights_of(100, 0));
    env.settle().await.unwrap();
    env.router.finalize(&env.cx(&env.canary, &open)).await.unwrap();
    let restored = vs_api.get("podinfo").await.unwrap();
    assert_eq!(restored.data["spec"], applied["spec"]);
    assert_eq!(
        restored.annotations().get(istio::KUBECTL_ANNOTATION),
        Some(&applied.to_string())
    );
}

/// Session affinity, A/B and TCP shapes go through the API server's schema and read back as Flagger reads
/// them.
#[tokio::test]
async fn session_affinity_ab_and_tcp_round_trip() {
    let env = Env::new(
        "istio-shapes",
        json!({"port": 9898, "match": [{"uri": {"prefix": "/api"}}]}),
        json!({"interval": "10s", "threshold": 2, "stepWeight": 10,
               "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "maxAge": 60}}),
    )
    .await
    .unwrap();
    let vs_api = env.virtual_services();
    let open = WriteGate::open();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    env.settle().await.unwrap();

    env.router
        .set_routes(&env.cx(&env.canary, &open), step(90, 10))
        .await
        .unwrap();
    let during = vs_api.get("podinfo").await.unwrap();
    let http = during.data["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 3, "{during:?}");
    assert_eq!(weights(&during, 0), weights_of(0, 100));
    assert_eq!(weights(&during, 1), weights_of(100, 0));
    assert_eq!(weights(&during, 2), weights_of(90, 10));
    let set_cookie = http[2]["route"][1]["headers"]["response"]["add"]["Set-Cookie"]
        .as_str()
        .unwrap()
        .to_owned();
    let (cookie, attributes) = set_cookie.split_once("; ").unwrap();
    assert_eq!(attributes, "Max-Age=60");
    assert_eq!(
        http[2]["route"][0]["headers"]["response"]["add"]["Set-Cookie"]
            .as_str()
            .unwrap()
            .split_once("; ")
            .unwrap()
            .1,
        "Max-Age=10"
    );
    let value = cookie.strip_prefix("flagger-cookie=").unwrap();
    assert_eq!(
        http[0]["match"],
        json!([{"uri": {"prefix": "/api"}, "headers": {"Cookie": {"regex": format!(".*flagger-cookie.*{value}.*")}}}])
    );
    env.wait_for_routes(&env.canary, step(90, 10)).await.unwrap();
    // The sticky rules do not make reconcile write.
    env.settle().await.unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    assert_eq!(
        vs_api.get("podinfo").await.unwrap().resource_version(),
        during.resource_version()
    );

    // Promotion: the run's cookie is expired by the sticky rule, the weighted rule hands out nothing.
    env.router
        .set_routes(&env.cx(&env.canary, &open), Routes::PRIMARY)
        .await
        .unwrap();
    let after = vs_api.get("podinfo").await.unwrap();
    let http = after.data["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 2, "{after:?}");
    assert_eq!(
        http[0]["headers"],
        json!({"response": {"add": {"Set-Cookie": format!("{cookie}; Max-Age=-1")}}})
    );
    assert!(http[1]["route"][1].get("headers").is_none(), "{after:?}");
    env.wait_for_routes(&env.canary, Routes::PRIMARY).await.unwrap();

    // A/B: the merged match rule and the default rule.
    let mut ab = env.canary.clone();
    let analysis = ab.spec.analysis.as_mut().unwrap();
    analysis.session_affinity = None;
    analysis.iterations = Some(2);
    analysis.match_ =
        Some(serde_json::from_value(json!([{"headers": {"x-canary": {"exact": "insider"}}}])).unwrap());
    env.settle().await.unwrap();
    env.router
        .set_routes(&env.cx(&ab, &open), step(0, 100))
        .await
        .unwrap();
    let split = vs_api.get("podinfo").await.unwrap();
    assert_eq!(
        split.data["spec"]["http"][0]["match"],
        json!([{"uri": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "insider"}}}])
    );
    assert_eq!(weights(&split, 0), weights_of(0, 100));
    assert_eq!(
        split.data["spec"]["http"][1]["match"],
        json!([{"uri": {"prefix": "/api"}}])
    );
    assert_eq!(weights(&split, 1), vec![("podinfo-primary".to_owned(), 0)]);
    env.wait_for_routes(&ab, step(0, 100)).await.unwrap();

    // TCP: the http routes go, a tcp route on the match ports comes.
    let mut tcp = env.canary.clone();
    tcp.spec.service.app_protocol = Some("TCP".into());
    tcp.spec.service.match_ = Some(serde_json::from_value(json!([{"port": 9898}])).unwrap());
    tcp.spec.analysis.as_mut().unwrap().session_affinity = None;
    env.settle().await.unwrap();
    env.router.reconcile(&env.cx(&tcp, &open)).await.unwrap();
    env.settle().await.unwrap();
    env.router
        .set_routes(&env.cx(&tcp, &open), step(50, 50))
        .await
        .unwrap();
    let tcp_vs = vs_api.get("podinfo").await.unwrap();
    assert!(tcp_vs.data["spec"].get("http").is_none(), "{tcp_vs:?}");
    assert_eq!(
        tcp_vs.data["spec"]["tcp"],
        json!([{"match": [{"port": 9898}], "route": [
            {"destination": {"host": "podinfo-primary"}, "weight": 50},
            {"destination": {"host": "podinfo-canary"}, "weight": 50},
        ]}])
    );
    env.wait_for_routes(&tcp, step(50, 50)).await.unwrap();
}

/// Flagger's delegation error reaches the caller unchanged, and nothing is written for the
/// VirtualService.
#[tokio::test]
async fn delegation_with_hosts_is_refused() {
    let env = Env::new(
        "istio-delegate",
        json!({"port": 9898, "delegation": true, "hosts": ["app.example.com"]}),
        analysis(),
    )
    .await
    .unwrap();
    let ns = env.ns.name.clone();
    match env
        .router
        .reconcile(&env.cx(&env.canary, &WriteGate::open()))
        .await
    {
        Err(RouterError::Invalid(m)) => assert_eq!(
            m,
            format!(
                "reconcileVirtualService failed: VirtualService podinfo.{ns} cannot have hosts and gateways when delegation enabled"
            )
        ),
        other => panic!("expected Flagger's error, got {other:?}"),
    }
    assert!(env.virtual_services().get_opt("podinfo").await.unwrap().is_none());
}
