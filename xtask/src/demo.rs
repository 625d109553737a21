//! `cargo xtask demo`: a release analysed, promoted and rolled back on the local control plane.
//!
//! The demo brings up the control plane and Prometheus (unless they run), installs the CRDs, runs the
//! `flagger` binary as a separate process under a ServiceAccount token bound to the rules of
//! `deploy/base/rbac.yaml`, and deploys `podinfo` in namespace `demo` behind a Gateway API HTTPRoute. The fake
//! nodes run no containers, so `testapp` processes stand in for the primary and the canary pods: Prometheus
//! scrapes them with the labels the builtin `request-success-rate` and `request-duration` queries select, and
//! an in-process load driver splits requests between them by the route's current weights. Nothing plays a
//! gateway controller either: the demo accepts every new generation of the route in `status.parents`.
//!
//! Two releases follow: a healthy one, promoted, and one answering 30% of its requests with errors, rolled
//! back. `--ci` checks those outcomes, the route weights seen along the way, and that everything the demo
//! created is gone afterwards. `--keep` leaves it all running; `cargo xtask demo down` stops it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flagger_api::{Canary, CanaryPhase};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use testkit::load::{Load, Report, Running, Weights};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{cargo, root, run, testenv};

/// The namespace of the sample app.
const NS: &str = "demo";
/// The Deployment, the Canary and the HTTPRoute.
const APP: &str = "podinfo";
/// Field manager of what the demo writes, and the name of its ClusterRole and ClusterRoleBinding.
const MANAGER: &str = "flagger-demo";
/// The operator's ServiceAccount in [`NS`].
const SERVICE_ACCOUNT: &str = "flagger";
/// The image the app starts with; each release changes the tag.
const IMAGE: &str = "ghcr.io/stefanprodan/podinfo";
const FIRST_VERSION: &str = "6.0.0";
/// The success-rate and latency thresholds of the analysis (percent, milliseconds).
const MIN_SUCCESS_RATE: f64 = 99.0;
const MAX_DURATION_MS: f64 = 500.0;
/// Requests a second sent by the load driver.
const LOAD_RATE: f64 = 20.0;
/// How long the canary may take to be initialised, and a release to end.
const INIT_TIMEOUT: Duration = Duration::from_secs(180);
const RELEASE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the namespace may take to be deleted.
const DELETE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a process may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The HTTPRoute CRD (the test fixture of the Gateway API router).
const HTTP_ROUTE_CRD: &str = "crates/flagger-controller/testdata/crds/gatewayapi.yaml";

const USAGE: &str = "usage: cargo xtask demo [--ci] [--keep] | cargo xtask demo down";

/// The Canary: Flagger's minimum interval (10s), two steps of 25% up to 50%, both builtin checks over the
/// last 30 seconds, rollback after two failed checks.
const CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 120
  service:
    port: 9898
    hosts: [podinfo.demo.example.com]
    gatewayRefs: [{name: gateway, namespace: demo}]
  analysis:
    interval: 10s
    threshold: 2
    stepWeight: 25
    maxWeight: 50
    metrics:
    - name: request-success-rate
      interval: 30s
      thresholdRange: {min: 99}
    - name: request-duration
      interval: 30s
      thresholdRange: {max: 500}
"#;

