//! The install artifacts against the real control plane: the kustomize base and every provider overlay
//! (`kubectl kustomize`), and the Helm charts with default values and with values files that set every
//! Flagger chart value (`helm template`), all pass `kubectl apply --dry-run=server`; the operator and load
//! tester Deployments' arguments are accepted by the real binaries; the ClusterRole has no wildcard and
//! is the same in kustomize and Helm; the copies of the CRDs match `deploy/crds.yaml`.
//!
//! Helm is built from the Go module proxy into `target/tools/bin` the first time (`go install`).

// The helpers below run only inside tests, where a failed step should fail the test at once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use testkit::{TestNamespace, install_crds};

const HELM_MODULE: &str = "helm.sh/helm/v3/cmd/helm@v3.22.0";

/// Every provider overlay with the `-mesh-provider` and `-metrics-server` it must set.
const OVERLAYS: &[(&str, &str, &str)] = &[
    ("apisix", "apisix", "http://flagger-prometheus:9090"),
    ("appmesh", "appmesh", "http://appmesh-prometheus:9090"),
    ("contour", "contour", "http://flagger-prometheus:9090"),
    ("gatewayapi", "gatewayapi:v1", "http://flagger-prometheus:9090"),
    ("gloo", "gloo", "http://flagger-prometheus:9090"),
    ("istio", "istio", "http://prometheus:9090"),
    ("knative", "knative", "http://flagger-prometheus:9090"),
    ("kubernetes", "kubernetes", "http://flagger-prometheus:9090"),
    ("kuma", "kuma", "http://prometheus-server.mesh-observability:80"),
    (
        "linkerd",
        "gatewayapi:v1beta1",
        "http://prometheus.linkerd-viz:9090",
    ),
    ("nginx", "nginx", "http://flagger-prometheus:9090"),
    ("osm", "osm", "http://osm-prometheus.osm-system.svc:7070"),
    ("skipper", "skipper", "http://flagger-prometheus:9090"),
    ("traefik", "traefik", "http://flagger-prometheus:9090"),
];

/// Kinds of other products' CRDs (not installed on the test control plane) the charts may render with
/// every value set; they are checked for shape here but cannot be dry-run.
const FOREIGN_KINDS: &[&str] = &[
    "AuthorizationPolicy.policy.linkerd.io",
    "PodMonitor.monitoring.coreos.com",
    "ServiceMonitor.monitoring.coreos.com",
    "VirtualService.networking.istio.io",
    "Gateway.networking.istio.io",
    "VirtualNode.appmesh.k8s.aws",
];

/// Kinds without a namespace.
const CLUSTER_KINDS: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn kubectl() -> PathBuf {
    let bin = std::env::var_os("TESTENV_BIN").expect("TESTENV_BIN is set (cargo xtask testenv env)");
    PathBuf::from(bin).join("kubectl")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Helm, built once into `target/tools/bin` from the Go module proxy.
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let bin_dir = target_dir().join("tools/bin");
        let helm = bin_dir.join("helm");
        if !helm.exists() {
            std::fs::create_dir_all(&bin_dir).unwrap();
            run(Command::new("go")
                .args(["install", HELM_MODULE])
                .env("GOBIN", &bin_dir)
                .env("GOFLAGS", "-buildvcs=false"));
        }
        helm
    })
}

/// A binary of the workspace, built (debug) once per test process.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(root())
        .args(["build", "-q", "-p", package, "--bin", bin]));
    target_dir().join("debug").join(bin)
}

fn flagger_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("flagger", "flagger"))
}

fn loadtester_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("flagger-loadtester", "flagger-loadtester"))
}

