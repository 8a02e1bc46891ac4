//! The lifecycle controls on the cluster: `spec.suspend` between splits and before the first,
//! `spec.activeDeadlineSeconds` suspending the running Job, `spec.ttlSecondsAfterFinished`
//! deleting the Workflow and (through owner references) its objects.

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use roiergasias_crd::{MachineState, Phase, Workflow};
use roiergasias_testkit::workflow::*;
use roiergasias_testkit::{Operator, wait_deleted};
use serde_json::json;

const DONE: Duration = Duration::from_secs(60);
/// Exit code of a test crash point.
const CRASHED: i32 = 86;

fn at(wf: &Workflow) -> (Option<MachineState>, Option<u32>) {
    let status = wf.status.clone().unwrap_or_default();
    (status.state, status.current_split)
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn suspend_holds_a_three_split_workflow_before_its_first_and_between_splits_then_resumes() {
    let (client, ns) = setup("op-suspend").await;
    let name = "held";
    let outputs = json!({"kwok.roiergasias.io/termination-message": "{\"MODEL\":\"m.pkl\"}"});
    let mut wf = workflow(name, THREE, Some(pod_annotations(outputs)));
    wf.spec.suspend = Some(true);
    // This operator stops as soon as it sees Job 1 Complete: split 2 is suspended after that,
    // deterministically, while kwok's pods finish at once.
    let mut operator = Operator::start_with(
        OPERATOR,
        &ns.name,
        &[("ROIERGASIAS_TEST_CRASH_AFTER", "advance:1")],
    );
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &wf).await.unwrap();
    let held = wait_phase(&api, name, Phase::Suspended, DONE).await;
    assert_eq!(at(&held), (Some(MachineState::Split), Some(1)));
    assert_eq!(owned_names(&client, &ns.name, name).await, (vec![], vec![]));
    wait_event(&client, &ns.name, name, "Suspended").await;

    patch_spec(&api, name, json!({"suspend": false})).await;
    assert_eq!(
        operator.exited(DONE).await,
        Some(CRASHED),
        "{}",
        operator.log()
    );
    drop(operator);
    patch_spec(&api, name, json!({"suspend": true})).await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let held = wait_status(&api, name, "suspended at split 2", |s| {
        s.phase == Some(Phase::Suspended) && s.current_split == Some(2)
    })
    .await;
    let status = held.status.unwrap();
    assert_eq!(status.state, Some(MachineState::Split));
    assert_eq!(
        status.environment[0].value, "m.pkl",
        "split 1's outputs kept"
    );
    let suspended = status.conditions.iter().find(|c| c.type_ == "Suspended");
    assert_eq!(suspended.map(|c| c.status.as_str()), Some("True"));
    let (_, jobs) = owned_names(&client, &ns.name, name).await;
    assert_eq!(jobs, ["held-1-node1"], "split 2 not started");

    patch_spec(&api, name, json!({"suspend": false})).await;
    wait_phase(&api, name, Phase::Succeeded, DONE).await;
    let (cms, jobs) = owned_names(&client, &ns.name, name).await;
    assert_eq!(jobs, ["held-1-node1", "held-2-node2", "held-3-node2"]);
    assert_eq!(cms.len(), 3);
    wait_events(
        &client,
        &ns.name,
        name,
        &["Suspended", "Resumed", "Succeeded"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn past_its_deadline_a_workflow_fails_and_its_running_job_is_suspended_not_deleted() {
    let (_client, ns) = setup("op-deadline").await;
    let name = "late";
    // The pod waits for a node nobody has: the Job runs until the deadline stops it.
    let template = json!({"spec": {"template": {"spec": {"nodeSelector": {"no-such": "node"}}}}});
    let mut wf = workflow(name, SINGLE, Some(template));
    wf.spec.active_deadline_seconds = Some(3);
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &wf).await.unwrap();
    let failed = wait_phase(&api, name, Phase::Failed, DONE).await;
    let status = failed.status.unwrap();
    assert_eq!(
        status.message.as_deref(),
        Some(
            "the workflow ran longer than its activeDeadlineSeconds (3 s) and was stopped at \
             split 1/1; its Job late was suspended"
        )
    );
    let failure = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failure.reason, "DeadlineExceeded");
    let job = ns.api::<Job>().get(name).await.expect("the Job is kept");
    assert_eq!(job.spec.unwrap().suspend, Some(true));
    assert_eq!(status.failed_jobs.len(), 1);
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_finished_workflow_and_its_objects_are_deleted_its_ttl_after_completion() {
    let (client, ns) = setup("op-ttl").await;
    let name = "brief";
    let mut wf = workflow(name, SINGLE, None);
    wf.spec.ttl_seconds_after_finished = Some(3);
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &wf).await.unwrap();
    let done = wait_phase(&api, name, Phase::Succeeded, DONE).await;
    let completed = done.status.unwrap().completion_time.unwrap();
    wait_deleted(&api, name, "the Workflow").await;
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(completed.0);
    // completionTime is stored to the second: at least 2 s of the 3 are certain.
    assert!(elapsed.as_secs() >= 2, "deleted {elapsed} after completion");
    let note = wait_event(&client, &ns.name, name, "Expired").await;
    assert!(note.ends_with("ttlSecondsAfterFinished is 3 s"), "{note}");
    // The garbage collector follows the owner references.
    wait_deleted(&ns.api::<Job>(), name, "the Job").await;
    wait_deleted(&ns.api::<ConfigMap>(), "brief-hello-world", "the ConfigMap").await;
}
