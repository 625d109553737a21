//! Istio-shaped settings that a Canary carries in `spec.service` (and `spec.analysis.match`) and that the
//! Istio router copies into the generated `VirtualService` and `DestinationRule`s.
//!
//! Only the fields present in Flagger's Canary CRD are modelled: the API server prunes everything else, so
//! a field Flagger does not declare can never reach the controller.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a string in a request is compared: exactly one of `exact`, `prefix` or `regex` (and, in A/B
/// analysis header matches only, `suffix`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"not": {"anyOf": [{"required": ["exact"]}, {"required": ["prefix"]}, {"required": ["regex"]}]}},
    {"required": ["exact"]},
    {"required": ["prefix"]},
    {"required": ["regex"]}
]))]
pub struct StringMatch {
    /// The value must equal this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub exact: Option<String>,

    /// The value must start with this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub prefix: Option<String>,

    /// The value must end with this string. Accepted only in `analysis.match[].headers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub suffix: Option<String>,

    /// The value must match this RE2 regular expression (https://github.com/google/re2/wiki/Syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub regex: Option<String>,
}

/// Conditions a request must meet for a route to apply. All conditions of one entry must hold; the
/// entries of a list are alternatives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// A name for this match, shown in Istio's access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub name: Option<String>,

    /// Matches the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,

    /// Matches the URI scheme, e.g. `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,

    /// Matches the HTTP method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,

    /// Matches the HTTP authority (the `Host` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,

    /// Matches request headers by name (lower-case). The key `cookie` matches the Cookie header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, StringMatch>>,

    /// Matches the port the request was addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,

    /// Matches the labels of the calling workload (only for the `mesh` gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("additionalProperties" = {"type": "string", "format": "string"}))]
    pub source_labels: Option<BTreeMap<String, String>>,

    /// Names of the gateways this match is restricted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub gateways: Option<Vec<String>>,

    /// Matches query parameters by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<BTreeMap<String, StringMatch>>,

    /// Compares the URI case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,

    /// Headers that must not match: same syntax as `headers`, opposite meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_headers: Option<BTreeMap<String, StringMatch>>,

    /// Matches only calls from workloads in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub source_namespace: Option<String>,
}

/// How failed HTTP requests are retried.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// How many times a request is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,

    /// Timeout of each attempt, e.g. `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,

    /// Comma-separated conditions that trigger a retry, e.g. `gateway-error,connect-failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub retry_on: Option<String>,
}

/// Header changes applied to requests and responses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Changes to the request headers before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,

    /// Changes to the response headers before returning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Header additions, overwrites and removals.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Headers to append (a header already present gets another value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("additionalProperties" = {"type": "string", "format": "string"}))]
    pub add: Option<BTreeMap<String, String>>,

    /// Headers to overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("additionalProperties" = {"type": "string", "format": "string"}))]
    pub set: Option<BTreeMap<String, String>>,

    /// Names of headers to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub remove: Option<Vec<String>>,
}

/// Cross-Origin Resource Sharing (CORS) policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Origins allowed to make CORS requests, as exact strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub allow_origin: Option<Vec<String>>,

    /// Origins allowed to make CORS requests, as string matches (each exactly one of exact, prefix, regex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {
        "type": "object",
        "oneOf": [{"required": ["exact"]}, {"required": ["prefix"]}, {"required": ["regex"]}],
        "properties": {
            "exact": {"type": "string", "format": "string"},
            "prefix": {"type": "string", "format": "string"},
            "regex": {"type": "string", "format": "string"}
        }
    }))]
    pub allow_origins: Option<Vec<StringMatch>>,

    /// HTTP methods allowed in CORS requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub allow_methods: Option<Vec<String>>,

    /// Headers allowed in CORS requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub allow_headers: Option<Vec<String>>,

    /// Headers browsers may read from CORS responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub expose_headers: Option<Vec<String>>,

    /// How long browsers may cache the preflight result, as a duration (e.g. `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,

    /// Whether credentialed CORS requests are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// Istio traffic policy copied into both generated `DestinationRule`s (primary and canary).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,

    /// Limits on connections to the upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,

    /// Ejection of unhealthy hosts from the load-balancing pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,

    /// TLS settings for connections to the upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// Connection pool limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// HTTP connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// HTTP/1.1 and HTTP/2 connection pool limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Whether HTTP/1.1 connections to the destination are upgraded to HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,

    /// Most pending HTTP requests to a destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "http1MaxPendingRequests")]
    pub http1_max_pending_requests: Option<i32>,

    /// Most requests to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "http2MaxRequests")]
    pub http2_max_requests: Option<i32>,

    /// How long an idle upstream connection is kept, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,

    /// Most requests per connection to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,

    /// Most outstanding retries to all hosts of a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
}

