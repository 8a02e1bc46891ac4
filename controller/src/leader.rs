//! Leader election through a coordination.k8s.io Lease (kube-lease-manager):
//! the controller runs only while this replica holds the Lease, so two
//! replicas never reconcile at once. The leader stops its controller when a renewal has not been
//! accepted within the renew deadline (see [`renewal`]), before its Lease may run out.

mod renewal;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::time::Instant;

use renewal::{Renewals, Timings, lease_client};

pub const DEFAULT_LEASE_NAME: &str = "roiergasias-operator";
/// Seconds a Lease stays valid without renewal; a standby takes over at most
/// this long after the leader stops renewing.
pub const DEFAULT_LEASE_DURATION: u64 = 15;
/// Seconds before expiry at which the leader renews; also the clock skew tolerated.
pub const DEFAULT_LEASE_GRACE: u64 = 5;

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Waits between attempts to reach the Lease: doubling from [`RETRY_MIN`] up to
/// [`RETRY_MAX`], for as long as it takes.
fn retry_delays() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN)
        .with_max_delay(RETRY_MAX)
        .without_max_times()
        .build()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique among replicas: two electors with one identity would both lead.
    pub identity: String,
    pub lease_duration_secs: u64,
    pub grace_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "invalid leader election timing: the lease duration ({duration}s) must exceed the renewal grace ({grace}s) by 2s or more, and both be above zero"
    )]
    Timing { duration: u64, grace: u64 },
    #[error("invalid leader election identity {0:?}: it must be non-empty")]
    Identity(String),
}

impl LeaderConfig {
    /// The Lease `name` in `namespace`, with this process's identity and default timings.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            lease_name: name.into(),
            lease_namespace: namespace.into(),
            identity: default_identity(),
            lease_duration_secs: DEFAULT_LEASE_DURATION,
            grace_secs: DEFAULT_LEASE_GRACE,
        }
    }

    /// Checked up front because kube-lease-manager panics on bad timings.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let (duration, grace) = (self.lease_duration_secs, self.grace_secs);
        // The renew deadline (duration - grace) needs a renewal halfway through it: 2 s at least.
        if duration == 0 || grace == 0 || duration < grace.saturating_add(2) {
            return Err(LeaderError::Timing { duration, grace });
        }
        if self.identity.trim().is_empty() {
            return Err(LeaderError::Identity(self.identity.clone()));
        }
        Ok(())
    }
}

/// The pod name (`POD_NAME`, from the downward API) when running in a pod;
/// otherwise `<hostname>-<pid>`, so two local processes differ.
pub fn default_identity() -> String {
    identity_from(
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok()),
        std::process::id(),
    )
}

fn identity_from(pod_name: Option<String>, hostname: Option<String>, pid: u32) -> String {
    let non_empty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    match (non_empty(pod_name), non_empty(hostname)) {
        (Some(pod), _) => pod,
        (None, Some(host)) => format!("{host}-{pid}"),
        (None, None) => format!("roiergasias-operator-{pid}"),
    }
}

/// Why [`run_while_leading`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaderExit {
    /// The shutdown future resolved; the Lease was released.
    Shutdown,
    /// The controller future ended by itself while leading; the Lease was released.
    ControllerEnded,
}

