//! Reading a manifest into the typed API and writing it back gives the same JSON, for every field of
//! Flagger's schema.

use std::{collections::BTreeSet, path::PathBuf};

use flagger_api::{AlertProvider, Canary, CanaryPhase, DeploymentStrategy, HookType, MetricTemplate};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// A Canary that sets every field of Flagger's Canary schema at least once (the values are plausible,
/// not a working configuration).
const KITCHEN_SINK_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
  labels: {app: podinfo}
spec:
  provider: istio
  metricsServer: http://prometheus.istio-system:9090
  progressDeadlineSeconds: 60
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  autoscalerRef:
    apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    name: podinfo-so
    primaryScalerQueries:
      prom-trigger: sum(rate(http_requests_total{app="podinfo-primary"}[2m]))
    primaryScalerReplicas: {minReplicas: 2, maxReplicas: 5}
  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}
  routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}
  upstreamRef: {apiVersion: gloo.solo.io/v1, kind: Upstream, name: podinfo-upstream, namespace: gloo-system}
  service:
    name: podinfo-svc
    port: 9898
    portName: http-podinfo
    appProtocol: http
    trafficDistribution: PreferClose
    targetPort: http
    portDiscovery: true
    headless: false
    timeout: 30s
    backendTimeout: 10s
    meshName: global
    backends: [backend1, "arn:aws:appmesh:eu-west-1:123:mesh/global/virtualService/backend2"]
    hosts: [app.example.com]
    delegation: false
    match:
      - name: api
        uri: {prefix: /api}
        scheme: {exact: https}
        method: {exact: GET}
        authority: {regex: ".*example.com"}
        headers:
          x-canary: {exact: insider}
          user-agent: {regex: ".*Firefox.*"}
          x-tier: {prefix: gold}
        port: 9898
        sourceLabels: {app: frontend}
        gateways: [mesh]
        queryParams:
          version: {exact: v2}
        ignoreUriCase: true
        withoutHeaders:
          x-debug: {exact: "1"}
        sourceNamespace: frontend
      - uri: {exact: /healthz}
        scheme: {prefix: http}
        method: {regex: "GET|HEAD"}
        authority: {exact: app.example.com}
        queryParams:
          a: {prefix: x}
          b: {regex: "y.*"}
        withoutHeaders:
          x-a: {prefix: "no"}
          x-b: {regex: ".*"}
      - uri: {regex: "/v[0-9]+/.*"}
        scheme: {regex: "https?"}
        method: {prefix: P}
        authority: {prefix: app}
    retries: {attempts: 3, perTryTimeout: 5s, retryOn: "gateway-error,connect-failure,refused-stream"}
    rewrite: {uri: /, authority: app.internal, type: ReplacePrefixMatch}
    mirror:
      - backendRef: {group: "", kind: Service, name: shadow, namespace: test, port: 9898}
    headers:
      request:
        add: {x-added: "1"}
        set: {x-set: "2"}
        remove: [x-removed]
      response:
        add: {x-r-added: "1"}
        set: {x-r-set: "2"}
        remove: [x-r-removed]
    gateways: [public-gateway.istio-system.svc.cluster.local, mesh]
    gatewayRefs:
      - {group: gateway.networking.k8s.io, kind: Gateway, name: gateway, namespace: istio-ingress, sectionName: https, port: 443}
    corsPolicy:
      allowOrigin: ["https://example.com"]
      allowOrigins:
        - exact: https://a.example.com
        - prefix: https://b.
        - regex: "https://.*\\.example\\.org"
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: false
    trafficPolicy:
      connectionPool:
        http:
          h2UpgradePolicy: UPGRADE
          http1MaxPendingRequests: 100
          http2MaxRequests: 1000
          idleTimeout: 1h
          maxRequestsPerConnection: 10
          maxRetries: 3
      loadBalancer:
        simple: LEAST_REQUEST
        consistentHash:
          httpHeaderName: x-user
          httpCookie: {name: user, path: /, ttl: 0s}
          useSourceIp: false
          httpQueryParameterName: user
          minimumRingSize: 1024
        localityLbSetting:
          distribute:
            - from: us-west/zone1/*
              to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
          enabled: true
          failover:
            - {from: us-east, to: eu-west}
        warmupDurationSecs: 60s
      outlierDetection:
        baseEjectionTime: 30s
        consecutive5xxErrors: 5
        consecutiveErrors: 7
        consecutiveGatewayErrors: 3
        consecutiveLocalOriginFailures: 2
        interval: 10s
        maxEjectionPercent: 50
        minHealthPercent: 10
        splitExternalLocalOriginErrors: true
      tls:
        mode: MUTUAL
        clientCertificate: /etc/certs/cert.pem
        privateKey: /etc/certs/key.pem
        caCertificates: /etc/certs/ca.pem
        sni: podinfo.example.com
        subjectAltNames: [podinfo.example.com]
    apex:
      labels: {tier: apex}
      annotations: {note: apex}
    primary:
      labels: {tier: primary}
      annotations: {note: primary}
    canary:
      labels: {tier: canary}
      annotations: {note: canary}
    unmanagedMetadata:
      annotations: [external-dns.alpha.kubernetes.io/hostname]
      labels: [team]
  skipAnalysis: false
  revertOnDeletion: true
  suspend: false
  analysis:
    interval: 1m
    threshold: 5
    iterations: 10
    maxWeight: 50
    stepWeight: 5
    stepWeights: [1, 2, 10, 80]
    stepWeightPromotion: 50
    mirror: true
    mirrorWeight: 20
    primaryReadyThreshold: 80
    canaryReadyThreshold: 90
    match:
      - headers:
          x-canary: {exact: insider}
          cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}
          x-p: {prefix: a}
          x-s: {suffix: z}
        queryParams:
          q: {exact: "1"}
          r: {prefix: a}
          s: {regex: "b.*"}
        sourceLabels: {app: frontend}
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 1m
      - name: latency
        templateRef: {name: latency, namespace: istio-system}
        thresholdRange: {min: 0.5, max: 500}
        interval: 30s
        templateVariables: {direction: inbound}
      - name: legacy
        threshold: 1.5
        query: histogram_quantile(0.99, sum(rate(x[1m])) by (le))
    alerts:
      - name: on-call
        severity: error
        providerRef: {name: on-call, namespace: flagger}
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 30s
        muteAlert: true
        retries: 3
        disableTLS: true
        metadata: {type: bash, cmd: "curl -sd 'test' http://podinfo-canary:9898/token | grep token"}
      - name: gate
        type: confirm-promotion
        url: http://flagger-loadtester.test/gate/check
    sessionAffinity:
      cookieName: flagger-cookie
      primaryCookieName: primary-cookie
      domain: example.com
      httpOnly: true
      maxAge: 21600
      partitioned: true
      path: /
      sameSite: Strict
      secure: true
status:
  phase: Progressing
  failedChecks: 1
  canaryWeight: 10
  iterations: 0
  trackedConfigs: {configmap/podinfo-config-env: 6a0f1a6b97d3a2a6, secret/podinfo-secret-env: c6c8cbc1a5ef8b0d}
  lastAppliedSpec: 5dd9b6cf5d
  lastPromotedSpec: 7c49c6c4c5
  lastTransitionTime: "2026-01-02T03:04:05Z"
  lastTickTime: "2026-01-02T03:04:30Z"
  sessionAffinityCookie: flagger-cookie=abcdefghij
  primarySessionAffinityCookie: primary-cookie=klmnopqrst
  previousSessionAffinityCookie: flagger-cookie=uvwxyzabcd
  conditions:
    - type: Promoted
      status: Unknown
      lastUpdateTime: "2026-01-02T03:04:05Z"
      lastTransitionTime: "2026-01-02T03:00:00Z"
      reason: Progressing
      message: New revision detected, progressing canary analysis.
"#;

const KITCHEN_SINK_METRIC_TEMPLATE: &str = r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency, namespace: istio-system}
spec:
  provider:
    type: prometheus
    address: https://prometheus.example.com
    headers:
      X-Scope-OrgID: [tenant-1]
      Accept: [application/json, text/plain]
    secretRef: {name: prom-auth}
    region: eu-west-1
    insecureSkipVerify: true
  query: |
    histogram_quantile(0.99, sum(rate(
      istio_request_duration_milliseconds_bucket{destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"}[{{ interval }}])) by (le))
"#;

const KITCHEN_SINK_ALERT_PROVIDER: &str = r#"
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: on-call, namespace: flagger}
spec:
  type: slack
  channel: on-call-alerts
  username: flagger
  address: https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK
  proxy: http://my-http-proxy.com
  secretRef: {name: on-call-url}
"#;

/// Parses `yaml` into `T` and checks that writing it back as JSON gives the input's JSON.
fn assert_roundtrip<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let expected: Value = serde_saphyr::from_str(yaml).expect("YAML");
    let typed: T = serde_json::from_value(expected.clone()).expect("typed");
    let back = serde_json::to_value(&typed).expect("JSON");
    if back != expected {
        panic!(
            "round trip changed the manifest:\n  input:  {}\n  output: {}\n  first difference: {}",
            expected,
            back,
            first_difference(&expected, &back, "")
        );
    }
    typed
}

fn first_difference(a: &Value, b: &Value, path: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) if p == q => {}
                    (Some(p), Some(q)) => return first_difference(p, q, &format!("{path}.{key}")),
                    (p, q) => return format!("{path}.{key}: {p:?} vs {q:?}"),
                }
            }
            String::new()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
            .unwrap_or_default(),
        _ => format!("{path}: {a} vs {b}"),
    }
}

/// All schema paths a JSON document sets, in the notation of `testdata/flagger-crd-schema.txt`. Map
/// keys are `{}` below the given map paths, property names elsewhere.
fn paths_of(v: &Value, path: &str, maps: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    out.insert(if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    });
    match v {
        Value::Object(obj) if maps.contains(path) => {
            for child in obj.values() {
                paths_of(child, &format!("{path}{{}}"), maps, out);
            }
        }
        Value::Object(obj) => {
            for (key, child) in obj {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                paths_of(child, &p, maps, out);
            }
        }
        Value::Array(items) => {
            for child in items {
                paths_of(child, &format!("{path}[]"), maps, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_kitchen_sink_manifests_set_every_path_of_flaggers_schema() {
    let facts_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/flagger-crd-schema.txt");
    let facts = std::fs::read_to_string(facts_file).expect("facts file");
    for (plural, yaml) in [
        ("canaries", KITCHEN_SINK_CANARY),
        ("metrictemplates", KITCHEN_SINK_METRIC_TEMPLATE),
        ("alertproviders", KITCHEN_SINK_ALERT_PROVIDER),
    ] {
        let schema_paths: Vec<&str> = facts
            .lines()
            .filter_map(|l| l.strip_prefix(plural)?.strip_prefix('\t')?.split('\t').next())
            .collect();
        let maps: BTreeSet<String> = schema_paths
            .iter()
            .filter_map(|p| p.strip_suffix("{}"))
            .map(str::to_owned)
            .collect();
        let manifest: Value = serde_saphyr::from_str(yaml).expect("YAML");
        let mut set = BTreeSet::new();
        paths_of(&manifest, "", &maps, &mut set);
        let unset: Vec<&&str> = schema_paths.iter().filter(|p| !set.contains(**p)).collect();
        assert!(
            unset.is_empty(),
            "the {plural} kitchen sink does not set {unset:?}"
        );
    }
}

#[test]
fn a_canary_with_every_field_round_trips() {
    let canary: Canary = assert_roundtrip(KITCHEN_SINK_CANARY);
    assert_eq!(
        canary.status.as_ref().map(|s| s.phase()),
        Some(CanaryPhase::Progressing)
    );
    assert_eq!(
        canary.spec.analysis.as_ref().map(|a| a.webhooks()[1].hook_type()),
        Some(HookType::ConfirmPromotion)
    );
}

#[test]
fn a_metric_template_with_every_field_round_trips() {
    let template: MetricTemplate = assert_roundtrip(KITCHEN_SINK_METRIC_TEMPLATE);
    assert_eq!(template.spec.provider.type_, "prometheus");
}

#[test]
fn an_alert_provider_with_every_field_round_trips() {
    let provider: AlertProvider = assert_roundtrip(KITCHEN_SINK_ALERT_PROVIDER);
    assert_eq!(provider.spec.channel(), "on-call-alerts");
}

#[test]
fn a_minimal_canary_round_trips_and_gets_flaggers_defaults() {
    let canary: Canary = assert_roundtrip(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 15s, threshold: 0, stepWeight: 10}
"#,
    );
    assert_eq!(canary.service_name(), "podinfo");
    assert_eq!(canary.primary_service_name(), "podinfo-primary");
    assert_eq!(canary.canary_service_name(), "podinfo-canary");
    assert_eq!(canary.primary_name(), "podinfo-primary");
    assert_eq!(canary.progress_deadline_seconds(), 600);
    assert_eq!(canary.analysis_interval(), std::time::Duration::from_secs(15));
    assert_eq!(canary.analysis_threshold(), 1);
    assert_eq!(canary.strategy(), DeploymentStrategy::Canary);
    assert_eq!(canary.spec.service.port_name(), "http");
    assert!(!canary.skip_analysis());
    assert!(canary.status.is_none());
}

#[test]
fn values_flaggers_crd_allows_and_flaggers_code_tolerates_read_back_unchanged() {
    // An unknown provider (Flagger falls back to Istio), an empty webhook type and alert severity, the
    // empty phase, and an int target port.
    let canary: Canary = assert_roundtrip(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  provider: gatewayapi
  targetRef: {apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}
  service: {port: 80, targetPort: 8080}
  analysis:
    interval: 1m
    threshold: 2
    iterations: 3
    webhooks:
      - {name: load, type: "", url: "http://loadtester/"}
    alerts:
      - {name: quiet, severity: "", providerRef: {name: slack}}
status:
  phase: ""
  failedChecks: 0
  canaryWeight: 0
  iterations: 0
"#,
    );
    assert_eq!(canary.spec.provider.as_deref(), Some("gatewayapi"));
    assert!(canary.is_knative_target());
    assert_eq!(canary.strategy(), DeploymentStrategy::BlueGreen);
    let analysis = canary.analysis().expect("analysis");
    assert_eq!(analysis.webhooks()[0].type_, Some(HookType::Unset));
    assert_eq!(analysis.webhooks()[0].hook_type(), HookType::Rollout);
    assert_eq!(
        canary.status.as_ref().map(|s| s.phase()),
        Some(CanaryPhase::Unset)
    );

    let template: MetricTemplate = assert_roundtrip(
        r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: t}
spec:
  provider: {type: opentelemetry}
  query: up
"#,
    );
    assert_eq!(template.spec.provider.type_, "opentelemetry");
}

#[test]
fn the_deprecated_canary_analysis_is_read_when_analysis_is_absent() {
    let canary: Canary = assert_roundtrip(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {apiVersion: apps/v1, kind: DaemonSet, name: podinfo}
  service: {port: 9898}
  canaryAnalysis: {interval: 2m, threshold: 3, iterations: 4, match: [{headers: {x-canary: {exact: "1"}}}]}
"#,
    );
    assert_eq!(canary.analysis_interval(), std::time::Duration::from_secs(120));
    assert_eq!(canary.strategy(), DeploymentStrategy::AbTesting);
    assert!(!canary.skip_analysis());
}

#[test]
fn a_canary_without_a_service_round_trips() {
    // Flagger's CRD does not require `service`; such a Canary must still read (and be reported by
    // validation) rather than fail to deserialise.
    let canary: Canary = assert_roundtrip(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  analysis: {interval: 1m, threshold: 1, stepWeight: 10}
"#,
    );
    assert!(canary.spec.service.is_unset());
}