/// Whether HTTP/1.1 connections are upgraded to HTTP/2.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Use the mesh-wide default.
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Always upgrade.
    Upgrade,
}

/// Load balancer settings: either a `simple` algorithm or a `consistentHash`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// A standard load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,

    /// Session affinity by hashing a header, cookie, source IP or query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,

    /// Locality-aware load balancing, overriding the mesh-wide settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,

    /// How long a new endpoint is warmed up with a growing share of traffic, e.g. `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<String>,
}

/// A standard load-balancing algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Round robin.
    RoundRobin,
    /// Fewest active connections (deprecated by Istio in favour of `LEAST_REQUEST`).
    LeastConn,
    /// A random host.
    Random,
    /// Forward to the original destination address.
    Passthrough,
    /// Fewest outstanding requests.
    LeastRequest,
}

/// Consistent-hash load balancing: exactly one of `httpHeaderName`, `httpCookie`, `useSourceIp` and
/// `httpQueryParameterName`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// Hash on this HTTP header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub http_header_name: Option<String>,

    /// Hash on this HTTP cookie (created if missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,

    /// Hash on the source IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,

    /// Hash on this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub http_query_parameter_name: Option<String>,

    /// Minimum number of virtual nodes of the hash ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// The cookie hashed for consistent-hash load balancing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub name: Option<String>,

    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub path: Option<String>,

    /// Cookie lifetime, e.g. `0s` for a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Locality-aware load balancing: `distribute` or `failover` (not both).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Traffic shares per locality. Only one of `distribute` and `failover` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribute: Option<Vec<LocalityDistribute>>,

    /// Turns locality load balancing on or off for this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Where traffic goes when a region has no healthy endpoints. Only one of `distribute` and `failover`
    /// may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Vec<LocalityFailover>>,
}

/// Traffic shares from one originating locality.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Originating locality, `/`-separated, e.g. `us-west/zone1/*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub from: Option<String>,

    /// Upstream localities and the weight of traffic each receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<BTreeMap<String, u32>>,
}

/// A region failover rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Originating region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub from: Option<String>,

    /// Region that receives the traffic when `from` has no healthy endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub to: Option<String>,
}

/// Ejection of unhealthy hosts from the load-balancing pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Minimum ejection time, multiplied by the number of times a host was ejected, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,

    /// 5xx responses in a row before a host is ejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,

    /// Errors in a row before a host is ejected (deprecated by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,

    /// Gateway errors (502, 503, 504) in a row before a host is ejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub consecutive_gateway_errors: Option<u32>,

    /// Locally originated failures in a row before a host is ejected; needs
    /// `splitExternalLocalOriginErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub consecutive_local_origin_failures: Option<u32>,

    /// Time between ejection sweeps, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,

    /// Most hosts (in percent) that may be ejected at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,

    /// Outlier detection stays on only while at least this percentage of hosts is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,

    /// Counts local origin failures separately from upstream errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
}

/// TLS settings for connections to the upstream service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// File with the CA certificates that verify the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub ca_certificates: Option<String>,

    /// File with the client certificate; required when `mode` is `MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub client_certificate: Option<String>,

    /// Whether and how TLS is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsMode>,

    /// File with the client private key; required when `mode` is `MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub private_key: Option<String>,

    /// Server name sent in the TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub sni: Option<String>,

    /// Names accepted in the server certificate's subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "format": "string"}))]
    pub subject_alt_names: Option<Vec<String>>,
}

/// Whether and how TLS is used towards the upstream service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plain text.
    Disable,
    /// TLS, verifying the server.
    Simple,
    /// Mutual TLS with the given client certificate.
    Mutual,
    /// Mutual TLS with Istio's workload certificates.
    IstioMutual,
}
