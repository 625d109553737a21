use flagger_api::{AlertProvider, Canary, MetricTemplate};
use serde_json::{Value, json};

use super::*;

/// Applies a JSON merge patch (RFC 7386): objects merge, `null` deletes, anything else replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn canary(patch: Value) -> Canary {
    let mut doc = json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1m",
                "threshold": 5,
                "stepWeight": 10,
                "maxWeight": 50,
                "metrics": [{"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}}]
            }
        }
    });
    merge(&mut doc, patch);
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("test canary does not parse: {e}"))
}

fn problems_with(c: &Canary, ctx: &ValidationContext) -> Vec<String> {
    validate_canary(c, ctx)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn problems(patch: Value) -> Vec<String> {
    problems_with(&canary(patch), &ValidationContext::default())
}

/// Asserts that exactly the given problems (as `path: message` prefixes) are reported, in order.
#[track_caller]
fn assert_problems(found: &[String], expected: &[&str]) {
    assert_eq!(
        found.len(),
        expected.len(),
        "found: {found:#?}\nexpected: {expected:#?}"
    );
    for (f, e) in found.iter().zip(expected) {
        assert!(
            f.starts_with(e),
            "found {f:?}, expected it to start with {e:?}\nall: {found:#?}"
        );
    }
}

#[test]
fn the_base_canary_is_valid() {
    assert_problems(&problems(json!({})), &[]);
}

#[test]
fn unknown_provider_would_become_istio() {
    assert_problems(
        &problems(json!({"spec": {"provider": "gatewayapi"}})),
        &["spec.provider: unknown provider \"gatewayapi\"; Flagger would silently use istio instead"],
    );
}

#[test]
fn empty_provider_is_rejected_by_the_crd() {
    assert_problems(
        &problems(json!({"spec": {"provider": ""}})),
        &[
            "spec.provider: must not be empty (the CRD rejects it); remove the field to use the -mesh-provider default",
        ],
    );
}

#[test]
fn provider_with_a_mesh_suffix_is_not_allowed_by_the_crd() {
    assert_problems(
        &problems(json!({"spec": {"provider": "smi:v1alpha3:osm"}})),
        &["spec.provider: \"smi:v1alpha3:osm\" is not allowed by the Canary CRD"],
    );
}

#[test]
fn every_crd_provider_value_is_accepted_with_its_requirements() {
    for value in CANARY_PROVIDER_VALUES {
        let patch = match value {
            "knative" => {
                json!({"spec": {"provider": value, "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}}})
            }
            "nginx" | "skipper" => {
                json!({"spec": {"provider": value, "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}}})
            }
            "apisix" => {
                json!({"spec": {"provider": value, "routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"}}})
            }
            "gatewayapi:v1" | "gatewayapi:v1beta1" => {
                json!({"spec": {"provider": value, "service": {"gatewayRefs": [{"name": "gw"}]}}})
            }
            "kubernetes" => {
                json!({"spec": {"provider": value, "analysis": {"stepWeight": null, "maxWeight": null, "iterations": 5}}})
            }
            _ => json!({"spec": {"provider": value}}),
        };
        assert_problems(&problems(patch), &[]);
    }
}

#[test]
fn knative_target_needs_the_knative_provider() {
    let knative_target =
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"});
    assert_problems(
        &problems(json!({"spec": {"provider": "istio", "targetRef": knative_target}})),
        &["spec.provider: a Knative Service target needs spec.provider: knative"],
    );
    // The global flag is not enough, as in Flagger.
    let ctx = ValidationContext {
        mesh_provider: MeshProvider::Knative,
        ..ValidationContext::default()
    };
    let found = problems_with(&canary(json!({"spec": {"targetRef": knative_target}})), &ctx);
    assert_problems(
        &found,
        &["spec.provider: a Knative Service target needs spec.provider: knative"],
    );
    assert!(
        found[0].ends_with("got knative (from -mesh-provider)"),
        "{found:?}"
    );
}

#[test]
fn knative_provider_needs_a_knative_target() {
    assert_problems(
        &problems(json!({"spec": {"provider": "knative"}})),
        &[
            "spec.targetRef: the knative provider needs a Knative Service target (apiVersion serving.knative.dev/v1, kind Service), got apps/v1/Deployment",
        ],
    );
    // A plain Kubernetes Service is not a Knative Service.
    assert_problems(
        &problems(
            json!({"spec": {"provider": "knative", "targetRef": {"apiVersion": "v1", "kind": "Service"}}}),
        ),
        &["spec.targetRef: the knative provider needs a Knative Service target"],
    );
}

#[test]
fn knative_target_cannot_have_an_autoscaler() {
    assert_problems(
        &problems(json!({"spec": {
            "provider": "knative",
            "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service"},
            "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
        }})),
        &["spec.autoscalerRef: cannot be used with a Knative Service target"],
    );
}

#[test]
fn target_and_autoscaler_kinds_follow_the_crd_enums() {
    assert_problems(
        &problems(json!({"spec": {
            "targetRef": {"kind": "StatefulSet"},
            "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "VerticalPodAutoscaler", "name": "podinfo"}
        }})),
        &[
            "spec.targetRef.kind: \"StatefulSet\" is not supported; expected Deployment, DaemonSet or Service",
            "spec.autoscalerRef.kind: \"VerticalPodAutoscaler\" is not supported",
        ],
    );
}

#[test]
fn cross_namespace_refs_are_checked_only_when_blocked() {
    let patch = json!({"spec": {
        "provider": "gloo",
        "upstreamRef": {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "up", "namespace": "gloo-system"},
        "analysis": {
            "metrics": [
                {"name": "a", "templateRef": {"name": "t1", "namespace": "istio-system"}},
                {"name": "b", "templateRef": {"name": "t2", "namespace": "test"}},
                {"name": "c", "templateRef": {"name": "t3"}}
            ],
            "alerts": [{"name": "x", "providerRef": {"name": "slack", "namespace": "flagger"}}]
        }
    }});
    assert_problems(&problems(patch.clone()), &[]);
    let ctx = ValidationContext {
        no_cross_namespace_refs: true,
        ..ValidationContext::default()
    };
    assert_problems(
        &problems_with(&canary(patch), &ctx),
        &[
            "spec.upstreamRef.namespace: Gloo upstream gloo-system/up is in another namespace than the canary (test)",
            "spec.analysis.metrics[0].templateRef.namespace: metric template istio-system/t1 is in another namespace",
            "spec.analysis.alerts[0].providerRef.namespace: alert provider flagger/slack is in another namespace",
        ],
    );
}

#[test]
fn cross_namespace_uses_the_default_namespace_for_objects_without_one() {
    let ctx = ValidationContext {
        no_cross_namespace_refs: true,
        default_namespace: "apps".into(),
        ..ValidationContext::default()
    };
    let patch = json!({
        "metadata": {"namespace": null},
        "spec": {"analysis": {"metrics": [
            {"name": "a", "templateRef": {"name": "t", "namespace": "apps"}},
            {"name": "b", "templateRef": {"name": "t", "namespace": "test"}}
        ]}}
    });
    assert_problems(
        &problems_with(&canary(patch), &ctx),
        &[
            "spec.analysis.metrics[1].templateRef.namespace: metric template test/t is in another namespace than the canary (apps)",
        ],
    );
}

#[test]
fn session_affinity_cookie_names_must_differ() {
    assert_problems(
        &problems(
            json!({"spec": {"analysis": {"sessionAffinity": {"cookieName": "c", "primaryCookieName": "c"}}}}),
        ),
        &["spec.analysis.sessionAffinity.primaryCookieName: must differ from cookieName (both are \"c\")"],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"sessionAffinity": {"cookieName": ""}}}})),
        &["spec.analysis.sessionAffinity.cookieName: required"],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"sessionAffinity": {"cookieName": "c", "maxAge": -1}}}})),
        &["spec.analysis.sessionAffinity.maxAge: must not be negative, got -1"],
    );
}

