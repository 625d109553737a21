//! The Contour router against the local control plane: the HTTPProxy is created, weighted and read through
//! the watch caches; a pre-existing proxy is taken over keeping the user's virtualhost and metadata, and
//! finalize restores its routes.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). The HTTPProxy CRD is a fixture
//! (`testdata/crds/contour-httpproxy.yaml`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::contour::{self, ContourRouter};
use flagger_controller::router::{RouteCx, RouterError};
use flagger_core::machine::Routes;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use testkit::kube::poll;
use testkit::{TestNamespace, apply_yaml, install_crds, wait_for};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

const DEADLINE: Duration = Duration::from_secs(20);
const CRD: &str = include_str!("../testdata/crds/contour-httpproxy.yaml");

struct Env {
    ns: TestNamespace,
    caches: Caches,
    _stop: DropGuard,
}

impl Env {
    async fn new(prefix: &str) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        apply_yaml(&ns.client, "default", CRD).await?;
        let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
        wait_for(
            &crds,
            "httpproxies.projectcontour.io",
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
        let token = CancellationToken::new();
        let (caches, _triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
        Ok(Self {
            ns,
            caches,
            _stop: token.drop_guard(),
        })
    }

    async fn canary(&self, analysis: Value) -> Result<Canary> {
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": self.ns.name},
            "spec": {
                "provider": "contour",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898, "timeout": "15s", "apex": {"labels": {"tier": "web"}}},
                "analysis": analysis,
            },
        }))?;
        Ok(self
            .ns
            .api::<Canary>()
            .create(&PostParams::default(), &canary)
            .await?)
    }

    fn cx<'a>(&'a self, canary: &'a Canary, gate: &'a WriteGate) -> RouteCx<'a> {
        RouteCx {
            client: &self.ns.client,
            caches: &self.caches,
            canary,
            gate,
        }
    }

    fn proxies(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.ns.client.clone(), &self.ns.name, &contour::api_resource())
    }

    async fn wait_for_routes(&self, router: &ContourRouter, canary: &Canary, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(match router.get_routes(&self.cx(canary, &gate)).await {
                Ok(routes) if routes == expected => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await
    }
}

fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

fn weights(canary: i32) -> Routes {
    Routes {
        primary: 100 - canary,
        canary,
        mirrored: false,
    }
}

#[tokio::test]
async fn contour_create_weights_and_gate() -> Result<()> {
    let env = Env::new("contour-router").await?;
    let canary = env
        .canary(json!({"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 25}))
        .await?;
    let router = ContourRouter::new("contour");
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();

    match router.reconcile(&env.cx(&canary, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse the create, got {other:?}"),
    }
    router.reconcile(&env.cx(&canary, &open)).await?;
    let created = env.proxies().get("podinfo").await?;
    ensure!(
        created.data["spec"] == router.desired_spec(&canary, Routes::PRIMARY),
        "{:?}",
        created.data
    );
    ensure!(created.data["spec"]["ingressClassName"] == "contour");
    ensure!(
        created.data["spec"]["routes"][0]["services"][1]["requestHeadersPolicy"]["set"][0]["value"]
            == format!("podinfo-canary.{ns}.svc.cluster.local:9898")
    );
    ensure!(created.labels().get("tier").map(String::as_str) == Some("web"));
    ensure!(
        created
            .annotations()
            .get("helm.toolkit.fluxcd.io/driftDetection")
            .map(String::as_str)
            == Some("disabled")
    );
    ensure!(created.owner_references()[0].uid == canary.uid().unwrap());
    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;
    let rv = created.resource_version();
    router.reconcile(&env.cx(&canary, &open)).await?;
    ensure!(
        env.proxies().get("podinfo").await?.resource_version() == rv,
        "no-op reconcile wrote"
    );

    match router.set_routes(&env.cx(&canary, &closed), weights(25)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse set_routes, got {other:?}"),
    }
    for w in [25, 50] {
        router.set_routes(&env.cx(&canary, &open), weights(w)).await?;
        env.wait_for_routes(&router, &canary, weights(w)).await?;
    }
    // Weights alone never make reconcile write; the owner reference stays.
    let rv = env.proxies().get("podinfo").await?.resource_version();
    router.reconcile(&env.cx(&canary, &open)).await?;
    let live = env.proxies().get("podinfo").await?;
    ensure!(live.resource_version() == rv, "reconcile rewrote weights only");
    ensure!(!live.owner_references().is_empty());
    match router
        .set_routes(
            &env.cx(&canary, &open),
            Routes {
                primary: 0,
                canary: 0,
                mirrored: false,
            },
        )
        .await
    {
        Err(RouterError::Invalid(m)) => ensure!(
            m == format!("HTTPProxy podinfo.{ns} update failed: no valid weights"),
            "{m}"
        ),
        other => bail!("expected no valid weights, got {other:?}"),
    }
    // Finalize of a proxy the router created changes nothing (it goes with the Canary).
    router.finalize(&env.cx(&canary, &open)).await?;
    ensure!(env.proxies().get("podinfo").await?.resource_version() == rv);
    Ok(())
}

#[tokio::test]
async fn contour_takeover_keeps_user_fields_and_finalize_restores() -> Result<()> {
    let env = Env::new("contour-takeover").await?;
    let canary = env
        .canary(json!({"interval": "1m", "threshold": 2, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}))
        .await?;
    let router = ContourRouter::default();
    let open = WriteGate::open();
    let original_routes =
        json!([{"conditions": [{"prefix": "/"}], "services": [{"name": "podinfo", "port": 9898}]}]);
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": {"name": "podinfo", "labels": {"team": "web"}, "annotations": {"team.example.com/owner": "web"}},
        "spec": {"virtualhost": {"fqdn": "app.example.com"}, "routes": original_routes},
    }))?;
    env.proxies().create(&PostParams::default(), &existing).await?;

    poll("takeover", DEADLINE, || async {
        router.reconcile(&env.cx(&canary, &open)).await?;
        let live = env.proxies().get("podinfo").await?;
        Ok(
            if live.data["spec"]["routes"].as_array().map(Vec::len) == Some(2) {
                Ok(live)
            } else {
                Err(live.data)
            },
        )
    })
    .await
    .and_then(|live| {
        ensure!(
            live.data["spec"]["virtualhost"] == json!({"fqdn": "app.example.com"}),
            "{:?}",
            live.data
        );
        ensure!(
            live.data["spec"]["routes"][0]["conditions"]
                == json!([{"prefix": "/", "header": {"name": "x-canary", "exact": "insider"}}])
        );
        ensure!(live.labels().get("team").map(String::as_str) == Some("web"));
        ensure!(live.labels().get("tier").map(String::as_str) == Some("web"));
        ensure!(
            live.annotations()
                .get("team.example.com/owner")
                .map(String::as_str)
                == Some("web")
        );
        ensure!(
            live.owner_references().is_empty(),
            "a taken-over proxy must not be garbage-collected"
        );
        let stored: Value =
            serde_json::from_str(&live.annotations()[contour::ORIGINAL_CONFIGURATION_ANNOTATION])?;
        ensure!(stored == json!({"routes": original_routes}), "{stored}");
        Ok(())
    })?;

    // A/B: the header route takes the canary weight, the default route stays on the primary.
    router.set_routes(&env.cx(&canary, &open), weights(100)).await?;
    env.wait_for_routes(&router, &canary, weights(100)).await?;
    let live = env.proxies().get("podinfo").await?;
    ensure!(live.data["spec"]["routes"][1]["services"][0]["weight"] == 100);
    ensure!(
        live.annotations()
            .contains_key(contour::ORIGINAL_CONFIGURATION_ANNOTATION)
    );

    router.finalize(&env.cx(&canary, &open)).await?;
    let restored = env.proxies().get("podinfo").await?;
    ensure!(
        restored.data["spec"]["routes"] == original_routes,
        "{:?}",
        restored.data
    );
    ensure!(restored.data["spec"]["virtualhost"] == json!({"fqdn": "app.example.com"}));
    ensure!(
        !restored
            .annotations()
            .contains_key(contour::ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    ensure!(
        restored
            .annotations()
            .get("team.example.com/owner")
            .map(String::as_str)
            == Some("web")
    );
    ensure!(restored.labels().get("team").map(String::as_str) == Some("web"));
    Ok(())
}
