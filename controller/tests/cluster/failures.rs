//! Failures on the real control plane: a failing Job, invalid YAML and a name taken by someone
//! else each fail the workflow with a clear message and an Event, and nothing runs after.

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use roiergasias_crd::{CONDITION_FAILED, MachineState, Phase, SplitPhase, Workflow};
use roiergasias_testkit::Operator;
use roiergasias_testkit::workflow::*;
use serde_json::json;

const DONE: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_failing_job_fails_the_workflow_with_the_pods_message() {
    let (client, ns) = setup("op-jobfail").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    let failing = pod_annotations(json!({
        "kwok.roiergasias.io/fail": "3",
        "kwok.roiergasias.io/fail-message": "task 1 step 2: `make model` exited with status 3"
    }));
    api.create(
        &PostParams::default(),
        &workflow("doomed", THREE, Some(failing)),
    )
    .await
    .unwrap();
    let done = wait_phase(&api, "doomed", Phase::Failed, DONE).await;
    let status = done.status.unwrap();
    let message = status.message.clone().unwrap();
    assert!(message.contains("Job doomed-1-node1 failed"), "{message}");
    assert!(
        message.contains("`make model` exited with status 3"),
        "{message}"
    );
    assert_eq!(status.state, Some(MachineState::Done));
    assert_eq!(status.failed_jobs.len(), 1);
    assert!(status.active_jobs.is_empty());
    assert_eq!(status.splits[0].phase, Some(SplitPhase::Failed));
    assert_eq!(status.splits[1].phase, Some(SplitPhase::Pending));
    let failed = status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_FAILED)
        .unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "JobFailed")
    );
    let note = wait_event(&client, &ns.name, "doomed", "JobFailed").await;
    assert!(note.contains("exited with status 3"), "{note}");
    // Nothing ran after the failed split.
    // A window in which nothing may happen: the operator leaves a finished Workflow alone and
    // reports no condition for "I decided to do nothing", so no wait can replace this one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cms, jobs) = owned_names(&client, &ns.name, "doomed").await;
    assert_eq!(jobs, ["doomed-1-node1"]);
    assert_eq!(cms, ["doomed-hello-world-1-node1"]);
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn invalid_yaml_fails_with_the_validation_message_and_creates_nothing() {
    let (client, ns) = setup("op-invalid").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    let invalid = "version: 0.1\ntask:\n  - sequential:\n      - frobnicate:\n          - x\n";
    api.create(&PostParams::default(), &workflow("bad", invalid, None))
        .await
        .unwrap();
    let done = wait_phase(&api, "bad", Phase::Failed, DONE).await;
    let status = done.status.clone().unwrap();
    let message = status.message.unwrap();
    assert!(
        message.contains("workflowYAML.yaml:4:"),
        "located: {message}"
    );
    assert!(
        message.contains("frobnicate"),
        "names the problem: {message}"
    );
    let note = wait_event(&client, &ns.name, "bad", "InvalidWorkflow").await;
    assert!(note.contains("frobnicate"), "{note}");

    // No storm: the failed workflow is left alone (no further status writes, no objects).
    let version = done.metadata.resource_version.clone();
    // A window in which nothing may happen: the operator leaves a finished Workflow alone and
    // reports no condition for "I decided to do nothing", so no wait can replace this one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = api.get("bad").await.unwrap();
    assert_eq!(
        later.metadata.resource_version, version,
        "status kept changing"
    );
    let (cms, jobs) = owned_names(&client, &ns.name, "bad").await;
    assert!(cms.is_empty() && jobs.is_empty(), "{cms:?} {jobs:?}");
    let events = event_reasons(&client, &ns.name, "bad").await;
    assert_eq!(events.len(), 1, "one Event, no retries: {events:#?}");
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_configmap_owned_by_someone_else_fails_the_workflow_clearly() {
    let (client, ns) = setup("op-conflict").await;
    let squatter: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "taken-hello-world"},
        "data": {"hello-world.yaml": "not ours"}
    }))
    .unwrap();
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &squatter)
        .await
        .unwrap();
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &workflow("taken", SINGLE, None))
        .await
        .unwrap();
    let done = wait_phase(&api, "taken", Phase::Failed, DONE).await;
    let message = done.status.unwrap().message.unwrap();
    assert!(
        message.contains(
            "ConfigMap taken-hello-world already exists and is not owned by this Workflow"
        ),
        "{message}"
    );
    let untouched = ns
        .api::<ConfigMap>()
        .get("taken-hello-world")
        .await
        .unwrap();
    assert_eq!(untouched.data.unwrap()["hello-world.yaml"], "not ours");
    wait_event(&client, &ns.name, "taken", "NameConflict").await;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn the_spec_cannot_change_once_created() {
    let (_client, ns) = setup("op-immutable").await;
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &workflow("fixed", SINGLE, None))
        .await
        .unwrap();
    let patch =
        json!({"spec": {"workflowYAML": {"name": "hello-world", "yaml": "version: 0.1\n"}}});
    let err = api
        .patch(
            "fixed",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect_err("the API server must refuse a spec change");
    assert!(
        err.to_string().contains("spec.workflowYAML is immutable"),
        "{err}"
    );
}