/// Runs the future made by `controller` only while this replica holds the
/// Lease: started on acquiring it, dropped (cancelled) on losing it, on any
/// error talking to the Lease, or when no renewal was accepted within the renew
/// deadline (the Lease duration less the grace), and started afresh on
/// re-acquiring it.
/// `ready` is true while this replica takes part in the election, leading or
/// standing by (a standby that is never ready would hang a rolling update of
/// a one-replica Deployment); false while the Lease cannot be reached and after
/// shutdown. On shutdown the Lease is released so a standby can take over
/// without waiting for expiry.
pub async fn run_while_leading<F, Fut>(
    client: Client,
    config: &LeaderConfig,
    ready: &watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
    mut controller: F,
) -> Result<LeaderExit, LeaderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    config.validate()?;
    tokio::pin!(shutdown);
    let timings = Timings::of(config);
    let renewals = Renewals::default();
    let client = lease_client(client, timings.request_timeout, renewals.clone());
    let mut retry = retry_delays();
    ready.send_replace(false);

    loop {
        renewals.clear();
        let built = tokio::select! {
            _ = &mut shutdown => return Ok(LeaderExit::Shutdown),
            built = build_manager(client.clone(), config, timings.library_grace) => built,
        };
        let manager = match built {
            Ok(manager) => manager,
            Err(error) => {
                tracing::warn!(%error, lease = %config.lease_name, "cannot set up the leader election Lease; retrying");
                if sleep_or_shutdown(&mut retry, shutdown.as_mut()).await {
                    return Ok(LeaderExit::Shutdown);
                }
                continue;
            }
        };

        ready.send_replace(true);
        let term = Term {
            manager: &manager,
            config,
            timings,
            renewals: &renewals,
        };
        let exit = term
            .run(shutdown.as_mut(), &mut controller, &mut retry)
            .await;
        ready.send_replace(false);

        match exit {
            Some(exit) => {
                if let Err(error) = manager.release().await {
                    tracing::warn!(%error, "could not release the Lease; it expires by itself");
                }
                return Ok(exit);
            }
            None => {
                if sleep_or_shutdown(&mut retry, shutdown.as_mut()).await {
                    return Ok(LeaderExit::Shutdown);
                }
            }
        }
    }
}

/// One Lease manager's time in the election, leading or standing by.
struct Term<'a> {
    manager: &'a LeaseManager,
    config: &'a LeaderConfig,
    timings: Timings,
    renewals: &'a Renewals,
}