fn parse_docs(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("bad YAML: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kustomize(dir: &str) -> Vec<Value> {
    let out = run(Command::new(kubectl()).arg("kustomize").arg(root().join(dir)));
    parse_docs(&String::from_utf8_lossy(&out.stdout))
}

fn helm_template(chart: &str, namespace: &str, values: Option<&str>) -> Vec<Value> {
    let mut cmd = Command::new(helm());
    cmd.args([
        "template",
        "flagger",
        "--namespace",
        namespace,
        "--kube-version",
        "1.36.0",
    ])
    .arg(root().join(chart));
    if let Some(values) = values {
        cmd.arg("--values").arg(root().join(values));
    }
    let out = run(&mut cmd);
    parse_docs(&String::from_utf8_lossy(&out.stdout))
}

fn kind_of(doc: &Value) -> String {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = doc["kind"].as_str().unwrap_or_default();
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name} in {:?}",
                docs.iter().map(kind_of).collect::<Vec<_>>()
            )
        })
}

/// Whether the API server serves the kind of `doc`.
async fn served(client: &kube::Client, doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
    let gvk = GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap_or_default());
    kube::discovery::pinned_kind(client, &gvk).await.is_ok()
}

/// Moves every namespaced object (and the ServiceAccount subjects of bindings) into `namespace`, then
/// applies everything with `kubectl apply --dry-run=server`. Kinds the server does not serve must be in
/// [`FOREIGN_KINDS`]; they are left out and returned.
async fn dry_run(ns: &TestNamespace, what: &str, docs: &[Value]) -> BTreeSet<String> {
    let mut items = Vec::new();
    let mut skipped = BTreeSet::new();
    for doc in docs {
        let mut doc = doc.clone();
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        if !CLUSTER_KINDS.contains(&kind.as_str()) {
            doc["metadata"]["namespace"] = json!(ns.name);
        }
        if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects.iter_mut().filter(|s| s["kind"] == "ServiceAccount") {
                s["namespace"] = json!(ns.name);
            }
        }
        if served(&ns.client, &doc).await {
            items.push(doc);
        } else {
            let k = kind_of(&doc);
            assert!(
                FOREIGN_KINDS.contains(&k.as_str()),
                "{what}: {k} is not served by the API server"
            );
            skipped.insert(k);
        }
    }
    assert!(!items.is_empty(), "{what}: nothing to apply");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut child = Command::new(kubectl())
        .args(["apply", "--dry-run=server", "-o", "name", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: server-side dry run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        items.len(),
        "{what}: every object is accepted:\n{stdout}"
    );
    skipped
}

async fn namespace_with_crds(prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(prefix).await.unwrap();
    install_crds(&ns.client, &flagger_api::crds()).await.unwrap();
    ns
}

/// The container `name` of the Deployment.
fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {deployment}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The operator accepts `args`: they parse (`-version` exits 0 after parsing every flag), and `flagger
/// run` with them passes its configuration checks and only fails at the (missing) kubeconfig.
fn assert_flagger_accepts(what: &str, args: &[String]) {
    let out = Command::new(flagger_bin())
        .args(args)
        .arg("-version")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: flagger refuses {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(flagger_bin())
        .args(args)
        .arg("-kubeconfig=/nonexistent/kubeconfig")
        .arg(format!("-port={}", free_port()))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "{what}: flagger cannot run without a kubeconfig"
    );
    assert!(
        !stderr.contains("invalid configuration") && out.status.code() != Some(2),
        "{what}: flagger rejects the configuration {args:?}:\n{stderr}"
    );
    assert!(
        format!("{stdout}{stderr}").contains("/nonexistent/kubeconfig"),
        "{what}: flagger got as far as reading the kubeconfig:\n{stdout}\n{stderr}"
    );
}

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn operator_args(docs: &[Value], name: &str) -> Vec<String> {
    strings(&container(find(docs, "Deployment", name), "flagger")["args"])
}

