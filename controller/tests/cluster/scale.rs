//! Many workflows at once, and deletion of a running one, on the real control plane.

use std::time::Duration;

use crate::OPERATOR;
use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use roiergasias_crd::{MachineState, Phase, Workflow};
use roiergasias_testkit::Operator;
use roiergasias_testkit::workflow::*;

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn fifty_three_split_workflows_at_once_all_succeed() {
    let (client, ns) = setup("op-fifty").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    let names: Vec<String> = (0..50).map(|i| format!("wf-{i:02}")).collect();
    let creates = names.iter().map(|name| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &workflow(name, THREE, None))
                .await
                .unwrap_or_else(|e| panic!("creating {name}: {e}"))
        }
    });
    join_all(creates).await;
    let waits = names
        .iter()
        .map(|name| wait_phase(&api, name, Phase::Succeeded, Duration::from_secs(240)));
    let done = join_all(waits).await;
    assert_eq!(done.len(), 50);
    for wf in &done {
        assert_eq!(wf.status.as_ref().unwrap().successful_jobs.len(), 3);
    }
    let jobs = ns.api::<Job>().list(&Default::default()).await.unwrap();
    assert_eq!(jobs.items.len(), 150, "exactly three Jobs per workflow");
    let (cms, _) = owned_names(&client, &ns.name, "wf-00").await;
    assert_eq!(cms.len(), 3);
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn deleting_a_running_workflow_removes_its_configmaps_and_jobs() {
    let (client, ns) = setup("op-delete").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    // Split 2 targets a node label no node carries, so its pod stays Pending: the workflow is
    // still running when deleted.
    let yaml = THREE.replacen("node: node2", "node: nowhere", 1);
    api.create(&PostParams::default(), &workflow("doomed", &yaml, None))
        .await
        .unwrap();
    wait_status(&api, "doomed", "WaitingJob(2)", |s| {
        s.state == Some(MachineState::WaitingJob) && s.current_split == Some(2)
    })
    .await;
    let (cms, jobs) = owned_names(&client, &ns.name, "doomed").await;
    assert_eq!(jobs, ["doomed-1-node1", "doomed-2-nowhere"]);
    assert_eq!(cms.len(), 2);

    api.delete("doomed", &DeleteParams::foreground())
        .await
        .unwrap();
    roiergasias_testkit::wait_deleted(&api, "doomed", "Workflow doomed").await;
    for job in &jobs {
        roiergasias_testkit::wait_deleted(&ns.api::<Job>(), job, &format!("Job {job}")).await;
    }
    for cm in &cms {
        roiergasias_testkit::wait_deleted(&ns.api::<ConfigMap>(), cm, &format!("ConfigMap {cm}"))
            .await;
    }
}
