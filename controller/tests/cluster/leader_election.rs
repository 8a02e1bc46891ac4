//! Leader election on the real control plane: of two electors sharing a Lease,
//! exactly one runs its controller; the other takes over when the first stops
//! or loses the Lease, and the two never run at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Patch, PatchParams};
use roiergasias_controller::leader::{LeaderConfig, LeaderError, LeaderExit, run_while_leading};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const LEASE: &str = "roiergasias-operator-test";
/// Short timings keep the test quick: renew every 2 s, take over after 4 s.
const DURATION_SECS: u64 = 4;
const GRACE_SECS: u64 = 2;
/// Generous bound for any hand-over: a full lease period plus retries and jitter.
const TAKEOVER: Duration = Duration::from_secs(3 * DURATION_SECS + 6);

/// Which controllers run right now, and the most that ever ran together.
#[derive(Default)]
struct Running {
    now: Vec<String>,
    max_together: usize,
    starts: usize,
}

struct RunningGuard {
    tracker: Arc<Mutex<Running>>,
    identity: String,
}

impl RunningGuard {
    fn enter(tracker: &Arc<Mutex<Running>>, identity: &str) -> Self {
        let mut state = tracker.lock().unwrap();
        state.now.push(identity.to_owned());
        state.max_together = state.max_together.max(state.now.len());
        state.starts += 1;
        Self {
            tracker: tracker.clone(),
            identity: identity.to_owned(),
        }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut state = self.tracker.lock().unwrap();
        state.now.retain(|id| id != &self.identity);
    }
}

struct Elector {
    identity: String,
    ready: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<LeaderExit, LeaderError>>,
}

fn spawn_elector(
    client: &Client,
    namespace: &str,
    identity: &str,
    tracker: &Arc<Mutex<Running>>,
) -> Elector {
    let config = LeaderConfig {
        lease_name: LEASE.to_owned(),
        lease_namespace: namespace.to_owned(),
        identity: identity.to_owned(),
        lease_duration_secs: DURATION_SECS,
        grace_secs: GRACE_SECS,
    };
    let (ready_tx, ready) = watch::channel(false);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (client, tracker, id) = (client.clone(), tracker.clone(), identity.to_owned());
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        run_while_leading(client, &config, &ready_tx, shutdown, || {
            let (tracker, id) = (tracker.clone(), id.clone());
            // Stands in for the controller: "runs" until dropped.
            async move {
                let _running = RunningGuard::enter(&tracker, &id);
                std::future::pending::<()>().await
            }
        })
        .await
    });
    Elector {
        identity: identity.to_owned(),
        ready,
        stop: Some(stop),
        task,
    }
}

/// Waits until `pred` holds for the tracker, failing with `what` after `timeout`.
async fn wait_until(
    tracker: &Arc<Mutex<Running>>,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Running) -> bool,
) {
    roiergasias_testkit::until(what, timeout, || {
        let state = tracker.lock().unwrap();
        std::future::ready(if pred(&state) {
            Ok(())
        } else {
            Err(state.now.clone())
        })
    })
    .await;
}

/// The Lease's renewTime, in microseconds.
async fn renewed_at(leases: &kube::Api<Lease>) -> Option<i64> {
    let lease = leases.get(LEASE).await.expect("the Lease exists");
    lease.spec?.renew_time.map(|t| t.0.as_microsecond())
}

fn running_now(tracker: &Arc<Mutex<Running>>) -> Vec<String> {
    tracker.lock().unwrap().now.clone()
}

