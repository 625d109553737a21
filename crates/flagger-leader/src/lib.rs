//! Leader election for the flagger-rs operator on the `flagger-leader-election` Lease.
//!
//! This is client-go's `leaderelection` protocol (what Flagger runs), so Go and Rust replicas can share the
//! Lease during a mixed rollout without both driving canaries:
//!
//! * Records are written with `update` guarded by `resourceVersion` (optimistic concurrency), with the fields
//!   client-go writes: `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`,
//!   `leaseTransitions`.
//! * A lease is judged expired by the *local* time at which its record was last seen to change, plus
//!   `leaseDurationSeconds` (no comparison of clocks across nodes).
//! * A candidate retries every `retry_period` (with client-go's 1.2 jitter factor). The leader renews every
//!   `retry_period`; if it cannot renew for `renew_deadline` it gives up, and it gives up at once when it
//!   sees another holder. Either way leadership is **lost**: [`LeaderHandle::lost`] fires, the channel turns
//!   `false` and the task ends; the operator is expected to stop writing and exit 1, as Flagger does.
//! * On graceful shutdown ([`LeaderHandle::release`], Flagger's `ReleaseOnCancel`) the leader writes
//!   client-go's release record (empty `holderIdentity`, `leaseDurationSeconds: 1`), so a standby takes over
//!   within one retry period.
//!
//! Why not `kube-lease-manager` 0.13.1 (the crate deps.md suggests): its leader never steps down when
//! renewals fail (an API error is logged and retried while the channel keeps saying `true`), so a partitioned
//! leader keeps writing after a standby has taken over, which is exactly what the renew deadline prevents. It
//! also renews through unguarded patches, takes whole seconds with a single `grace` instead of
//! lease/renew/retry, releases by nulling the fields instead of client-go's record, and pulls a second `rand`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Flagger's Lease name.
pub const LEASE_NAME: &str = "flagger-leader-election";
/// The field manager of our Lease writes.
pub const FIELD_MANAGER: &str = "flagger";

/// Where and how to elect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (`holderIdentity`).
    pub identity: String,
    /// How long a lease is valid after it was last renewed (Flagger: 60s). Written in whole seconds.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up (Flagger: 15s).
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews (Flagger: 5s).
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Flagger's settings: Lease `flagger-leader-election` in `namespace`, identity `<hostname>_<uuid>`,
    /// 60s lease, 15s renew deadline, 5s retry.
    pub fn flagger(namespace: impl Into<String>) -> Self {
        Self {
            lease_name: LEASE_NAME.to_owned(),
            namespace: namespace.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(60),
            renew_deadline: Duration::from_secs(15),
            retry_period: Duration::from_secs(5),
        }
    }

    /// The Lease namespace from Flagger's flags: `-namespace` when set, else `-leader-election-namespace`
    /// (default `kube-system`).
    pub fn lease_namespace(namespace_flag: &str, leader_election_namespace: &str) -> String {
        if namespace_flag.is_empty() {
            leader_election_namespace
        } else {
            namespace_flag
        }
        .to_owned()
    }

    /// Overrides the timings (tests use seconds instead of minutes).
    pub fn with_timings(
        mut self,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Self {
        self.lease_duration = lease_duration;
        self.renew_deadline = renew_deadline;
        self.retry_period = retry_period;
        self
    }

    /// Overrides the identity.
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// Overrides the Lease name.
    pub fn with_lease_name(mut self, name: impl Into<String>) -> Self {
        self.lease_name = name.into();
        self
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs_f64().ceil() as u64)
            .unwrap_or(i32::MAX)
            .max(1)
    }
}

/// Flagger's identity: `<hostname>_<random UUID v4>`.
pub fn default_identity() -> String {
    format!("{}_{}", hostname(), uuid_v4())
}

/// The host name as Go's `os.Hostname` reads it on Linux.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A random UUID v4 in its canonical text form (as Go's `uuid.New().String()`), for identities and for
/// the `flagger-id` pod annotation.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// How an election task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by [`LeaderHandle::release`]; the lease was released if it was held.
    Released,
    /// Leadership was lost after having been acquired (renew deadline passed, or another holder seen).
    Lost,
}

