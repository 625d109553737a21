//! The APISIX router against the local control plane (ApisixRoute CRD fixture `testdata/crds/apisix.yaml`),
//! and snapshots of the canary ApisixRoute at init and at the 25 and 50 steps.
#![allow(clippy::unwrap_used)]

mod edge_router;

use anyhow::{Result, bail, ensure};
use edge_router::{Env, closed_gate, offline_canary, routes, written_by};
use flagger_controller::gate::WriteGate;
use flagger_controller::router::RouterError;
use flagger_controller::router::apisix::{self, FIELD_MANAGER};
use flagger_core::machine::Routes;
use kube::ResourceExt as _;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

const CRD: &str = include_str!("../testdata/crds/apisix.yaml");

fn reference_route() -> Value {
    json!({
        "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}, "annotations": {"team": "web"}},
        "spec": {"http": [{
            "name": "method",
            "match": {"hosts": ["app.example.com"], "paths": ["/*"], "methods": ["GET"]},
            "plugins": [{"name": "prometheus", "enable": true, "config": {"disable": false}}],
            "backends": [{"serviceName": "podinfo", "servicePort": 80}],
        }]},
    })
}

fn spec() -> Value {
    json!({"routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"},
           "service": {"port": 80}})
}

#[test]
fn snapshots_at_init_and_steps() {
    let c = offline_canary(spec());
    let mut reference: DynamicObject = serde_json::from_value(reference_route()).unwrap();
    reference.metadata.namespace = Some("test".into());
    for (name, r) in [
        ("init", Routes::PRIMARY),
        ("step_25", routes(75, 25)),
        ("step_50", routes(50, 50)),
    ] {
        insta::assert_yaml_snapshot!(name, apisix::desired_object(&c, &reference, r, None).unwrap());
    }
}

#[tokio::test]
async fn create_weights_and_finalize() -> Result<()> {
    let env = Env::new("apisix", CRD, "apisix", json!({}), spec()).await?;
    let api = env.api(&apisix::api_resource());
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();

    match env.router.reconcile(&env.cx(&open)).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m == format!(
                "APISIX route podinfo.{ns} get query error: apisixroutes.apisix.apache.org \"podinfo\" not found"
            ),
            "{m}"
        ),
        other => bail!("{other:?}"),
    }
    api.patch(
        "podinfo",
        &PatchParams::apply("user").force(),
        &Patch::Apply(&reference_route()),
    )
    .await?;
    ensure!(matches!(
        env.router.reconcile(&env.cx(&closed)).await,
        Err(RouterError::NotLeader(_))
    ));
    env.router.reconcile(&env.cx(&open)).await?;
    let created = api.get("podinfo-podinfo-canary").await?;
    let http = &created.data["spec"]["http"][0];
    ensure!(http["priority"] == json!(10000), "{created:?}");
    ensure!(
        http["backends"]
            == json!([{"serviceName": "podinfo-primary", "servicePort": 80, "weight": 100},
                      {"serviceName": "podinfo-canary", "servicePort": 80, "weight": 0}]),
        "{created:?}"
    );
    ensure!(
        http["plugins"][0]["config"] == json!({"disable": false}),
        "{created:?}"
    );
    ensure!(created.labels().get("app").map(String::as_str) == Some("podinfo"));
    ensure!(created.annotations().get("team").map(String::as_str) == Some("web"));
    ensure!(created.owner_references().iter().any(|o| o.kind == "Canary"));
    ensure!(written_by(&created, FIELD_MANAGER));
    // The referenced route is not touched.
    ensure!(api.get("podinfo").await?.data["spec"] == reference_route()["spec"]);
    env.wait_for_routes(Routes::PRIMARY).await?;
    env.router.reconcile(&env.cx(&closed)).await?;

    for (p, c) in [(75, 25), (50, 50)] {
        ensure!(matches!(
            env.router.set_routes(&env.cx(&closed), routes(p, c)).await,
            Err(RouterError::NotLeader(_))
        ));
        env.router.set_routes(&env.cx(&open), routes(p, c)).await?;
        env.wait_for_routes(routes(p, c)).await?;
        let rv = api.get("podinfo-podinfo-canary").await?.resource_version();
        env.router.reconcile(&env.cx(&open)).await?;
        ensure!(
            api.get("podinfo-podinfo-canary").await?.resource_version() == rv,
            "reconcile rewrote the weights"
        );
    }
    match env.router.set_routes(&env.cx(&open), routes(0, 0)).await {
        Err(RouterError::Invalid(m)) => {
            ensure!(m == format!("RoutingRule podinfo.{ns} update failed: no valid weights"))
        }
        other => bail!("{other:?}"),
    }

    // A user's label on the canary route survives a reconcile that changes the route.
    let extra = json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
                       "metadata": {"name": "podinfo-podinfo-canary", "labels": {"audit": "yes"}}});
    api.patch(
        "podinfo-podinfo-canary",
        &PatchParams::apply("auditor"),
        &Patch::Apply(&extra),
    )
    .await?;
    let mut changed = reference_route();
    changed["spec"]["http"][0]["match"]["paths"] = json!(["/api/*"]);
    api.patch(
        "podinfo",
        &PatchParams::apply("user").force(),
        &Patch::Apply(&changed),
    )
    .await?;
    let rv = api.get("podinfo").await?.resource_version().unwrap();
    env.wait_for_cache(&apisix::api_resource(), true, "podinfo", &rv)
        .await?;
    env.router.reconcile(&env.cx(&open)).await?;
    let updated = api.get("podinfo-podinfo-canary").await?;
    ensure!(
        updated.data["spec"]["http"][0]["match"]["paths"] == json!(["/api/*"]),
        "{updated:?}"
    );
    ensure!(
        updated.data["spec"]["http"][0]["backends"][1]["weight"] == json!(50),
        "weights reset: {updated:?}"
    );
    ensure!(updated.labels().get("audit").map(String::as_str) == Some("yes"));

    // Finalize deletes the canary route; the referenced route stays.
    env.router.finalize(&env.cx(&open)).await?;
    ensure!(api.get_opt("podinfo-podinfo-canary").await?.is_none());
    ensure!(api.get_opt("podinfo").await?.is_some());
    Ok(())
}
