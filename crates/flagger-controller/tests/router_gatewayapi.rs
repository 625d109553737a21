//! The Gateway API router against the local control plane: HTTPRoutes of `gateway.networking.k8s.io/v1`
//! and `v1beta1`, each test in its own namespace, reading through the watch caches. The test plays the
//! gateway controller where one is needed, writing `status.parents` itself.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). The HTTPRoute CRD is a fixture
//! (`testdata/crds/gatewayapi.yaml`, with the upstream defaults) applied by every test; applying it is
//! idempotent.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::gatewayapi::{self, GatewayApiRouter, RouteVersion};
use flagger_controller::router::{RouteCx, RouterError};
use flagger_core::machine::Routes;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use testkit::kube::poll;
use testkit::{TestNamespace, apply_yaml, install_crds, wait_for};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long the watch cache may take to show a write.
const DEADLINE: Duration = Duration::from_secs(20);

const HTTP_ROUTE_CRD: &str = include_str!("../testdata/crds/gatewayapi.yaml");

const GATEWAY: &str = "flagger-gw";

/// Applies the HTTPRoute CRD and waits until it is Established.
async fn install_http_route_crd(client: &Client) -> Result<()> {
    apply_yaml(client, "default", HTTP_ROUTE_CRD).await?;
    let api: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    wait_for(
        &api,
        "httproutes.gateway.networking.k8s.io",
        "Established",
        DEADLINE,
        |crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        },
    )
    .await?;
    Ok(())
}

/// A namespace with Flagger's CRDs, the HTTPRoute CRD, Canary `podinfo` (stored, so it has a uid) and
/// watch caches of the namespace.
struct Env {
    ns: TestNamespace,
    canary: Canary,
    caches: Caches,
    router: GatewayApiRouter,
    _stop: DropGuard,
}

impl Env {
    async fn new(prefix: &str, version: RouteVersion, service: Value, analysis: Value) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        install_http_route_crd(&ns.client).await?;
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": ns.name},
            "spec": {
                "provider": format!("gatewayapi:{}", version.as_str()),
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
            router: GatewayApiRouter::new(version),
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

    fn routes(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ns.client.clone(),
            &self.ns.name,
            &gatewayapi::api_resource(self.router.version()),
        )
    }

    /// Polls `get_routes` until it returns `expected`.
    async fn wait_for_routes(&self, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(
                match self.router.get_routes(&self.cx(&self.canary, &gate)).await {
                    Ok(routes) if routes == expected => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            )
        })
        .await
    }

    /// Waits until the cache shows the route at `resource_version` (or later writes).
    async fn wait_for_cache(&self, resource_version: &str) -> Result<()> {
        let resource = gatewayapi::api_resource(self.router.version());
        poll("the cache to show the write", DEADLINE, || async {
            let store = self.caches.dynamic(&resource, true).await?;
            let seen = store.state().iter().any(|r| {
                r.name_any() == "podinfo"
                    && r.resource_version().and_then(|v| v.parse::<u64>().ok())
                        >= resource_version.parse::<u64>().ok()
            });
            Ok(if seen { Ok(()) } else { Err(store.state().len()) })
        })
        .await
    }

    /// Plays the gateway controller: writes `status.parents` for every parentRef of the route with an
    /// `Accepted` condition of `status` observed at `generation` (the route's own generation when `None`).
    async fn set_accepted(&self, status: &str, generation: Option<i64>) -> Result<i64> {
        let api = self.routes();
        let route = api.get("podinfo").await?;
        let current = route.metadata.generation.unwrap_or_default();
        let observed = generation.unwrap_or(current);
        let parents: Vec<Value> = route.data["spec"]["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                json!({
                    "parentRef": p,
                    "controllerName": "example.com/test-gateway",
                    "conditions": [{"type": "Accepted", "status": status, "reason": "Accepted",
                                    "message": "set by the test", "observedGeneration": observed,
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                })
            })
            .collect();
        api.patch_status(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"parents": parents}})),
        )
        .await?;
        Ok(current)
    }
}

/// A gate that refuses every write.
fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

