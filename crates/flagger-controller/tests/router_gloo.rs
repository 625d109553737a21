//! The Gloo router against the local control plane (Upstream and RouteTable CRD fixtures
//! `testdata/crds/gloo.yaml`), and snapshots of the RouteTable at init, at the 25 and 50 steps and for A/B,
//! and of an Upstream.
#![allow(clippy::unwrap_used)]

mod edge_router;

use anyhow::{Result, bail, ensure};
use edge_router::{Env, closed_gate, offline_canary, routes, written_by};
use flagger_controller::gate::WriteGate;
use flagger_controller::router::RouterError;
use flagger_controller::router::gloo::{self, FIELD_MANAGER};
use flagger_controller::router::takeover::{self, Carried, ORIGINAL_CONFIGURATION_ANNOTATION};
use flagger_core::machine::Routes;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const CRD: &str = include_str!("../testdata/crds/gloo.yaml");

#[test]
fn snapshots_at_init_steps_and_ab() {
    let c = offline_canary(json!({}));
    let carried = Carried {
        owner_reference: takeover::owner_reference(&c),
        original_configuration: None,
    };
    insta::assert_yaml_snapshot!("init", gloo::desired_route_table(&c, Routes::PRIMARY, &carried));
    insta::assert_yaml_snapshot!("step_25", gloo::desired_route_table(&c, routes(75, 25), &carried));
    insta::assert_yaml_snapshot!("step_50", gloo::desired_route_table(&c, routes(50, 50), &carried));
    let ab = offline_canary(json!({"analysis": {"iterations": 10, "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"user-agent": {"regex": ".*Firefox.*"}}, "method": {"exact": "GET"}},
    ]}}));
    insta::assert_yaml_snapshot!("ab", gloo::desired_route_table(&ab, routes(0, 100), &carried));
    insta::assert_yaml_snapshot!(
        "upstream",
        gloo::desired_upstream(&c, false, &json!({"app": "podinfo-primary"}), None)
    );
}

