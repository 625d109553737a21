//! The App Mesh routers against the local control plane: `appmesh:v1beta2` and the legacy `appmesh`
//! (v1beta1), each test in its own namespace, reading through the watch caches.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`). The App Mesh CRDs are a fixture
//! (`testdata/crds/appmesh.yaml`) applied by every test; applying them is idempotent.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::appmesh::{self, AppMeshRouter, AppMeshVersion, Kind};
use flagger_controller::router::{RouteCx, RouterError};
use flagger_core::machine::Routes;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
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

const APPMESH_CRDS: &str = include_str!("../testdata/crds/appmesh.yaml");

/// Applies the App Mesh CRDs (server-side apply under testkit's field manager, so concurrent tests agree)
/// and waits until each is Established.
async fn install_appmesh_crds(client: &Client) -> Result<()> {
    apply_yaml(client, "default", APPMESH_CRDS).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for plural in ["virtualnodes", "virtualrouters", "virtualservices"] {
        wait_for(
            &api,
            &format!("{plural}.appmesh.k8s.aws"),
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
    }
    Ok(())
}

/// A namespace with Flagger's CRDs, the App Mesh CRDs, Deployment `podinfo` (selector `name: podinfo`),
/// Canary `podinfo` (stored, so it has a uid) and watch caches of the namespace.
struct Env {
    ns: TestNamespace,
    canary: Canary,
    caches: Caches,
    _stop: DropGuard,
}

impl Env {
    async fn new(prefix: &str, provider: &str, service: Value) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        install_appmesh_crds(&ns.client).await?;
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "namespace": ns.name},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"name": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"name": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfo", "image": "podinfo"}]},
                },
            },
        }))?;
        ns.api::<Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": ns.name},
            "spec": {
                "provider": provider,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
                "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 25},
            },
        }))?;
        let canary = ns
            .api::<Canary>()
            .create(&PostParams::default(), &canary)
            .await
            .context("creating the Canary")?;
        let token = CancellationToken::new();
        let (caches, triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
        // The Deployment store fills only while its stream is polled.
        let mut deployments = triggers.deployments;
        let stop = token.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    next = deployments.next() => if next.is_none() { break },
                }
            }
        });
        let env = Self {
            ns,
            canary,
            caches,
            _stop: token.drop_guard(),
        };
        let name = env.ns.name.clone();
        poll("the Deployment in the cache", DEADLINE, || async {
            Ok(match env.caches.deployment(&name, "podinfo") {
                Some(_) => Ok(()),
                None => Err("not yet"),
            })
        })
        .await?;
        Ok(env)
    }

    fn cx<'a>(&'a self, canary: &'a Canary, gate: &'a WriteGate) -> RouteCx<'a> {
        RouteCx {
            client: &self.ns.client,
            caches: &self.caches,
            canary,
            gate,
        }
    }

    fn api(&self, version: AppMeshVersion, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ns.client.clone(),
            &self.ns.name,
            &appmesh::api_resource(version, kind),
        )
    }

    /// Polls `get_routes` until it returns `expected`.
    async fn wait_for_routes(&self, router: &AppMeshRouter, canary: &Canary, expected: Routes) -> Result<()> {
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

/// A gate that refuses every write.
fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

fn weights(primary: i32, canary: i32) -> Routes {
    Routes {
        primary,
        canary,
        mirrored: false,
    }
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

fn targets(canary: i64, primary: i64) -> Value {
    json!({"weightedTargets": [
        {"virtualNodeRef": {"name": "podinfo-canary"}, "weight": canary},
        {"virtualNodeRef": {"name": "podinfo-primary"}, "weight": primary},
    ]})
}

/// The resourceVersions of every object of the namespace, by kind and name.
async fn versions(env: &Env, version: AppMeshVersion) -> Result<Vec<(String, String)>> {
    let kinds: &[Kind] = match version {
        AppMeshVersion::V1beta2 => &[Kind::VirtualNode, Kind::VirtualRouter, Kind::VirtualService],
        AppMeshVersion::V1beta1 => &[Kind::VirtualNode, Kind::VirtualService],
    };
    let mut all = Vec::new();
    for kind in kinds {
        for o in env.api(version, *kind).list(&Default::default()).await? {
            all.push((
                format!("{}/{}", kind.as_str(), o.name_any()),
                o.resource_version().unwrap(),
            ));
        }
    }
    all.sort();
    Ok(all)
}

#[tokio::test]
async fn v1beta2_create_weights_update_and_finalize() -> Result<()> {
    let env = Env::new(
        "appmesh-v1beta2",
        "appmesh:v1beta2",
        json!({"port": 9898, "hosts": ["podinfo.example.com"], "timeout": "10s"}),
    )
    .await?;
    let router = AppMeshRouter::new(AppMeshVersion::V1beta2);
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();
    let nodes = env.api(AppMeshVersion::V1beta2, Kind::VirtualNode);
    let routers = env.api(AppMeshVersion::V1beta2, Kind::VirtualRouter);
    let services = env.api(AppMeshVersion::V1beta2, Kind::VirtualService);

    // Before reconcile: Flagger's get query error.
    match router.get_routes(&env.cx(&env.canary, &open)).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m == "VirtualRouter podinfo get query error: virtualrouters.appmesh.k8s.aws \"podinfo\" not found",
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
        versions(&env, AppMeshVersion::V1beta2).await?.is_empty(),
        "created without the gate"
    );

    router.reconcile(&env.cx(&env.canary, &open)).await?;
    let names = versions(&env, AppMeshVersion::V1beta2).await?;
    let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    ensure!(
        names
            == [
                "VirtualNode/podinfo-canary",
                "VirtualNode/podinfo-primary",
                "VirtualRouter/podinfo",
                "VirtualRouter/podinfo-canary",
                "VirtualService/podinfo",
                "VirtualService/podinfo-canary",
            ],
        "{names:?}"
    );
    let primary = nodes.get("podinfo-primary").await?;
    ensure!(
        primary.data["spec"]
            == json!({
                "podSelector": {"matchLabels": {"name": "podinfo-primary"}},
                "listeners": [{
                    "portMapping": {"port": 9898, "protocol": "http"},
                    "timeout": {"http": {"perRequest": {"unit": "ms", "value": 10000}}},
                }],
                "serviceDiscovery": {"dns": {"hostname": format!("podinfo-primary.{ns}.svc.cluster.local.")}},
            }),
        "{:?}",
        primary.data
    );
    ensure!(
        primary
            .annotations()
            .get("kustomize.toolkit.fluxcd.io/reconcile")
            .map(String::as_str)
            == Some("disabled")
            && primary
                .annotations()
                .get("helm.toolkit.fluxcd.io/driftDetection")
                .map(String::as_str)
                == Some("disabled"),
        "{:?}",
        primary.annotations()
    );
    ensure!(
        nodes.get("podinfo-canary").await?.data["spec"]["podSelector"]
            == json!({"matchLabels": {"name": "podinfo"}})
    );
    for o in [
        primary.clone(),
        routers.get("podinfo").await?,
        services.get("podinfo-canary").await?,
    ] {
        ensure!(
            serde_json::to_value(&o.metadata.owner_references)? == owner_references(&env.canary),
            "{:?}",
            o.metadata.owner_references
        );
        ensure!(
            o.metadata
                .managed_fields
                .iter()
                .flatten()
                .any(|m| m.manager.as_deref() == Some(appmesh::FIELD_MANAGER)),
            "not written by {}",
            appmesh::FIELD_MANAGER
        );
    }
    let apex_vs = services.get("podinfo").await?;
    ensure!(
        apex_vs.data["spec"]
            == json!({"provider": {"virtualRouter": {"virtualRouterRef": {"name": "podinfo"}}}})
    );
    ensure!(
        apex_vs
            .annotations()
            .get("gateway.appmesh.k8s.aws/domain")
            .map(String::as_str)
            == Some("podinfo.example.com,")
            && apex_vs
                .annotations()
                .get("gateway.appmesh.k8s.aws/timeout")
                .map(String::as_str)
                == Some("10s"),
        "{:?}",
        apex_vs.annotations()
    );
    ensure!(services.get("podinfo-canary").await?.annotations().is_empty());
    ensure!(
        routers.get("podinfo-canary").await?.data["spec"]["routes"][0]["httpRoute"]["action"]
            == targets(100, 0)
    );

    // Once the cache shows them, reconcile sends nothing (with the gate closed, a write it still wants is
    // refused as NotLeader).
    env.wait_for_routes(&router, &env.canary, Routes::PRIMARY).await?;
    poll("every object cached as written", DEADLINE, || async {
        Ok(match router.reconcile(&env.cx(&env.canary, &closed)).await {
            Ok(()) => Ok(()),
            Err(RouterError::NotLeader(_)) => Err("a write still looks needed"),
            Err(e) => return Err(e.into()),
        })
    })
    .await?;
    let before = versions(&env, AppMeshVersion::V1beta2).await?;
    router.reconcile(&env.cx(&env.canary, &open)).await?;
    router.reconcile(&env.cx(&env.canary, &closed)).await?;
    ensure!(
        versions(&env, AppMeshVersion::V1beta2).await? == before,
        "unchanged objects were written"
    );

    // Weights: refused without the gate, written with it, read back from the cache.
    match router
        .set_routes(&env.cx(&env.canary, &closed), weights(75, 25))
        .await
    {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse set_routes, got {other:?}"),
    }
    router
        .set_routes(&env.cx(&env.canary, &open), weights(75, 25))
        .await?;
    ensure!(
        routers.get("podinfo").await?.data["spec"]["routes"][0]["httpRoute"]["action"] == targets(25, 75)
    );
    env.wait_for_routes(&router, &env.canary, weights(75, 25)).await?;
    router
        .set_routes(&env.cx(&env.canary, &open), weights(50, 50))
        .await?;
    env.wait_for_routes(&router, &env.canary, weights(50, 50)).await?;

    // A spec change rewrites the router but keeps the weights of its first route.
    let mut changed = env.canary.clone();
    changed.spec.service.match_ = Some(vec![serde_json::from_value(json!({"uri": {"prefix": "/api"}}))?]);
    let rv = routers.get("podinfo").await?.resource_version();
    router.reconcile(&env.cx(&changed, &open)).await?;
    let updated = routers.get("podinfo").await?;
    ensure!(updated.resource_version() != rv, "the router was not updated");
    ensure!(updated.data["spec"]["routes"][0]["httpRoute"]["match"] == json!({"prefix": "/api"}));
    ensure!(updated.data["spec"]["routes"][0]["httpRoute"]["action"] == targets(50, 50));
    ensure!(
        updated.data["spec"]["routes"][0]["httpRoute"]["timeout"]
            == json!({"perRequest": {"unit": "ms", "value": 10000}})
    );

    // Flagger's checks of the weighted targets.
    routers
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"routes": [{"name": "podinfo", "httpRoute": {
                "match": {"prefix": "/"},
                "action": {"weightedTargets": [{"virtualNodeRef": {"name": "podinfo-primary"}, "weight": 100}]},
            }}]}})),
        )
        .await?;
    poll("the single-target error", DEADLINE, || async {
        Ok(match router.get_routes(&env.cx(&env.canary, &open)).await {
            Err(RouterError::Invalid(m)) if m == "VirtualRouter routes podinfo not found" => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;
    router
        .set_routes(&env.cx(&env.canary, &open), weights(0, 0))
        .await?;
    poll("the zero-weights error", DEADLINE, || async {
        Ok(match router.get_routes(&env.cx(&env.canary, &open)).await {
            Err(RouterError::Invalid(m))
                if m == "VirtualRouter podinfo does not contain routes for podinfo-primary and podinfo-canary" =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        })
    })
    .await?;

    // Finalize changes nothing (the objects are owned by the Canary).
    let before = versions(&env, AppMeshVersion::V1beta2).await?;
    router.finalize(&env.cx(&env.canary, &open)).await?;
    ensure!(
        versions(&env, AppMeshVersion::V1beta2).await? == before,
        "finalize wrote"
    );
    Ok(())
}

#[tokio::test]
async fn v1beta2_takes_over_existing_objects_keeping_what_it_does_not_own() -> Result<()> {
    let env = Env::new(
        "appmesh-takeover",
        "appmesh:v1beta2",
        json!({"port": 9898, "backends": ["backend1"], "apex": {"labels": {"team": "a"}}}),
    )
    .await?;
    let router = AppMeshRouter::new(AppMeshVersion::V1beta2);
    let open = WriteGate::open();
    let ns = env.ns.name.clone();
    let nodes = env.api(AppMeshVersion::V1beta2, Kind::VirtualNode);
    let routers = env.api(AppMeshVersion::V1beta2, Kind::VirtualRouter);
    let create = |api: &Api<DynamicObject>, object: Value| {
        let api = api.clone();
        async move {
            let object: DynamicObject = serde_json::from_value(object)?;
            api.create(&PostParams::default(), &object).await?;
            anyhow::Ok(())
        }
    };
    create(
        &nodes,
        json!({
            "apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode",
            "metadata": {"name": "podinfo-primary", "labels": {"owner": "user"}, "annotations": {"note": "mine"}},
            "spec": {
                "awsName": "podinfo-primary_test",
                "meshRef": {"name": "global", "uid": "1234"},
                "backendDefaults": {"clientPolicy": {"tls": {"enforce": true}}},
                "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "logging": {"accessLog": {"file": {"path": "/tmp/log"}}},
            },
        }),
    )
    .await?;
    create(
        &routers,
        json!({
            "apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualRouter",
            "metadata": {"name": "podinfo"},
            "spec": {
                "awsName": "podinfo_test",
                "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "routes": [{"name": "podinfo", "httpRoute": {
                    "match": {"prefix": "/"},
                    "action": {"weightedTargets": [
                        {"virtualNodeRef": {"name": "podinfo-canary"}, "weight": 10},
                        {"virtualNodeRef": {"name": "podinfo-primary"}, "weight": 90},
                    ]},
                }}],
            },
        }),
    )
    .await?;

    poll("the cached router", DEADLINE, || async {
        Ok(match router.get_routes(&env.cx(&env.canary, &open)).await {
            Ok(r) if r == weights(90, 10) => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;
    poll("the cached node", DEADLINE, || async {
        let resource = appmesh::api_resource(AppMeshVersion::V1beta2, Kind::VirtualNode);
        let store = env
            .caches
            .dynamic(&resource, true)
            .await
            .map_err(|e| e.to_string());
        Ok(match store {
            Ok(s) if s.state().iter().any(|o| o.name_any() == "podinfo-primary") => Ok(()),
            other => Err(format!("{:?}", other.map(|s| s.state().len()))),
        })
    })
    .await?;
    router.reconcile(&env.cx(&env.canary, &open)).await?;

    let node = nodes.get("podinfo-primary").await?;
    ensure!(
        node.data["spec"]
            == json!({
                "awsName": "podinfo-primary_test",
                "meshRef": {"name": "global", "uid": "1234"},
                "backendDefaults": {"clientPolicy": {"tls": {"enforce": true}}},
                "podSelector": {"matchLabels": {"name": "podinfo-primary"}},
                "listeners": [{"portMapping": {"port": 9898, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": format!("podinfo-primary.{ns}.svc.cluster.local.")}},
                "backends": [{"virtualService": {"virtualServiceRef": {"name": "backend1"}}}],
            }),
        "{:?}",
        node.data
    );
    ensure!(
        node.labels().get("owner").map(String::as_str) == Some("user")
            && node.labels().get("team").map(String::as_str) == Some("a"),
        "{:?}",
        node.labels()
    );
    ensure!(
        node.annotations().get("note").map(String::as_str) == Some("mine")
            && node
                .annotations()
                .contains_key("kustomize.toolkit.fluxcd.io/reconcile"),
        "{:?}",
        node.annotations()
    );
    ensure!(
        node.metadata.owner_references.is_none(),
        "a taken-over node got an owner"
    );

    let vr = routers.get("podinfo").await?;
    ensure!(vr.data["spec"]["awsName"] == "podinfo_test");
    ensure!(vr.data["spec"]["listeners"] == json!([{"portMapping": {"port": 9898, "protocol": "http"}}]));
    // The weights the router had are kept.
    ensure!(
        vr.data["spec"]["routes"][0]["httpRoute"]["action"] == targets(10, 90),
        "{:?}",
        vr.data
    );
    ensure!(vr.metadata.owner_references.is_none());
    ensure!(
        vr.annotations()
            .contains_key(appmesh::ORIGINAL_CONFIGURATION_ANNOTATION)
            && node
                .annotations()
                .contains_key(appmesh::ORIGINAL_CONFIGURATION_ANNOTATION),
        "the original configurations were not stored"
    );

    // The canary runs, then the Canary is deleted with revertOnDeletion: the taken-over objects get their
    // spec back, the created ones are left to the garbage collector.
    router
        .set_routes(&env.cx(&env.canary, &open), weights(50, 50))
        .await?;
    env.wait_for_routes(&router, &env.canary, weights(50, 50)).await?;
    let created_rv = routers.get("podinfo-canary").await?.resource_version();
    router
        .finalize(&env.cx(&env.canary, &closed_gate()))
        .await
        .err()
        .context("finalize without the gate")?;
    router.finalize(&env.cx(&env.canary, &open)).await?;
    let node = nodes.get("podinfo-primary").await?;
    ensure!(
        node.data["spec"]
            == json!({
                "awsName": "podinfo-primary_test",
                "meshRef": {"name": "global", "uid": "1234"},
                "backendDefaults": {"clientPolicy": {"tls": {"enforce": true}}},
                "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "logging": {"accessLog": {"file": {"path": "/tmp/log"}}},
            }),
        "{:?}",
        node.data
    );
    ensure!(
        !node
            .annotations()
            .contains_key(appmesh::ORIGINAL_CONFIGURATION_ANNOTATION)
    );
    ensure!(node.annotations().get("note").map(String::as_str) == Some("mine"));
    let vr = routers.get("podinfo").await?;
    ensure!(
        vr.data["spec"]
            == json!({
                "awsName": "podinfo_test",
                "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                "routes": [{"name": "podinfo", "httpRoute": {
                    "match": {"prefix": "/"},
                    "action": targets(10, 90),
                }}],
            }),
        "{:?}",
        vr.data
    );
    ensure!(
        routers.get("podinfo-canary").await?.resource_version() == created_rv,
        "finalize wrote an object the router created"
    );
    Ok(())
}

#[tokio::test]
async fn v1beta1_create_weights_and_mesh_name() -> Result<()> {
    let env = Env::new(
        "appmesh-v1beta1",
        "appmesh",
        json!({"port": 9898, "meshName": "global"}),
    )
    .await?;
    let router = AppMeshRouter::new(AppMeshVersion::V1beta1);
    let open = WriteGate::open();
    let ns = env.ns.name.clone();
    let nodes = env.api(AppMeshVersion::V1beta1, Kind::VirtualNode);
    let services = env.api(AppMeshVersion::V1beta1, Kind::VirtualService);

    let mut meshless = env.canary.clone();
    meshless.spec.service.mesh_name = None;
    match router.reconcile(&env.cx(&meshless, &open)).await {
        Err(RouterError::Invalid(m)) => ensure!(m == "mesh name cannot be empty", "{m}"),
        other => bail!("expected the mesh name error, got {other:?}"),
    }

    router.reconcile(&env.cx(&env.canary, &open)).await?;
    let names = versions(&env, AppMeshVersion::V1beta1).await?;
    let names: Vec<String> = names.into_iter().map(|(n, _)| n).collect();
    ensure!(
        names
            == [
                "VirtualNode/podinfo".to_owned(),
                "VirtualNode/podinfo-canary".to_owned(),
                "VirtualNode/podinfo-primary".to_owned(),
                format!("VirtualService/podinfo-canary.{ns}"),
                format!("VirtualService/podinfo.{ns}"),
            ],
        "{names:?}"
    );
    ensure!(
        nodes.get("podinfo").await?.data["spec"]
            == json!({
                "meshName": "global",
                "listeners": [{"portMapping": {"port": 9898, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostName": format!("podinfo-primary.{ns}")}},
            }),
        "{:?}",
        nodes.get("podinfo").await?.data
    );
    let vs = services.get(&format!("podinfo.{ns}")).await?;
    ensure!(vs.data["spec"]["virtualRouter"]["name"] == "podinfo");
    ensure!(serde_json::to_value(&vs.metadata.owner_references)? == owner_references(&env.canary));

    env.wait_for_routes(&router, &env.canary, Routes::PRIMARY).await?;
    let before = versions(&env, AppMeshVersion::V1beta1).await?;
    router.reconcile(&env.cx(&env.canary, &open)).await?;
    ensure!(
        versions(&env, AppMeshVersion::V1beta1).await? == before,
        "unchanged objects were written"
    );

    router
        .set_routes(&env.cx(&env.canary, &open), weights(75, 25))
        .await?;
    ensure!(
        services.get(&format!("podinfo.{ns}")).await?.data["spec"]["routes"][0]["http"]["action"]
            == json!({"weightedTargets": [
                {"virtualNodeName": "podinfo-canary", "weight": 25},
                {"virtualNodeName": "podinfo-primary", "weight": 75},
            ]})
    );
    env.wait_for_routes(&router, &env.canary, weights(75, 25)).await?;
    router.finalize(&env.cx(&env.canary, &open)).await?;
    Ok(())
}
