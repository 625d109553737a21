//! Command line: Flagger's flags (Go `flag` syntax accepted), and the `run`, `crds` and `validate`
//! subcommands.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, CommandFactory, Parser, Subcommand};
use flagger_core::goflag::{self, FlagError, known_flags, parse_bool as parse_go_bool};
use flagger_core::{duration::parse_go_duration, provider::MeshProvider};

const ABOUT: &str = "flagger-rs: progressive delivery for Kubernetes, a drop-in replacement for Flagger 1.44";

const LONG_ABOUT: &str = "\
flagger-rs: progressive delivery for Kubernetes, a drop-in replacement for Flagger 1.44.

Flagger's flags are accepted unchanged, in Go style (-mesh-provider=istio, -mesh-provider istio,
-enable-leader-election, -enable-leader-election=false) as well as GNU style (--mesh-provider=istio).
Flags may come before or after the subcommand. Without a subcommand, flagger runs the operator, so the
arguments of Flagger's Helm chart and kustomize manifests work as they are.";

const AFTER_HELP: &str = "\
Environment variables (a non-empty value wins over the flag, as in Flagger):
  SLACK_URL, SLACK_TOKEN, SLACK_PROXY_URL    override -slack-url, -slack-token, -slack-proxy-url
  MSTEAMS_URL, MSTEAMS_PROXY_URL             override -msteams-url, -msteams-proxy-url
  EVENT_WEBHOOK_URL                          overrides -event-webhook

The Kubernetes logging (klog) flags of Flagger's binary (-v, -logtostderr, -alsologtostderr, -log_dir,
-log_file, -log_file_max_size, -vmodule, -stderrthreshold, ...) are accepted for compatibility and ignored;
use -log-level instead.";

/// `flagger [FLAGS] [run|crds|validate ...]`
#[derive(Debug, Parser)]
#[command(
    name = "flagger",
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    disable_version_flag = true,
    args_conflicts_with_subcommands = false,
    subcommand_required = false,
    args_override_self = true
)]
pub struct Cli {
    /// Operator configuration (Flagger's flags).
    #[command(flatten, next_help_heading = "Flagger flags")]
    pub flags: Flags,

    /// Ignored Kubernetes logging flags.
    #[command(flatten)]
    pub klog: KlogFlags,

    /// Print the version and exit.
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub version: bool,

    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator (the default). Not implemented in this build yet: checks the configuration and
    /// exits with an error.
    Run,
    /// Print the CustomResourceDefinitions (Canary, MetricTemplate, AlertProvider) as multi-document YAML,
    /// ready for `kubectl apply -f -`.
    Crds,
    /// Check Canary, MetricTemplate and AlertProvider manifests offline.
    #[command(long_about = VALIDATE_LONG_ABOUT)]
    Validate(ValidateArgs),
}

const VALIDATE_LONG_ABOUT: &str = "\
Check Canary, MetricTemplate and AlertProvider manifests offline, without a cluster.

Every file may hold several YAML documents. Each problem is printed on its own line as

  FILE:DOC_INDEX: KIND/NAME: FIELD.PATH: MESSAGE

where DOC_INDEX counts the non-empty documents of the file from 0. All problems of a document are
reported, not only the first; the exception is a value of the wrong type (a word where a number belongs),
which stops the checks of that document. The checks are: what the API server rejects through Flagger's CRD
schema (types, enums, required fields, unknown fields, the analysis strategy keys, interval patterns),
what Flagger's controller refuses before it starts an analysis, and mistakes Flagger accepts silently
(unknown providers that it turns into Istio, durations that do not parse, weights that never promote,
metrics that can never pass, strategies the provider cannot route, URLs that cannot be called).

Documents of other API groups (Deployments, Services, ...) are skipped silently, so the output of
`kustomize build` or `helm template` can be piped in. The items of a `List` (`kubectl get -o yaml`)
are checked one by one; their field paths start with `items[N].`.