#[tokio::test]
async fn upstreams_route_table_weights_takeover_and_finalize() -> Result<()> {
    let env = Env::new(
        "gloo",
        CRD,
        "gloo",
        json!({}),
        json!({"service": {"port": 9898}, "upstreamRef": {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "config"}}),
    )
    .await?;
    let ns = env.ns.name.clone();
    let (open, closed) = (WriteGate::open(), closed_gate());
    let services: Api<Service> = env.ns.api();
    for name in ["podinfo-primary", "podinfo-canary"] {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 9898}]}}))?;
        services.create(&PostParams::default(), &svc).await?;
    }
    let upstreams = env.api(&gloo::upstream_resource());
    let tables = env.api(&gloo::route_table_resource());

    match env.router.reconcile(&env.cx(&open)).await {
        Err(RouterError::Invalid(m)) => ensure!(m.starts_with("config upstream config."), "{m}"),
        other => bail!("{other:?}"),
    }
    let config = json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "metadata": {"name": "config"},
        "spec": {"useHttp2": true, "loadBalancerConfig": {"roundRobin": {}}, "kube": {"serviceName": "x"}}});
    upstreams
        .patch(
            "config",
            &PatchParams::apply("user").force(),
            &Patch::Apply(&config),
        )
        .await?;

    // A pre-existing RouteTable of the user is taken over.
    let original = json!({"routes": [{"matchers": [{"prefix": "/"}],
        "routeAction": {"single": {"upstream": {"name": "web", "namespace": ns}}}}]});
    let user = json!({"apiVersion": "gateway.solo.io/v1", "kind": "RouteTable",
        "metadata": {"name": "podinfo", "labels": {"owner": "team"}}, "spec": original});
    tables
        .patch(
            "podinfo",
            &PatchParams::apply("user").force(),
            &Patch::Apply(&user),
        )
        .await?;

    ensure!(matches!(
        env.router.reconcile(&env.cx(&closed)).await,
        Err(RouterError::NotLeader(_))
    ));
    ensure!(
        upstreams
            .get_opt(&gloo::upstream_name(&env.canary, false))
            .await?
            .is_none()
    );
    env.router.reconcile(&env.cx(&open)).await?;
    let primary = upstreams
        .get(&format!("{ns}-podinfo-primaryupstream-9898"))
        .await?;
    ensure!(
        primary.data["spec"]
            == json!({"useHttp2": true, "loadBalancerConfig": {"roundRobin": {}},
                      "kube": {"serviceName": "podinfo-primary", "serviceNamespace": ns, "servicePort": 9898,
                               "selector": {"app": "podinfo-primary"}}}),
        "{primary:?}"
    );
    ensure!(primary.owner_references().iter().any(|o| o.kind == "Canary"));
    let canary_up = upstreams
        .get(&format!("{ns}-podinfo-canaryupstream-9898"))
        .await?;
    ensure!(canary_up.data["spec"]["kube"]["selector"] == json!({"app": "podinfo-canary"}));

    let table = tables.get("podinfo").await?;
    ensure!(
        table.labels().get("owner").map(String::as_str) == Some("team"),
        "{table:?}"
    );
    ensure!(table.owner_references().is_empty());
    ensure!(written_by(&table, FIELD_MANAGER));
    let stored: serde_json::Value = serde_json::from_str(
        table
            .annotations()
            .get(ORIGINAL_CONFIGURATION_ANNOTATION)
            .unwrap(),
    )?;
    ensure!(stored == original, "{stored}");
    let dests = &table.data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"];
    ensure!(
        dests[0]["weight"] == json!(100) && dests[1].get("weight").is_none(),
        "{table:?}"
    );
    env.wait_for_routes(Routes::PRIMARY).await?;
    env.router.reconcile(&env.cx(&closed)).await?;

    for (p, c) in [(75, 25), (50, 50)] {
        ensure!(matches!(
            env.router.set_routes(&env.cx(&closed), routes(p, c)).await,
            Err(RouterError::NotLeader(_))
        ));
        env.router.set_routes(&env.cx(&open), routes(p, c)).await?;
        env.wait_for_routes(routes(p, c)).await?;
        let rv = tables.get("podinfo").await?.resource_version();
        env.router.reconcile(&env.cx(&open)).await?;
        ensure!(
            tables.get("podinfo").await?.resource_version() == rv,
            "reconcile rewrote the weights"
        );
    }

    // A changed load balancer config is merge-patched into the existing upstreams.
    let mut lb = config.clone();
    lb["spec"]["loadBalancerConfig"] = json!({"leastRequest": {"choiceCount": 3}});
    upstreams
        .patch("config", &PatchParams::apply("user").force(), &Patch::Apply(&lb))
        .await?;
    let rv = upstreams.get("config").await?.resource_version().unwrap();
    env.wait_for_cache(&gloo::upstream_resource(), true, "config", &rv)
        .await?;
    env.router.reconcile(&env.cx(&open)).await?;
    let synced = upstreams
        .get(&format!("{ns}-podinfo-canaryupstream-9898"))
        .await?;
    ensure!(
        synced.data["spec"]["loadBalancerConfig"] == json!({"leastRequest": {"choiceCount": 3}}),
        "{synced:?}"
    );

    // Finalize restores the user's RouteTable.
    let rv = tables.get("podinfo").await?.resource_version().unwrap();
    env.wait_for_cache(&gloo::route_table_resource(), true, "podinfo", &rv)
        .await?;
    env.router.finalize(&env.cx(&open)).await?;
    let restored = tables.get("podinfo").await?;
    ensure!(restored.data["spec"] == original, "{restored:?}");
    ensure!(restored.labels().get("owner").map(String::as_str) == Some("team"));
    ensure!(
        !restored
            .annotations()
            .contains_key(ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    Ok(())
}