#[test]
fn session_affinity_needs_istio_or_gateway_api() {
    assert_problems(
        &problems(
            json!({"spec": {"provider": "linkerd", "analysis": {"sessionAffinity": {"cookieName": "c"}}}}),
        ),
        &[
            "spec.analysis.sessionAffinity: session affinity is supported only by the istio and gatewayapi providers, not linkerd",
        ],
    );
}

#[test]
fn durations_must_parse() {
    assert_problems(
        &problems(json!({"spec": {
            "service": {
                "timeout": "30",
                "backendTimeout": "1d",
                "retries": {"attempts": 3, "perTryTimeout": "two seconds"},
                "corsPolicy": {"maxAge": "24hours"}
            },
            "analysis": {
                "interval": "1 minute",
                "metrics": [{"name": "request-success-rate", "interval": "5min"}],
                "webhooks": [{"name": "w", "url": "http://w/", "timeout": "-5s"}]
            }
        }})),
        &[
            "spec.service.timeout: not a valid duration (such as 30s, 1m or 1m30s): missing unit in duration \"30\"",
            "spec.service.backendTimeout: not a valid duration (such as 30s, 1m or 1m30s): unknown unit \"d\" in duration \"1d\"",
            "spec.service.retries.perTryTimeout: not a valid duration",
            "spec.service.corsPolicy.maxAge: not a valid duration",
            "spec.analysis.interval: not a valid duration",
            "spec.analysis.metrics[0].interval: not a valid duration (such as 30s, 1m or 1m30s): unknown unit \"min\"",
            "spec.analysis.webhooks[0].timeout: not a valid duration (such as 30s, 1m or 1m30s): duration \"-5s\" is negative",
        ],
    );
}

