//! Config tracking (§2.9): the ConfigMaps and Secrets of the target are copied to `-primary` copies the
//! primary uses, and a change of their data alone is released like a new pod template.

use std::collections::BTreeMap;

use flagger_api::CanaryPhase as P;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use testkit::TestNamespace;
use testkit::kube::apply_yaml;

use crate::support::*;

/// The target mounts ConfigMap `podinfo-config`, reads Secret `podinfo-secret` through env, and refers to
/// an optional Secret that does not exist.
async fn deploy_with_configs(ns: &TestNamespace) {
    apply_yaml(
        &ns.client,
        &ns.name,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: podinfo-config}
data: {color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: podinfo-secret}
stringData: {token: s3cr3t}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: podinfo-untracked
  annotations: {flagger.app/config-tracking: disabled}
data: {level: info}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels: {app: podinfo}
spec:
  replicas: 2
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
      - name: podinfod
        image: podinfo:1.0.0
        ports: [{containerPort: 9898, name: http}]
        env:
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: podinfo-secret, key: token}}
        - name: LEVEL
          valueFrom: {configMapKeyRef: {name: podinfo-untracked, key: level}}
        envFrom:
        - secretRef: {name: podinfo-optional, optional: true}
        volumeMounts: [{name: config, mountPath: /etc/podinfo}]
      volumes:
      - name: config
        configMap: {name: podinfo-config}
"#,
    )
    .await
    .unwrap();
}

fn pod_spec(d: &k8s_openapi::api::apps::v1::Deployment) -> serde_json::Value {
    serde_json::to_value(d.spec.template.spec.as_ref().unwrap()).unwrap()
}

