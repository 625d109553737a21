//! Leader election on a real Lease: two electors, short timings, hand-over on crash, on release and on loss.

use std::time::Duration;

use flagger_leader::{LEASE_NAME, LeaderElection, LeaderElectionConfig, LeaderHandle, Outcome};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use testkit::TestNamespace;
use testkit::kube::poll;
use tokio::sync::watch;
use tokio::time::Instant;

/// Slack for API round trips and scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

fn config_for(
    ns: &str,
    who: &str,
    lease: Duration,
    renew: Duration,
    retry: Duration,
) -> LeaderElectionConfig {
    let base = LeaderElectionConfig::flagger(ns);
    let identity = format!("{who}_{}", base.identity.rsplit_once('_').map_or("x", |(_, u)| u));
    base.with_identity(identity).with_timings(lease, renew, retry)
}

async fn holder(leases: &Api<Lease>) -> anyhow::Result<Option<String>> {
    Ok(leases
        .get_opt(LEASE_NAME)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

async fn transitions(leases: &Api<Lease>) -> anyhow::Result<i32> {
    Ok(leases
        .get(LEASE_NAME)
        .await?
        .spec
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0))
}

/// Waits until `rx` says `true`.
async fn leads(what: &str, rx: &watch::Receiver<bool>, timeout: Duration) -> anyhow::Result<()> {
    poll(what, timeout, || async {
        Ok(if *rx.borrow() { Ok(()) } else { Err("not leading") })
    })
    .await
}

#[tokio::test]
async fn exactly_one_leads_and_a_crash_hands_over_within_the_lease() {
    let ns = TestNamespace::new("leader-crash").await.unwrap();
    let leases: Api<Lease> = ns.api();
    // Short, but with a renew deadline that a slow API server on a loaded machine does not miss.
    let (lease, renew, retry) = (
        Duration::from_secs(6),
        Duration::from_millis(4500),
        Duration::from_millis(300),
    );
    let (rx_a, a) = LeaderElection::start(ns.client.clone(), config_for(&ns.name, "a", lease, renew, retry));
    let (rx_b, b) = LeaderElection::start(ns.client.clone(), config_for(&ns.name, "b", lease, renew, retry));

    let first = poll("one of two electors to lead", Duration::from_secs(15), || async {
        Ok(match (*rx_a.borrow(), *rx_b.borrow()) {
            (true, false) => Ok(true),
            (false, true) => Ok(false),
            other => Err(other),
        })
    })
    .await
    .unwrap();
    let (leader, leader_rx, follower, follower_rx) = if first {
        (a, rx_a, b, rx_b)
    } else {
        (b, rx_b, a, rx_a)
    };
    assert_eq!(holder(&leases).await.unwrap().as_deref(), Some(leader.identity()));

    // Over several renewals (and the follower's retries), never both and never neither.
    let until = Instant::now() + lease;
    while Instant::now() < until {
        assert!(
            *leader_rx.borrow() && !*follower_rx.borrow(),
            "leadership must stay put while renewed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(holder(&leases).await.unwrap().as_deref(), Some(leader.identity()));
    let before = transitions(&leases).await.unwrap();

    // A crash: the task stops without releasing the lease.
    let crashed_identity = leader.identity().to_owned();
    drop(leader);
    let crashed_at = Instant::now();
    assert_eq!(
        holder(&leases).await.unwrap(),
        Some(crashed_identity),
        "a crash does not release"
    );

    leads(
        "the follower to take over",
        &follower_rx,
        lease + retry.mul_f64(2.2) + SLACK,
    )
    .await
    .unwrap();
    let took = crashed_at.elapsed();
    assert!(
        took >= lease.saturating_sub(Duration::from_secs(1)),
        "took over after {took:?}, before the lease ran out"
    );
    assert_eq!(
        holder(&leases).await.unwrap().as_deref(),
        Some(follower.identity())
    );
    assert_eq!(transitions(&leases).await.unwrap(), before + 1);

    assert_eq!(follower.release().await.unwrap(), Outcome::Released);
    assert_eq!(
        holder(&leases).await.unwrap().as_deref(),
        Some(""),
        "released as client-go does"
    );
}

#[tokio::test]
async fn a_graceful_release_hands_over_immediately() {
    let ns = TestNamespace::new("leader-release").await.unwrap();
    let leases: Api<Lease> = ns.api();
    // A long lease: a hand-over well within it can only come from the release.
    let (lease, renew, retry) = (
        Duration::from_secs(20),
        Duration::from_secs(10),
        Duration::from_millis(300),
    );
    let (rx_a, a) = LeaderElection::start(ns.client.clone(), config_for(&ns.name, "a", lease, renew, retry));
    leads("a to lead alone", &rx_a, Duration::from_secs(15))
        .await
        .unwrap();
    let (rx_b, b) = LeaderElection::start(ns.client.clone(), config_for(&ns.name, "b", lease, renew, retry));
    // b has seen the lease held (its first attempt) before a lets go.
    poll("b to observe a's lease", Duration::from_secs(10), || async {
        Ok(
            if holder(&leases).await?.as_deref() == Some(a.identity()) && !*rx_b.borrow() {
                Ok(())
            } else {
                Err("unexpected state")
            },
        )
    })
    .await
    .unwrap();

    let released_at = Instant::now();
    assert_eq!(a.release().await.unwrap(), Outcome::Released);
    assert!(!*rx_a.borrow(), "a no longer leads once released");
    leads(
        "b to take over after the release",
        &rx_b,
        retry.mul_f64(2.2) + SLACK,
    )
    .await
    .unwrap();
    assert!(
        released_at.elapsed() < lease / 2,
        "hand-over took {:?}",
        released_at.elapsed()
    );
    assert_eq!(holder(&leases).await.unwrap().as_deref(), Some(b.identity()));
    assert_eq!(b.release().await.unwrap(), Outcome::Released);
}

#[tokio::test]
async fn losing_the_lease_after_leading_is_reported() {
    let ns = TestNamespace::new("leader-lost").await.unwrap();
    let leases: Api<Lease> = ns.api();
    let (lease, renew, retry) = (
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(300),
    );
    let (rx, handle): (_, LeaderHandle) =
        LeaderElection::start(ns.client.clone(), config_for(&ns.name, "a", lease, renew, retry));
    leads("a to lead", &rx, Duration::from_secs(15)).await.unwrap();
    let lost = handle.lost();
    assert!(!lost.is_cancelled());

    // Another replica takes the lease over (as after a partition): a must notice at its next renewal.
    let mut taken = leases.get(LEASE_NAME).await.unwrap();
    let spec = taken.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some("intruder".to_owned());
    spec.renew_time = Some(MicroTime(jiff_now()));
    spec.lease_duration_seconds = Some(30);
    leases
        .replace(LEASE_NAME, &PostParams::default(), &taken)
        .await
        .unwrap();

    tokio::time::timeout(renew + retry + SLACK, lost.cancelled())
        .await
        .expect("loss reported");
    assert!(!*rx.borrow());
    assert_eq!(handle.wait().await.unwrap(), Outcome::Lost);
    assert_eq!(
        holder(&leases).await.unwrap().as_deref(),
        Some("intruder"),
        "a loser writes nothing"
    );
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

/// A TCP proxy to the API server that can be cut, to partition one elector from the control plane.
struct Partitionable {
    url: String,
    cut: cut::Cut,
    task: tokio::task::JoinHandle<()>,
}

mod cut {
    use std::sync::Arc;
    use tokio::sync::Notify;

    /// Fires once; every connection of the proxy ends when it does.
    #[derive(Clone, Default)]
    pub struct Cut(Arc<(Notify, std::sync::atomic::AtomicBool)>);

    impl Cut {
        pub fn cut(&self) {
            self.0.1.store(true, std::sync::atomic::Ordering::SeqCst);
            self.0.0.notify_waiters();
        }
        pub async fn wait(&self) {
            let notified = self.0.0.notified();
            if self.0.1.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl Partitionable {
    async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let cut = cut::Cut::default();
        let accept_cut = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = accept_cut.wait() => return, // the listener closes: new connections are refused
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else { return };
                let upstream = upstream.clone();
                let conn_cut = accept_cut.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = conn_cut.wait() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Ok(Self { url, cut, task })
    }
}

impl Drop for Partitionable {
    fn drop(&mut self) {
        self.cut.cut();
        self.task.abort();
    }
}

#[tokio::test]
async fn a_partitioned_leader_gives_up_at_the_renew_deadline_before_anyone_takes_over() {
    let ns = TestNamespace::new("leader-partition").await.unwrap();
    let leases: Api<Lease> = ns.api();
    let (lease, renew, retry) = (
        Duration::from_secs(8),
        Duration::from_secs(2),
        Duration::from_millis(300),
    );

    let mut config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    let upstream = config.cluster_url.authority().unwrap().to_string();
    let proxy = Partitionable::start(upstream).await.unwrap();
    config.cluster_url = proxy.url.parse().unwrap();
    let partitioned_client = kube::Client::try_from(config).unwrap();

    let (rx_a, a) = LeaderElection::start(partitioned_client, config_for(&ns.name, "a", lease, renew, retry));
    leads("a to lead through the proxy", &rx_a, Duration::from_secs(15))
        .await
        .unwrap();
    let (rx_b, b) = LeaderElection::start(ns.client.clone(), config_for(&ns.name, "b", lease, renew, retry));
    poll("b to see a's lease", Duration::from_secs(10), || async {
        Ok(if holder(&leases).await?.as_deref() == Some(a.identity()) {
            Ok(())
        } else {
            Err("no")
        })
    })
    .await
    .unwrap();

    let lost = a.lost();
    proxy.cut.cut();
    let cut_at = Instant::now();
    tokio::time::timeout(renew + retry + SLACK, lost.cancelled())
        .await
        .expect("the partitioned leader reports the loss at its renew deadline");
    let gave_up = cut_at.elapsed();
    assert!(!*rx_a.borrow());
    assert!(
        !*rx_b.borrow(),
        "a gave up after {gave_up:?}, while its lease still kept b out"
    );
    assert!(gave_up < lease, "a gave up after {gave_up:?}");

    leads(
        "b to take over once a's lease ran out",
        &rx_b,
        lease + retry.mul_f64(2.2) + SLACK,
    )
    .await
    .unwrap();
    assert_eq!(holder(&leases).await.unwrap().as_deref(), Some(b.identity()));
    assert_eq!(a.wait().await.unwrap(), Outcome::Lost);
    assert_eq!(b.release().await.unwrap(), Outcome::Released);
}