The flags -mesh-provider, -no-cross-namespace-refs and -namespace (the namespace of documents that have
none; default \"default\") are taken into account.

Exit status: 0 when every document is valid (nothing is printed), 1 when there are problems, 2 when a
file cannot be read or the command line is wrong.";

/// Arguments of `flagger validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// YAML files to check; `-` reads standard input.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Flagger's own flags, with Flagger's names and defaults.
#[derive(Debug, Args)]
pub struct Flags {
    /// Path to a kubeconfig. Only needed when running outside the cluster.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "",
        hide_default_value = true
    )]
    pub kubeconfig: String,

    /// Maximum queries per second to the Kubernetes API server.
    #[arg(
        long,
        global = true,
        value_name = "QPS",
        default_value_t = 100,
        allow_negative_numbers = true
    )]
    pub kubeconfig_qps: i32,

    /// Maximum burst of queries to the Kubernetes API server.
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 250,
        allow_negative_numbers = true
    )]
    pub kubeconfig_burst: i32,

    /// Address of the Kubernetes API server; overrides the kubeconfig. Only needed outside the cluster.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub master: String,

    /// Prometheus URL used for the builtin metrics (request-success-rate, request-duration) and inline
    /// queries. A canary's spec.metricsServer overrides it.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://prometheus:9090"
    )]
    pub metrics_server: String,

    /// How often the scheduler looks for new, changed and deleted canaries (a Go duration such as 10s).
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub control_loop_interval: Duration,

    /// Log level: debug, info, warn (or warning), error, fatal, panic.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "debug")]
    pub log_level: String,

    /// Port of the HTTP server (/metrics, /healthz).
    #[arg(long, global = true, value_name = "PORT", default_value = "8080")]
    pub port: String,

    /// Slack incoming webhook URL for the global notifier (used by canaries without analysis.alerts).
    /// Env SLACK_URL wins.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub slack_url: String,

    /// Slack bot token, sent as a bearer token. Env SLACK_TOKEN wins.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        default_value = "",
        hide_default_value = true
    )]
    pub slack_token: String,

    /// HTTP proxy for Slack. Env SLACK_PROXY_URL wins.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub slack_proxy_url: String,

    /// User name the global Slack notifier posts as.
    #[arg(long, global = true, value_name = "NAME", default_value = "flagger")]
    pub slack_user: String,

    /// Slack channel of the global notifier (required when a Slack URL is set).
    #[arg(
        long,
        global = true,
        value_name = "CHANNEL",
        default_value = "",
        hide_default_value = true
    )]
    pub slack_channel: String,

    /// URL that receives every event of every canary as a webhook. Env EVENT_WEBHOOK_URL wins.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub event_webhook: String,

    /// Microsoft Teams incoming webhook URL for the global notifier; replaces Slack when set.
    /// Env MSTEAMS_URL wins.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub msteams_url: String,

    /// HTTP proxy for Microsoft Teams. Env MSTEAMS_PROXY_URL wins.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub msteams_proxy_url: String,

    /// Comma-separated prefixes of the target's labels and annotations that are copied to the primary
    /// workload; `*` copies all.
    #[arg(
        long,
        global = true,
        value_name = "PREFIXES",
        default_value = "",
        hide_default_value = true
    )]
    pub include_label_prefix: String,

    /// Number of canaries synchronised in parallel.
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub threadiness: i32,

    /// Replace the global logger of Go libraries (accepted; flagger-rs has a single logger).
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub zap_replace_globals: bool,

    /// Log format: json or console.
    #[arg(long, global = true, value_name = "ENCODING", default_value = "json")]
    pub zap_encoding: String,

    /// Watch canaries in this namespace only (default: all namespaces).
    #[arg(
        long,
        global = true,
        value_name = "NAMESPACE",
        default_value = "",
        hide_default_value = true
    )]
    pub namespace: String,

    /// Default traffic provider for canaries without spec.provider: apisix, appmesh, appmesh:v1beta2,
    /// contour, gatewayapi:v1, gatewayapi:v1beta1, gloo, istio, knative, kubernetes, kuma, linkerd, nginx,
    /// osm, skipper, smi:v1alpha1, smi:v1alpha2, smi:v1alpha3 (optionally followed by :MESH), traefik.
    #[arg(long, global = true, value_name = "PROVIDER", default_value = "istio", value_parser = parse_mesh_provider)]
    pub mesh_provider: MeshProvider,

    /// Comma-separated pod labels used to select the target's pods, in order of preference.
    #[arg(
        long,
        global = true,
        value_name = "LABELS",
        default_value = "app,name,app.kubernetes.io/name"
    )]
    pub selector_labels: String,

    /// Annotation prefix of the NGINX ingress controller.
    #[arg(
        long,
        global = true,
        value_name = "PREFIX",
        default_value = "nginx.ingress.kubernetes.io"
    )]
    pub ingress_annotations_prefix: String,

    /// Ingress class set on Contour HTTPProxy objects.
    #[arg(
        long,
        global = true,
        value_name = "CLASS",
        default_value = "",
        hide_default_value = true
    )]
    pub ingress_class: String,

    /// Run several replicas with one active leader (Lease flagger-leader-election).
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_leader_election: bool,

    /// Namespace of the leader election Lease (-namespace takes precedence when set).
    #[arg(long, global = true, value_name = "NAMESPACE", default_value = "kube-system")]
    pub leader_election_namespace: String,

    /// flagger-rs: how long the leader Lease is valid after its last renewal (Flagger: 60s, fixed).
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,

    /// flagger-rs: how long the leader keeps trying to renew before it gives up (Flagger: 15s, fixed).
    #[arg(long, global = true, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,

    /// flagger-rs: how often candidates try to acquire the Lease and the leader renews it (Flagger: 5s).
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,

    /// Track the ConfigMaps and Secrets a target uses: a change starts an analysis and they are copied
    /// for the primary.
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_config_tracking: bool,

    /// Kubeconfig of the cluster that holds the service mesh control plane (routing objects).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "",
        hide_default_value = true
    )]
    pub kubeconfig_service_mesh: String,

    /// Cluster name included in alerts.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        default_value = "",
        hide_default_value = true
    )]
    pub cluster_name: String,

    /// Only allow references (metric templates, alert providers, Gloo upstreams) within the canary's
    /// namespace.
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub no_cross_namespace_refs: bool,
}