#[test]
fn intervals_must_match_the_crd_pattern() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {
            "interval": "1h",
            "metrics": [{"name": "request-success-rate", "interval": "1m30s"}],
            "webhooks": [{"name": "w", "url": "http://w/", "timeout": "0.5m"}]
        }}})),
        &[
            "spec.analysis.interval: \"1h\" does not match the CRD pattern ^[0-9]+(m|s)",
            "spec.analysis.webhooks[0].timeout: \"0.5m\" does not match the CRD pattern",
        ],
    );
}

#[test]
fn analysis_needs_interval_threshold_and_exactly_one_strategy_key() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"interval": null, "threshold": null, "stepWeight": null}}})),
        &[
            "spec.analysis.interval: required",
            "spec.analysis.threshold: required",
            "spec.analysis: one of iterations (A/B testing, blue/green), stepWeight or stepWeights (canary) is required",
        ],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"iterations": 10, "stepWeights": [10, 20]}}})),
        &[
            "spec.analysis: only one of iterations, stepWeight and stepWeights may be set (the CRD's oneOf), found iterations and stepWeight and stepWeights",
        ],
    );
}

#[test]
fn analysis_is_required_and_canary_analysis_is_not_in_the_crd() {
    assert_problems(
        &problems(
            json!({"spec": {"analysis": null, "canaryAnalysis": {"interval": "1m", "threshold": 1, "stepWeight": 10}}}),
        ),
        &[
            "spec.canaryAnalysis: is not part of the Canary CRD",
            "spec.analysis: required",
        ],
    );
}

#[test]
fn step_weights_must_increase_strictly_within_1_to_100() {
    assert_problems(
        &problems(
            json!({"spec": {"analysis": {"stepWeight": null, "stepWeights": [0, 10, 10, 5, 50, 120]}}}),
        ),
        &[
            "spec.analysis.stepWeights[0]: must be between 1 and 100, got 0",
            "spec.analysis.stepWeights[2]: must be greater than the previous step (10), got 10",
            "spec.analysis.stepWeights[3]: must be greater than the previous step (10), got 5",
            "spec.analysis.stepWeights[5]: must be between 1 and 100, got 120",
        ],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": null, "stepWeights": []}}})),
        &["spec.analysis.stepWeights: must not be empty"],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": null, "stepWeights": [1, 2, 10, 80]}}})),
        &[],
    );
}