/// `cargo xtask demo ...`.
pub fn cli(args: &[&str]) -> Result<()> {
    if args == ["down"] {
        return runtime()?.block_on(down());
    }
    let mut opts = Options::default();
    for a in args {
        match *a {
            "--ci" => opts.ci = true,
            "--keep" => opts.keep = true,
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    demo(opts)
}

#[derive(Debug, Clone, Copy, Default)]
struct Options {
    /// No live view; the checks decide the exit status.
    ci: bool,
    /// Leave the control plane, the operator and the apps running at the end.
    keep: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn demo(opts: Options) -> Result<()> {
    let started = Instant::now();
    run(cargo().args(["build", "--quiet", "-p", "flagger", "-p", "testapp"]))?;
    testenv::build()?;
    let guard = testenv::ensure_up(true, testenv::DEFAULT_NODES)?;
    let env: HashMap<String, String> = testenv::env_vars()?.into_iter().collect();
    eprintln!(
        "xtask demo: binaries built and control plane ready in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let ended = runtime()?.block_on(async {
        let mut demo = Demo::new(opts, &env).await?;
        demo.run().await
    });
    let keep_up = opts.keep && matches!(ended, Ok(Ended::Finished));
    if guard.started_here && !keep_up {
        if let Err(e) = testenv::down() {
            eprintln!("xtask: warning: stopping the control plane failed: {e:#}");
        }
    } else if guard.started_here {
        println!("The control plane keeps running; stop it with `cargo xtask testenv down`.");
    }
    match ended? {
        Ended::Finished => Ok(()),
        Ended::Interrupted => bail!("interrupted (everything the demo started was stopped)"),
    }
}

/// How a run ended, when it did not fail.
enum Ended {
    Finished,
    Interrupted,
}

/// Where things are.
struct Paths {
    /// `<testenv state>/demo`: logs, the operator's kubeconfig, the record of running processes.
    dir: PathBuf,
    admin_kubeconfig: PathBuf,
    operator_kubeconfig: PathBuf,
    /// The record of started processes and scrape files, read by `cargo xtask demo down`.
    record: PathBuf,
    prometheus_url: String,
    sd_dir: PathBuf,
    bin_dir: PathBuf,
}

impl Paths {
    fn new(env: &HashMap<String, String>) -> Result<Self> {
        let var = |name: &str| {
            env.get(name)
                .cloned()
                .with_context(|| format!("the test environment does not export {name}"))
        };
        let dir = testenv::state_dir().join("demo");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let target = crate::target_dir();
        Ok(Self {
            admin_kubeconfig: PathBuf::from(var("KUBECONFIG")?),
            operator_kubeconfig: dir.join("flagger.kubeconfig"),
            record: dir.join("processes.json"),
            prometheus_url: var("TESTENV_PROMETHEUS_URL")?,
            sd_dir: PathBuf::from(var("TESTENV_PROMETHEUS_SD_DIR")?),
            bin_dir: target.join("debug"),
            dir,
        })
    }
}

/// The lines of the live view, kept for the report of a failed run.
#[derive(Clone)]
struct Timeline {
    started: Instant,
    live: bool,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Timeline {
    fn say(&self, line: impl AsRef<str>) {
        let line = format!(
            "[{:>4.0}s] {}",
            self.started.elapsed().as_secs_f64(),
            line.as_ref()
        );
        if self.live {
            println!("{line}");
        }
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }

    /// A milestone: printed in both modes.
    fn step(&self, line: impl AsRef<str>) {
        if self.live {
            self.say(line);
        } else {
            let line = format!(
                "[{:>4.0}s] {}",
                self.started.elapsed().as_secs_f64(),
                line.as_ref()
            );
            println!("xtask demo: {line}");
            if let Ok(mut lines) = self.lines.lock() {
                lines.push(line);
            }
        }
    }

    fn all(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

/// A process the demo started.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// A testapp process standing in for the pods of one Deployment.
struct App {
    proc: Proc,
    addr: SocketAddr,
    /// Its file_sd target file.
    target: PathBuf,
}

/// One release and what it is expected to do.
struct ReleaseSpec {
    version: &'static str,
    error_rate: f64,
    expect: CanaryPhase,
    /// The `(primary, canary)` route weights expected from the release's start to its end.
    weights: &'static [(u32, u32)],
}

const RELEASES: [ReleaseSpec; 2] = [
    ReleaseSpec {
        version: "6.0.1",
        error_rate: 0.0,
        expect: CanaryPhase::Succeeded,
        weights: &[(100, 0), (75, 25), (50, 50), (100, 0)],
    },
    ReleaseSpec {
        version: "6.0.2",
        error_rate: 0.3,
        expect: CanaryPhase::Failed,
        weights: &[(100, 0), (75, 25), (100, 0)],
    },
];

/// What a release did.
struct ReleaseResult {
    version: &'static str,
    error_rate: f64,
    expect: CanaryPhase,
    expected_weights: &'static [(u32, u32)],
    outcome: CanaryPhase,
    duration: Duration,
    weights: Vec<(u32, u32)>,
    load: Report,
    /// The check results the operator recorded during the release, `(metric, value, passed)`.
    checks: Vec<(String, f64, bool)>,
}

/// The operator's analysis gauges as last read.
type Checks = Arc<Mutex<Vec<(String, f64, bool)>>>;

struct Demo {
    opts: Options,
    client: Client,
    paths: Paths,
    timeline: Timeline,
    operator: Option<Proc>,
    operator_port: u16,
    primary: Option<App>,
    canary: Option<App>,
    load: Option<Running>,
    tasks: Vec<JoinHandle<()>>,
    /// Every distinct `(primary, canary)` weight pair of the route, in order.
    route: Arc<Mutex<Vec<(u32, u32)>>>,
    weights: watch::Receiver<(u32, u32)>,
    weights_tx: Arc<watch::Sender<(u32, u32)>>,
    checks: Checks,
}

impl Demo {
    async fn new(opts: Options, env: &HashMap<String, String>) -> Result<Self> {
        let paths = Paths::new(env)?;
        let client = testkit::kube::client_for(Some(paths.admin_kubeconfig.as_os_str())).await?;
        let (weights_tx, weights) = watch::channel((100, 0));
        Ok(Self {
            opts,
            client,
            paths,
            timeline: Timeline {
                started: Instant::now(),
                live: !opts.ci,
                lines: Arc::default(),
            },
            operator: None,
            operator_port: 0,
            primary: None,
            canary: None,
            load: None,
            tasks: Vec::new(),
            route: Arc::default(),
            weights,
            weights_tx: Arc::new(weights_tx),
            checks: Arc::default(),
        })
    }

    /// The whole run: the flow (or Ctrl-C), then the cleanup unless `--keep`.
    async fn run(&mut self) -> Result<Ended> {
        let flow = tokio::select! {
            r = self.flow() => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(flow) = flow else {
            println!("\nInterrupted: cleaning up.");
            let cleaned = match self.cleanup().await {
                Ok(()) => self.verify_cleanup().await,
                Err(e) => Err(e),
            };
            if let Err(e) = &cleaned {
                eprintln!("xtask demo: cleanup: {e:#}");
            }
            return cleaned.map(|()| Ended::Interrupted);
        };
        if self.opts.keep {
            self.stop_in_process();
            if let Err(e) = self.write_record() {
                eprintln!("xtask demo: {e:#}");
            }
            let results = flow.map_err(|e| self.failure(e))?;
            self.summary(&results);
            self.explore();
            return verdict(&results).map(|()| Ended::Finished);
        }
        let cleaned = match self.cleanup().await {
            Ok(()) => self.verify_cleanup().await,
            Err(e) => Err(e),
        };
        let results = flow.map_err(|e| self.failure(e))?;
        self.summary(&results);
        println!(
            "Everything the demo started was stopped. `cargo xtask demo --keep` leaves it running to explore."
        );
        verdict(&results)?;
        cleaned.context("cleanup")?;
        Ok(Ended::Finished)
    }

    /// A failed run: the timeline and what the operator said, with its permission errors first.
    fn failure(&self, e: anyhow::Error) -> anyhow::Error {
        let log = self
            .operator
            .as_ref()
            .and_then(|p| fs::read_to_string(&p.log).ok())
            .unwrap_or_default();
        // The first few are enough to name the missing verb and resource.
        let forbidden: Vec<&str> = log.lines().filter(|l| l.contains("forbidden")).take(6).collect();
        let mut msg = format!("{e:#}\n--- timeline ---\n{}", self.timeline.all());
        if !forbidden.is_empty() {
            let _ = write!(
                msg,
                "\n--- the operator was refused by the API server (a missing rule in deploy/base/rbac.yaml) ---\n{}",
                forbidden.join("\n")
            );
        }
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let _ = write!(
            msg,
            "\n--- last lines of the operator log ({}) ---\n{}",
            self.paths.dir.join("flagger.log").display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        anyhow!(msg)
    }

    async fn flow(&mut self) -> Result<Vec<ReleaseResult>> {
        let t = self.timeline.clone();
        self.clear_leftovers().await?;
        t.step("installing the CRDs (Flagger's, and Gateway API's HTTPRoute)");
        self.install_crds().await?;
        create_namespace(&self.client).await?;
        t.step(format!(
            "namespace {NS}: ServiceAccount {SERVICE_ACCOUNT} bound to the ClusterRole of deploy/base/rbac.yaml"
        ));
        self.operator_identity().await?;
        testkit::kube::apply_yaml(&self.client, NS, &deployment(FIRST_VERSION)).await?;
        self.primary = Some(
            self.start_app("primary", "podinfo-primary", FIRST_VERSION, 0.0)
                .await?,
        );
        self.tasks.push(self.gateway_stand_in());
        self.tasks.push(self.watch_canary());
        self.tasks.push(self.watch_events());
        self.start_operator().await?;
        self.tasks.push(self.watch_checks());
        self.restart_load().await;
        testkit::kube::apply_yaml(&self.client, NS, CANARY).await?;
        t.step(format!(
            "Canary {NS}/{APP} applied (interval 10s, stepWeight 25, maxWeight 50, success rate >= 99%, p99 <= 500ms)"
        ));
        self.wait_phase(&[CanaryPhase::Initialized], INIT_TIMEOUT).await?;
        let mut results = Vec::new();
        for spec in &RELEASES {
            results.push(self.release(spec).await?);
        }
        Ok(results)
    }

    /// Stops what a kept or crashed run left behind, and waits for an old namespace to be gone.
    async fn clear_leftovers(&self) -> Result<()> {
        if self.paths.record.exists() {
            self.timeline.step("stopping what an earlier demo left running");
            stop_recorded(&self.paths.record)?;
        }
        delete_everything(&self.client).await
    }

    async fn install_crds(&self) -> Result<()> {
        let text = fs::read_to_string(root().join("deploy/crds.yaml")).context("deploy/crds.yaml")?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).context("deploy/crds.yaml is not YAML")?;
        let mut crds: Vec<CustomResourceDefinition> = docs
            .into_iter()
            .filter(|d| !d.is_null())
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .context("deploy/crds.yaml holds something other than CRDs")?;
        let route = fs::read_to_string(root().join(HTTP_ROUTE_CRD)).context(HTTP_ROUTE_CRD)?;
        crds.push(serde_saphyr::from_str(&route).with_context(|| format!("{HTTP_ROUTE_CRD} is not a CRD"))?);
        testkit::kube::install_crds(&self.client, &crds).await
    }

    /// The ServiceAccount, a ClusterRole with exactly the rules of `deploy/base/rbac.yaml` (named
    /// [`MANAGER`] so it never collides with an installed Flagger), its binding, and a kubeconfig holding a
    /// token of that ServiceAccount from the TokenRequest API.
    async fn operator_identity(&self) -> Result<()> {
        let text =
            fs::read_to_string(root().join("deploy/base/rbac.yaml")).context("deploy/base/rbac.yaml")?;
        let mut role: ClusterRole =
            serde_saphyr::from_str(&text).context("deploy/base/rbac.yaml is not one ClusterRole")?;
        role.metadata = kube::core::ObjectMeta {
            name: Some(MANAGER.to_string()),
            labels: Some([("app.kubernetes.io/part-of".to_string(), MANAGER.to_string())].into()),
            ..Default::default()
        };
        let apply = PatchParams::apply(MANAGER).force();
        Api::<ClusterRole>::all(self.client.clone())
            .patch(MANAGER, &apply, &Patch::Apply(&role))
            .await
            .context("cannot apply the ClusterRole")?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), NS);
        let account =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT}});
        accounts
            .patch(SERVICE_ACCOUNT, &apply, &Patch::Apply(&account))
            .await
            .context("cannot create the ServiceAccount")?;
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": MANAGER, "labels": {"app.kubernetes.io/part-of": MANAGER}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": MANAGER},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NS}],
        });
        Api::<ClusterRoleBinding>::all(self.client.clone())
            .patch(MANAGER, &apply, &Patch::Apply(&binding))
            .await
            .context("cannot apply the ClusterRoleBinding")?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(24 * 3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = accounts
            .create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request)
            .await
            .context("TokenRequest for the operator's ServiceAccount")?
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .context("the TokenRequest came back without a token")?;
        write_kubeconfig(
            &self.paths.admin_kubeconfig,
            &self.paths.operator_kubeconfig,
            &token,
        )
    }

    /// Starts `flagger run` with the ServiceAccount's kubeconfig, watching [`NS`], and waits for `/healthz`.
    async fn start_operator(&mut self) -> Result<()> {
        let port = free_port()?;
        let log = self.paths.dir.join("flagger.log");
        let file = fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let bin = self.paths.bin_dir.join("flagger");
        let child = Command::new(&bin)
            .arg("run")
            .arg(format!(
                "-kubeconfig={}",
                self.paths.operator_kubeconfig.display()
            ))
            .arg("-mesh-provider=gatewayapi:v1")
            .arg(format!("-metrics-server={}", self.paths.prometheus_url))
            .arg(format!("-namespace={NS}"))
            .arg(format!("-port={port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            // Its own process group: Ctrl-C reaches only this command, which stops it in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        self.operator = Some(Proc {
            name: "flagger".into(),
            child,
            log,
        });
        self.operator_port = port;
        self.write_record()?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        let mut op = self.operator.take();
        let healthy = wait_http(&url, op.as_mut()).await;
        self.operator = op;
        healthy.context("the operator did not become healthy")?;
        self.timeline.step(format!(
            "operator started: flagger run -mesh-provider=gatewayapi:v1 -metrics-server={} -namespace={NS} \
             (as system:serviceaccount:{NS}:{SERVICE_ACCOUNT})",
            self.paths.prometheus_url
        ));
        Ok(())
    }

    /// Starts a testapp exporting the `kubernetes` telemetry of a pod of Deployment `workload`, registers
    /// it with Prometheus and waits until it is scraped.
    async fn start_app(&mut self, role: &str, workload: &str, version: &str, error_rate: f64) -> Result<App> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = self.paths.dir.join(format!("testapp-{role}-{version}.log"));
        let file = fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let bin = self.paths.bin_dir.join("testapp");
        let child = Command::new(&bin)
            .arg(format!("--listen={addr}"))
            .arg(format!("--app-version={version}"))
            .arg(format!("--error-rate={error_rate}"))
            .args(["--latency=20ms..60ms", "--telemetry=kubernetes"])
            .arg(format!("--namespace={NS}"))
            .arg(format!("--workload={workload}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let label = format!("{role}-{version}");
        let target = self.paths.sd_dir.join(format!("{MANAGER}-{role}.json"));
        let mut app = App {
            proc: Proc {
                name: format!("testapp {role} {version}"),
                child,
                log,
            },
            addr,
            target: target.clone(),
        };
        // Recorded at once, so that even a crash leaves it to `cargo xtask demo down`.
        let ready = async {
            wait_http(&format!("http://{addr}/healthz"), Some(&mut app.proc)).await?;
            let group = json!([{"targets": [addr.to_string()],
                "labels": {"app": workload, "version": version, "flagger_demo": label}}]);
            let tmp = target.with_extension("json.tmp");
            fs::write(&tmp, group.to_string()).with_context(|| format!("cannot write {}", tmp.display()))?;
            fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))?;
            let up = format!("up{{flagger_demo=\"{label}\"}}");
            testkit::kube::poll(
                &format!("Prometheus to scrape {label}"),
                Duration::from_secs(60),
                || async {
                    Ok(match query(&self.paths.prometheus_url, &up).await {
                        Ok(Some(1.0)) => Ok(()),
                        other => Err(format!("{other:?}")),
                    })
                },
            )
            .await
        };
        if let Err(e) = ready.await {
            stop_proc(&mut app.proc).await;
            let _ = fs::remove_file(&app.target);
            return Err(e.context(format!("testapp {role} {version}")));
        }
        self.timeline.step(format!(
            "testapp for {workload} (version {version}, {:.0}% errors) on {addr}, scraped by Prometheus",
            error_rate * 100.0
        ));
        Ok(app)
    }

    /// (Re)starts the load driver towards the current primary and canary apps.
    async fn restart_load(&mut self) {
        if let Some(load) = self.load.take() {
            load.stop();
            let _ = load.join().await;
        }
        let Some(primary) = &self.primary else { return };
        let load = Load::new(primary.addr, self.canary.as_ref().map(|c| c.addr))
            .rate(LOAD_RATE)
            .requests(u64::MAX)
            .duration(Duration::from_secs(24 * 3600))
            .spawn(Weights::watch(self.weights.clone()));
        match load {
            Ok(load) => self.load = Some(load),
            Err(e) => self.timeline.step(format!("cannot start the load: {e:#}")),
        }
    }

    /// One release: a new canary app, a new image, then the analysis until Succeeded or Failed.
    async fn release(&mut self, spec: &ReleaseSpec) -> Result<ReleaseResult> {
        let t = self.timeline.clone();
        t.step(format!(
            "release {}: {}",
            spec.version,
            if spec.error_rate > 0.0 {
                format!(
                    "a bad version, {:.0}% of its requests fail",
                    spec.error_rate * 100.0
                )
            } else {
                "a good version, no errors".to_string()
            }
        ));
        if let Some(mut old) = self.canary.take() {
            let _ = fs::remove_file(&old.target);
            stop_proc(&mut old.proc).await;
        }
        self.canary = Some(
            self.start_app("canary", APP, spec.version, spec.error_rate)
                .await?,
        );
        self.write_record()?;
        self.restart_load().await;
        let mark = self.route.lock().map(|r| r.len().saturating_sub(1)).unwrap_or(0);
        let checks_mark = self.checks.lock().map(|c| c.len()).unwrap_or(0);
        let started = Instant::now();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod", "image": format!("{IMAGE}:{}", spec.version)}]}}}});
        deployments
            .patch(APP, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .context("cannot change the image")?;
        self.wait_phase(&[CanaryPhase::Progressing], Duration::from_secs(60))
            .await?;
        let outcome = self
            .wait_phase(&[CanaryPhase::Succeeded, CanaryPhase::Failed], RELEASE_TIMEOUT)
            .await?;
        let duration = started.elapsed();
        // The route's last write can reach the watch just after the status.
        let route = self.route.clone();
        let _ = testkit::kube::poll("the route back on the primary", Duration::from_secs(10), || {
            let last = route.lock().ok().and_then(|r| r.last().copied());
            async move { Ok(if last == Some((100, 0)) { Ok(()) } else { Err(last) }) }
        })
        .await;
        let weights = self
            .route
            .lock()
            .map(|r| r.get(mark..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default();
        let checks = self
            .checks
            .lock()
            .map(|c| c.get(checks_mark..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default();
        let load = match self.load.take() {
            Some(load) => {
                load.stop();
                load.join().await.unwrap_or_default()
            }
            None => Report::default(),
        };
        self.restart_load().await;
        t.step(format!(
            "release {}: {outcome:?} after {:.0}s (canary weights {})",
            spec.version,
            duration.as_secs_f64(),
            canary_weights(&weights)
        ));
        Ok(ReleaseResult {
            version: spec.version,
            error_rate: spec.error_rate,
            expect: spec.expect,
            expected_weights: spec.weights,
            outcome,
            duration,
            weights,
            load,
            checks,
        })
    }

    /// Waits until the Canary's phase is one of `phases`, and returns it.
    async fn wait_phase(&self, phases: &[CanaryPhase], timeout: Duration) -> Result<CanaryPhase> {
        let api: Api<Canary> = Api::namespaced(self.client.clone(), NS);
        let mut operator_exit = None;
        testkit::kube::poll(&format!("the Canary in phase {phases:?}"), timeout, || {
            let api = api.clone();
            if let Some(op) = &self.operator {
                // A dead operator ends the wait at once.
                operator_exit = fs::metadata(format!("/proc/{}", op.child.id()))
                    .is_err()
                    .then(|| op.name.clone());
            }
            let gone = operator_exit.clone();
            async move {
                if let Some(name) = gone {
                    bail!("{name} exited");
                }
                let phase = api.get_opt(APP).await?.and_then(|c| c.status).map(|s| s.phase());
                Ok(match phase {
                    Some(p) if phases.contains(&p) => Ok(p),
                    other => Err(other),
                })
            }
        })
        .await
    }

    /// Plays the gateway controller: watches the HTTPRoute, records each new weight pair (which the load
    /// driver follows) and accepts each new generation for every parent.
    fn gateway_stand_in(&self) -> JoinHandle<()> {
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), NS, &ApiResource::from_gvk(&gvk));
        let (route, tx, t) = (self.route.clone(), self.weights_tx.clone(), self.timeline.clone());
        tokio::spawn(async move {
            let mut stream = watcher::watch_object(api.clone(), APP).boxed();
            while let Some(item) = stream.next().await {
                let Ok(Some(obj)) = item else { continue };
                if let Some(pair) = route_weights(&obj.data["spec"]) {
                    let changed = route.lock().is_ok_and(|mut r| {
                        let changed = r.last() != Some(&pair);
                        if changed {
                            r.push(pair);
                        }
                        changed
                    });
                    if changed {
                        let _ = tx.send(pair);
                        t.say(format!(
                            "route      HTTPRoute {APP}: primary {}% canary {}%",
                            pair.0, pair.1
                        ));
                    }
                }
                accept_route(&api, &obj).await;
            }
        })
    }

    /// One line per change of the Canary's phase, weight, iterations or failed checks.
    fn watch_canary(&self) -> JoinHandle<()> {
        let api: Api<Canary> = Api::namespaced(self.client.clone(), NS);
        let t = self.timeline.clone();
        tokio::spawn(async move {
            let mut last = None;
            let mut stream = watcher::watch_object(api, APP).boxed();
            while let Some(item) = stream.next().await {
                let Ok(Some(canary)) = item else { continue };
                let Some(s) = canary.status else { continue };
                let seen = (s.phase(), s.canary_weight(), s.iterations(), s.failed_checks());
                if last != Some(seen) {
                    last = Some(seen);
                    t.say(format!(
                        "canary     phase {:<12} weight {:>3}%   failed checks {}",
                        format!("{:?}", seen.0),
                        seen.1,
                        seen.3
                    ));
                }
            }
        })
    }

    /// One line per new Event on the Canary (and per repetition of one).
    fn watch_events(&self) -> JoinHandle<()> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), NS);
        let t = self.timeline.clone();
        tokio::spawn(async move {
            let mut counts: HashMap<String, i32> = HashMap::new();
            let config = watcher::Config::default().fields("involvedObject.kind=Canary");
            let mut stream = watcher::watcher(api, config).boxed();
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => e,
                    _ => continue,
                };
                let count = event.count.unwrap_or(1);
                let uid = event.uid().unwrap_or_default();
                if counts.get(&uid).is_some_and(|c| *c >= count) {
                    continue;
                }
                counts.insert(uid, count);
                t.say(format!(
                    "event      {:<7} {}",
                    event.type_.unwrap_or_default(),
                    event.message.unwrap_or_default()
                ));
            }
        })
    }

    /// Reads the operator's `flagger_canary_metric_analysis` gauges every second: one line per new value,
    /// with pass or fail against the Canary's thresholds.
    fn watch_checks(&self) -> JoinHandle<()> {
        let url = format!("http://127.0.0.1:{}/metrics", self.operator_port);
        let (t, checks) = (self.timeline.clone(), self.checks.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut last: HashMap<String, f64> = HashMap::new();
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticks.tick().await;
                let Ok(text) = async { http.get(&url).send().await?.text().await }.await else {
                    continue;
                };
                for (metric, value) in analysis_gauges(&text) {
                    if last.get(&metric) == Some(&value) {
                        continue;
                    }
                    last.insert(metric.clone(), value);
                    let (shown, passed) = judge(&metric, value);
                    t.say(format!(
                        "check      {metric} = {shown} {}",
                        if passed { "pass" } else { "FAIL" }
                    ));
                    if let Ok(mut c) = checks.lock() {
                        c.push((metric, value, passed));
                    }
                }
            }
        })
    }

    /// Writes the record of running processes and scrape files for `cargo xtask demo down`.
    fn write_record(&self) -> Result<()> {
        let mut procs = Vec::new();
        let mut files = Vec::new();
        if let Some(op) = &self.operator {
            procs.push(
                json!({"name": op.name, "pid": op.child.id(), "exe": self.paths.bin_dir.join("flagger")}),
            );
        }
        for app in [&self.primary, &self.canary].into_iter().flatten() {
            procs.push(json!({"name": app.proc.name, "pid": app.proc.child.id(),
                "exe": self.paths.bin_dir.join("testapp")}));
            files.push(app.target.display().to_string());
        }
        let record = json!({"processes": procs, "scrape_files": files});
        fs::write(&self.paths.record, record.to_string())
            .with_context(|| format!("cannot write {}", self.paths.record.display()))
    }

    /// Stops what lives only in this process: the load and the watches.
    fn stop_in_process(&mut self) {
        if let Some(load) = self.load.take() {
            load.stop();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Deletes the Canary, stops the processes, removes the scrape files, deletes the namespace and the
    /// RBAC objects, and waits until the namespace is gone.
    async fn cleanup(&mut self) -> Result<()> {
        self.stop_in_process();
        let canaries: Api<Canary> = Api::namespaced(self.client.clone(), NS);
        let _ = canaries.delete(APP, &DeleteParams::default()).await;
        if let Some(op) = &mut self.operator {
            stop_proc(op).await;
        }
        for app in [&mut self.primary, &mut self.canary].into_iter().flatten() {
            let _ = fs::remove_file(&app.target);
            stop_proc(&mut app.proc).await;
        }
        let _ = fs::remove_file(&self.paths.record);
        let _ = fs::remove_file(&self.paths.operator_kubeconfig);
        delete_everything(&self.client).await
    }

    /// Checks that the cleanup left nothing: processes, scrape files, namespace, RBAC objects.
    async fn verify_cleanup(&mut self) -> Result<()> {
        let mut left = Vec::new();
        let procs = self.operator.iter_mut().chain(
            [&mut self.primary, &mut self.canary]
                .into_iter()
                .flatten()
                .map(|a| &mut a.proc),
        );
        for p in procs {
            if !matches!(p.child.try_wait(), Ok(Some(_))) || testenv::alive(pid_of(&p.child)) {
                left.push(format!("process {} ({})", p.name, p.child.id()));
            }
        }
        for app in [&self.primary, &self.canary].into_iter().flatten() {
            if app.target.exists() {
                left.push(format!("scrape file {}", app.target.display()));
            }
        }
        if Api::<Namespace>::all(self.client.clone())
            .get_opt(NS)
            .await?
            .is_some()
        {
            left.push(format!("namespace {NS}"));
        }
        if Api::<ClusterRoleBinding>::all(self.client.clone())
            .get_opt(MANAGER)
            .await?
            .is_some()
        {
            left.push(format!("ClusterRoleBinding {MANAGER}"));
        }
        if Api::<ClusterRole>::all(self.client.clone())
            .get_opt(MANAGER)
            .await?
            .is_some()
        {
            left.push(format!("ClusterRole {MANAGER}"));
        }
        if !left.is_empty() {
            bail!("left behind: {}", left.join(", "));
        }
        self.timeline.step(format!(
            "cleaned up: namespace {NS}, ClusterRole and ClusterRoleBinding {MANAGER}, scrape targets gone; \
             the operator and the testapps exited"
        ));
        Ok(())
    }

    fn summary(&self, results: &[ReleaseResult]) {
        println!("\nSummary");
        for r in results {
            let kind = if r.error_rate > 0.0 {
                format!("bad, {:.0}% errors", r.error_rate * 100.0)
            } else {
                "good".to_string()
            };
            let checks: Vec<String> = r
                .checks
                .iter()
                .map(|(m, v, ok)| format!("{m} {} {}", judge(m, *v).0, if *ok { "pass" } else { "fail" }))
                .collect();
            println!(
                "  release {} ({kind}): {:?} in {:.0}s (expected {:?}); canary weights {}; canary served {} \
                 requests, {} errors",
                r.version,
                r.outcome,
                r.duration.as_secs_f64(),
                r.expect,
                canary_weights(&r.weights),
                r.load.canary.sent,
                r.load.canary.server_errors,
            );
            if !checks.is_empty() {
                println!("      checks: {}", checks.join(", "));
            }
        }
        println!(
            "  total {:.0}s; operator log: {}",
            self.timeline.started.elapsed().as_secs_f64(),
            self.paths.dir.join("flagger.log").display()
        );
    }

    fn explore(&self) {
        let kubectl = testenv::bin_dir().join("kubectl");
        println!(
            "\nEverything keeps running (the load and the gateway stand-in stopped with this command). Explore:\n  \
             export KUBECONFIG={}\n  \
             {k} get canaries -n {NS}\n  \
             {k} describe canary {APP} -n {NS}\n  \
             {k} get httproute {APP} -n {NS} -o yaml\n  \
             {k} get events -n {NS} --field-selector involvedObject.kind=Canary\n  \
             curl -s http://127.0.0.1:{}/metrics | grep flagger_canary\n\
             Stop: `cargo xtask demo down` (operator, testapps, namespace {NS}), then `cargo xtask testenv down` \
             (the control plane and Prometheus).",
            self.paths.admin_kubeconfig.display(),
            self.operator_port,
            k = kubectl.display(),
        );
    }
}

/// Fails when a release did not end as expected or its route did not move through the expected weights.
fn verdict(results: &[ReleaseResult]) -> Result<()> {
    let mut problems = Vec::new();
    for r in results {
        if r.outcome != r.expect {
            problems.push(format!(
                "release {} ended {:?}, expected {:?}",
                r.version, r.outcome, r.expect
            ));
        }
        if r.weights != r.expected_weights {
            problems.push(format!(
                "release {}: route weights (primary, canary) were {:?}, expected {:?}",
                r.version, r.weights, r.expected_weights
            ));
        }
        let rate_checks: Vec<bool> = r
            .checks
            .iter()
            .filter(|(m, _, _)| m == "request-success-rate")
            .map(|(_, _, ok)| *ok)
            .collect();
        let expect_pass = r.expect == CanaryPhase::Succeeded;
        if rate_checks.is_empty() || rate_checks.iter().any(|ok| *ok != expect_pass) {
            problems.push(format!(
                "release {}: the success-rate checks read from the operator's metrics were {rate_checks:?} \
                 (pass = true), expected all {}",
                r.version,
                if expect_pass { "to pass" } else { "to fail" }
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("the demo did not go as expected:\n  {}", problems.join("\n  "))
    }
}

/// `cargo xtask demo down`: stops what `--keep` left running and deletes what the demo created.
async fn down() -> Result<()> {
    let dir = testenv::state_dir().join("demo");
    let record = dir.join("processes.json");
    if record.exists() {
        stop_recorded(&record)?;
        println!("xtask demo: stopped the operator and the testapps");
    }
    let _ = fs::remove_file(dir.join("flagger.kubeconfig"));
    let env: HashMap<String, String> = testenv::env_vars()?.into_iter().collect();
    let kubeconfig = env.get("KUBECONFIG").context("no KUBECONFIG")?;
    let client = testkit::kube::client_for(Some(std::ffi::OsStr::new(kubeconfig))).await?;
    delete_everything(&client).await?;
    println!("xtask demo: namespace {NS} and the ClusterRole/ClusterRoleBinding {MANAGER} deleted");
    Ok(())
}

/// Stops the processes of a record (only those still running the recorded executable) and removes its
/// scrape files and the record.
fn stop_recorded(record: &Path) -> Result<()> {
    let text = fs::read_to_string(record).with_context(|| format!("cannot read {}", record.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", record.display()))?;
    for p in value["processes"].as_array().into_iter().flatten() {
        let (Some(pid), Some(exe)) = (p["pid"].as_i64(), p["exe"].as_str()) else {
            continue;
        };
        let Ok(pid) = i32::try_from(pid) else { continue };
        let ours = fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == Path::new(exe));
        if ours && testenv::alive(pid) {
            signal(pid, "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while testenv::alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if testenv::alive(pid) {
                signal(pid, "KILL");
            }
        }
    }
    for f in value["scrape_files"].as_array().into_iter().flatten() {
        if let Some(f) = f.as_str() {
            let _ = fs::remove_file(f);
        }
    }
    fs::remove_file(record).with_context(|| format!("cannot remove {}", record.display()))
}

fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn pid_of(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; always reaps the process.
async fn stop_proc(p: &mut Proc) {
    if matches!(p.child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(pid_of(&p.child), "TERM");
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(p.child.try_wait(), Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = p.child.kill();
    let _ = p.child.wait();
}

/// Deletes the namespace and the RBAC objects and waits until the namespace is gone.
async fn delete_everything(client: &Client) -> Result<()> {
    let dp = DeleteParams::default();
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(MANAGER, &dp)
        .await;
    let _ = Api::<ClusterRole>::all(client.clone()).delete(MANAGER, &dp).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(NS).await?.is_none() {
        return Ok(());
    }
    let _ = namespaces.delete(NS, &dp).await;
    testkit::kube::poll(
        &format!("namespace {NS} to be deleted"),
        DELETE_TIMEOUT,
        || async {
            Ok(match namespaces.get_opt(NS).await? {
                None => Ok(()),
                Some(ns) => Err(ns.status.and_then(|s| s.conditions).unwrap_or_default()),
            })
        },
    )
    .await
}

async fn create_namespace(client: &Client) -> Result<()> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    Api::<Namespace>::all(client.clone())
        .patch(NS, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&ns))
        .await
        .with_context(|| format!("cannot create namespace {NS}"))?;
    Ok(())
}

/// The Deployment `podinfo` at `version` (the fake nodes run no containers: the testapps serve for it).
fn deployment(version: &str) -> String {
    format!(
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
        image: {IMAGE}:{version}
        ports: [{{containerPort: 9898, name: http}}]
"#
    )
}

/// A kubeconfig for the API server of `admin` (its address and CA) authenticating with `token`.
fn write_kubeconfig(admin: &Path, out: &Path, token: &str) -> Result<()> {
    let text = fs::read_to_string(admin).with_context(|| format!("cannot read {}", admin.display()))?;
    let config: Value =
        serde_saphyr::from_str(&text).with_context(|| format!("{} is not YAML", admin.display()))?;
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .with_context(|| format!("{} has no cluster server", admin.display()))?;
    let mut cluster_out = json!({"server": server});
    if let Some(ca) = cluster["certificate-authority-data"].as_str() {
        cluster_out["certificate-authority-data"] = json!(ca);
    } else if let Some(ca) = cluster["certificate-authority"].as_str() {
        cluster_out["certificate-authority"] = json!(ca);
    }
    let user = format!("system:serviceaccount:{NS}:{SERVICE_ACCOUNT}");
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": cluster_out}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": MANAGER, "context": {"cluster": "testenv", "user": user, "namespace": NS}}],
        "current-context": MANAGER,
    });
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    std::io::Write::write_all(&mut file, kubeconfig.to_string().as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Writes `Accepted=True` at the route's generation for each parentRef, unless the status already says so.
async fn accept_route(api: &Api<DynamicObject>, route: &DynamicObject) {
    let generation = route.metadata.generation.unwrap_or_default();
    let parents = route.data["spec"]["parentRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let current = route.data["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let up_to_date = current.len() == parents.len()
        && current
            .iter()
            .all(|p| p["conditions"][0]["observedGeneration"].as_i64() == Some(generation));
    if up_to_date {
        return;
    }
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let statuses: Vec<Value> = parents
        .iter()
        .map(|p| {
            json!({"parentRef": p, "controllerName": "example.com/flagger-demo-gateway", "conditions": [{
                "type": "Accepted", "status": "True", "reason": "Accepted",
                "message": "accepted by the flagger-rs demo", "observedGeneration": generation,
                "lastTransitionTime": now.to_string()}]})
        })
        .collect();
    // A conflict or a deleted route is answered by the next watch event.
    let _ = api
        .patch_status(
            &route.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"parents": statuses}})),
        )
        .await;
}

/// The `(primary, canary)` weights of a route spec: from the last rule with both backends.
fn route_weights(spec: &Value) -> Option<(u32, u32)> {
    spec["rules"].as_array()?.iter().rev().find_map(|rule| {
        let refs = rule["backendRefs"].as_array()?;
        let weight = |name: String| -> Option<u32> {
            let w = refs.iter().find(|b| b["name"] == name.as_str())?["weight"].as_u64()?;
            u32::try_from(w).ok()
        };
        Some((
            weight(format!("{APP}-primary"))?,
            weight(format!("{APP}-canary"))?,
        ))
    })
}

/// `0 → 25 → 50 → 0`.
fn canary_weights(pairs: &[(u32, u32)]) -> String {
    pairs
        .iter()
        .map(|(_, c)| c.to_string())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The `flagger_canary_metric_analysis` values of the demo's Canary in a `/metrics` text, by metric.
fn analysis_gauges(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("flagger_canary_metric_analysis{")?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let label = |name: &str| {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
                })
            };
            if label("name")? != APP || label("namespace")? != NS {
                return None;
            }
            Some((label("metric")?, value.trim().parse().ok()?))
        })
        .collect()
}

