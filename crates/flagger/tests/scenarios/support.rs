//! Scenario test support: a namespace with Flagger's CRDs, the `podinfo` target, an operator process and
//! a recorder of every version of the Canary's status.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use flagger_api::{Canary, CanaryPhase};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use testkit::TestNamespace;
use testkit::kube::{apply_yaml, install_crds, wait_for};
use testkit::operator::Operator;

/// The `flagger` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_flagger");

/// How long a whole release may take on a busy 2-core machine.
pub const RELEASE: Duration = Duration::from_secs(120);

/// A namespace with the CRDs installed.
pub async fn namespace(prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(prefix).await.unwrap();
    install_crds(&ns.client, &flagger_api::crds()).await.unwrap();
    ns
}

/// The target: Deployment `podinfo` (label `app: podinfo`, 2 replicas) running `image`.
pub async fn deploy_podinfo(ns: &TestNamespace, image: &str) {
    apply_yaml(
        &ns.client,
        &ns.name,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels: {{app: podinfo}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: podinfo}}
  template:
    metadata:
      labels: {{app: podinfo}}
    spec:
      containers:
      - name: podinfod
        image: {image}
        ports: [{{containerPort: 9898, name: http}}]
"#
        ),
    )
    .await
    .unwrap();
}

/// Changes the target's image (a new revision).
pub async fn set_image(ns: &TestNamespace, image: &str) {
    let api: Api<Deployment> = ns.api();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": image}]}}}});
    api.patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
}

/// The image of a Deployment's first container.
pub fn image_of(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Applies a Canary manifest.
pub async fn apply_canary(ns: &TestNamespace, yaml: &str) {
    apply_yaml(&ns.client, &ns.name, yaml).await.unwrap();
}

/// Starts an operator for the namespace with the `kubernetes` provider unless `args` says otherwise.
pub async fn operator(ns: &TestNamespace, args: &[&str]) -> Operator {
    Operator::start(std::path::Path::new(BIN), &ns.name, args)
        .await
        .unwrap()
}

/// One observed version of the Canary's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub phase: CanaryPhase,
    pub weight: i32,
    pub iterations: i32,
    pub failed_checks: i32,
}

/// Records every distinct status of one Canary, from a watch.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<Vec<Seen>>>);

impl History {
    /// Starts watching `name` in the namespace, and returns once the watch has listed it (so no status the
    /// operator writes afterwards is missed).
    pub async fn record(ns: &TestNamespace, name: &str) -> Self {
        let history = Self::default();
        let api: Api<Canary> = ns.api();
        let h = history.clone();
        let mut stream = watcher::watch_object(api, name).boxed();
        let (listed, first) = tokio::sync::oneshot::channel();
        let mut listed = Some(listed);
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                if item.is_ok()
                    && let Some(listed) = listed.take()
                {
                    let _ = listed.send(());
                }
                let Ok(Some(canary)) = item else { continue };
                let Some(s) = canary.status else { continue };
                let seen = Seen {
                    phase: s.phase(),
                    weight: s.canary_weight(),
                    iterations: s.iterations(),
                    failed_checks: s.failed_checks(),
                };
                let mut all = h.0.lock().unwrap();
                if all.last() != Some(&seen) {
                    all.push(seen);
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), first)
            .await
            .expect("the Canary watch to list within 30 s")
            .expect("the Canary watch to run");
        history
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// The distinct phases in the order they were first entered after each other (repeats collapsed).
    pub fn phases(&self) -> Vec<CanaryPhase> {
        let mut out: Vec<CanaryPhase> = Vec::new();
        for s in self.seen() {
            if out.last() != Some(&s.phase) {
                out.push(s.phase);
            }
        }
        out
    }

    /// The canary weights seen in order (repeats collapsed).
    pub fn weights(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for s in self.seen() {
            if out.last() != Some(&s.weight) {
                out.push(s.weight);
            }
        }
        out
    }
}

/// Waits until the Canary is in `phase`.
pub async fn wait_phase(ns: &TestNamespace, name: &str, phase: CanaryPhase, timeout: Duration) -> Canary {
    let api: Api<Canary> = ns.api();
    wait_for(&api, name, &format!("phase {phase:?}"), timeout, |c: &Canary| {
        c.status.as_ref().is_some_and(|s| s.phase() == phase)
    })
    .await
    .unwrap()
}