#[test]
fn step_weight_must_be_1_to_100() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": 0}}})),
        &[
            "spec.analysis.stepWeight: must be between 1 and 100, got 0; with a step of 0 the canary never advances",
        ],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": 120, "maxWeight": null}}})),
        &["spec.analysis.stepWeight: must be between 1 and 100, got 120"],
    );
}

#[test]
fn max_weight_must_be_reachable() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"maxWeight": 150}}})),
        &[
            "spec.analysis.maxWeight: must be between 1 and 100, got 150; the canary weight never exceeds 100, so the analysis would never promote",
        ],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"maxWeight": 0}}})),
        &["spec.analysis.maxWeight: must be between 1 and 100, got 0"],
    );
    // Overshooting is fine: 20, 40, 60 promotes at 60 as in Flagger.
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": 20, "maxWeight": 50}}})),
        &[],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": 80, "maxWeight": 30}}})),
        &[],
    );
}

#[test]
fn iterations_and_promotion_step_ranges() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeight": null, "maxWeight": null, "iterations": 0}}})),
        &["spec.analysis.iterations: must be at least 1, got 0"],
    );
    assert_problems(
        &problems(json!({"spec": {"analysis": {"stepWeightPromotion": 101}}})),
        &["spec.analysis.stepWeightPromotion: must be between 0 and 100, got 101"],
    );
}

#[test]
fn kubernetes_provider_cannot_shift_traffic_or_match() {
    assert_problems(
        &problems(
            json!({"spec": {"provider": "kubernetes", "analysis": {"match": [{"headers": {"x": {"exact": "y"}}}]}}}),
        ),
        &[
            "spec.analysis.match: A/B testing is not supported by the kubernetes provider",
            "spec.analysis: progressive traffic shifting (stepWeight, stepWeights) is not supported by the kubernetes provider",
        ],
    );
}

#[test]
fn ab_testing_with_a_provider_that_ignores_match_is_reported() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 10, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    assert_problems(
        &problems(json!({"spec": {"provider": "linkerd", "analysis": ab.clone()}})),
        &[
            "spec.analysis.match: the linkerd provider cannot route by request match; during the A/B iterations it would send all traffic to the canary",
        ],
    );
    assert_problems(
        &problems(json!({"spec": {"provider": "contour", "analysis": ab}})),
        &[],
    );
}

