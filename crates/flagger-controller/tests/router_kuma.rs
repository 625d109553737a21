//! The Kuma router against the local control plane (cluster-scoped TrafficRoute CRD fixture
//! `testdata/crds/kuma.yaml`), and snapshots of the TrafficRoute at init and at the 25 and 50 steps.
//!
//! TrafficRoutes are cluster-scoped and named after the apex Service, so each test uses its namespace's name
//! as the service name.
#![allow(clippy::unwrap_used)]

mod edge_router;

use anyhow::{Result, bail, ensure};
use edge_router::{Env, closed_gate, offline_canary, routes, written_by};
use flagger_controller::gate::WriteGate;
use flagger_controller::router::RouterError;
use flagger_controller::router::kuma::{self, FIELD_MANAGER};
use flagger_controller::router::takeover::ORIGINAL_CONFIGURATION_ANNOTATION;
use flagger_core::machine::Routes;
use kube::ResourceExt as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

const CRD: &str = include_str!("../testdata/crds/kuma.yaml");

#[test]
fn snapshots_at_init_and_steps() {
    let c = offline_canary(json!({}));
    insta::assert_yaml_snapshot!("init", kuma::desired_object(&c, Routes::PRIMARY, None));
    insta::assert_yaml_snapshot!("step_25", kuma::desired_object(&c, routes(75, 25), None));
    insta::assert_yaml_snapshot!("step_50", kuma::desired_object(&c, routes(50, 50), None));
}

fn cluster_api(env: &Env) -> Api<DynamicObject> {
    Api::all_with(env.ns.client.clone(), &kuma::api_resource())
}

#[tokio::test]
async fn create_weights_collision_and_finalize() -> Result<()> {
    let prefix = "kuma";
    let env = Env::new(
        prefix,
        CRD,
        "kuma",
        json!({"annotations": {"kuma.io/mesh": "edge"}}),
        json!({}),
    )
    .await?;
    let name = env.ns.name.clone();
    // The apex service is named after the namespace (cluster-wide unique).
    let mut canary = env.canary.clone();
    canary.spec.service = serde_json::from_value(json!({"name": name, "port": 9898}))?;
    let env = Env { canary, ..env };
    let api = cluster_api(&env);
    let (open, closed) = (WriteGate::open(), closed_gate());

    ensure!(matches!(
        env.router.reconcile(&env.cx(&closed)).await,
        Err(RouterError::NotLeader(_))
    ));
    env.router.reconcile(&env.cx(&open)).await?;
    let created = api.get(&name).await?;
    ensure!(created.data["mesh"] == json!("edge"), "{created:?}");
    ensure!(
        created.data["spec"]["destinations"]
            == json!([{"match": {"kuma.io/service": format!("{name}_{name}_svc_9898")}}]),
        "{created:?}"
    );
    ensure!(created.owner_references().is_empty());
    ensure!(
        created
            .annotations()
            .get("helm.toolkit.fluxcd.io/driftDetection")
            .map(String::as_str)
            == Some("disabled")
    );
    ensure!(written_by(&created, FIELD_MANAGER));
    env.wait_for_routes(Routes::PRIMARY).await?;
    env.router.reconcile(&env.cx(&closed)).await?;

    for (p, c) in [(75, 25), (50, 50)] {
        ensure!(matches!(
            env.router.set_routes(&env.cx(&closed), routes(p, c)).await,
            Err(RouterError::NotLeader(_))
        ));
        env.router.set_routes(&env.cx(&open), routes(p, c)).await?;
        env.wait_for_routes(routes(p, c)).await?;
        let rv = api.get(&name).await?.resource_version();
        env.router.reconcile(&env.cx(&open)).await?;
        ensure!(
            api.get(&name).await?.resource_version() == rv,
            "reconcile rewrote the weights"
        );
    }
    let split = api.get(&name).await?.data["spec"]["conf"]["split"].clone();
    ensure!(
        split[0]["weight"] == json!(50) && split[1]["weight"] == json!(50),
        "{split}"
    );

    // A TrafficRoute of this name routing another namespace's service is refused, not fought over.
    let mut other = env.canary.clone();
    other.metadata.namespace = Some("elsewhere".into());
    let cx = flagger_controller::router::RouteCx {
        canary: &other,
        ..env.cx(&open)
    };
    match env.router.reconcile(&cx).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m.starts_with(&format!(
                "TrafficRoute {name} routes service {name} of namespace {name}, not of elsewhere"
            )),
            "{m}"
        ),
        other => bail!("expected the collision to be refused, got {other:?}"),
    }
    ensure!(env.router.set_routes(&cx, Routes::PRIMARY).await.is_err());
    ensure!(env.router.get_routes(&cx).await.is_err());
    ensure!(
        api.get(&name).await?.data["spec"]["conf"]["split"] == split,
        "the other canary wrote"
    );

    // Finalize deletes the TrafficRoute the router created (nothing else would).
    env.router.finalize(&env.cx(&open)).await?;
    ensure!(api.get_opt(&name).await?.is_none(), "not deleted");
    Ok(())
}

#[tokio::test]
async fn takeover_keeps_foreign_fields_and_finalize_restores() -> Result<()> {
    let env = Env::new("kuma-take", CRD, "kuma", json!({}), json!({})).await?;
    let name = env.ns.name.clone();
    let mut canary = env.canary.clone();
    canary.spec.service = serde_json::from_value(json!({"name": name, "port": 80}))?;
    let env = Env { canary, ..env };
    let api = cluster_api(&env);
    let open = WriteGate::open();
    let original = json!({
        "sources": [{"match": {"kuma.io/service": "*"}}],
        "destinations": [{"match": {"kuma.io/service": "web"}}],
        "conf": {"split": [{"weight": 100, "destination": {"kuma.io/service": "web"}}],
                 "loadBalancer": {"roundRobin": {}}},
    });
    let user = json!({
        "apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute", "mesh": "default",
        "metadata": {"name": name, "labels": {"owner": "team"}},
        "spec": original,
    });
    api.patch(&name, &PatchParams::apply("user").force(), &Patch::Apply(&user))
        .await?;
    env.router.reconcile(&env.cx(&open)).await?;
    let taken = api.get(&name).await?;
    ensure!(
        taken.labels().get("owner").map(String::as_str) == Some("team"),
        "{taken:?}"
    );
    ensure!(
        taken.data["spec"]["conf"]["loadBalancer"] == json!({"roundRobin": {}}),
        "{taken:?}"
    );
    ensure!(taken.data["spec"]["conf"]["split"][0]["weight"] == json!(100));
    ensure!(
        taken
            .annotations()
            .contains_key(ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    env.wait_for_routes(Routes::PRIMARY).await?;
    env.router.finalize(&env.cx(&open)).await?;
    let restored = api.get(&name).await?;
    ensure!(restored.data["spec"] == original, "{restored:?}");
    ensure!(restored.labels().get("owner").map(String::as_str) == Some("team"));
    ensure!(
        !restored
            .annotations()
            .contains_key(ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    api.delete(&name, &Default::default()).await?;
    Ok(())
}
