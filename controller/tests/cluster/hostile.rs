//! Pod Security admission and a hand-edited status, on the test cluster. Admission runs in the
//! API server, so kwok's fake nodes suffice: the default runner pod is admitted in a namespace
//! that enforces `restricted`; a pod admission refuses fails the Workflow with admission's reason
//! instead of waiting forever; an absurd status is re-derived, not looped over.

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use roiergasias_crd::{CONDITION_FAILED, MachineState, Phase, Workflow};
use roiergasias_testkit::Operator;
use roiergasias_testkit::workflow::*;
use serde_json::json;

use roiergasias_testkit::TestNamespace;

const DONE: Duration = Duration::from_secs(60);
const RESTRICTED: [(&str, &str); 1] = [("pod-security.kubernetes.io/enforce", "restricted")];

async fn restricted(prefix: &str) -> (Client, TestNamespace) {
    let client = roiergasias_testkit::client().await;
    roiergasias_testkit::ensure_crds(&client).await;
    let ns = TestNamespace::create_with(
        &client,
        prefix,
        roiergasias_testkit::ON_FAKE_NODES,
        &RESTRICTED,
    )
    .await;
    (client, ns)
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn the_default_pod_is_admitted_where_restricted_is_enforced() {
    let (client, ns) = restricted("op-pss").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &workflow("safe", SINGLE, None))
        .await
        .unwrap();
    wait_phase(&api, "safe", Phase::Succeeded, DONE).await;
    let pods: Api<Pod> = Api::namespaced(client, &ns.name);
    let list = pods
        .list(&ListParams::default().labels("job-name=safe"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "admitted and run once");
    let spec = list.items[0].spec.as_ref().unwrap();
    let container = &spec.containers[0];
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let tmpdir = container.env.iter().flatten().find(|e| e.name == "TMPDIR");
    assert_eq!(tmpdir.and_then(|e| e.value.as_deref()), Some("/tmp"));
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_pod_admission_refuses_fails_the_workflow_with_its_reason() {
    let (client, ns) = restricted("op-pss-refused").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    let privileged = json!({"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [{
        "name": "roiergasias",
        "image": "registry.invalid/roiergasias/runner:test",
        "command": ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"],
        "securityContext": {"privileged": true}
    }]}}}});
    api.create(
        &PostParams::default(),
        &workflow("root", SINGLE, Some(privileged)),
    )
    .await
    .unwrap();
    let done = wait_phase(&api, "root", Phase::Failed, DONE).await;
    let status = done.status.unwrap();
    let message = status.message.unwrap();
    assert!(
        message.starts_with("split 1: Job root cannot create its pod:")
            && message.contains("violates PodSecurity")
            && message.contains("privileged"),
        "{message}"
    );
    let failed = status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_FAILED);
    assert_eq!(failed.map(|c| c.reason.as_str()), Some("PodRefused"));
    let note = wait_event(&client, &ns.name, "root", "PodRefused").await;
    assert!(note.contains("violates PodSecurity"), "{note}");
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn an_absurd_status_is_rederived_from_the_spec_and_the_cluster() {
    let (client, ns) = setup("op-corrupt").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    // One split on a node nobody has: its Job waits, so the status can be edited under it.
    let yaml =
        "version: 0.1\ntask:\n  - node: nobody-has-this\n    sequential:\n      - print: [hi]\n";
    api.create(&PostParams::default(), &workflow("edited", yaml, None))
        .await
        .unwrap();
    wait_status(&api, "edited", "WaitingJob(1)", |s| {
        s.state == Some(MachineState::WaitingJob) && s.current_split == Some(1)
    })
    .await;
    // As absurd as the CRD's schema lets a hand edit be (int32).
    let edit = json!({"status": {"totalSplits": 2_000_000_000, "currentSplit": 1_999_999_999}});
    api.patch_status("edited", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    let fixed = wait_status(&api, "edited", "a re-derived status", |s| {
        s.total_splits == Some(1)
    })
    .await;
    let status = fixed.status.unwrap();
    assert_eq!(status.current_split, Some(1));
    assert_eq!(status.state, Some(MachineState::WaitingJob));
    assert_eq!(status.splits.len(), 1);
    let note = wait_event(&client, &ns.name, "edited", "StatusRederived").await;
    assert!(
        note.starts_with("status was inconsistent (totalSplits 2000000000"),
        "says what was wrong: {note}"
    );
    // The Job it waits for is the one created before the edit: nothing was re-created.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let list = jobs.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "{:?}", list.items);
    // Settled: no further writes.
    let version = api.get("edited").await.unwrap().metadata.resource_version;
    // A window in which nothing may happen: a settled status has no condition that says "and it
    // stays so", so no wait can replace this one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = api.get("edited").await.unwrap().metadata.resource_version;
    assert_eq!(later, version, "the status kept changing");
}
