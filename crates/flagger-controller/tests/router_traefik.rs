//! The Traefik router against the local control plane (TraefikService CRD fixture
//! `testdata/crds/traefik.yaml`), and snapshots of the TraefikService at init and at the 25 and 50 steps.
#![allow(clippy::unwrap_used)]

mod edge_router;

use anyhow::{Result, bail, ensure};
use edge_router::{Env, closed_gate, offline_canary, routes, written_by};
use flagger_controller::gate::WriteGate;
use flagger_controller::router::RouterError;
use flagger_controller::router::takeover::{Carried, ORIGINAL_CONFIGURATION_ANNOTATION};
use flagger_controller::router::traefik::{self, FIELD_MANAGER};
use flagger_core::machine::Routes;
use kube::ResourceExt as _;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const CRD: &str = include_str!("../testdata/crds/traefik.yaml");

#[test]
fn snapshots_at_init_and_steps() {
    let c = offline_canary(json!({}));
    let carried = Carried {
        owner_reference: flagger_controller::router::takeover::owner_reference(&c),
        original_configuration: None,
    };
    insta::assert_yaml_snapshot!("init", traefik::desired_object(&c, Routes::PRIMARY, &carried));
    insta::assert_yaml_snapshot!("step_25", traefik::desired_object(&c, routes(75, 25), &carried));
    insta::assert_yaml_snapshot!("step_50", traefik::desired_object(&c, routes(50, 50), &carried));
}