/// Errors of the election task.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// A Kubernetes API call failed where it could not be retried (releasing the lease).
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Kube {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The task panicked or was aborted.
    #[error("leader election task ended abnormally: {0}")]
    Task(String),
}

/// Controls a running election. Dropping it stops the election *without* releasing the lease (as a crash
/// would); call [`LeaderHandle::release`] for a graceful hand-over.
#[derive(Debug)]
pub struct LeaderHandle {
    identity: String,
    shutdown: CancellationToken,
    lost: CancellationToken,
    task: Option<JoinHandle<Result<Outcome, LeaderError>>>,
}

impl LeaderHandle {
    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Cancelled the moment leadership is lost after having been held: stop every write when it fires.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops the election, releasing the lease if this replica holds it, and returns how the task ended
    /// ([`Outcome::Lost`] if leadership had already been lost).
    pub async fn release(mut self) -> Result<Outcome, LeaderError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(|e| LeaderError::Task(e.to_string()))?,
            None => Ok(Outcome::Released),
        }
    }

    /// Waits for the election to end on its own, which only happens when leadership is lost.
    pub async fn wait(mut self) -> Result<Outcome, LeaderError> {
        match self.task.take() {
            Some(task) => task.await.map_err(|e| LeaderError::Task(e.to_string()))?,
            None => Ok(Outcome::Released),
        }
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts electing. The receiver is `true` while this replica leads.
pub struct LeaderElection;

impl LeaderElection {
    /// Spawns the election task on the current Tokio runtime.
    pub fn start(client: Client, config: LeaderElectionConfig) -> (watch::Receiver<bool>, LeaderHandle) {
        let (tx, rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let lost = CancellationToken::new();
        let elector = Elector {
            api: Api::namespaced(client, &config.namespace),
            config: config.clone(),
            observed: None,
        };
        let task = tokio::spawn(elector.run(tx, shutdown.clone(), lost.clone()));
        let handle = LeaderHandle {
            identity: config.identity,
            shutdown,
            lost,
            task: Some(task),
        };
        (rx, handle)
    }
}

/// The parts of a Lease record client-go compares to notice a change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    duration_seconds: Option<i32>,
    acquire: Option<MicroTime>,
    renew: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone(),
            duration_seconds: spec.lease_duration_seconds,
            acquire: spec.acquire_time.clone(),
            renew: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
        }
    }
}

enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// A valid lease of someone else.
    HeldBy(String),
    /// Lost a write race; try again.
    Conflict,
}

struct Elector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// The last record seen and when (local clock) it was first seen.
    observed: Option<(Record, Instant)>,
}