#[tokio::test]
async fn kustomize_base_and_every_overlay_pass_server_dry_run_and_their_args_are_accepted() {
    let ns = namespace_with_crds("install-kustomize").await;

    let crds = kustomize("deploy/crds");
    assert_eq!(crds.len(), 3, "deploy/crds renders the three CRDs");
    dry_run(&ns, "deploy/crds", &crds).await;

    let base = kustomize("deploy/base");
    for (kind, name) in [
        ("ServiceAccount", "flagger"),
        ("ClusterRole", "flagger"),
        ("ClusterRoleBinding", "flagger"),
        ("Deployment", "flagger"),
        ("CustomResourceDefinition", "canaries.flagger.app"),
    ] {
        find(&base, kind, name);
    }
    let deployment = find(&base, "Deployment", "flagger");
    let operator = container(deployment, "flagger");
    assert_eq!(operator["image"], "ghcr.io/flagger-rs/flagger-rs:0.1.0");
    assert_eq!(operator["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(operator["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(operator["ports"][0]["containerPort"], 8080);
    assert_eq!(operator["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(operator["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "flagger"
    );
    dry_run(&ns, "deploy/base", &base).await;
    assert_flagger_accepts("deploy/base", &operator_args(&base, "flagger"));

    let prometheus = kustomize("deploy/prometheus");
    find(&prometheus, "Service", "flagger-prometheus");
    dry_run(&ns, "deploy/prometheus", &prometheus).await;

    let overlays: BTreeSet<String> = std::fs::read_dir(root().join("deploy/kustomize"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let tested: BTreeSet<String> = OVERLAYS.iter().map(|(p, _, _)| (*p).to_owned()).collect();
    assert_eq!(overlays, tested, "every overlay in deploy/kustomize is tested");

    for (provider, mesh, metrics) in OVERLAYS {
        let dir = format!("deploy/kustomize/{provider}");
        let docs = kustomize(&dir);
        let args = operator_args(&docs, "flagger");
        assert!(
            args.contains(&format!("-mesh-provider={mesh}")),
            "{dir}: {args:?}"
        );
        assert!(
            args.contains(&format!("-metrics-server={metrics}")),
            "{dir}: {args:?}"
        );
        assert!(
            args.contains(&"-include-label-prefix=app.kubernetes.io".to_owned()),
            "{dir}: {args:?}"
        );
        if *provider == "contour" {
            assert!(
                args.contains(&"-ingress-class=contour".to_owned()),
                "{dir}: {args:?}"
            );
        }
        let sa_ns = find(&docs, "ServiceAccount", "flagger")["metadata"]["namespace"].clone();
        let binding = find(&docs, "ClusterRoleBinding", "flagger");
        assert_eq!(
            binding["subjects"][0]["namespace"], sa_ns,
            "{dir}: the binding names the ServiceAccount"
        );
        if metrics.starts_with("http://flagger-prometheus:") {
            find(&docs, "Service", "flagger-prometheus");
        }
        let skipped = dry_run(&ns, &dir, &docs).await;
        assert!(skipped.is_empty(), "{dir}: only core objects: {skipped:?}");
        assert_flagger_accepts(&dir, &args);
    }
}

#[tokio::test]
async fn flagger_rs_chart_renders_with_defaults_and_every_flagger_value_and_passes_server_dry_run() {
    let ns = namespace_with_crds("install-helm").await;

    let defaults = helm_template("charts/flagger-rs", &ns.name, None);
    let args = operator_args(&defaults, "flagger");
    assert_eq!(
        args,
        [
            "-log-level=info",
            "-metrics-server=http://prometheus:9090",
            "-enable-config-tracking=true",
            "-slack-user=flagger"
        ]
    );
    let deployment = find(&defaults, "Deployment", "flagger");
    assert_eq!(
        container(deployment, "flagger")["image"],
        "ghcr.io/flagger-rs/flagger-rs:0.1.0"
    );
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(
        !defaults.iter().any(|d| d["kind"] == "CustomResourceDefinition"),
        "CRDs are rendered only with crd.create"
    );
    dry_run(&ns, "flagger-rs defaults", &defaults).await;
    assert_flagger_accepts("flagger-rs defaults", &args);

    let all = helm_template(
        "charts/flagger-rs",
        &ns.name,
        Some("crates/e2e/tests/data/flagger-values-all.yaml"),
    );
    let args = operator_args(&all, "flagger-prod");
    let expected = [
        "-log-level=debug",
        "-mesh-provider=istio",
        "-metrics-server=http://flagger-prod-prometheus:9090",
        "-selector-labels=app,name,app.kubernetes.io/name",
        "-enable-config-tracking=false",
        "-namespace=apps",
        "-slack-url=https://hooks.slack.com/services/T/B/X",
        "-slack-proxy-url=http://proxy.example.com:3128",
        "-slack-user=flagger-bot",
        "-slack-channel=deployments",
        "-msteams-url=https://outlook.office.com/webhook/x",
        "-msteams-proxy-url=http://proxy.example.com:3128",
        "-enable-leader-election=true",
        &format!("-leader-election-namespace={}", ns.name),
        "-ingress-annotations-prefix=custom.ingress.kubernetes.io",
        "-include-label-prefix=app.kubernetes.io,team",
        "-ingress-class=contour-internal",
        "-event-webhook=https://events.example.com/flagger",
        "-kubeconfig-qps=200",
        "-kubeconfig-burst=400",
        "-kubeconfig-service-mesh=/tmp/controlplane/config",
        "-threadiness=4",
        "-cluster-name=prod-eu-1",
        "-no-cross-namespace-refs=true",
    ];
    assert_eq!(args, expected);
    let deployment = find(&all, "Deployment", "flagger-prod");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["metadata"]["labels"]["tier"], "control");
    assert_eq!(pod["serviceAccountName"], "flagger-operator");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
    assert_eq!(
        container(deployment, "flagger")["image"],
        "registry.example.com/flagger-rs:0.1.0-test"
    );
    for kind in [
        "PodDisruptionBudget",
        "PodMonitor",
        "ServiceMonitor",
        "AuthorizationPolicy",
        "ConfigMap",
    ] {
        assert!(all.iter().any(|d| d["kind"] == kind), "{kind} rendered");
    }
    assert_eq!(
        all.iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .count(),
        3
    );
    let skipped = dry_run(&ns, "flagger-rs every value", &all).await;
    let expected_skipped: BTreeSet<String> = [
        "AuthorizationPolicy.policy.linkerd.io",
        "PodMonitor.monitoring.coreos.com",
        "ServiceMonitor.monitoring.coreos.com",
    ]
    .map(str::to_owned)
    .into();
    // Other tests may have installed some of these CRDs; whatever is not served must be one of them.
    assert!(skipped.is_subset(&expected_skipped), "{skipped:?}");
    // The -kubeconfig-service-mesh file only exists in the pod (a mounted Secret).
    let runnable: Vec<String> = args
        .into_iter()
        .filter(|a| !a.starts_with("-kubeconfig-service-mesh"))
        .collect();
    assert_flagger_accepts("flagger-rs every value", &runnable);
}

#[tokio::test]
async fn loadtester_chart_renders_with_defaults_and_every_value_and_passes_server_dry_run() {
    let ns = TestNamespace::new("install-loadtester").await.unwrap();

    let defaults = helm_template("charts/loadtester", &ns.name, None);
    let deployment = find(&defaults, "Deployment", "flagger-loadtester");
    let command = strings(&container(deployment, "loadtester")["command"]);
    assert_eq!(
        command,
        [
            "flagger-loadtester",
            "-port=8080",
            "-log-level=info",
            "-timeout=1h",
            "-namespace-regexp=",
            "-gate-store=memory"
        ]
    );
    find(&defaults, "Service", "flagger-loadtester");
    dry_run(&ns, "loadtester defaults", &defaults).await;
    assert_loadtester_accepts("loadtester defaults", &command[1..]);

    let all = helm_template(
        "charts/loadtester",
        &ns.name,
        Some("crates/e2e/tests/data/loadtester-values-all.yaml"),
    );
    let deployment = find(&all, "Deployment", "flagger-loadtester");
    let command = strings(&container(deployment, "loadtester")["command"]);
    assert!(
        command.contains(&"-gate-store=kubernetes".to_owned()),
        "{command:?}"
    );
    assert!(
        command.contains(&"-gate-store-configmap=release-gates".to_owned()),
        "{command:?}"
    );
    let gates = find(&all, "Role", "flagger-loadtester-gates");
    assert_eq!(gates["rules"][1]["resourceNames"][0], "release-gates");
    let skipped = dry_run(&ns, "loadtester every value", &all).await;
    let expected_skipped: BTreeSet<String> = [
        "Gateway.networking.istio.io",
        "VirtualNode.appmesh.k8s.aws",
        "VirtualService.networking.istio.io",
    ]
    .map(str::to_owned)
    .into();
    // Other tests may have installed some of these CRDs; whatever is not served must be one of them.
    assert!(skipped.is_subset(&expected_skipped), "{skipped:?}");
    assert_loadtester_accepts("loadtester every value", &command[1..]);
}

/// The load tester parses `args` (`-version` exits 0 only after every flag parsed).
fn assert_loadtester_accepts(what: &str, args: &[String]) {
    let out = Command::new(loadtester_bin())
        .args(args)
        .arg("-version")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: flagger-loadtester refuses {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(loadtester_bin())
        .args(args)
        .arg("-no-such-flag")
        .arg("-version")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{what}: the check can fail");
}

fn rules(doc: &Value) -> Value {
    doc["rules"].clone()
}

#[test]
fn cluster_role_has_no_wildcards_and_is_the_same_in_kustomize_and_helm() {
    let text = std::fs::read_to_string(root().join("deploy/base/rbac.yaml")).unwrap();
    let docs = parse_docs(&text);
    assert_eq!(docs.len(), 1, "rbac.yaml holds only the ClusterRole");
    let role = find(&docs, "ClusterRole", "flagger");
    let rules = rules(role);
    let rules_list = rules.as_array().unwrap();
    assert!(!rules_list.is_empty());
    for rule in rules_list {
        for field in [
            "verbs",
            "resources",
            "apiGroups",
            "nonResourceURLs",
            "resourceNames",
        ] {
            for item in strings(&rule[field]) {
                assert!(!item.contains('*'), "wildcard in {field}: {rule}");
            }
        }
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "no non-resource URLs: {rule}"
        );
        assert!(
            !strings(&rule["verbs"])
                .iter()
                .any(|v| v == "deletecollection" || v == "escalate" || v == "bind")
        );
    }
    // Secrets are never written except the -primary copies (create/patch), never deleted or updated.
    let secrets: Vec<&Value> = rules_list
        .iter()
        .filter(|r| strings(&r["resources"]).contains(&"secrets".into()))
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        strings(&secrets[0]["verbs"]),
        ["get", "list", "watch", "create", "patch"]
    );

    let chart = helm_template("charts/flagger-rs", "flagger-system", None);
    assert_eq!(
        find(&chart, "ClusterRole", "flagger")["rules"],
        rules,
        "the chart's ClusterRole is deploy/base/rbac.yaml's"
    );
    let base = kustomize("deploy/base");
    assert_eq!(find(&base, "ClusterRole", "flagger")["rules"], rules);
}

#[test]
fn copies_of_the_crds_match_deploy_crds_yaml() {
    let original = std::fs::read_to_string(root().join("deploy/crds.yaml")).unwrap();
    for copy in ["deploy/crds/crds.yaml", "charts/flagger-rs/crds/crds.yaml"] {
        let text = std::fs::read_to_string(root().join(copy)).unwrap();
        assert!(
            text == original,
            "{copy} differs from deploy/crds.yaml: cp deploy/crds.yaml {copy}"
        );
    }
}
