//! Leader election through a coordination.k8s.io Lease (kube-lease-manager):
//! the controller runs only while this replica holds the Lease, so two
//! replicas never reconcile at once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

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
        "invalid leader election timing: the lease duration ({duration}s) must be greater than the renewal grace ({grace}s), and both above zero"
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
        if duration == 0 || grace == 0 || grace >= duration {
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
/// Lease: started on acquiring it, dropped (cancelled) on losing it or on any
/// error talking to the Lease, and started afresh on re-acquiring it.
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
    let mut retry = retry_delays();
    ready.send_replace(false);

    loop {
        let built = tokio::select! {
            _ = &mut shutdown => return Ok(LeaderExit::Shutdown),
            built = build_manager(client.clone(), config) => built,
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

        let mut running: Option<Pin<Box<Fut>>> = None;
        ready.send_replace(true);
        let exit = loop {
            tokio::select! {
                _ = &mut shutdown => break Some(LeaderExit::Shutdown),
                _ = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                    tracing::warn!("the controller stopped by itself while leading");
                    break Some(LeaderExit::ControllerEnded);
                }
                changed = manager.changed() => match changed {
                    Ok(true) => {
                        tracing::info!(identity = %config.identity, lease = %config.lease_name, "acquired the Lease; starting the controller");
                        retry = retry_delays();
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
                        break None;
                    }
                },
            }
        };
        drop(running);
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

async fn build_manager(
    client: Client,
    config: &LeaderConfig,
) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&config.identity)
        .with_field_manager(format!("roiergasias-operator-{}", config.identity))
        .with_duration(config.lease_duration_secs)
        .with_grace(config.grace_secs)
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
    use super::*;

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