impl Term<'_> {
    /// Until shutdown or the controller's end (`Some`), or until leadership can no longer be
    /// confirmed (`None`: start over); the controller is dropped before it returns.
    async fn run<F, Fut>(
        &self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
        controller: &mut F,
        retry: &mut ExponentialBackoff,
    ) -> Option<LeaderExit>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let (config, manager) = (self.config, self.manager);
        let mut running: Option<Pin<Box<Fut>>> = None;
        let mut acquired = Instant::now();
        // Kept across iterations: dropping it mid-renewal would cancel the renewal.
        let mut changed = Box::pin(manager.changed());
        loop {
            let deadline = self.deadline(acquired);
            tokio::select! {
                _ = &mut shutdown => return Some(LeaderExit::Shutdown),
                _ = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                    tracing::warn!("the controller stopped by itself while leading");
                    return Some(LeaderExit::ControllerEnded);
                }
                _ = tokio::time::sleep_until(deadline), if running.is_some() => {
                    if Instant::now() >= self.deadline(acquired) {
                        tracing::warn!(identity = %config.identity, lease = %config.lease_name,
                            renew_deadline = ?self.timings.renew_deadline,
                            "no Lease renewal accepted within the renew deadline; stopping the controller before the Lease may expire");
                        return None;
                    }
                }
                result = &mut changed => {
                    changed = Box::pin(manager.changed());
                    match result {
                        Ok(true) => {
                            tracing::info!(identity = %config.identity, lease = %config.lease_name, "acquired the Lease; starting the controller");
                            *retry = retry_delays();
                            acquired = Instant::now();
                            running = Some(Box::pin(controller()));
                        }
                        Ok(false) => {
                            tracing::warn!(identity = %config.identity, lease = %config.lease_name, "lost the Lease; stopping the controller");
                            running = None;
                        }
                        Err(error) => {
                            // Leadership can no longer be confirmed: stop reconciling
                            // before the Lease may expire, then start over.
                            tracing::warn!(%error, lease = %config.lease_name, "leader election failed; stopping the controller and retrying");
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// The renew deadline from the last accepted Lease write (or, if there was none, as when
    /// the Lease already named this replica, from its acquisition).
    fn deadline(&self, acquired: Instant) -> Instant {
        let last = self
            .renewals
            .last()
            .map(Instant::from_std)
            .unwrap_or(acquired);
        last + self.timings.renew_deadline
    }
}

async fn build_manager(
    client: Client,
    config: &LeaderConfig,
    library_grace: u64,
) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&config.identity)
        .with_field_manager(format!("roiergasias-operator-{}", config.identity))
        .with_duration(config.lease_duration_secs)
        .with_grace(library_grace)
        .build()
        .await
}

/// Sleeps the next back-off delay; true if shutdown came first.
async fn sleep_or_shutdown(
    retry: &mut ExponentialBackoff,
    shutdown: Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let delay = retry.next().unwrap_or(RETRY_MAX);
    tokio::select! {
        _ = shutdown => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::renewal::fake::FakeLease;
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::SystemTime;

    /// Sends `true` while alive, `false` once dropped: stands in for the controller.
    struct Running(watch::Sender<bool>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.send_replace(false);
        }
    }

    async fn until_value(rx: &mut watch::Receiver<bool>, value: bool, what: &str) {
        tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|v| *v == value))
            .await
            .unwrap_or_else(|_| panic!("{what} within 15 s"))
            .expect("the sender lives");
    }

    /// The Lease's renewTime plus its duration, as the standby computes its expiry.
    fn expiry(fake: &FakeLease) -> SystemTime {
        let lease = fake.lease.lock().unwrap().clone().expect("a Lease");
        let renewed = lease["spec"]["renewTime"].as_str().expect("renewed");
        let renewed: k8s_openapi::jiff::Timestamp = renewed.parse().unwrap();
        let duration = lease["spec"]["leaseDurationSeconds"].as_u64().unwrap();
        SystemTime::from(renewed) + Duration::from_secs(duration)
    }

    #[tokio::test]
    async fn a_leader_whose_renewals_hang_stops_before_its_lease_may_expire_and_leads_again_after()
    {
        let fake = Arc::new(FakeLease::default());
        let config = LeaderConfig {
            lease_name: "lease".into(),
            lease_namespace: "ns".into(),
            identity: "a".into(),
            lease_duration_secs: 4,
            grace_secs: 2,
        };
        let (ready_tx, mut ready) = watch::channel(false);
        let (running_tx, mut running) = watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = fake.client();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            run_while_leading(client, &config, &ready_tx, shutdown, || {
                let guard = Running(running_tx.clone());
                guard.0.send_replace(true);
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await
                }
            })
            .await
        });
        until_value(&mut running, true, "the only replica leads").await;
        // Renewals go on (every second with these timings) and the controller with them.
        let renewed = fake.patches.load(Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(10), async {
            while fake.patches.load(Ordering::SeqCst) < renewed + 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("two renewals");
        assert!(*running.borrow(), "still leading after renewals");

        fake.hung.store(true, Ordering::SeqCst);
        let cut = std::time::Instant::now();
        let lease_ends = expiry(&fake);
        until_value(&mut running, false, "the cut-off leader stops").await;
        let (took, at) = (cut.elapsed(), SystemTime::now());
        assert!(
            at < lease_ends,
            "stopped {took:?} after the cut, before the Lease may expire"
        );
        assert!(
            took <= Duration::from_secs(2) + Duration::from_millis(500),
            "{took:?}"
        );
        until_value(
            &mut ready,
            false,
            "not ready while the Lease cannot be reached",
        )
        .await;

        // Reachable again, the Lease still naming it: it leads again.
        fake.hung.store(false, Ordering::SeqCst);
        until_value(&mut running, true, "leading again").await;
        stop.send(()).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert_eq!(
            exit.expect("prompt").unwrap().unwrap(),
            LeaderExit::Shutdown
        );
        assert_eq!(fake.holder(), None, "released on shutdown");
    }

    #[test]
    fn identity_prefers_pod_name_then_hostname_and_pid() {
        assert_eq!(
            identity_from(Some("op-7d9f".into()), Some("host".into()), 42),
            "op-7d9f"
        );
        assert_eq!(identity_from(None, Some("host\n".into()), 42), "host-42");
        assert_eq!(
            identity_from(Some("  ".into()), Some("host".into()), 42),
            "host-42"
        );
        assert_eq!(identity_from(None, None, 7), "roiergasias-operator-7");
    }

    #[test]
    fn retries_double_from_half_a_second_up_to_fifteen() {
        let delays: Vec<u64> = retry_delays()
            .take(8)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    }

    #[test]
    fn timings_are_validated_instead_of_panicking() {
        let mut config = LeaderConfig::new("lease", "ns");
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()));
        for (duration, grace) in [(5, 5), (5, 6), (0, 0), (5, 0)] {
            config.lease_duration_secs = duration;
            config.grace_secs = grace;
            let err = config.validate().expect_err("invalid timing");
            assert!(err.to_string().contains(&format!("({duration}s)")), "{err}");
        }
        config.lease_duration_secs = 15;
        config.grace_secs = 5;
        config.identity = " ".into();
        assert!(matches!(config.validate(), Err(LeaderError::Identity(_))));
    }
}