/// The klog flags Flagger's binary registers. Accepted so existing manifests keep working; ignored.
#[derive(Debug, Args)]
pub struct KlogFlags {
    #[arg(long = "log_dir", global = true, hide = true, default_value = "")]
    pub log_dir: String,
    #[arg(long = "log_file", global = true, hide = true, default_value = "")]
    pub log_file: String,
    #[arg(
        long = "log_file_max_size",
        global = true,
        hide = true,
        default_value_t = 1800
    )]
    pub log_file_max_size: u64,
    #[arg(long = "logtostderr", global = true, hide = true, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_parser = parse_go_bool)]
    pub logtostderr: bool,
    #[arg(long = "alsologtostderr", global = true, hide = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub alsologtostderr: bool,
    #[arg(long = "legacy_stderr_threshold_behavior", global = true, hide = true, num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true",
          value_parser = parse_go_bool)]
    pub legacy_stderr_threshold_behavior: bool,
    #[arg(
        long = "v",
        global = true,
        hide = true,
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub verbosity: i32,
    #[arg(long = "add_dir_header", global = true, hide = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub add_dir_header: bool,
    #[arg(long = "skip_headers", global = true, hide = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub skip_headers: bool,
    #[arg(long = "one_output", global = true, hide = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub one_output: bool,
    #[arg(long = "skip_log_headers", global = true, hide = true, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub skip_log_headers: bool,
    #[arg(long = "stderrthreshold", global = true, hide = true, default_value = "",
          value_parser = parse_klog_severity)]
    pub stderrthreshold: String,
    #[arg(long = "alsologtostderrthreshold", global = true, hide = true, default_value = "",
          value_parser = parse_klog_severity)]
    pub alsologtostderrthreshold: String,
    #[arg(long = "vmodule", global = true, hide = true, default_value = "")]
    pub vmodule: String,
    #[arg(long = "log_backtrace_at", global = true, hide = true, default_value = "")]
    pub log_backtrace_at: String,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|e| e.to_string())
}

fn parse_mesh_provider(value: &str) -> Result<MeshProvider, String> {
    MeshProvider::parse(value).map_err(|e| e.to_string())
}

fn parse_klog_severity(value: &str) -> Result<String, String> {
    match value.to_ascii_uppercase().as_str() {
        "" | "INFO" | "WARNING" | "ERROR" | "FATAL" | "0" | "1" | "2" | "3" => Ok(value.to_owned()),
        _ => Err(format!("unknown severity {value:?}")),
    }
}

