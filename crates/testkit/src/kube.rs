//! A client for the local control plane, per-test namespaces, polling waits and YAML apply.

use std::fmt::Debug;
use std::future::Future;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Config, Resource, discovery};
use serde::de::DeserializeOwned;

/// The field manager testkit uses for everything it applies.
pub const FIELD_MANAGER: &str = "flagger-testkit";

const HOW_TO_START: &str = "start the local control plane with `cargo xtask testenv up --with-prometheus` and \
     load its environment with `eval \"$(cargo xtask testenv env)\"`, or run everything with `cargo xtask test`";

/// A client for the cluster named by `KUBECONFIG`. Fails, never skips, when there is no reachable cluster.
pub async fn client() -> Result<Client> {
    client_for(std::env::var_os("KUBECONFIG").as_deref()).await
}

/// A client for the cluster of the kubeconfig at `path` (the value of `KUBECONFIG`); every failure says how
/// to start the local control plane.
pub async fn client_for(path: Option<&std::ffi::OsStr>) -> Result<Client> {
    let path = path.ok_or_else(|| {
        anyhow!("KUBECONFIG is not set: this test needs the local control plane; {HOW_TO_START}")
    })?;
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read KUBECONFIG {}; {HOW_TO_START}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = Client::try_from(config)?;
    let readyz = http_get(&client, "/readyz").await;
    match readyz {
        Ok(body) if body.trim() == "ok" => Ok(client),
        Ok(body) => bail!("the API server is not ready ({body}); {HOW_TO_START}"),
        Err(e) => bail!(
            "the API server in {} does not answer ({e:#}); {HOW_TO_START}",
            path.display()
        ),
    }
}

async fn http_get(client: &Client, path: &str) -> Result<String> {
    let req = http::Request::get(path).body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// A namespace of its own for one test, `t-<prefix>-<random>`. It is deleted when dropped (without
/// waiting), so a failing test leaves nothing behind either.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> Result<Self> {
        let client = client().await?;
        let name = format!("t-{prefix}-{:08x}", rand::random::<u32>());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Self { client, name })
    }

    /// An `Api` for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await; kubectl from the testenv does the delete synchronously and independently of the
        // test's runtime, which may already be shutting down.
        let bin = std::env::var_os("TESTENV_BIN").map(std::path::PathBuf::from);
        let kubectl = bin.map_or_else(|| "kubectl".into(), |b| b.join("kubectl"));
        let _ = Command::new(kubectl)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `check` every 100ms until it returns `Ok(Ok(_))`, failing after `timeout` with `what` and the last
/// observed state. `check` returns `Err` for errors that should end the wait at once; a transient API error
/// (throttling, a server error, a dropped connection: a loaded API server) only ends it at the deadline.
pub async fn poll<T, S, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    S: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, S>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(last) => last,
            Err(e) if is_transient(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        match last {
            Ok(value) => return Ok(value),
            Err(state) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}; last observed: {state:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether `e` is a Kubernetes API error that asking again may not repeat.
fn is_transient(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => status.code == 429 || status.code >= 500,
        Some(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
        _ => false,
    }
}

/// Waits until the named object exists and satisfies `predicate`, returning it.
pub async fn wait_for<K, P>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    predicate: P,
) -> Result<K>
where
    K: Clone + DeserializeOwned + Debug,
    P: Fn(&K) -> bool,
{
    poll(&format!("{name}: {what}"), timeout, || async {
        Ok(match api.get_opt(name).await? {
            Some(obj) if predicate(&obj) => Ok(obj),
            Some(obj) => Err(Some(obj)),
            None => Err(None),
        })
    })
    .await
}

/// Applies every document of a multi-document YAML string with server-side apply (field manager
/// [`FIELD_MANAGER`], forced), into `namespace` for namespaced kinds without one.
pub async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) -> Result<Vec<DynamicObject>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).context("invalid YAML")?;
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).context("not a Kubernetes object")?;
        let types = obj
            .types
            .clone()
            .ok_or_else(|| anyhow!("document without apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, caps) = discovery::pinned_kind(client, &gvk).await?;
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or_else(|| anyhow!("{} without metadata.name", gvk.kind))?;
        let api: Api<DynamicObject> = if caps.scope == discovery::Scope::Namespaced {
            let ns = obj
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_string());
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        applied.push(api.patch(&name, &params, &Patch::Apply(&doc)).await?);
    }
    Ok(applied)
}

/// Installs (server-side applies) CRDs and waits until each one is Established.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd
            .metadata
            .name
            .clone()
            .ok_or_else(|| anyhow!("CRD without a name"))?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(crd),
        )
        .await?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        wait_for(
            &api,
            &name,
            "condition Established=True",
            Duration::from_secs(30),
            |c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_api_errors_are_retried_until_the_deadline_and_others_end_the_wait() {
        let api_error = |code| {
            anyhow::Error::from(kube::Error::Api(
                kube::core::Status::failure("x", "y").with_code(code).boxed(),
            ))
        };
        assert!(is_transient(&api_error(503)) && is_transient(&api_error(429)));
        assert!(!is_transient(&api_error(404)) && !is_transient(&anyhow::anyhow!("other")));

        // A 503 and then the answer: the wait goes on through the error.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let value = poll("an answer", Duration::from_secs(10), || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err(api_error(503)),
                _ => Ok(Ok::<_, ()>(7)),
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        // A 404 ends it at once.
        let err = poll("an answer", Duration::from_secs(10), || async {
            Err::<Result<(), ()>, _>(api_error(404))
        })
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains('x'), "{err:#}");
    }

    /// The error of a connection attempt that must fail.
    async fn failure(path: Option<&std::ffi::OsStr>) -> String {
        match client_for(path).await {
            Ok(_) => panic!("connected to a cluster that should not be reachable"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[tokio::test]
    async fn a_missing_control_plane_fails_with_how_to_start_it() {
        let err = failure(None).await;
        assert!(err.contains("KUBECONFIG is not set"), "{err}");
        assert!(err.contains("cargo xtask testenv up"), "{err}");

        let missing = std::env::temp_dir().join("testkit-no-such-kubeconfig");
        let err = failure(Some(missing.as_os_str())).await;
        assert!(err.contains("cannot read KUBECONFIG"), "{err}");
        assert!(err.contains("cargo xtask testenv up"), "{err}");
    }

    #[tokio::test]
    async fn a_stopped_control_plane_fails_with_how_to_start_it() {
        // A kubeconfig whose server is a loopback port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = std::env::temp_dir().join(format!("testkit-stopped-{}.kubeconfig", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n\
                 users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
                 current-context: x\n"
            ),
        )
        .unwrap();
        let err = failure(Some(path.as_os_str())).await;
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("does not answer"), "{err}");
        assert!(err.contains("cargo xtask testenv up"), "{err}");
    }
}