#[test]
fn mirroring_needs_a_provider_that_mirrors() {
    assert_problems(
        &problems(
            json!({"spec": {"provider": "nginx", "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "i"}, "analysis": {"mirror": true}}}),
        ),
        &[
            "spec.analysis.mirror: traffic mirroring is not supported by the nginx provider (only by istio, and by gatewayapi in blue/green)",
        ],
    );
    // Gateway API mirrors only in blue/green.
    let gw = json!({"gatewayRefs": [{"name": "gw"}]});
    assert_problems(
        &problems(
            json!({"spec": {"provider": "gatewayapi:v1", "service": gw.clone(), "analysis": {"mirror": true}}}),
        ),
        &[
            "spec.analysis.mirror: the gatewayapi:v1 provider mirrors traffic only in blue/green (iterations), not while shifting weights",
        ],
    );
    assert_problems(
        &problems(
            json!({"spec": {"provider": "gatewayapi:v1", "service": gw, "analysis": {"mirror": true, "stepWeight": null, "maxWeight": null, "iterations": 5}}}),
        ),
        &[],
    );
    assert_problems(&problems(json!({"spec": {"analysis": {"mirror": true}}})), &[]);
}

#[test]
fn providers_that_need_references() {
    assert_problems(
        &problems(json!({"spec": {"provider": "nginx"}})),
        &["spec.ingressRef: required by the nginx provider"],
    );
    assert_problems(
        &problems(json!({"spec": {"provider": "skipper"}})),
        &["spec.ingressRef: required by the skipper provider"],
    );
    assert_problems(
        &problems(json!({"spec": {"provider": "apisix"}})),
        &["spec.routeRef: required by the apisix provider"],
    );
    assert_problems(
        &problems(
            json!({"spec": {"provider": "apisix", "routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": ""}}}),
        ),
        &["spec.routeRef.name: required"],
    );
    assert_problems(
        &problems(
            json!({"spec": {"provider": "nginx", "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": ""}}}),
        ),
        &["spec.ingressRef.name: required"],
    );
    assert_problems(
        &problems(json!({"spec": {"provider": "gatewayapi:v1beta1", "service": {"gatewayRefs": []}}})),
        &["spec.service.gatewayRefs: at least one gateway is required by the gatewayapi:v1beta1 provider"],
    );
    // The requirement follows -mesh-provider for canaries without spec.provider.
    let ctx = ValidationContext {
        mesh_provider: MeshProvider::Nginx,
        ..ValidationContext::default()
    };
    assert_problems(
        &problems_with(&canary(json!({})), &ctx),
        &["spec.ingressRef: required by the nginx provider"],
    );
}

#[test]
fn metrics_need_a_query_a_template_or_a_builtin_name() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"metrics": [
            {"name": "request-duration", "thresholdRange": {"max": 500}},
            {"name": "error-rate", "thresholdRange": {"max": 1}},
            {"name": "error-rate-inline", "query": "sum(rate(x[1m]))"},
            {"name": "error-rate-template", "templateRef": {"name": "error-rate"}},
            {"name": "", "query": " "}
        ]}}})),
        &[
            "spec.analysis.metrics[1]: \"error-rate\" is not a builtin metric (request-success-rate, request-duration) and has neither templateRef nor query, so every check fails",
            "spec.analysis.metrics[4].name: required",
            "spec.analysis.metrics[4]: \"\" is not a builtin metric",
        ],
    );
}

#[test]
fn threshold_range_min_must_not_exceed_max() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99, "max": 95}},
            {"name": "request-duration", "thresholdRange": {"min": 100, "max": 100}}
        ]}}})),
        &["spec.analysis.metrics[0].thresholdRange: min (99) is greater than max (95), so no value can pass"],
    );
}

#[test]
fn webhook_urls_must_be_absolute_http_urls() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"webhooks": [
            {"name": "ok", "url": "http://flagger-loadtester.test/"},
            {"name": "relative", "url": "/gate/check"},
            {"name": "scheme", "url": "ftp://example.com/x"},
            {"name": "spaces", "url": "http://load tester/"},
            {"name": "empty", "url": ""},
            {"name": "", "url": "https://example.com", "retries": -1}
        ]}}})),
        &[
            "spec.analysis.webhooks[1].url: \"/gate/check\" is not an absolute URL; it needs a scheme, such as http://",
            "spec.analysis.webhooks[2].url: \"ftp://example.com/x\" must be an http or https URL, not ftp",
            "spec.analysis.webhooks[3].url: \"http://load tester/\" is not a valid URL",
            "spec.analysis.webhooks[4].url: required",
            "spec.analysis.webhooks[5].name: required",
            "spec.analysis.webhooks[5].retries: must not be negative, got -1",
        ],
    );
}

#[test]
fn metrics_server_must_be_a_url() {
    assert_problems(
        &problems(json!({"spec": {"metricsServer": "prometheus:9090"}})),
        &[
            "spec.metricsServer: \"prometheus:9090\" is not an absolute URL; it needs a scheme, such as http://",
        ],
    );
}

#[test]
fn alerts_need_names() {
    assert_problems(
        &problems(json!({"spec": {"analysis": {"alerts": [{"name": "", "providerRef": {"name": ""}}]}}})),
        &[
            "spec.analysis.alerts[0].name: required",
            "spec.analysis.alerts[0].providerRef.name: required",
        ],
    );
}