#[tokio::test]
async fn create_weights_takeover_and_finalize() -> Result<()> {
    let env = Env::new(
        "traefik",
        CRD,
        "traefik",
        json!({}),
        json!({"service": {"port": 9898, "apex": {"labels": {"app": "podinfo"}}}}),
    )
    .await?;
    let api = env.api(&traefik::api_resource());
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();

    match env.router.get_routes(&env.cx(&open)).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m == format!(
                "TraefikService podinfo.{ns} query error: traefikservices.traefik.io \"podinfo\" not found"
            ),
            "{m}"
        ),
        other => bail!("{other:?}"),
    }
    ensure!(matches!(
        env.router.reconcile(&env.cx(&closed)).await,
        Err(RouterError::NotLeader(_))
    ));
    ensure!(
        api.get_opt("podinfo").await?.is_none(),
        "created without the gate"
    );

    // Create.
    env.router.reconcile(&env.cx(&open)).await?;
    let created = api.get("podinfo").await?;
    ensure!(
        created.data["spec"]
            == json!({"weighted": {"services": [{"name": "podinfo-primary", "namespace": ns, "port": 9898, "weight": 100}]}}),
        "{created:?}"
    );
    ensure!(created.labels().get("app").map(String::as_str) == Some("podinfo"));
    ensure!(
        created
            .annotations()
            .get("kustomize.toolkit.fluxcd.io/reconcile")
            .map(String::as_str)
            == Some("disabled")
    );
    ensure!(
        created
            .owner_references()
            .iter()
            .any(|o| o.kind == "Canary" && o.controller == Some(true))
    );
    ensure!(written_by(&created, FIELD_MANAGER));
    env.wait_for_routes(Routes::PRIMARY).await?;

    // Unchanged: no write, even without the gate.
    env.router.reconcile(&env.cx(&closed)).await?;

    // Weights: 25, 50; the canary entry only with a weight; reconcile keeps them (no PR #1692 loop).
    ensure!(matches!(
        env.router.set_routes(&env.cx(&closed), routes(75, 25)).await,
        Err(RouterError::NotLeader(_))
    ));
    for (p, c) in [(75, 25), (50, 50)] {
        env.router.set_routes(&env.cx(&open), routes(p, c)).await?;
        env.wait_for_routes(routes(p, c)).await?;
        let rv = api.get("podinfo").await?.resource_version();
        env.router.reconcile(&env.cx(&open)).await?;
        ensure!(
            api.get("podinfo").await?.resource_version() == rv,
            "reconcile rewrote the weights"
        );
    }
    let weighted = api.get("podinfo").await?;
    ensure!(
        weighted.data["spec"]["weighted"]["services"][1]["weight"] == json!(50),
        "{weighted:?}"
    );
    // A metadata change makes reconcile write, still keeping the weights.
    let mut changed = env.canary.clone();
    changed.spec.service.apex = Some(serde_json::from_value(
        json!({"labels": {"app": "podinfo", "tier": "web"}}),
    )?);
    let cx = flagger_controller::router::RouteCx {
        canary: &changed,
        ..env.cx(&open)
    };
    env.router.reconcile(&cx).await?;
    let relabelled = api.get("podinfo").await?;
    ensure!(relabelled.labels().get("tier").map(String::as_str) == Some("web"));
    ensure!(relabelled.data["spec"] == weighted.data["spec"], "{relabelled:?}");
    env.router.set_routes(&env.cx(&open), Routes::PRIMARY).await?;
    let back = api.get("podinfo").await?;
    ensure!(
        back.data["spec"]["weighted"]["services"]
            .as_array()
            .unwrap()
            .len()
            == 1,
        "{back:?}"
    );
    match env.router.set_routes(&env.cx(&open), routes(0, 0)).await {
        Err(RouterError::Invalid(m)) => {
            ensure!(m == format!("RoutingRule podinfo.{ns} update failed: no valid weights"))
        }
        other => bail!("{other:?}"),
    }

    // Finalize leaves an object the router created to the garbage collector.
    env.router.finalize(&env.cx(&open)).await?;
    ensure!(api.get_opt("podinfo").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn takeover_keeps_foreign_fields_and_finalize_restores() -> Result<()> {
    let env = Env::new(
        "traefik-take",
        CRD,
        "traefik",
        json!({}),
        json!({"service": {"port": 9898}}),
    )
    .await?;
    let api = env.api(&traefik::api_resource());
    let open = WriteGate::open();
    let ns = env.ns.name.clone();
    let original = json!({"weighted": {"services": [{"name": "podinfo", "namespace": ns, "port": 9898}],
                          "sticky": {"cookie": {"name": "lb"}}}});
    let user = json!({
        "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
        "metadata": {"name": "podinfo", "labels": {"owner": "team"}, "annotations": {"note": "keep"}},
        "spec": original,
    });
    api.patch(
        "podinfo",
        &PatchParams::apply("user").force(),
        &Patch::Apply(&user),
    )
    .await?;
    env.router.reconcile(&env.cx(&open)).await?;
    let taken = api.get("podinfo").await?;
    ensure!(
        taken.labels().get("owner").map(String::as_str) == Some("team"),
        "{taken:?}"
    );
    ensure!(taken.annotations().get("note").map(String::as_str) == Some("keep"));
    ensure!(
        taken.data["spec"]["weighted"]["sticky"] == json!({"cookie": {"name": "lb"}}),
        "{taken:?}"
    );
    ensure!(taken.data["spec"]["weighted"]["services"][0]["name"] == json!("podinfo-primary"));
    ensure!(
        taken.owner_references().is_empty(),
        "a taken-over object must not get an owner"
    );
    let stored: serde_json::Value = serde_json::from_str(
        taken
            .annotations()
            .get(ORIGINAL_CONFIGURATION_ANNOTATION)
            .unwrap(),
    )?;
    ensure!(stored == original, "{stored}");

    env.wait_for_routes(Routes::PRIMARY).await?;
    env.router.set_routes(&env.cx(&open), routes(75, 25)).await?;
    env.wait_for_routes(routes(75, 25)).await?;
    let rv = api.get("podinfo").await?.resource_version().unwrap();
    env.wait_for_cache(&traefik::api_resource(), true, "podinfo", &rv)
        .await?;
    env.router.finalize(&env.cx(&open)).await?;
    let restored = api.get("podinfo").await?;
    ensure!(restored.data["spec"] == original, "{restored:?}");
    ensure!(
        !restored
            .annotations()
            .contains_key(ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    ensure!(
        !restored
            .annotations()
            .contains_key("kustomize.toolkit.fluxcd.io/reconcile")
    );
    ensure!(restored.labels().get("owner").map(String::as_str) == Some("team"));
    Ok(())
}
