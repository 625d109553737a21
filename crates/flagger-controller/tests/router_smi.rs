//! The SMI TrafficSplit router against the local control plane: `linkerd` (v1alpha1), `osm` (v1alpha2) and
//! `smi:v1alpha3:istio`, each in its own namespace, reading through the watch caches.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). The TrafficSplit CRD is a fixture
//! (`testdata/crds/smi-trafficsplit.yaml`) applied by every test; applying it is idempotent.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::smi::{self, SmiRouter};
use flagger_controller::router::{RouteCx, RouterError};
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

const TRAFFIC_SPLIT_CRD: &str = include_str!("../testdata/crds/smi-trafficsplit.yaml");

/// Applies the TrafficSplit CRD (server-side apply under testkit's field manager, so concurrent tests and
/// other suites applying the same file agree) and waits until it is Established.
async fn install_traffic_split_crd(client: &Client) -> Result<()> {
    apply_yaml(client, "default", TRAFFIC_SPLIT_CRD).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(
        &api,
        "trafficsplits.split.smi-spec.io",
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

/// A namespace with Flagger's CRDs, the TrafficSplit CRD, Canary `podinfo` (stored, so it has a uid) and
/// watch caches of the namespace.
struct Env {
    ns: TestNamespace,
    canary: Canary,
    caches: Caches,
    _stop: DropGuard,
}

impl Env {
    async fn new(prefix: &str, service: Value) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        install_traffic_split_crd(&ns.client).await?;
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": ns.name},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
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

    fn splits(&self, router: &SmiRouter) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ns.client.clone(),
            &self.ns.name,
            &smi::api_resource(router.version()),
        )
    }

    /// Polls `get_routes` until it returns `expected`.
    async fn wait_for_routes(&self, router: &SmiRouter, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(match router.get_routes(&self.cx(&self.canary, &gate)).await {
                Ok(routes) if routes == expected => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await
    }
}

/// A gate that refuses every write.
fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

fn router(provider: &str) -> SmiRouter {
    SmiRouter::for_provider(&MeshProvider::parse(provider).unwrap())
}

fn owner_references(canary: &Canary) -> Value {
    json!([{
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "name": "podinfo",
        "uid": canary.uid().unwrap(),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

fn backends(weight: fn(i32) -> Value, canary: i32, primary: i32) -> Value {
    json!([
        {"service": "podinfo-canary", "weight": weight(canary)},
        {"service": "podinfo-primary", "weight": weight(primary)},
    ])
}

fn quantity(w: i32) -> Value {
    json!(w.to_string())
}

fn int(w: i32) -> Value {
    json!(w)
}

/// Create, no-op reconcile, leader gate, weights, a spec change and Flagger's missing-routes error, for
/// one provider. `annotations` is what the created TrafficSplit must carry.
async fn lifecycle(
    provider: &str,
    weight: fn(i32) -> Value,
    service: Value,
    annotations: Value,
) -> Result<()> {
    let env = Env::new(&provider.replace(':', "-"), service).await?;
    let router = router(provider);
    let api = env.splits(&router);
    let open = WriteGate::open();
    let closed = closed_gate();
    let ns = env.ns.name.clone();

    // Before reconcile: Flagger's get query error.
    match router.get_routes(&env.cx(&env.canary, &open)).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m == format!(
                "TrafficSplit podinfo.{ns} get query error trafficsplits.split.smi-spec.io \"podinfo\" not found"
            ),
            "{m}"
        ),
        other => bail!("expected a get query error, got {other:?}"),
    }

    // A closed gate creates nothing.
    match router.reconcile(&env.cx(&env.canary, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse the create, got {other:?}"),
    }
    ensure!(
        api.get_opt("podinfo").await?.is_none(),
        "created without the leader gate"
    );

    router.reconcile(&env.cx(&env.canary, &open)).await?;
    let created = api.get("podinfo").await?;
    ensure!(
        created.data["spec"] == json!({"service": "podinfo", "backends": backends(weight, 0, 100)}),
        "{created:?}"
    );
    ensure!(
        serde_json::to_value(&created.metadata.owner_references)? == owner_references(&env.canary),
        "{:?}",
        created.metadata.owner_references
    );
    ensure!(
        serde_json::to_value(&created.metadata.annotations)? == annotations,
        "{:?}",
        created.metadata.annotations
    );
    ensure!(
        created
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(smi::FIELD_MANAGER)),
        "not written by {}: {:?}",
        smi::FIELD_MANAGER,
        created.metadata.managed_fields
    );
    let rv = created.resource_version();

    // Once the cache shows it, reconcile sends nothing, with or without the gate.
    env.wait_for_routes(&router, Routes::PRIMARY).await?;
    router.reconcile(&env.cx(&env.canary, &open)).await?;
    router.reconcile(&env.cx(&env.canary, &closed)).await?;
    ensure!(
        api.get("podinfo").await?.resource_version() == rv,
        "an unchanged TrafficSplit was written"
    );

    // Weights: refused without the gate, written with it.
    let routes = Routes {
        primary: 60,
        canary: 40,
        mirrored: false,
    };
    match router.set_routes(&env.cx(&env.canary, &closed), routes).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse set_routes, got {other:?}"),
    }
    ensure!(
        api.get("podinfo").await?.resource_version() == rv,
        "written without the leader gate"
    );
    router.set_routes(&env.cx(&env.canary, &open), routes).await?;
    let weighted = api.get("podinfo").await?;
    ensure!(
        weighted.data["spec"]["backends"] == backends(weight, 40, 60),
        "{weighted:?}"
    );
    env.wait_for_routes(&router, routes).await?;

    // Weights alone never make reconcile write.
    router.reconcile(&env.cx(&env.canary, &open)).await?;
    ensure!(
        api.get("podinfo").await?.resource_version() == weighted.resource_version(),
        "reconcile rewrote a TrafficSplit whose weights only changed"
    );

    // A new host changes the spec: refused without the gate; with it, the spec is replaced and, as in
    // Flagger, the weights go back to the primary. Metadata is left as it is.
    let mut moved = env.canary.clone();
    moved.spec.service.hosts = Some(vec!["podinfo.example.com".into()]);
    match router.reconcile(&env.cx(&moved, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse the update, got {other:?}"),
    }
    router.reconcile(&env.cx(&moved, &open)).await?;
    let updated = api.get("podinfo").await?;
    ensure!(
        updated.data["spec"]
            == json!({"service": "podinfo.example.com", "backends": backends(weight, 0, 100)}),
        "{updated:?}"
    );
    ensure!(
        updated.metadata.owner_references == created.metadata.owner_references,
        "{updated:?}"
    );
    env.wait_for_routes(&router, Routes::PRIMARY).await?;

    // Both weights 0: Flagger's error.
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"backends": backends(weight, 0, 0)}})),
    )
    .await?;
    let expected =
        format!("TrafficSplit podinfo.{ns} does not contain routes for podinfo-primary and podinfo-canary");
    poll("the missing-routes error", DEADLINE, || async {
        Ok(match router.get_routes(&env.cx(&env.canary, &open)).await {
            Err(RouterError::Invalid(m)) if m == expected => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;

    router.finalize(&env.cx(&env.canary, &closed)).await?;
    Ok(())
}

#[tokio::test]
async fn linkerd_manages_a_v1alpha1_traffic_split_with_quantity_weights() {
    lifecycle("linkerd", quantity, json!({"port": 9898}), json!(null))
        .await
        .unwrap();
}

#[tokio::test]
async fn osm_manages_a_v1alpha2_traffic_split_with_integer_weights() {
    lifecycle("osm", int, json!({"port": 9898}), json!(null))
        .await
        .unwrap();
}

#[tokio::test]
async fn smi_v1alpha3_for_istio_annotates_the_gateways() {
    lifecycle(
        "smi:v1alpha3:istio",
        int,
        json!({"port": 9898, "gateways": ["istio-system/public-gateway"]}),
        json!({smi::ISTIO_GATEWAYS_ANNOTATION: "[\"istio-system/public-gateway\"]"}),
    )
    .await
    .unwrap();
}

/// A TrafficSplit that exists before the canary is taken over like Flagger does: left alone while only
/// its weights differ, its spec replaced when the rest differs, its metadata kept.
#[tokio::test]
async fn an_existing_traffic_split_is_taken_over_without_losing_its_metadata() {
    let env = Env::new("smi-existing", json!({"port": 9898})).await.unwrap();
    let router = router("osm");
    let api = env.splits(&router);
    let open = WriteGate::open();

    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": "podinfo", "labels": {"team": "a"}, "annotations": {"note": "kept"}},
        "spec": {"service": "podinfo", "backends": backends(int, 30, 70)},
    }))
    .unwrap();
    let existing = api.create(&PostParams::default(), &existing).await.unwrap();
    env.wait_for_routes(
        &router,
        Routes {
            primary: 70,
            canary: 30,
            mirrored: false,
        },
    )
    .await
    .unwrap();
    router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    assert_eq!(
        api.get("podinfo").await.unwrap().resource_version(),
        existing.resource_version(),
        "only the weights differ: nothing to write"
    );

    // Another service: the spec is replaced (weights reset), labels and annotations stay, no owner is added.
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"service": "elsewhere"}})),
    )
    .await
    .unwrap();
    poll("the cache to show the new service", DEADLINE, || async {
        let store = env
            .caches
            .dynamic(&smi::api_resource(router.version()), true)
            .await?;
        let seen = store
            .state()
            .iter()
            .any(|ts| ts.name_any() == "podinfo" && ts.data["spec"]["service"] == "elsewhere");
        Ok(if seen { Ok(()) } else { Err(store.state().len()) })
    })
    .await
    .unwrap();
    router.reconcile(&env.cx(&env.canary, &open)).await.unwrap();
    let updated = api.get("podinfo").await.unwrap();
    assert_eq!(
        updated.data["spec"],
        json!({"service": "podinfo", "backends": backends(int, 0, 100)})
    );
    assert_eq!(updated.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(
        updated.annotations().get("note").map(String::as_str),
        Some("kept")
    );
    assert!(updated.metadata.owner_references.is_none(), "{updated:?}");
}