/// Rewrites a Go-style command line into the GNU form clap parses ([`goflag::normalize`]), with the long
/// flags of the top-level command and of every subcommand. Unknown flags are reported here, by their
/// spelling on the command line.
pub fn normalize_args(args: Vec<OsString>) -> Result<Vec<OsString>, FlagError> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut known = known_flags(&cmd);
    for sub in cmd.get_subcommands() {
        known.extend(known_flags(sub));
    }
    goflag::normalize(args, &known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = std::iter::once("flagger")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let args = normalize_args(args).unwrap_or_else(|e| panic!("{e}"));
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(args: &[&str]) -> String {
        let args = std::iter::once("flagger")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        match normalize_args(args) {
            Err(e) => e.to_string(),
            Ok(args) => Cli::try_parse_from(args)
                .map(|_| ())
                .expect_err("should fail")
                .to_string(),
        }
    }

    #[test]
    fn defaults_are_flaggers() {
        let cli = parse(&[]);
        let f = &cli.flags;
        assert!(cli.command.is_none());
        assert_eq!(f.kubeconfig, "");
        assert_eq!(f.kubeconfig_qps, 100);
        assert_eq!(f.kubeconfig_burst, 250);
        assert_eq!(f.metrics_server, "http://prometheus:9090");
        assert_eq!(f.control_loop_interval, Duration::from_secs(10));
        assert_eq!(f.log_level, "debug");
        assert_eq!(f.port, "8080");
        assert_eq!(f.slack_user, "flagger");
        assert_eq!(f.threadiness, 2);
        assert!(!f.zap_replace_globals);
        assert_eq!(f.zap_encoding, "json");
        assert_eq!(f.mesh_provider, MeshProvider::Istio);
        assert_eq!(f.selector_labels, "app,name,app.kubernetes.io/name");
        assert_eq!(f.ingress_annotations_prefix, "nginx.ingress.kubernetes.io");
        assert!(!f.enable_leader_election);
        assert_eq!(f.leader_election_namespace, "kube-system");
        assert!(f.enable_config_tracking);
        assert!(!f.no_cross_namespace_refs);
        assert!(!cli.version);
    }

    #[test]
    fn go_and_gnu_spellings() {
        for args in [
            &["-mesh-provider=linkerd"][..],
            &["-mesh-provider", "linkerd"],
            &["--mesh-provider", "linkerd"],
            &["--mesh-provider=linkerd"],
        ] {
            assert_eq!(parse(args).flags.mesh_provider, MeshProvider::Linkerd, "{args:?}");
        }
    }

    #[test]
    fn go_bools() {
        assert!(parse(&["-enable-leader-election"]).flags.enable_leader_election);
        assert!(
            parse(&["--enable-leader-election=true"])
                .flags
                .enable_leader_election
        );
        assert!(parse(&["-enable-leader-election=1"]).flags.enable_leader_election);
        assert!(
            !parse(&["-enable-leader-election=false"])
                .flags
                .enable_leader_election
        );
        assert!(
            !parse(&["-enable-config-tracking=False"])
                .flags
                .enable_config_tracking
        );
        assert!(
            parse(&["-enable-config-tracking", "crds"])
                .flags
                .enable_config_tracking
        );
        assert!(parse_err(&["-enable-leader-election=yes"]).contains("not a boolean"));
    }

    #[test]
    fn flags_before_or_after_the_subcommand() {
        let cli = parse(&[
            "-mesh-provider=linkerd",
            "-metrics-server=http://prom:9090",
            "crds",
        ]);
        assert!(matches!(cli.command, Some(Command::Crds)));
        assert_eq!(cli.flags.metrics_server, "http://prom:9090");
        let cli = parse(&[
            "validate",
            "-no-cross-namespace-refs",
            "a.yaml",
            "-",
            "-mesh-provider",
            "nginx",
        ]);
        assert!(cli.flags.no_cross_namespace_refs);
        assert_eq!(cli.flags.mesh_provider, MeshProvider::Nginx);
        match cli.command {
            Some(Command::Validate(v)) => {
                assert_eq!(v.files, vec![PathBuf::from("a.yaml"), PathBuf::from("-")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_flag_of_flaggers_helm_chart_is_accepted() {
        let cli = parse(&[
            "-log-level=info",
            "-mesh-provider=gatewayapi:v1",
            "-metrics-server=http://flagger-prometheus:9090",
            "-selector-labels=app,name",
            "-enable-config-tracking=true",
            "-namespace=test",
            "-slack-url=https://hooks.slack.com/services/x",
            "-slack-proxy-url=http://proxy:3128",
            "-slack-user=flagger",
            "-slack-channel=general",
            "-msteams-url=https://outlook.office.com/webhook/x",
            "-msteams-proxy-url=http://proxy:3128",
            "-enable-leader-election=true",
            "-leader-election-namespace=flagger-system",
            "-ingress-annotations-prefix=custom.ingress.kubernetes.io",
            "-include-label-prefix=app.kubernetes.io",
            "-ingress-class=contour",
            "-event-webhook=http://events:8080/",
            "-kubeconfig-qps=50",
            "-kubeconfig-burst=100",
            "-kubeconfig-service-mesh=/tmp/controlplane/kubeconfig",
            "-threadiness=4",
            "-cluster-name=prod",
            "-no-cross-namespace-refs=true",
        ]);
        assert_eq!(cli.flags.mesh_provider, MeshProvider::GatewayApiV1);
        assert_eq!(cli.flags.threadiness, 4);
        assert_eq!(cli.flags.kubeconfig_service_mesh, "/tmp/controlplane/kubeconfig");
    }

    #[test]
    fn remaining_flags_and_klog_flags_are_accepted() {
        let cli = parse(&[
            "-kubeconfig=/root/.kube/config",
            "-master=https://10.0.0.1:6443",
            "-control-loop-interval=1m30s",
            "-port=9090",
            "-slack-token=xoxb",
            "-zap-replace-globals",
            "-zap-encoding=console",
            "-v=2",
            "-v",
            "4",
            "-logtostderr",
            "-logtostderr=false",
            "-alsologtostderr",
            "-log_dir=/tmp",
            "-log_file=/tmp/x.log",
            "-log_file_max_size=10",
            "-add_dir_header",
            "-skip_headers",
            "-one_output",
            "-skip_log_headers",
            "-stderrthreshold=ERROR",
            "-alsologtostderrthreshold=INFO",
            "-legacy_stderr_threshold_behavior=false",
            "-vmodule=foo=2",
            "-log_backtrace_at=main.go:10",
            "-threadiness=3",
            "-threadiness=5",
        ]);
        // Go's flag package lets a later occurrence win.
        assert_eq!(cli.flags.threadiness, 5);
        assert_eq!(cli.flags.control_loop_interval, Duration::from_secs(90));
        assert_eq!(cli.klog.verbosity, 4);
        assert!(cli.flags.zap_replace_globals);
    }

    #[test]
    fn values_may_start_with_a_dash() {
        assert_eq!(parse(&["-kubeconfig-qps", "-1"]).flags.kubeconfig_qps, -1);
        assert_eq!(parse(&["-cluster-name", "-prod"]).flags.cluster_name, "-prod");
    }

    #[test]
    fn unknown_flags_are_named() {
        assert_eq!(
            parse_err(&["-mesh-providr=istio"]),
            "flag provided but not defined: -mesh-providr=istio"
        );
        assert!(parse_err(&["crds", "--frobnicate"]).contains("flag provided but not defined: --frobnicate"));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse_err(&["-mesh-provider=gatewayapi"]).contains("would silently use istio"));
        assert!(parse_err(&["-control-loop-interval=10"]).contains("missing unit"));
        assert!(parse_err(&["-threadiness=two"]).contains("invalid value"));
        assert_eq!(parse_err(&["-namespace"]), "flag needs an argument: -namespace");
    }

    #[test]
    fn version_flag() {
        assert!(parse(&["-version"]).version);
        assert!(parse(&["--version"]).version);
        assert!(!parse(&["-version=false"]).version);
    }

    #[test]
    fn stdin_and_double_dash_are_positional() {
        let cli = parse(&["validate", "-", "--", "-weird.yaml"]);
        match cli.command {
            Some(Command::Validate(v)) => {
                assert_eq!(v.files, vec![PathBuf::from("-"), PathBuf::from("-weird.yaml")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