/// The Events recorded on the Canary, as `(type, message)`, oldest first.
pub async fn events(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = ns.api();
    let mut list = api
        .list(
            &ListParams::default().fields(&format!("involvedObject.name={name},involvedObject.kind=Canary")),
        )
        .await
        .unwrap()
        .items;
    list.sort_by_key(|e| {
        (
            e.first_timestamp.clone().map(|t| t.0),
            e.metadata.creation_timestamp.clone().map(|t| t.0),
        )
    });
    list.into_iter()
        .map(|e| (e.type_.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Waits until an Event with exactly `message` was recorded on the Canary.
pub async fn wait_event(ns: &TestNamespace, name: &str, message: &str, timeout: Duration) -> Result<()> {
    testkit::kube::poll(&format!("event {message:?}"), timeout, || async {
        let all = events(ns, name).await;
        Ok(if all.iter().any(|(_, m)| m == message) {
            Ok(())
        } else {
            Err(all)
        })
    })
    .await
}

/// A Service's selector.
pub async fn selector(ns: &TestNamespace, name: &str) -> std::collections::BTreeMap<String, String> {
    let api: Api<Service> = ns.api();
    api.get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap_or_default()
}

/// A Deployment.
pub async fn deployment(ns: &TestNamespace, name: &str) -> Deployment {
    let api: Api<Deployment> = ns.api();
    api.get(name).await.unwrap()
}

/// A Canary `podinfo` for the `podinfo` Deployment on port 9898, with `provider` and the `analysis`
/// block given as YAML lines (indented by four spaces in the result).
pub fn canary_yaml(provider: &str, analysis: &str) -> String {
    canary_named("podinfo", provider, analysis).replace(
        "  service: {port: 9898, name: podinfo}",
        "  service: {port: 9898}",
    )
}

/// A Canary `name` for the `podinfo` Deployment whose Services are named `name`.
pub fn canary_named(name: &str, provider: &str, analysis: &str) -> String {
    let analysis: String = analysis
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    {}\n", l.trim_end()))
        .collect();
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: {name}
spec:
  provider: {provider}
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898, name: {name}}}
  analysis:
{analysis}"
    )
}

/// `podinfo.<namespace>`, as Flagger's messages name the canary and its target.
pub fn dotted(ns: &TestNamespace) -> String {
    format!("podinfo.{}", ns.name)
}

/// Waits until `check` holds for the Canary's status.
pub async fn wait_status(
    ns: &TestNamespace,
    what: &str,
    timeout: Duration,
    check: impl Fn(&flagger_api::CanaryStatus) -> bool,
) -> Canary {
    let api: Api<Canary> = ns.api();
    wait_for(&api, "podinfo", what, timeout, |c: &Canary| {
        c.status.as_ref().is_some_and(&check)
    })
    .await
    .unwrap()
}

/// A namespace with Flagger's CRDs and the CRDs in `crds_yaml` (one or more YAML documents; documents of other
/// kinds are skipped), each Established.
pub async fn namespace_with_crds(prefix: &str, crds_yaml: &str) -> TestNamespace {
    let ns = namespace(prefix).await;
    let crds: Vec<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = crds_yaml
        .split("\n---\n")
        .filter(|doc| doc.contains("kind: CustomResourceDefinition"))
        .map(|doc| serde_saphyr::from_str(doc).unwrap())
        .collect();
    install_crds(&ns.client, &crds).await.unwrap();
    ns
}

/// Records every distinct `(primary, canary)` weight pair of one routing object, from a watch: the routes as
/// the operator wrote them, in order.
#[derive(Clone, Default)]
pub struct Weights(Arc<Mutex<Vec<(i64, i64)>>>);

impl Weights {
    /// Starts watching the object `name` of `api`; `read` gives its weights (`None`: not readable yet).
    pub fn watch(
        api: Api<kube::api::DynamicObject>,
        name: &str,
        read: impl Fn(&kube::api::DynamicObject) -> Option<(i64, i64)> + Send + 'static,
    ) -> Self {
        let weights = Self::default();
        let w = weights.clone();
        let mut stream = watcher::watch_object(api, name).boxed();
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let Ok(Some(object)) = item else { continue };
                let Some(pair) = read(&object) else { continue };
                let mut all = w.0.lock().unwrap();
                if all.last() != Some(&pair) {
                    all.push(pair);
                }
            }
        });
        weights
    }

    /// Every weight pair seen, in order.
    pub fn pairs(&self) -> Vec<(i64, i64)> {
        self.0.lock().unwrap().clone()
    }

    /// The primary weights seen, in order.
    pub fn primary(&self) -> Vec<i64> {
        self.pairs().iter().map(|(p, _)| *p).collect()
    }

    /// The canary weights seen, in order.
    pub fn canary(&self) -> Vec<i64> {
        self.pairs().iter().map(|(_, c)| *c).collect()
    }

    /// Waits until a weight pair satisfies `check`.
    pub async fn wait(&self, what: &str, timeout: Duration, check: impl Fn((i64, i64)) -> bool) {
        testkit::kube::poll(what, timeout, || async {
            let pairs = self.pairs();
            Ok(if pairs.iter().any(|p| check(*p)) {
                Ok(())
            } else {
                Err(pairs)
            })
        })
        .await
        .unwrap();
    }
}

/// The weight pairs a recorder has seen once `done` holds for them, or after `timeout` whatever it has seen
/// (for the caller's assertion to report). A route write reaches a recorder through a watch, which may
/// deliver it after the Canary status the test waited for was already readable.
pub async fn settled_pairs(
    pairs: impl Fn() -> Vec<(i64, i64)>,
    done: impl Fn(&[(i64, i64)]) -> bool,
    timeout: Duration,
) -> Vec<(i64, i64)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = pairs();
        if done(&seen) || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
