//! Restart safety: the controller process is killed at each point of a three-split workflow and
//! started again; the workflow finishes with exactly one ConfigMap and one Job per split, and the
//! outputs reported before the crash still reach later splits.

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use roiergasias_crd::{MachineState, Phase, Workflow};
use roiergasias_engine::EnvVar;
use roiergasias_testkit::workflow::*;
use roiergasias_testkit::{Operator, until, wait_for};
use serde_json::json;

const DONE: Duration = Duration::from_secs(60);
/// Exit code of a test crash point.
const CRASHED: i32 = 86;

fn with_outputs() -> Workflow {
    workflow(
        "restart",
        THREE,
        Some(pod_annotations(json!({
            "kwok.roiergasias.io/termination-message": "{\"MODEL\":\"m.pkl\"}"
        }))),
    )
}

/// After a restart the workflow succeeds with exactly one ConfigMap and Job per split, and the
/// ConfigMaps carry the first pod's outputs.
async fn finishes_exactly_once(client: &Client, ns: &str, api: &Api<Workflow>) {
    let done = wait_phase(api, "restart", Phase::Succeeded, DONE).await;
    let status = done.status.unwrap();
    assert_eq!(status.successful_jobs.len(), 3, "{status:#?}");
    let (cms, jobs) = owned_names(client, ns, "restart").await;
    assert_eq!(
        cms,
        [
            "restart-hello-world-1-node1",
            "restart-hello-world-2-node2",
            "restart-hello-world-3-node2"
        ]
    );
    assert_eq!(
        jobs,
        ["restart-1-node1", "restart-2-node2", "restart-3-node2"]
    );
    let carried = [EnvVar::new("MODEL", "m.pkl")];
    for (n, cm) in cms.iter().enumerate().skip(1) {
        assert_eq!(
            config_map_text(client, ns, cm).await,
            expected_split(THREE, n + 1, &carried),
            "ConfigMap {cm}"
        );
    }
}

/// Runs until the crash point `point` makes the operator exit, checks the state it left, then
/// restarts it and checks the workflow finishes exactly once.
async fn crash_then_resume(
    prefix: &str,
    point: &str,
    check: impl Fn(&Workflow, &[String], &[String]),
) {
    let (client, ns) = setup(prefix).await;
    let mut operator = Operator::start_with(
        OPERATOR,
        &ns.name,
        &[("ROIERGASIAS_TEST_CRASH_AFTER", point)],
    );
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &with_outputs())
        .await
        .unwrap();
    let code = operator.exited(DONE).await;
    assert_eq!(
        code,
        Some(CRASHED),
        "the operator should stop at {point}:\n{}",
        operator.log()
    );
    drop(operator);
    let left = api.get("restart").await.unwrap();
    let (cms, jobs) = owned_names(&client, &ns.name, "restart").await;
    check(&left, &cms, &jobs);

    let _operator = Operator::start(OPERATOR, &ns.name);
    finishes_exactly_once(&client, &ns.name, &api).await;
}

fn state(wf: &Workflow) -> (Option<MachineState>, Option<u32>) {
    let s = wf.status.clone().unwrap_or_default();
    (s.state, s.current_split)
}

