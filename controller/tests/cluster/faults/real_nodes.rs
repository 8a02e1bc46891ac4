//! Faults of the real nodes while a split's pod runs on one: its kubelet restarted (the pod keeps
//! running, and what it reports reaches the next split), and the node lost (its kubelet and
//! containerd killed for good: the workflow fails naming the node, and its Job makes no other
//! pod). The lost node is brought back before the test ends, for the tests after it.
//!
//! A pod waits on a file the test makes in a host directory mounted into it (both nodes are this
//! host's processes), so each step happens on a condition.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use roiergasias_crd::{Phase, Workflow};
use roiergasias_testkit::Operator;
use roiergasias_testkit::real::{
    GATE, GATED, REAL, host_dir, host_dir_template, one_pod_of, pods_of, real_setup, wait_file,
};
use roiergasias_testkit::workflow::*;

use super::xtask_cluster;
use crate::OPERATOR;

/// The test cluster's controller manager judges a node lost after 200 s without a heartbeat
/// (kwokctl's --node-monitor-grace-period=3m20s), checking every 25 s.
const LOST: Duration = Duration::from_secs(420);

#[tokio::test]
#[ignore = "restarts a real node's kubelet: `cargo xtask test` runs faults:: after the other tests"]
async fn a_kubelet_restarted_while_its_split_runs_keeps_the_pod_and_its_outputs_reach_the_next_split()
 {
    let (client, ns) = real_setup("fault-kubelet").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let gate = host_dir();
    let api: Api<Workflow> = ns.api();
    let template = host_dir_template(gate.path(), GATE);
    let wf = workflow("kubelet", GATED, Some(template));
    api.create(&PostParams::default(), &wf).await.unwrap();
    wait_file(&gate.path().join("started"), REAL).await;
    let running = pods_of(&client, &ns.name, "kubelet-1-node1").await;
    assert_eq!(running.len(), 1, "{running:#?}");

    let restarting = Instant::now();
    // Returns once the node reported Ready again.
    xtask_cluster(&["kubelet-restart", "real-node1"]);
    let back = restarting.elapsed();
    std::fs::write(gate.path().join("go"), "").unwrap();
    let opened = Instant::now();
    wait_phase(&api, "kubelet", Phase::Succeeded, REAL).await;
    eprintln!(
        "the kubelet was back in {back:?}; the workflow finished {:?} after the gate opened",
        opened.elapsed()
    );
    let first = one_pod_of(&client, &ns.name, "kubelet-1-node1", "real-node1").await;
    assert_eq!(first.name, running[0].name, "the pod kept running");
    assert!(first.logs.contains("split 1 passed the gate"), "{first:#?}");
    let second = one_pod_of(&client, &ns.name, "kubelet-2-node2", "real-node2").await;
    let carried = format!("split 2 got {}", first.name);
    assert!(second.logs.contains(&carried), "{second:#?}");
    let (cms, jobs) = owned_names(&client, &ns.name, "kubelet").await;
    assert_eq!(jobs, ["kubelet-1-node1", "kubelet-2-node2"]);
    assert_eq!(cms.len(), 2, "{cms:?}");
}

/// Brings a node `node-stop` stopped back when dropped, even when the test fails.
struct Lost(&'static str);

impl Drop for Lost {
    fn drop(&mut self) {
        xtask_cluster(&["node-start", self.0]);
    }
}

#[tokio::test]
#[ignore = "stops a real node for minutes: `cargo xtask test` runs faults:: after the other tests"]
async fn a_node_lost_while_its_split_runs_fails_the_workflow_naming_the_node_and_its_job_stops() {
    let (client, ns) = real_setup("fault-lost").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let gate = host_dir();
    let api: Api<Workflow> = ns.api();
    let template = host_dir_template(gate.path(), GATE);
    let wf = workflow("lost", GATED, Some(template));
    api.create(&PostParams::default(), &wf).await.unwrap();
    wait_file(&gate.path().join("started"), REAL).await;

    let lost_at = Instant::now();
    xtask_cluster(&["node-stop", "real-node1"]);
    let node = Lost("real-node1");
    let failed = wait_phase(&api, "lost", Phase::Failed, LOST).await;
    let noticed = lost_at.elapsed();
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("is on node real-node1, which is lost"),
        "{message}"
    );
    let job = ns.api::<Job>().get("lost-1-node1").await.unwrap();
    let suspended = job.spec.and_then(|s| s.suspend);
    assert_eq!(suspended, Some(true), "its Job makes no other pod");
    let (_, jobs) = owned_names(&client, &ns.name, "lost").await;
    assert_eq!(jobs, ["lost-1-node1"], "nothing else started");
    wait_event(&client, &ns.name, "lost", "NodeLost").await;

    // Let the orphaned command end, then bring the node back.
    std::fs::write(gate.path().join("go"), "").unwrap();
    let back = Instant::now();
    drop(node);
    eprintln!(
        "failed {noticed:?} after the node was lost: {message}; the node was Ready again in {:?}",
        back.elapsed()
    );
}