impl Elector {
    async fn run(
        mut self,
        tx: watch::Sender<bool>,
        shutdown: CancellationToken,
        lost: CancellationToken,
    ) -> Result<Outcome, LeaderError> {
        let identity = self.config.identity.clone();
        let lease = format!("{}/{}", self.config.namespace, self.config.lease_name);
        // Acquire.
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => break,
                Ok(Attempt::HeldBy(holder)) => {
                    tracing::debug!(%lease, %holder, "lease held by another replica")
                }
                Ok(Attempt::Conflict) => tracing::debug!(%lease, "conflict while acquiring the lease"),
                Err(error) => tracing::warn!(%lease, %error, "error acquiring the lease"),
            }
            let jitter = self
                .config
                .retry_period
                .mul_f64(1.0 + 1.2 * rand::random::<f64>());
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Outcome::Released),
                () = tokio::time::sleep(jitter) => {}
            }
        }
        tracing::info!(%lease, %identity, "acquired the leader lease");
        tx.send_replace(true);

        // Renew.
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    tx.send_replace(false);
                    self.release().await?;
                    tracing::info!(%lease, %identity, "released the leader lease");
                    return Ok(Outcome::Released);
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let deadline = Instant::now() + self.config.renew_deadline;
            let renewed = loop {
                let attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await;
                match attempt {
                    Ok(Ok(Attempt::Held)) => break true,
                    Ok(Ok(Attempt::HeldBy(holder))) => {
                        tracing::error!(%lease, %holder, "another replica holds the leader lease");
                        break false;
                    }
                    Ok(Ok(Attempt::Conflict)) => tracing::warn!(%lease, "conflict while renewing the lease"),
                    Ok(Err(error)) => tracing::warn!(%lease, %error, "error renewing the lease"),
                    Err(_) => break false,
                }
                let next = (Instant::now() + self.config.retry_period).min(deadline);
                tokio::select! {
                    () = shutdown.cancelled() => break true, // handled by the outer loop
                    () = tokio::time::sleep_until(next) => {}
                }
                if Instant::now() >= deadline {
                    break false;
                }
            };
            if !renewed {
                tracing::error!(%lease, %identity, "leader election lost");
                lost.cancel();
                tx.send_replace(false);
                return Ok(Outcome::Lost);
            }
        }
    }

    fn kube_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Kube {
            namespace: self.config.namespace.clone(),
            name: self.config.lease_name.clone(),
            source,
        }
    }

    fn observe(&mut self, record: Record) {
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != record) {
            self.observed = Some((record, Instant::now()));
        }
    }

    /// client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let identity = self.config.identity.clone();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(identity),
                lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            };
            let new = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.api.create(&params, &new).await {
                Ok(_) => {
                    self.observe(Record::of(&spec));
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        let old = lease.spec.clone().unwrap_or_default();
        self.observe(Record::of(&old));
        let holder = old.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(identity.as_str());
        if let Some(holder) = holder.filter(|_| !ours) {
            let valid_for =
                Duration::from_secs(u64::try_from(old.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
            let seen = self.observed.as_ref().map_or_else(Instant::now, |(_, at)| *at);
            if seen + valid_for > Instant::now() {
                return Ok(Attempt::HeldBy(holder));
            }
        }
        let spec = LeaseSpec {
            holder_identity: Some(identity),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time: if ours {
                old.acquire_time.clone()
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: if ours {
                old.lease_transitions
            } else {
                Some(old.lease_transitions.unwrap_or(0).saturating_add(1))
            },
            ..old
        };
        lease.spec = Some(spec.clone());
        match self.api.replace(&self.config.lease_name, &params, &lease).await {
            Ok(_) => {
                self.observe(Record::of(&spec));
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// client-go's `release`: only if we still hold the lease.
    async fn release(&mut self) -> Result<(), LeaderError> {
        let lease = self
            .api
            .get_opt(&self.config.lease_name)
            .await
            .map_err(|e| self.kube_error(e))?;
        let Some(mut lease) = lease else { return Ok(()) };
        let old = lease.spec.clone().unwrap_or_default();
        if old.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(jiff::Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: old.lease_transitions,
            ..old
        });
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match self.api.replace(&self.config.lease_name, &params, &lease).await {
            Ok(_) => Ok(()),
            // Someone wrote in between: then it is no longer ours to release.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(self.kube_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_v4_shape() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, uuid_v4());
    }

    #[test]
    fn flagger_defaults() {
        let c = LeaderElectionConfig::flagger("kube-system");
        assert_eq!(c.lease_name, "flagger-leader-election");
        assert_eq!(c.namespace, "kube-system");
        assert_eq!(
            (c.lease_duration, c.renew_deadline, c.retry_period),
            (
                Duration::from_secs(60),
                Duration::from_secs(15),
                Duration::from_secs(5)
            )
        );
        assert_eq!(c.lease_duration_seconds(), 60);
        let (host, uuid) = c.identity.rsplit_once('_').unwrap();
        assert_eq!(host, hostname());
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4', "{uuid}");
        assert_ne!(default_identity(), default_identity());
    }

    #[test]
    fn namespace_flag_takes_precedence() {
        assert_eq!(
            LeaderElectionConfig::lease_namespace("", "kube-system"),
            "kube-system"
        );
        assert_eq!(
            LeaderElectionConfig::lease_namespace("apps", "kube-system"),
            "apps"
        );
    }

    #[test]
    fn lease_seconds_round_up() {
        let c = LeaderElectionConfig::flagger("x").with_timings(
            Duration::from_millis(2500),
            Duration::from_secs(1),
            Duration::from_millis(200),
        );
        assert_eq!(c.lease_duration_seconds(), 3);
    }
}