fn flagger_id(d: &k8s_openapi::api::apps::v1::Deployment) -> String {
    d.spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()["flagger-id"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_configs_are_copied_for_the_primary_and_a_data_change_is_released() {
    let ns = namespace("configs").await;
    deploy_with_configs(&ns).await;
    apply_canary(
        &ns,
        &canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1"),
    )
    .await;
    let history = History::record(&ns, "podinfo").await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let initialized = wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;

    // The copies exist with the data, and the primary uses them; the untracked ConfigMap and the missing
    // optional Secret are referenced as they are.
    let cms: Api<ConfigMap> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let copy = cms.get("podinfo-config-primary").await.unwrap();
    assert_eq!(copy.data, Some(BTreeMap::from([("color".into(), "blue".into())])));
    let owner = &copy.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Canary", "podinfo"));
    let secret_copy = secrets.get("podinfo-secret-primary").await.unwrap();
    assert_eq!(secret_copy.data.unwrap()["token"].0, b"s3cr3t".to_vec());
    assert!(cms.get_opt("podinfo-untracked-primary").await.unwrap().is_none());
    let primary = deployment(&ns, "podinfo-primary").await;
    let spec = pod_spec(&primary);
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "podinfo-config-primary");
    let env = &spec["containers"][0]["env"];
    assert_eq!(
        env[0]["valueFrom"]["secretKeyRef"]["name"],
        "podinfo-secret-primary"
    );
    assert_eq!(
        env[1]["valueFrom"]["configMapKeyRef"]["name"],
        "podinfo-untracked"
    );
    assert_eq!(
        spec["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "podinfo-optional"
    );
    let tracked = initialized.status.unwrap().tracked_configs.unwrap();
    assert_eq!(
        tracked.keys().cloned().collect::<Vec<_>>(),
        vec!["configmap/podinfo-config", "secret/podinfo-secret"],
        "{}",
        op.logs()
    );
    let first_id = flagger_id(&primary);

    // Only the ConfigMap's data changes: that is a new revision, analysed and promoted.
    cms.patch(
        "podinfo-config",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"data": {"color": "green"}})),
    )
    .await
    .unwrap();
    wait_phase(&ns, "podinfo", P::Succeeded, RELEASE).await;
    assert!(
        history.phases().contains(&P::Progressing),
        "{:?}\n{}",
        history.seen(),
        op.logs()
    );
    wait_event(
        &ns,
        "podinfo",
        &format!("New revision detected! Scaling up {}", dotted(&ns)),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let copy = cms.get("podinfo-config-primary").await.unwrap();
    assert_eq!(
        copy.data,
        Some(BTreeMap::from([("color".into(), "green".into())]))
    );
    // The primary rolls to pick the new data up; its template still names the copy.
    let primary = deployment(&ns, "podinfo-primary").await;
    assert_ne!(flagger_id(&primary), first_id);
    assert_eq!(
        pod_spec(&primary)["volumes"][0]["configMap"]["name"],
        "podinfo-config-primary"
    );
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_config_tracking_the_primary_uses_the_targets_configs() {
    let ns = namespace("notrack").await;
    deploy_with_configs(&ns).await;
    apply_canary(
        &ns,
        &canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1"),
    )
    .await;
    let op = operator(
        &ns,
        &["-mesh-provider=kubernetes", "-enable-config-tracking=false"],
    )
    .await;
    let initialized = wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    assert_eq!(initialized.status.unwrap().tracked_configs, None);
    let cms: Api<ConfigMap> = ns.api();
    assert!(
        cms.get_opt("podinfo-config-primary").await.unwrap().is_none(),
        "{}",
        op.logs()
    );
    let primary = deployment(&ns, "podinfo-primary").await;
    assert_eq!(
        pod_spec(&primary)["volumes"][0]["configMap"]["name"],
        "podinfo-config"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_config_is_reported_and_the_release_starts_once_it_exists() {
    let ns = namespace("cfgmissing").await;
    deploy_podinfo(&ns, "podinfo:1.0.0").await;
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    let patch = serde_json::json!({"spec": {"template": {"spec": {
        "containers": [{"name": "podinfod", "envFrom": [{"configMapRef": {"name": "late-config"}}]}],
    }}}});
    api.patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    apply_canary(
        &ns,
        &canary_yaml("kubernetes", "interval: 10s\nthreshold: 2\niterations: 1"),
    )
    .await;
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    let message = format!(
        "configmap late-config.{} get query error: configmaps \"late-config\" not found",
        ns.name
    );
    wait_event(&ns, "podinfo", &message, RELEASE).await.unwrap();
    let canary = wait_status(&ns, "a Valid=False condition", RELEASE, |s| {
        s.condition("Valid").is_some_and(|c| c.reason == "ConfigNotFound")
    })
    .await;
    assert_ne!(canary.status.unwrap().phase(), P::Initialized);

    apply_yaml(
        &ns.client,
        &ns.name,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late-config}\ndata: {a: b}\n",
    )
    .await
    .unwrap();
    let initialized = wait_phase(&ns, "podinfo", P::Initialized, RELEASE).await;
    assert!(
        initialized.status.unwrap().condition("Valid").is_none(),
        "{}",
        op.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_shared_by_canaries_has_one_copy_owned_by_each() {
    let ns = namespace("cfgshared").await;
    let deployment = |name: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: app:1
        envFrom: [{{configMapRef: {{name: shared-config}}}}]
"#
        )
    };
    let canary = |name: &str| {
        format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: {name}}}
spec:
  provider: kubernetes
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  service: {{port: 80}}
  analysis: {{interval: 10s, threshold: 2, iterations: 1}}
"
        )
    };
    apply_yaml(
        &ns.client,
        &ns.name,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared-config}\ndata: {mode: shared}\n",
    )
    .await
    .unwrap();
    // Four canaries initialise at the same moment and all write the shared copy.
    let sharing = ["api", "cron", "web", "worker"];
    for name in sharing {
        apply_yaml(&ns.client, &ns.name, &deployment(name)).await.unwrap();
        apply_canary(&ns, &canary(name)).await;
    }
    let op = operator(&ns, &["-mesh-provider=kubernetes"]).await;
    for name in sharing {
        wait_phase(&ns, name, P::Initialized, RELEASE).await;
    }
    let cms: Api<ConfigMap> = ns.api();
    let owners_of = |copy: &ConfigMap| {
        let mut names: Vec<String> = copy
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.name.clone())
            .collect();
        names.sort_unstable();
        names
    };
    let copy = cms.get("shared-config-primary").await.unwrap();
    assert_eq!(owners_of(&copy), sharing, "{}", op.logs());
    let owners = copy.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owners.iter().filter(|o| o.controller == Some(true)).count(),
        1,
        "{owners:?}"
    );

    // Owners lost to another writer (Go Flagger's unconditional updates can drop them) are added back at once.
    let api_only: Vec<_> = owners.iter().filter(|o| o.name == "api").cloned().collect();
    cms.patch(
        "shared-config-primary",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": api_only}})),
    )
    .await
    .unwrap();
    testkit::kube::poll("every canary to own the copy again", RELEASE, || async {
        let copy = cms.get("shared-config-primary").await?;
        Ok(if owners_of(&copy) == sharing {
            Ok(())
        } else {
            Err(format!("owners {:?}", owners_of(&copy)))
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", op.logs()));

    // Deleting one canary leaves the copy to the others.
    let canaries: Api<flagger_api::Canary> = ns.api();
    canaries.delete("web", &Default::default()).await.unwrap();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    testkit::kube::poll("web's primary to be collected", RELEASE, || async {
        Ok(match deployments.get_opt("web-primary").await? {
            None => Ok(()),
            Some(_) => Err("still there"),
        })
    })
    .await
    .unwrap();
    let copy = cms.get("shared-config-primary").await.unwrap();
    let owners: Vec<String> = copy
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert!(owners.contains(&"api".to_string()), "{owners:?}");
}