#[test]
fn all_problems_are_reported_together() {
    let found = problems(json!({"spec": {
        "provider": "gatewayapi",
        "analysis": {"interval": "1x", "stepWeight": 0, "maxWeight": 200, "metrics": [{"name": "custom"}]}
    }}));
    assert_eq!(found.len(), 5, "{found:#?}");
}

fn template(provider: Value) -> MetricTemplate {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "t", "namespace": "test"},
        "spec": {"provider": provider, "query": "up"}
    }))
    .unwrap_or_else(|e| panic!("test template does not parse: {e}"))
}

fn template_problems(provider: Value) -> Vec<String> {
    validate_metric_template(&template(provider))
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn metric_templates() {
    assert_problems(
        &template_problems(json!({"type": "prometheus", "address": "http://prometheus:9090"})),
        &[],
    );
    assert_problems(&template_problems(json!({"type": "keptn"})), &[]);
    assert_problems(
        &template_problems(json!({"type": "prom"})),
        &[
            "spec.provider.type: unknown metric provider type \"prom\"; expected one of: prometheus, influxdb, datadog, externalmetrics, stackdriver, cloudwatch, newrelic, graphite, dynatrace, keptn, splunk",
        ],
    );
    assert_problems(
        &template_problems(json!({"type": "graphite", "address": "graphite:8080"})),
        &[
            "spec.provider.address: \"graphite:8080\" is not an absolute URL; it needs a scheme, such as http://",
        ],
    );
    assert_problems(
        &template_problems(json!({"type": "cloudwatch"})),
        &["spec.provider.region: required by the cloudwatch provider"],
    );
    assert_problems(
        &template_problems(json!({"type": "dynatrace"})),
        &[
            "spec.provider.address: required by the dynatrace provider",
            "spec.provider.secretRef: required by the dynatrace provider (it holds the API credentials)",
        ],
    );
    assert_problems(
        &template_problems(json!({"type": "datadog"})),
        &["spec.provider.secretRef: required by the datadog provider"],
    );
    let mut empty_query = template(json!({"type": "prometheus"}));
    empty_query.spec.query = "  ".into();
    assert_eq!(
        validate_metric_template(&empty_query),
        Err(vec![FieldError::new("spec.query", "required")])
    );
}

fn alert_problems(spec: Value) -> Vec<String> {
    let provider: AlertProvider = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "AlertProvider",
        "metadata": {"name": "a", "namespace": "test"},
        "spec": spec
    }))
    .unwrap_or_else(|e| panic!("test alert provider does not parse: {e}"));
    validate_alert_provider(&provider)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn alert_providers() {
    assert_problems(
        &alert_problems(json!({"type": "slack", "address": "https://hooks.slack.com/services/x"})),
        &[],
    );
    assert_problems(
        &alert_problems(json!({"type": "gchat", "secretRef": {"name": "s"}})),
        &[],
    );
    assert_problems(
        &alert_problems(json!({"type": "teams"})),
        &[
            "spec.type: unknown alert provider type \"teams\"; expected one of: slack, msteams, discord, rocket, gchat",
            "spec: one of address or secretRef (a Secret with an address key) is required",
        ],
    );
    assert_problems(
        &alert_problems(json!({"type": "slack", "address": "https://x.example", "secretRef": {"name": "s"}})),
        &["spec: only one of address and secretRef may be set"],
    );
    assert_problems(
        &alert_problems(
            json!({"type": "msteams", "address": "outlook.office.com/webhook", "proxy": "http://proxy:3128"}),
        ),
        &[
            "spec.address: \"outlook.office.com/webhook\" is not an absolute URL; it needs a scheme, such as http://",
        ],
    );
}

#[test]
fn interval_pattern_matches_like_the_crd() {
    for ok in ["1m", "30s", "1m30s", "10ms", "90s"] {
        assert!(matches_interval_pattern(ok), "{ok}");
    }
    for bad in ["1h", "m", "1.5m", " 1m", ""] {
        assert!(!matches_interval_pattern(bad), "{bad}");
    }
}