/// The value as shown, and whether it passes the Canary's threshold.
fn judge(metric: &str, value: f64) -> (String, bool) {
    match metric {
        "request-success-rate" => (
            format!("{value:.2}% (min {MIN_SUCCESS_RATE}%)"),
            value >= MIN_SUCCESS_RATE,
        ),
        // Recorded in seconds, compared in whole milliseconds as Flagger does.
        "request-duration" => {
            let ms = (value * 1000.0).trunc();
            (
                format!("{ms:.0}ms (max {MAX_DURATION_MS}ms)"),
                ms <= MAX_DURATION_MS,
            )
        }
        _ => (format!("{value}"), true),
    }
}

/// An instant query; `None` when the result is empty.
async fn query(url: &str, promql: &str) -> Result<Option<f64>> {
    let body: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .with_context(|| format!("cannot reach Prometheus at {url}"))?
        .json()
        .await?;
    let Some(first) = body["data"]["result"].as_array().and_then(|r| r.first()) else {
        return Ok(None);
    };
    let value = first["value"][1].as_str().context("a sample without a value")?;
    Ok(Some(
        value.parse().with_context(|| format!("bad sample {value}"))?,
    ))
}

/// Waits until `url` answers 2xx; fails at once when `proc` exits.
async fn wait_http(url: &str, mut proc: Option<&mut Proc>) -> Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = proc.as_deref_mut()
            && let Ok(Some(status)) = p.child.try_wait()
        {
            let log = fs::read_to_string(&p.log).unwrap_or_default();
            bail!("{} exited ({status}):\n{log}", p.name);
        }
        let last = match http.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => r.status().to_string(),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("{url} did not answer within 30s: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_weights_of_the_routes_last_weighted_rule() {
        let spec = json!({"rules": [
            {"backendRefs": [{"name": "podinfo-primary", "weight": 0}, {"name": "podinfo-canary", "weight": 100}]},
            {"backendRefs": [{"name": "podinfo-primary", "weight": 75}, {"name": "podinfo-canary", "weight": 25}]},
            {"backendRefs": [{"name": "legacy", "weight": 1}]},
        ]});
        assert_eq!(route_weights(&spec), Some((75, 25)));
        assert_eq!(route_weights(&json!({"rules": []})), None);
        assert_eq!(canary_weights(&[(100, 0), (75, 25), (100, 0)]), "0 → 25 → 0");
    }

    #[test]
    fn reads_the_analysis_gauges_of_the_demo_canary_only() {
        let text = "# TYPE flagger_canary_metric_analysis gauge\n\
            flagger_canary_metric_analysis{name=\"podinfo\",namespace=\"demo\",metric=\"request-success-rate\"} 70.5\n\
            flagger_canary_metric_analysis{metric=\"request-duration\",name=\"podinfo\",namespace=\"demo\"} 0.048\n\
            flagger_canary_metric_analysis{name=\"other\",namespace=\"demo\",metric=\"request-duration\"} 1\n";
        assert_eq!(
            analysis_gauges(text),
            vec![
                ("request-success-rate".to_string(), 70.5),
                ("request-duration".to_string(), 0.048)
            ]
        );
        assert!(!judge("request-success-rate", 70.5).1);
        assert!(judge("request-success-rate", 99.0).1);
        assert_eq!(
            judge("request-duration", 0.0489),
            ("48ms (max 500ms)".to_string(), true)
        );
        assert!(!judge("request-duration", 0.501).1);
    }
}
