//! Faults injected into the test cluster while a workflow runs. They stop parts of the cluster
//! every other test shares, so `cargo xtask test` runs this module alone, after the rest (the
//! shared run skips `faults::`). Each test asserts that the workflow ends, with exactly one
//! ConfigMap and Job per split, and with nothing lost from status.

mod chaos;
mod partition;
mod real_nodes;

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use roiergasias_crd::{Phase, Workflow};
use roiergasias_engine::EnvVar;
use roiergasias_testkit::faults::pause;
use roiergasias_testkit::workflow::*;
use roiergasias_testkit::{Operator, until};
use serde_json::json;

pub(crate) const DONE: Duration = Duration::from_secs(60);
/// Longer than a reconcile takes, shorter than the controller manager's and scheduler's lease
/// renew deadline (10 s): a component whose Lease lapses exits, and nothing restarts it here.
const PAUSE: Duration = Duration::from_secs(6);
/// What "recovers within seconds" allows, from the API server answering again to the next step.
const RECOVERY: Duration = Duration::from_secs(30);

/// Workflow `name`: three splits, the first reporting MODEL=m.pkl.
pub(crate) fn three_splits(name: &str) -> Workflow {
    let outputs = pod_annotations(json!({
        "kwok.roiergasias.io/termination-message": "{\"MODEL\":\"m.pkl\"}"
    }));
    workflow(name, THREE, Some(outputs))
}

/// Waits until Job `name` exists (`complete`: and has completed), within `within`.
pub(crate) async fn job(jobs: &Api<Job>, name: &str, complete: bool, within: Duration) {
    let what = format!("Job {name}{}", if complete { " complete" } else { "" });
    until(&what, within, || async {
        let job = jobs.get_opt(name).await.ok().flatten();
        job.filter(|j| !complete || job_complete(j))
            .ok_or("not yet")
    })
    .await;
}

/// Workflow `name` (made by [`three_splits`]) ends Succeeded with one ConfigMap and Job per
/// split, every record complete, and split 1's outputs in the later ConfigMaps.
pub(crate) async fn finished_once(client: &kube::Client, ns: &str, name: &str, within: Duration) {
    let api: Api<Workflow> = Api::namespaced(client.clone(), ns);
    let done = wait_phase(&api, name, Phase::Succeeded, within).await;
    let status = done.status.unwrap();
    assert_eq!(status.successful_jobs.len(), 3, "{status:#?}");
    let (cms, jobs) = owned_names(client, ns, name).await;
    let want: Vec<String> = ["1-node1", "2-node2", "3-node2"]
        .iter()
        .map(|s| format!("{name}-{s}"))
        .collect();
    assert_eq!(jobs, want);
    assert_eq!(cms.len(), 3, "{cms:?}");
    let carried = [EnvVar::new("MODEL", "m.pkl")];
    for (n, cm) in cms.iter().enumerate().skip(1) {
        let text = config_map_text(client, ns, cm).await;
        assert_eq!(text, expected_split(THREE, n + 1, &carried), "{cm}");
    }
    let mut records = status.splits.iter();
    assert!(records.all(|r| r.start_time.is_some() && r.completion_time.is_some()));
}

#[tokio::test]
#[ignore = "pauses the shared API server: `cargo xtask test` runs faults:: after the other tests"]
async fn a_paused_api_server_holds_a_workflow_at_a_hand_off_and_mid_split_and_it_loses_nothing() {
    let (client, ns) = setup("fault-pause").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &three_splits("pause"))
        .await
        .unwrap();
    let jobs: Api<Job> = ns.api();
    // At a hand-off: Job 1 has just completed, the operator is reading its pod and creating
    // split 2's objects.
    job(&jobs, "pause-1-node1", true, DONE).await;
    let answered = pause("kube-apiserver", PAUSE).await;
    job(&jobs, "pause-2-node2", false, RECOVERY).await;
    let hand_off = answered.elapsed();
    // Mid-split: Job 2 exists and the operator waits for it.
    let answered = pause("kube-apiserver", PAUSE).await;
    job(&jobs, "pause-3-node2", false, RECOVERY).await;
    let mid_split = answered.elapsed();
    eprintln!("recovered {hand_off:?} after a pause at a hand-off, {mid_split:?} mid-split");
    finished_once(&client, &ns.name, "pause", DONE).await;
}

/// `cargo xtask cluster ARGS` on the test cluster (ROIERGASIAS_CLUSTER), where the fault tools are.
pub(crate) fn xtask_cluster(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["xtask", "cluster"])
        .args(args)
        .current_dir(roiergasias_testkit::cluster::repo())
        .output()
        .expect("running cargo xtask");
    let said = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo xtask cluster {args:?}: {said}{err}"
    );
    eprintln!("{}", said.trim());
}

#[tokio::test]
#[ignore = "restarts the shared etcd and API server: `cargo xtask test` runs faults:: after the other tests"]
async fn etcd_restarted_at_a_hand_off_and_the_api_server_mid_split_lose_nothing() {
    let (client, ns) = setup("fault-restart").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &three_splits("restart"))
        .await
        .unwrap();
    let jobs: Api<Job> = ns.api();
    job(&jobs, "restart-1-node1", true, DONE).await;
    // Returns once the API server answers /readyz again.
    xtask_cluster(&["restart", "etcd"]);
    let answered = std::time::Instant::now();
    job(&jobs, "restart-2-node2", false, RECOVERY).await;
    let after_etcd = answered.elapsed();
    xtask_cluster(&["restart", "kube-apiserver"]);
    let answered = std::time::Instant::now();
    job(&jobs, "restart-3-node2", false, RECOVERY).await;
    let after_apiserver = answered.elapsed();
    eprintln!(
        "went on {after_etcd:?} after etcd was back, {after_apiserver:?} after the API server"
    );
    finished_once(&client, &ns.name, "restart", DONE).await;
}