fn service() -> Value {
    json!({
        "port": 9898,
        "hosts": ["app.example.com"],
        "gatewayRefs": [{"name": GATEWAY, "namespace": "infra"}],
        "apex": {"labels": {"team": "a"}, "annotations": {"apex": "yes"}},
    })
}

fn analysis() -> Value {
    json!({"interval": "10s", "threshold": 2, "maxWeight": 50, "stepWeight": 25})
}

fn weights(route: &DynamicObject) -> Vec<(String, i64)> {
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_owned(),
                b["weight"].as_i64().unwrap(),
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

/// Create, no-op reconcile over the API server's defaults, leader gate, weights, the parent `Accepted`
/// check and finalize of an owned route.
#[tokio::test]
async fn v1_creates_routes_and_waits_for_accepting_parents() {
    let env = Env::new("gwapi-v1", RouteVersion::V1, service(), analysis())
        .await
        .unwrap();
    let api = env.routes();
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();

    match env.router.get_routes(&env.cx(&env.canary, &open)).await {
        Err(RouterError::Invalid(m)) => assert_eq!(
            m,
            format!(
                "HTTPRoute podinfo.{ns} get error: httproutes.gateway.networking.k8s.io \"podinfo\" not found"
            )
        ),
        other => panic!("expected a get error, got {other:?}"),
    }
    match env.router.reconcile(&env.cx(&env.canary, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => panic!("a closed gate must refuse the create, got {other:?}"),
    }
    assert!(api.get_opt("podinfo").await.unwrap().is_none());

    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    let created = api.get("podinfo").await.unwrap();
    // As stored: the API server filled in the parent's group and kind.
    assert_eq!(
        created.data["spec"],
        json!({
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY, "namespace": "infra"}],
            "hostnames": ["app.example.com"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 100},
                    {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898, "weight": 0},
                ],
            }],
        })
    );
    assert_eq!(
        serde_json::to_value(&created.metadata.owner_references).unwrap(),
        json!([{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                "uid": env.canary.uid().unwrap(), "controller": true, "blockOwnerDeletion": true}])
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
    assert!(
        created
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(gatewayapi::FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")),
        "{:?}",
        created.metadata.managed_fields
    );

    // Without a status, the weights read (Flagger waits only for parents that report).
    env.wait_for_routes(Routes::PRIMARY).await.unwrap();
    // The defaulted route is as desired: reconcile sends nothing, with or without the gate.
    let rv = created.resource_version().unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    env.router.reconcile(&env.cx(&env.canary, &closed)).await.unwrap();
    assert_eq!(api.get("podinfo").await.unwrap().resource_version().unwrap(), rv);

    // Weights: refused without the gate, written with it.
    let step = Routes {
        primary: 75,
        canary: 25,
        mirrored: false,
    };
    match env.router.set_routes(&env.cx(&env.canary, &closed), step).await {
        Err(RouterError::NotLeader(_)) => {}
        other => panic!("a closed gate must refuse set_routes, got {other:?}"),
    }
    env.router
        .set_routes(&env.cx(&env.canary, &open), step)
        .await
        .unwrap();
    let stepped = api.get("podinfo").await.unwrap();
    assert_eq!(weights(&stepped), weights_of(75, 25));

    // The gateway accepted an older generation: not ready, with Flagger's message.
    let generation = env.set_accepted("True", Some(1)).await.unwrap();
    assert!(generation > 1, "a weight change is a new generation");
    let expected = format!(
        "HTTPRoute podinfo.{ns} parent {GATEWAY} is not ready (status: True, observed generation: 1, current generation: {generation})"
    );
    poll("the parent readiness error", DEADLINE, || async {
        Ok(match env.router.get_routes(&env.cx(&env.canary, &open)).await {
            Err(RouterError::Invalid(m)) if m == expected => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await
    .unwrap();
    env.set_accepted("False", None).await.unwrap();
    let rejected = format!(
        "HTTPRoute podinfo.{ns} parent {GATEWAY} is not ready (status: False, observed generation: {generation}, current generation: {generation})"
    );
    poll("the parent rejection error", DEADLINE, || async {
        Ok(match env.router.get_routes(&env.cx(&env.canary, &open)).await {
            Err(RouterError::Invalid(m)) if m == rejected => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await
    .unwrap();
    env.set_accepted("True", None).await.unwrap();
    env.wait_for_routes(step).await.unwrap();

    // Weights alone never make reconcile write.
    let rv = api.get("podinfo").await.unwrap().resource_version().unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    assert_eq!(api.get("podinfo").await.unwrap().resource_version().unwrap(), rv);

    // A new host: the route is rewritten (weights back to the primary, as in Flagger).
    let mut moved = env.canary.clone();
    moved.spec.service.hosts = Some(vec!["other.example.com".into()]);
    env.router.reconcile(&env.cx(&moved, &open)).await.unwrap();
    let updated = api.get("podinfo").await.unwrap();
    assert_eq!(updated.data["spec"]["hostnames"], json!(["other.example.com"]));
    assert_eq!(weights(&updated), weights_of(100, 0));

    // A route the router created belongs to the Canary: finalize leaves it to the garbage collector.
    env.wait_for_cache(&updated.resource_version().unwrap())
        .await
        .unwrap();
    env.router.finalize(&env.cx(&moved, &closed)).await.unwrap();
    assert_eq!(
        api.get("podinfo").await.unwrap().resource_version(),
        updated.resource_version()
    );
}

/// A pre-existing route is taken over: the user's rules (to other backends, or without backends) and its
/// labels and annotations survive every write; a rule to the apex Service is Flagger's; finalize restores
/// the original spec plus the user rules added since, and drops what the router added.
#[tokio::test]
async fn taking_over_a_route_keeps_user_rules_and_finalize_restores_it() {
    let env = Env::new("gwapi-takeover", RouteVersion::V1, service(), analysis())
        .await
        .unwrap();
    let api = env.routes();
    let open = WriteGate::open();
    let legacy = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "legacy", "port": 8080, "weight": 1}],
    });
    let redirect = json!({
        "matches": [{"path": {"type": "Exact", "value": "/old"}}],
        "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}}],
    });
    let apex_rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898, "weight": 1}],
    });
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "labels": {"owner": "user"}, "annotations": {"note": "kept"}},
        "spec": {
            "parentRefs": [{"name": GATEWAY, "namespace": "infra"}],
            "hostnames": ["app.example.com"],
            "rules": [legacy, apex_rule, redirect],
        },
    }))
    .unwrap();
    let existing = api.create(&PostParams::default(), &existing).await.unwrap();
    env.wait_for_cache(&existing.resource_version().unwrap())
        .await
        .unwrap();
    let original_spec = existing.data["spec"].clone();

    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    let taken = api.get("podinfo").await.unwrap();
    let rules = taken.data["spec"]["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(rules[0]["backendRefs"][0]["name"], "podinfo-primary");
    assert_eq!(rules[1], legacy, "user rules follow Flagger's, in their order");
    assert_eq!(rules[2]["filters"], redirect["filters"]);
    assert_eq!(taken.labels().get("owner").map(String::as_str), Some("user"));
    assert_eq!(taken.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(taken.annotations().get("note").map(String::as_str), Some("kept"));
    assert!(
        taken.metadata.owner_references.is_none(),
        "a taken-over route gets no owner"
    );
    let stored: Value = serde_json::from_str(
        taken
            .annotations()
            .get(gatewayapi::ORIGINAL_CONFIGURATION_ANNOTATION)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored, original_spec);

    // Once taken over, reconcile has nothing to do.
    env.wait_for_cache(&taken.resource_version().unwrap())
        .await
        .unwrap();
    env.router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    assert_eq!(
        api.get("podinfo").await.unwrap().resource_version(),
        taken.resource_version()
    );

    // The user adds a rule and an annotation during the release; weights keep them.
    let mut edited_rules = rules.clone();
    let later = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "docs", "port": 80, "weight": 1}],
    });
    edited_rules.push(later.clone());
    let edited = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"later": "kept"}}, "spec": {"rules": edited_rules}}),
            ),
        )
        .await
        .unwrap();
    env.wait_for_cache(&edited.resource_version().unwrap())
        .await
        .unwrap();
    let step = Routes {
        primary: 50,
        canary: 50,
        mirrored: false,
    };
    env.router
        .set_routes(&env.cx(&env.canary, &open), step)
        .await
        .unwrap();
    let stepped = api.get("podinfo").await.unwrap();
    let rules = stepped.data["spec"]["rules"].as_array().unwrap();
    assert_eq!(weights(&stepped), weights_of(50, 50));
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[1], legacy);
    assert_eq!(rules[3], later);
    assert_eq!(
        stepped.annotations().get("later").map(String::as_str),
        Some("kept")
    );
    env.wait_for_routes(step).await.unwrap();
    env.wait_for_cache(&stepped.resource_version().unwrap())
        .await
        .unwrap();

    // Revert on deletion: the original spec comes back with the rule added since; the router's labels and
    // annotations go, the user's stay.
    let closed = closed_gate();
    match env.router.finalize(&env.cx(&env.canary, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => panic!("a closed gate must refuse finalize, got {other:?}"),
    }
    env.router.finalize(&env.cx(&env.canary, &open)).await.unwrap();
    let restored = api.get("podinfo").await.unwrap();
    let mut expected_rules = original_spec["rules"].as_array().unwrap().clone();
    expected_rules.push(later);
    assert_eq!(restored.data["spec"]["rules"], Value::Array(expected_rules));
    assert_eq!(restored.data["spec"]["parentRefs"], original_spec["parentRefs"]);
    let annotations = restored.annotations();
    assert!(
        !annotations.contains_key(gatewayapi::ORIGINAL_CONFIGURATION_ANNOTATION),
        "{annotations:?}"
    );
    assert!(
        !annotations.contains_key("kustomize.toolkit.fluxcd.io/reconcile"),
        "{annotations:?}"
    );
    assert!(!annotations.contains_key("apex"), "{annotations:?}");
    assert_eq!(annotations.get("note").map(String::as_str), Some("kept"));
    assert_eq!(annotations.get("later").map(String::as_str), Some("kept"));
    assert!(!restored.labels().contains_key("team"), "{:?}", restored.labels());
    assert_eq!(restored.labels().get("owner").map(String::as_str), Some("user"));
}

