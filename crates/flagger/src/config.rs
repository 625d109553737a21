//! The operator configuration: flags resolved against the environment and checked.

use std::time::Duration;

use flagger_core::provider::MeshProvider;

use crate::cli::Flags;

/// Where the global notifier (for canaries without `analysis.alerts`) posts, after env overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobalNotifier {
    /// No `-slack-url`/`-msteams-url` (nor their env variables): no global notifications.
    None,
    /// Slack.
    Slack {
        url: String,
        token: String,
        proxy_url: String,
        user: String,
        channel: String,
    },
    /// Microsoft Teams (wins over Slack when both are configured, as in Flagger).
    MsTeams { url: String, proxy_url: String },
}

/// The checked configuration of `flagger run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mesh_provider: MeshProvider,
    pub metrics_server: String,
    pub control_loop_interval: Duration,
    pub log_level: String,
    pub zap_encoding: String,
    pub port: u16,
    pub namespace: Option<String>,
    pub threadiness: u32,
    pub selector_labels: Vec<String>,
    pub include_label_prefixes: Vec<String>,
    pub leader_election_namespace: Option<String>,
    pub enable_config_tracking: bool,
    pub event_webhook: Option<String>,
    pub notifier: GlobalNotifier,
    pub no_cross_namespace_refs: bool,
    /// `-kubeconfig` (`None`: `$KUBECONFIG`, `~/.kube/config` or the in-cluster account).
    pub kubeconfig: Option<String>,
    /// `-master`: overrides the API server address of the kubeconfig.
    pub master: Option<String>,
    /// `-cluster-name`, shown in alerts.
    pub cluster_name: String,
    /// `-ingress-annotations-prefix` (NGINX router).
    pub ingress_annotations_prefix: String,
    /// `-ingress-class` (Contour router).
    pub ingress_class: String,
    /// Lease duration, renew deadline and retry period of leader election.
    pub lease_timings: LeaseTimings,
}

/// The timings of leader election (`-leader-election-*` flags, flagger-rs extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

fn check_url(errors: &mut Vec<String>, flag: &str, env: Option<&str>, value: &str) {
    let source = match env {
        Some(var) => format!("-{flag} (or {var})"),
        None => format!("-{flag}"),
    };
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        Ok(u) => errors.push(format!(
            "{source}: {value:?} must be an http or https URL, not {}",
            u.scheme()
        )),
        Err(e) => errors.push(format!("{source}: {value:?} is not a URL: {e}")),
    }
}

