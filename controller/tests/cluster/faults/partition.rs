//! An operator cut off from the API server while it leads: two replicas with leader election,
//! each talking through a proxy of its own (`cargo xtask cluster proxy`); the leader's is cut at
//! a hand-off. The cut-off one must stop reconciling before its Lease may expire, the standby
//! take over and finish the workflow, and no split get a second Job.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use roiergasias_crd::Workflow;
use roiergasias_testkit::faults::Proxy;
use roiergasias_testkit::{Operator, unique_name, until};

use super::{DONE, finished_once, job, three_splits};
use crate::OPERATOR;

const LEASE: &str = "roiergasias-partition";
/// The operator's default Lease duration (controller/src/leader.rs).
const LEASE_SECS: i64 = 15;
/// Generous: a full Lease, the standby's wait, and the slow start of two operators.
const TAKEOVER: Duration = Duration::from_secs(60);

/// The Lease's holder and renewTime, read straight from the API server (not through a proxy).
async fn lease(leases: &Api<Lease>) -> Option<(String, Timestamp)> {
    let spec = leases.get_opt(LEASE).await.ok().flatten()?.spec?;
    Some((spec.holder_identity?, spec.renew_time?.0))
}

/// When `operator` first logged a line holding `text` (its text log's leading timestamp).
fn logged_at(operator: &Operator, text: &str) -> Option<Timestamp> {
    let log = operator.log();
    let line = log.lines().find(|l| l.contains(text))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Whether `operator` answers 200 on /readyz (it takes part in the election).
async fn ready(operator: &Operator) -> bool {
    let log = operator.log();
    let port = log
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| {
            a.split_whitespace()
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        });
    let Some(port) = port else { return false };
    let answer = roiergasias_testkit::http::get(port, "/readyz").await;
    answer.is_ok_and(|(code, _)| code == 200)
}

#[tokio::test]
#[ignore = "starts proxies and two operators: `cargo xtask test` runs faults:: after the other tests"]
async fn a_cut_off_leader_stops_before_its_lease_expires_and_the_standby_finishes_with_one_job_per_split()
 {
    let (client, ns) = roiergasias_testkit::workflow::setup("fault-cut").await;
    let names = ["op-a", "op-b"];
    let mut proxies = Vec::new();
    for name in names {
        proxies.push(Proxy::start(&unique_name(name)).await);
    }
    let operators: Vec<Operator> = names
        .iter()
        .zip(&proxies)
        .map(|(name, proxy)| {
            Operator::start_electing(OPERATOR, &ns.name, LEASE, name, &proxy.kubeconfig)
        })
        .collect();
    let leases: Api<Lease> = ns.api();
    let (first, _) = until("one operator to lead", TAKEOVER, || async {
        lease(&leases).await.ok_or("no holder yet")
    })
    .await;
    let leader = names
        .iter()
        .position(|n| *n == first)
        .expect("a known identity");
    let standby = 1 - leader;
    until("both to take part in the election", TAKEOVER, || async {
        let both = ready(&operators[0]).await && ready(&operators[1]).await;
        if both { Ok(()) } else { Err("not both ready") }
    })
    .await;

    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &three_splits("cut"))
        .await
        .unwrap();
    let jobs: Api<Job> = ns.api();
    // At a hand-off: Job 1 has completed, the leader is reading its pod and making split 2's.
    job(&jobs, "cut-1-node1", true, DONE).await;
    proxies[leader].cut();
    let cut = Instant::now();
    // Nothing the leader sends from now on arrives: this is its last renewal.
    let (holder, renewed) = lease(&leases).await.expect("the Lease is held");
    assert_eq!(holder, names[leader]);
    let expiry = renewed + SignedDuration::from_secs(LEASE_SECS);

    until("the standby to take the Lease over", TAKEOVER, || async {
        match lease(&leases).await {
            Some((holder, _)) if holder == names[standby] => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let takeover = cut.elapsed();
    let stopped = logged_at(&operators[leader], "stopping the controller")
        .unwrap_or_else(|| panic!("the cut-off leader stopped:\n{}", operators[leader].log()));
    let started = logged_at(&operators[standby], "acquired the Lease")
        .expect("the standby logged its acquisition");
    assert!(
        stopped < expiry,
        "the cut-off leader stopped at {stopped}, before its Lease could expire at {expiry}"
    );
    assert!(
        stopped < started,
        "it stopped ({stopped}) before the standby started ({started})"
    );
    eprintln!(
        "standby led {takeover:?} after the cut; the cut-off leader stopped {:.1} s before its Lease's end",
        expiry.duration_since(stopped).as_secs_f64()
    );
    finished_once(&client, &ns.name, "cut", DONE).await;

    // Healed, the old leader comes back as a standby: the finished workflow gains no Job.
    assert!(!ready(&operators[leader]).await, "cut off, it is not ready");
    proxies[leader].heal();
    until("the old leader to take part again", TAKEOVER, || async {
        if ready(&operators[leader]).await {
            Ok(())
        } else {
            Err("not ready")
        }
    })
    .await;
    finished_once(&client, &ns.name, "cut", DONE).await;
    assert_eq!(
        lease(&leases).await.map(|l| l.0).as_deref(),
        Some(names[standby])
    );
}