/// v1beta1: the same route through the v1beta1 API (no timeouts, no parent check).
#[tokio::test]
async fn v1beta1_routes_without_parent_checks() -> Result<()> {
    let mut svc = service();
    svc["timeout"] = json!("30s");
    let env = Env::new("gwapi-v1beta1", RouteVersion::V1beta1, svc, analysis()).await?;
    let api = env.routes();
    let open = WriteGate::open();
    env.router.reconcile(&env.cx(&env.canary, &open)).await?;
    let created = api.get("podinfo").await?;
    ensure!(
        created.types.as_ref().map(|t| t.api_version.as_str()) == Some("gateway.networking.k8s.io/v1beta1")
    );
    ensure!(
        created.data["spec"]["rules"][0].get("timeouts").is_none(),
        "{created:?}"
    );
    env.wait_for_routes(Routes::PRIMARY).await?;
    let rv = created.resource_version();
    env.router.reconcile(&env.cx(&env.canary, &open)).await?;
    ensure!(
        api.get("podinfo").await?.resource_version() == rv,
        "an unchanged route was written"
    );

    let step = Routes {
        primary: 50,
        canary: 50,
        mirrored: false,
    };
    env.router.set_routes(&env.cx(&env.canary, &open), step).await?;
    // A rejecting parent does not matter to v1beta1.
    env.set_accepted("False", Some(1)).await?;
    env.wait_for_routes(step).await?;
    if weights(&api.get("podinfo").await?) != weights_of(50, 50) {
        bail!("weights not written");
    }
    Ok(())
}

/// Flagger's reconcile errors reach the caller unchanged.
#[tokio::test]
async fn reconcile_refuses_canaries_without_gateways() {
    let env = Env::new(
        "gwapi-errors",
        RouteVersion::V1,
        json!({"port": 9898}),
        analysis(),
    )
    .await
    .unwrap();
    match env
        .router
        .reconcile(&env.cx(&env.canary, &WriteGate::open()))
        .await
    {
        Err(RouterError::Invalid(m)) => {
            assert_eq!(
                m,
                "GatewayRefs must be specified when using Gateway API as a provider."
            )
        }
        other => panic!("expected Flagger's error, got {other:?}"),
    }
    assert!(env.routes().get_opt("podinfo").await.unwrap().is_none());
}