impl Settings {
    /// Resolves the environment overrides (a non-empty variable wins over its flag) and checks every
    /// value, returning all problems.
    pub fn from_flags(flags: &Flags, env: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let from_env = |var: &str, flag: &str| {
            env(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| flag.to_owned())
        };
        let mut errors = Vec::new();

        let log_level = match flags.log_level.as_str() {
            "warning" => "warn".to_owned(),
            level @ ("debug" | "info" | "warn" | "error" | "fatal" | "panic") => level.to_owned(),
            other => {
                errors.push(format!(
                    "-log-level: unknown level {other:?}; expected debug, info, warn (or warning), error, fatal or panic"
                ));
                String::new()
            }
        };
        if !matches!(flags.zap_encoding.as_str(), "json" | "console") {
            errors.push(format!(
                "-zap-encoding: unknown encoding {:?}; expected json or console",
                flags.zap_encoding
            ));
        }
        let port = match flags.port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                errors.push(format!(
                    "-port: {:?} is not a TCP port number (1-65535)",
                    flags.port
                ));
                0
            }
        };
        let threadiness = match u32::try_from(flags.threadiness) {
            Ok(n) if n > 0 => n,
            _ => {
                errors.push(format!(
                    "-threadiness: must be at least 1, got {}",
                    flags.threadiness
                ));
                0
            }
        };
        if flags.kubeconfig_qps < 0 {
            errors.push(format!(
                "-kubeconfig-qps: must not be negative, got {}",
                flags.kubeconfig_qps
            ));
        }
        if flags.kubeconfig_burst < 0 {
            errors.push(format!(
                "-kubeconfig-burst: must not be negative, got {}",
                flags.kubeconfig_burst
            ));
        }
        if flags.control_loop_interval.is_zero() {
            errors.push("-control-loop-interval: must be greater than zero".to_owned());
        }
        check_url(&mut errors, "metrics-server", None, &flags.metrics_server);

        let selector_labels: Vec<String> = flags.selector_labels.split(',').map(str::to_owned).collect();
        if selector_labels.iter().any(|l| l.trim().is_empty()) {
            errors.push(format!(
                "-selector-labels: {:?} contains an empty label name",
                flags.selector_labels
            ));
        }
        let include_label_prefixes = flags
            .include_label_prefix
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();

        let event_webhook = from_env("EVENT_WEBHOOK_URL", &flags.event_webhook);
        if !event_webhook.is_empty() {
            check_url(
                &mut errors,
                "event-webhook",
                Some("EVENT_WEBHOOK_URL"),
                &event_webhook,
            );
        }

        let slack_url = from_env("SLACK_URL", &flags.slack_url);
        let msteams_url = from_env("MSTEAMS_URL", &flags.msteams_url);
        let notifier = if !msteams_url.is_empty() {
            check_url(&mut errors, "msteams-url", Some("MSTEAMS_URL"), &msteams_url);
            let proxy_url = from_env("MSTEAMS_PROXY_URL", &flags.msteams_proxy_url);
            if !proxy_url.is_empty() {
                check_url(
                    &mut errors,
                    "msteams-proxy-url",
                    Some("MSTEAMS_PROXY_URL"),
                    &proxy_url,
                );
            }
            GlobalNotifier::MsTeams {
                url: msteams_url,
                proxy_url,
            }
        } else if !slack_url.is_empty() {
            check_url(&mut errors, "slack-url", Some("SLACK_URL"), &slack_url);
            let proxy_url = from_env("SLACK_PROXY_URL", &flags.slack_proxy_url);
            if !proxy_url.is_empty() {
                check_url(
                    &mut errors,
                    "slack-proxy-url",
                    Some("SLACK_PROXY_URL"),
                    &proxy_url,
                );
            }
            if flags.slack_channel.is_empty() {
                errors.push("-slack-channel: required when a Slack URL is set".to_owned());
            }
            if flags.slack_user.is_empty() {
                errors.push("-slack-user: required when a Slack URL is set".to_owned());
            }
            GlobalNotifier::Slack {
                url: slack_url,
                token: from_env("SLACK_TOKEN", &flags.slack_token),
                proxy_url,
                user: flags.slack_user.clone(),
                channel: flags.slack_channel.clone(),
            }
        } else {
            GlobalNotifier::None
        };

        let namespace = Some(flags.namespace.clone()).filter(|n| !n.is_empty());
        let leader_election_namespace = flags.enable_leader_election.then(|| {
            namespace
                .clone()
                .unwrap_or_else(|| flags.leader_election_namespace.clone())
        });

        let lease_timings = LeaseTimings {
            lease_duration: flags.leader_election_lease_duration,
            renew_deadline: flags.leader_election_renew_deadline,
            retry_period: flags.leader_election_retry_period,
        };
        if lease_timings.retry_period.is_zero()
            || lease_timings.renew_deadline <= lease_timings.retry_period
            || lease_timings.lease_duration <= lease_timings.renew_deadline
        {
            errors.push(format!(
                "-leader-election-*: need 0 < retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                lease_timings.retry_period, lease_timings.renew_deadline, lease_timings.lease_duration
            ));
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            mesh_provider: flags.mesh_provider.clone(),
            metrics_server: flags.metrics_server.clone(),
            control_loop_interval: flags.control_loop_interval,
            log_level,
            zap_encoding: flags.zap_encoding.clone(),
            port,
            namespace,
            threadiness,
            selector_labels,
            include_label_prefixes,
            leader_election_namespace,
            enable_config_tracking: flags.enable_config_tracking,
            event_webhook: Some(event_webhook).filter(|w| !w.is_empty()),
            notifier,
            no_cross_namespace_refs: flags.no_cross_namespace_refs,
            kubeconfig: Some(flags.kubeconfig.clone()).filter(|k| !k.is_empty()),
            master: Some(flags.master.clone()).filter(|m| !m.is_empty()),
            cluster_name: flags.cluster_name.clone(),
            ingress_annotations_prefix: flags.ingress_annotations_prefix.clone(),
            ingress_class: flags.ingress_class.clone(),
            lease_timings,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, normalize_args};

    fn flags(args: &[&str]) -> Flags {
        let args = std::iter::once("flagger")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        Cli::parse_from(normalize_args(args).expect("args")).flags
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::from_flags(&flags(&[]), no_env).expect("valid");
        assert_eq!(s.mesh_provider, MeshProvider::Istio);
        assert_eq!(s.port, 8080);
        assert_eq!(s.notifier, GlobalNotifier::None);
        assert_eq!(s.leader_election_namespace, None);
        assert_eq!(s.selector_labels, ["app", "name", "app.kubernetes.io/name"]);
        assert!(s.include_label_prefixes.is_empty());
    }

    #[test]
    fn env_wins_over_flags_when_not_empty() {
        let f = flags(&[
            "-slack-url=https://flag.example",
            "-slack-channel=c",
            "-event-webhook=http://flag",
        ]);
        let env = |var: &str| match var {
            "SLACK_URL" => Some("https://env.example".to_owned()),
            "SLACK_TOKEN" => Some("tok".to_owned()),
            "EVENT_WEBHOOK_URL" => Some(String::new()),
            _ => None,
        };
        let s = Settings::from_flags(&f, env).expect("valid");
        assert_eq!(
            s.notifier,
            GlobalNotifier::Slack {
                url: "https://env.example".into(),
                token: "tok".into(),
                proxy_url: String::new(),
                user: "flagger".into(),
                channel: "c".into(),
            }
        );
        assert_eq!(s.event_webhook.as_deref(), Some("http://flag"));
    }

    #[test]
    fn msteams_wins_over_slack() {
        let f = flags(&["-slack-url=https://slack.example", "-slack-channel=c"]);
        let env = |var: &str| (var == "MSTEAMS_URL").then(|| "https://teams.example".to_owned());
        let s = Settings::from_flags(&f, env).expect("valid");
        assert_eq!(
            s.notifier,
            GlobalNotifier::MsTeams {
                url: "https://teams.example".into(),
                proxy_url: String::new()
            }
        );
    }

    #[test]
    fn leader_election_namespace_prefers_namespace() {
        let s = Settings::from_flags(&flags(&["-enable-leader-election", "-namespace=apps"]), no_env)
            .expect("valid");
        assert_eq!(s.leader_election_namespace.as_deref(), Some("apps"));
        let s = Settings::from_flags(&flags(&["-enable-leader-election"]), no_env).expect("valid");
        assert_eq!(s.leader_election_namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn all_problems_are_reported() {
        let f = flags(&[
            "-log-level=trace",
            "-zap-encoding=xml",
            "-port=http",
            "-threadiness=0",
            "-metrics-server=prometheus:9090",
            "-slack-url=https://hooks.slack.com/x",
            "-control-loop-interval=0s",
            "-selector-labels=app,,name",
        ]);
        let errors = Settings::from_flags(&f, no_env).expect_err("invalid");
        assert_eq!(errors.len(), 8, "{errors:#?}");
        assert!(errors[0].starts_with("-log-level: unknown level \"trace\""));
        assert!(
            errors
                .iter()
                .any(|e| e == "-slack-channel: required when a Slack URL is set")
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("-metrics-server: \"prometheus:9090\" must be an http"))
        );
    }

    #[test]
    fn warning_means_warn() {
        let s = Settings::from_flags(&flags(&["-log-level=warning"]), no_env).expect("valid");
        assert_eq!(s.log_level, "warn");
    }
}