async fn holder(leases: &kube::Api<Lease>) -> Option<String> {
    leases
        .get(LEASE)
        .await
        .expect("the Lease exists")
        .spec
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn one_leader_at_a_time_with_takeover() {
    let client = roiergasias_testkit::client().await;
    let ns = roiergasias_testkit::TestNamespace::create(&client, "leader").await;
    let leases: kube::Api<Lease> = ns.api();
    let tracker = Arc::new(Mutex::new(Running::default()));

    let mut electors = [
        spawn_elector(&client, &ns.name, "replica-a", &tracker),
        spawn_elector(&client, &ns.name, "replica-b", &tracker),
    ];

    // Exactly one leads; both are ready, since readiness means taking part in the election
    // (a standby that never became ready would hang a rolling update).
    wait_until(&tracker, "one elector leads", TAKEOVER, |s| {
        s.now.len() == 1
    })
    .await;
    let first = running_now(&tracker)[0].clone();
    let (leader, standby) = if electors[0].identity == first {
        (0, 1)
    } else {
        (1, 0)
    };
    // Renewals over several lease periods must neither drop the leader nor start the standby:
    // watch the Lease's renewTime move on by two lease durations, the leader alone all along.
    let since = renewed_at(&leases)
        .await
        .expect("the leader renewed the Lease");
    let periods = 2 * DURATION_SECS as i64 * 1_000_000;
    let span = Duration::from_secs(3 * DURATION_SECS);
    roiergasias_testkit::until("two lease durations of renewals", span, || async {
        assert_eq!(
            running_now(&tracker),
            vec![first.clone()],
            "the leader stays the only one running"
        );
        match renewed_at(&leases).await {
            Some(at) if at - since >= periods => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert!(*electors[leader].ready.borrow(), "the leader is ready");
    assert!(
        *electors[standby].ready.borrow(),
        "the standby is ready too: it takes part in the election"
    );
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some(first.as_str()),
        "the Lease names the leader"
    );

    // Someone else takes the Lease (as after the leader's renewals stalled): the
    // leader must notice at its next renewal and stop its controller.
    let intruder = serde_json::json!({
        "spec": {
            "holderIdentity": "intruder",
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now()),
            "leaseDurationSeconds": DURATION_SECS,
        }
    });
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&intruder))
        .await
        .expect("take the Lease over");
    wait_until(
        &tracker,
        "the leader stops after losing the Lease",
        TAKEOVER,
        |s| s.now.is_empty(),
    )
    .await;
    assert!(
        *electors[leader].ready.borrow(),
        "still ready once the Lease is lost: now a standby, still taking part"
    );

    // The intruder never renews: one of the two re-acquires and starts afresh.
    wait_until(
        &tracker,
        "an elector re-acquires the expired Lease",
        TAKEOVER,
        |s| s.now.len() == 1,
    )
    .await;
    let second = running_now(&tracker)[0].clone();
    let current = if electors[0].identity == second { 0 } else { 1 };
    let other = 1 - current;
    assert!(*electors[current].ready.borrow());

    // The current leader shuts down: it releases the Lease and the other takes over.
    electors[current].stop.take().unwrap().send(()).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), &mut electors[current].task)
        .await
        .expect("shutdown is prompt")
        .expect("the elector task does not panic")
        .expect("the elector ends without error");
    assert_eq!(exit, LeaderExit::Shutdown);
    assert!(
        !*electors[current].ready.borrow(),
        "a stopped elector is not ready"
    );
    let third = electors[other].identity.clone();
    wait_until(&tracker, "the standby takes over", TAKEOVER, |s| {
        s.now == [third.clone()]
    })
    .await;
    assert!(*electors[other].ready.borrow(), "the new leader is ready");
    assert_eq!(holder(&leases).await.as_deref(), Some(third.as_str()));

    {
        let state = tracker.lock().unwrap();
        assert_eq!(state.max_together, 1, "two controllers never ran at once");
        assert_eq!(
            state.starts, 3,
            "started once per acquisition: {first}, {second}, {third}"
        );
    }

    electors[other].stop.take().unwrap().send(()).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), &mut electors[other].task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit, LeaderExit::Shutdown);
    assert!(running_now(&tracker).is_empty());
    assert_eq!(
        holder(&leases).await,
        None,
        "a leader that shuts down releases the Lease"
    );
}