/// Labels node `kwok-plain` with `node.roiergasias=<value>` (None: removes it) while a test needs it.
async fn label_plain_node(client: &kube::Client, value: Option<&str>) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "kwok-plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"node.roiergasias": value}}})),
        )
        .await
        .expect("labelling kwok-plain");
}

/// A split whose node nobody has: status and an Event say which label no node carries and what
/// the scheduler said; once a node gets the label, the split runs and the workflow succeeds.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_split_on_a_node_nobody_has_says_so_then_runs_once_one_exists() {
    let (client, ns) = setup("op-nonode").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    // A label unique to this run, so nothing else can take the pod.
    let label = format!("gpu-{}", &ns.name[ns.name.len() - 8..]);
    let text = format!(
        "version: 0.1\ntask:\n  - node: {label}\n    sequential:\n      - print: [\"on the gpu\"]\n"
    );
    api.create(&PostParams::default(), &workflow("nonode", &text, None))
        .await
        .unwrap();
    let expected = format!("is waiting for a node labelled node.roiergasias={label}: 0/");
    let stuck = wait_status(&api, "nonode", "unschedulable message", {
        let expected = expected.clone();
        move |s| s.message.as_deref().is_some_and(|m| m.contains(&expected))
    })
    .await;
    let status = stuck.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Running));
    let message = status.message.unwrap();
    assert!(
        message.starts_with("split 1/1: the pod of Job nonode-1-"),
        "{message}"
    );
    assert!(message.contains("node affinity/selector"), "{message}");
    let note = wait_event(&client, &ns.name, "nonode", "Unschedulable").await;
    assert_eq!(note, message);

    label_plain_node(&client, Some(&label)).await;
    let done = wait_phase(&api, "nonode", Phase::Succeeded, DONE).await;
    label_plain_node(&client, None).await;
    let status = done.status.unwrap();
    assert_eq!(status.message.as_deref(), Some("all 1 split(s) succeeded"));
    assert_eq!(
        pod_nodes(
            &client,
            &ns.name,
            &status.successful_jobs[0].name.clone().unwrap()
        )
        .await,
        ["kwok-plain"]
    );
}

/// An API error that persists (here a quota that allows no ConfigMap) is shown in status and a
/// Warning Event while the operator retries; once it clears, the workflow goes on by itself.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn an_api_error_is_shown_in_status_and_retried_until_it_clears() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    use kube::api::DeleteParams;
    let (client, ns) = setup("op-quota").await;
    let quotas: Api<ResourceQuota> = ns.api();
    let quota = serde_json::from_value(json!({
        "metadata": {"name": "no-configmaps"},
        "spec": {"hard": {"count/configmaps": "0"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    // Admission enforces a quota only once the quota controller has filled in its status: on a
    // busy cluster that can come after the operator's first create.
    let enforced = |q: Option<&ResourceQuota>| {
        q.and_then(|q| q.status.as_ref()?.hard.as_ref())
            .is_some_and(|hard| hard.contains_key("count/configmaps"))
    };
    roiergasias_testkit::wait::wait_for(&quotas, "no-configmaps", "the quota enforced", enforced)
        .await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &workflow("quota", SINGLE, None))
        .await
        .unwrap();
    let stuck = wait_status(&api, "quota", "the retried error in status", |s| {
        s.message
            .as_deref()
            .is_some_and(|m| m.starts_with("split 1/1: retrying after an error: "))
    })
    .await;
    let status = stuck.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Running));
    let message = status.message.unwrap();
    assert!(
        message.contains("configmaps") && message.contains("forbidden"),
        "{message}"
    );
    let note = wait_event(&client, &ns.name, "quota", "Retrying").await;
    assert!(note.contains("forbidden"), "{note}");

    quotas
        .delete("no-configmaps", &DeleteParams::default())
        .await
        .unwrap();
    let done = wait_phase(&api, "quota", Phase::Succeeded, DONE).await;
    assert_eq!(
        done.status.unwrap().message.as_deref(),
        Some("all 1 split(s) succeeded")
    );
}
