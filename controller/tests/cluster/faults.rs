//! Faults injected into the test cluster while a workflow runs. They stop parts of the cluster
//! every other test shares, so `cargo xtask test` runs this module alone, after the rest (the
//! shared run skips `faults::`). Each test asserts that the workflow ends, with exactly one
//! ConfigMap and Job per split, and with nothing lost from status.

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

const DONE: Duration = Duration::from_secs(60);
/// Longer than a reconcile takes, shorter than the controller manager's and scheduler's lease
/// renew deadline (10 s): a component whose Lease lapses exits, and nothing restarts it here.
const PAUSE: Duration = Duration::from_secs(6);
/// What "recovers within seconds" allows, from the API server answering again to the next step.
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test]
#[ignore = "pauses the shared API server: `cargo xtask test` runs faults:: after the other tests"]
async fn a_paused_api_server_holds_a_workflow_at_a_hand_off_and_mid_split_and_it_loses_nothing() {
    let (client, ns) = setup("fault-pause").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    let outputs = pod_annotations(json!({
        "kwok.roiergasias.io/termination-message": "{\"MODEL\":\"m.pkl\"}"
    }));
    let wf = workflow("pause", THREE, Some(outputs));
    api.create(&PostParams::default(), &wf).await.unwrap();
    let jobs: Api<Job> = ns.api();
    let exists = |name: &'static str| {
        let jobs = jobs.clone();
        move || {
            let jobs = jobs.clone();
            async move { jobs.get_opt(name).await.ok().flatten().ok_or("not yet") }
        }
    };
    let complete = |name: &'static str| {
        let jobs = jobs.clone();
        move || {
            let jobs = jobs.clone();
            async move {
                let job = jobs.get_opt(name).await.ok().flatten();
                job.filter(job_complete).ok_or("not complete")
            }
        }
    };
    // At a hand-off: Job 1 has just completed, the operator is reading its pod and creating
    // split 2's objects.
    until("Job 1 complete", DONE, complete("pause-1-node1")).await;
    let answered = pause("kube-apiserver", PAUSE).await;
    until("Job 2 created", RECOVERY, exists("pause-2-node2")).await;
    let hand_off = answered.elapsed();
    // Mid-split: Job 2 exists and the operator waits for it.
    let answered = pause("kube-apiserver", PAUSE).await;
    until("Job 3 created", RECOVERY, exists("pause-3-node2")).await;
    let mid_split = answered.elapsed();
    eprintln!("recovered {hand_off:?} after a pause at a hand-off, {mid_split:?} mid-split");

    let done = wait_phase(&api, "pause", Phase::Succeeded, DONE).await;
    let status = done.status.unwrap();
    assert_eq!(status.successful_jobs.len(), 3, "{status:#?}");
    let (cms, jobs) = owned_names(&client, &ns.name, "pause").await;
    assert_eq!(jobs, ["pause-1-node1", "pause-2-node2", "pause-3-node2"]);
    assert_eq!(cms.len(), 3, "{cms:?}");
    let carried = [EnvVar::new("MODEL", "m.pkl")];
    for (n, cm) in cms.iter().enumerate().skip(1) {
        let text = config_map_text(&client, &ns.name, cm).await;
        assert_eq!(text, expected_split(THREE, n + 1, &carried), "{cm}");
    }
    let records = status.splits.iter();
    assert!(
        records
            .clone()
            .all(|r| r.start_time.is_some() && r.completion_time.is_some())
    );
}
