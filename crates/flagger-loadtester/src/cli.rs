//! Command line: Flagger's load tester flags (Go `flag` syntax accepted: `-port=8080`, `-port 8080`,
//! `--port=8080`), plus the gate store flags of flagger-rs.

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use flagger_core::duration::parse_go_duration;
use flagger_core::goflag::{self, FlagError, parse_bool as parse_go_bool};

/// `flagger-loadtester [FLAGS]`, or `flagger-loadtester hey [hey flags] <url>` to run the built-in load
/// generator once and print its summary.
#[derive(Debug, Parser)]
#[command(
    name = "flagger-loadtester",
    about = "flagger-rs load tester: webhook tasks, manual gates and a built-in hey for Flagger canaries",
    after_help = "Run `flagger-loadtester hey [options...] <url>` to use the built-in hey directly.",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Cli {
    /// Port to listen on (0 picks a free one; the log line "Starting load tester" names it).
    #[arg(long, value_name = "PORT", default_value = "9090")]
    pub port: String,

    /// Task timeout (a Go duration); a task's own metadata.timeout overrides it.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Restrict access to canaries in namespaces matching this regular expression (unanchored).
    #[arg(long, value_name = "REGEXP", default_value = "", hide_default_value = true)]
    pub namespace_regexp: String,

    /// Log level: debug, info, warn (or warning), error.
    #[arg(long, value_name = "LEVEL", default_value = "debug")]
    pub log_level: String,

    /// Log encoding: json or console.
    #[arg(long, value_name = "ENCODING", default_value = "json")]
    pub zap_encoding: String,

    /// Accepted for compatibility with Flagger's load tester; has no effect.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub zap_replace_globals: bool,

    /// Where gate state lives: memory (Flagger's behaviour: lost on restart, per replica) or kubernetes
    /// (a ConfigMap: survives restarts, shared by replicas).
    #[arg(long, value_name = "STORE", value_enum, default_value = "memory")]
    pub gate_store: GateStoreKind,

    /// Name of the ConfigMap of the kubernetes gate store.
    #[arg(long, value_name = "NAME", default_value = "flagger-loadtester-gates")]
    pub gate_store_configmap: String,

    /// Namespace of the ConfigMap of the kubernetes gate store. Default: $POD_NAMESPACE, else the
    /// namespace of the in-cluster service account or of the kubeconfig context.
    #[arg(long, value_name = "NAMESPACE", default_value = "", hide_default_value = true)]
    pub gate_store_namespace: String,

    /// Path to a kubeconfig for the kubernetes gate store (default: in-cluster or $KUBECONFIG).
    #[arg(long, value_name = "PATH", default_value = "", hide_default_value = true)]
    pub kubeconfig: String,

    /// Print the version and exit.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub version: bool,
}

/// `-gate-store` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateStoreKind {
    /// In the process.
    Memory,
    /// In a ConfigMap.
    Kubernetes,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|e| e.to_string())
}

/// Rewrites Go-style flags (`-name`, `-name=value`, `-name value`) into the `--name=value` form clap
/// parses ([`goflag::normalize`]).
pub fn normalize_args(args: Vec<OsString>) -> Result<Vec<OsString>, FlagError> {
    let mut cmd = Cli::command();
    cmd.build();
    goflag::normalize(args, &goflag::known_flags(&cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let args = std::iter::once("flagger-loadtester")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let args = normalize_args(args).map_err(|e| e.to_string())?;
        Cli::try_parse_from(args).map_err(|e| e.to_string())
    }

    #[test]
    fn flaggers_defaults_and_spellings() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, "9090");
        assert_eq!(c.timeout, Duration::from_secs(3600));
        assert_eq!((c.log_level.as_str(), c.zap_encoding.as_str()), ("debug", "json"));
        assert_eq!(c.gate_store, GateStoreKind::Memory);
        assert_eq!(c.gate_store_configmap, "flagger-loadtester-gates");
        // kustomize/tester's arguments
        let c = parse(&["-port=8080", "-log-level=info", "-timeout=1h"]).unwrap();
        assert_eq!((c.port.as_str(), c.log_level.as_str()), ("8080", "info"));
        let c = parse(&[
            "-port",
            "1",
            "--timeout=90s",
            "-zap-replace-globals",
            "-namespace-regexp",
            "^test$",
        ])
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(90));
        assert!(c.zap_replace_globals);
        assert_eq!(c.namespace_regexp, "^test$");
        let c = parse(&[
            "-gate-store=kubernetes",
            "-gate-store-configmap",
            "g",
            "-gate-store-namespace=ns",
        ])
        .unwrap();
        assert_eq!(c.gate_store, GateStoreKind::Kubernetes);
        assert_eq!(
            (c.gate_store_configmap.as_str(), c.gate_store_namespace.as_str()),
            ("g", "ns")
        );
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(
            parse(&["-nope"]).unwrap_err(),
            "flag provided but not defined: -nope"
        );
        assert_eq!(parse(&["-port"]).unwrap_err(), "flag needs an argument: -port");
        assert!(parse(&["-timeout=soon"]).unwrap_err().contains("soon"));
        assert!(parse(&["-gate-store=etcd"]).unwrap_err().contains("etcd"));
    }
}