// Split n is recorded together with its Job (one status write per split), so each crash below
// leaves status at WaitingJob(1) with Job 1 Complete: the restarted controller reads split 1's
// outputs from its pod again and adopts what it had already created.

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn killed_after_configmap_before_job() {
    crash_then_resume("op-crash-cm", "configmap:2", |wf, cms, jobs| {
        assert_eq!(state(wf), (Some(MachineState::WaitingJob), Some(1)));
        assert_eq!(cms.len(), 2, "{cms:?}");
        assert_eq!(jobs, ["restart-1-node1"]);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn killed_after_job_before_recording_it() {
    crash_then_resume("op-crash-job", "job:2", |wf, cms, jobs| {
        assert_eq!(state(wf), (Some(MachineState::WaitingJob), Some(1)));
        assert_eq!(cms.len(), 2, "{cms:?}");
        assert_eq!(jobs, ["restart-1-node1", "restart-2-node2"]);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn killed_just_after_a_job_completes() {
    // Job 1 was seen Complete and its outputs read; nothing of split 2 exists yet, and the
    // outputs are not in status: the restarted controller reads them again.
    crash_then_resume("op-crash-done", "advance:1", |wf, cms, jobs| {
        assert_eq!(state(wf), (Some(MachineState::WaitingJob), Some(1)));
        assert!(wf.status.as_ref().unwrap().environment.is_empty());
        assert_eq!(cms, ["restart-hello-world-1-node1"]);
        assert_eq!(jobs, ["restart-1-node1"]);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn killed_while_waiting_for_a_job() {
    let (client, ns) = setup("op-crash-wait").await;
    let operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &with_outputs())
        .await
        .unwrap();
    wait_status(&api, "restart", "WaitingJob(2)", |s| {
        s.state == Some(MachineState::WaitingJob) && s.current_split == Some(2)
    })
    .await;
    operator.kill();
    // Job 2 finishes while no controller runs.
    wait_for(
        &ns.api::<Job>(),
        "restart-2-node2",
        "Job restart-2-node2 to complete without the operator",
        |job: Option<&Job>| job.is_some_and(job_complete),
    )
    .await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    finishes_exactly_once(&client, &ns.name, &api).await;
}

/// SIGTERM, as Kubernetes sends it, then exit 0 within 20 s with the signal logged.
async fn terminate(operator: &mut Operator) {
    operator.terminate();
    let code = operator.exited(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "log:\n{}", operator.log());
    assert!(
        operator.log().contains("SIGTERM received"),
        "{}",
        operator.log()
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn sigterm_shuts_down_gracefully() {
    let (_client, ns) = setup("op-sigterm").await;
    // While its Workflow cache is still filling: kube would hold the shutdown forever.
    let mut starting = Operator::start(OPERATOR, &ns.name);
    starting.logged("starting", Duration::from_secs(20)).await;
    terminate(&mut starting).await;

    // After it has run a workflow: the controller drains and stops.
    let mut operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(
        &PostParams::default(),
        &workflow("before-term", SINGLE, None),
    )
    .await
    .unwrap();
    wait_phase(&api, "before-term", Phase::Succeeded, DONE).await;
    terminate(&mut operator).await;
    assert!(
        !operator
            .log()
            .contains("stopped before the Workflow cache was filled"),
        "{}",
        operator.log()
    );
}

/// The one thing a crash can lose: split 1's pod deleted while no controller ran, after its Job
/// completed and before its outputs were recorded. The workflow still finishes, and says (a Warning
/// Event) that the outputs could not be carried.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn killed_just_after_a_job_completes_and_its_pod_then_deleted() {
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{DeleteParams, ListParams};
    let (client, ns) = setup("op-crash-gone").await;
    let mut operator = Operator::start_with(
        OPERATOR,
        &ns.name,
        &[("ROIERGASIAS_TEST_CRASH_AFTER", "advance:1")],
    );
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &with_outputs())
        .await
        .unwrap();
    assert_eq!(
        operator.exited(DONE).await,
        Some(CRASHED),
        "{}",
        operator.log()
    );
    drop(operator);
    let pods: Api<Pod> = ns.api();
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch.ankursoni.github.io/workflow=restart"),
    )
    .await
    .unwrap();
    until("the workflow's pods to be deleted", DONE, || async {
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        let names: Vec<String> = left.iter().map(|p| p.name_any()).collect();
        if names.is_empty() { Ok(()) } else { Err(names) }
    })
    .await;

    let _operator = Operator::start(OPERATOR, &ns.name);
    wait_phase(&api, "restart", Phase::Succeeded, DONE).await;
    // Split 2 lacks what pod 1 reported (later pods report MODEL again, for split 3).
    let config_maps: Api<ConfigMap> = ns.api();
    let second = config_maps
        .get("restart-hello-world-2-node2")
        .await
        .unwrap();
    let text = second.data.unwrap().into_values().next().unwrap();
    assert!(!text.contains("MODEL"), "{text}");
    let note = wait_event(&client, &ns.name, "restart", "OutputsIgnored").await;
    assert_eq!(
        note,
        "Job restart-1-node1 completed but its pod is gone, so any outputs it reported could not \
         be carried forward"
    );
}
