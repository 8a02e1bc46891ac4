//! Smoke tests of the test cluster itself: the real scheduler, Job controller and garbage collector, with
//! kwok as the kubelet and our kwok stages. If these fail, operator tests cannot be trusted.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::conditions;
use roiergasias_testkit::TestNamespace;

/// A one-pod Job that never retries; `pod_annotations` and `node_selector` go on its pod template.
fn job(name: &str, pod_annotations: serde_json::Value, node_selector: Option<&str>) -> Job {
    let mut spec = serde_json::json!({
        "restartPolicy": "Never",
        "containers": [{ "name": "main", "image": "registry.invalid/roiergasias/runner:test", "command": ["true"] }]
    });
    if let Some(label) = node_selector {
        spec["nodeSelector"] = serde_json::json!({ "node.roiergasias": label });
    }
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": { "metadata": { "annotations": pod_annotations }, "spec": spec }
        }
    }))
    .expect("a Job")
}

fn has_condition(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// The one pod of Job `name`.
async fn only_pod(ns: &TestNamespace, name: &str) -> Pod {
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .expect("listing the Job's pods");
    assert_eq!(
        pods.items.len(),
        1,
        "Job {name} should have made exactly one pod: {:#?}",
        pods.items
    );
    pods.items.into_iter().next().unwrap()
}

fn terminated(pod: &Pod) -> ContainerStateTerminated {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    statuses
        .iter()
        .find(|c| c.name == "main")
        .and_then(|c| c.state.as_ref()?.terminated.clone())
        .unwrap_or_else(|| panic!("container main has not terminated: {statuses:#?}"))
}

async fn run_job(ns: &TestNamespace, job: &Job) -> Job {
    let name = job.metadata.name.clone().unwrap();
    let api = ns.api::<Job>();
    api.create(&PostParams::default(), job)
        .await
        .expect("creating the Job");
    let finished = |j: Option<&Job>| {
        j.is_some_and(|j| has_condition(j, "Complete") || has_condition(j, "Failed"))
    };
    roiergasias_testkit::wait_for(&api, &name, &format!("Job {name} to finish"), finished).await
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_job_with_a_node_selector_completes_on_that_node() {
    let client = roiergasias_testkit::client().await;
    let ns = TestNamespace::create(&client, "smoke-node").await;
    let done = run_job(&ns, &job("pinned", serde_json::json!({}), Some("node2"))).await;
    assert!(
        has_condition(&done, "Complete"),
        "Job should complete: {:#?}",
        done.status
    );

    let nodes = kube::Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("node.roiergasias=node2,type=kwok"))
        .await
        .expect("listing nodes");
    assert_eq!(
        nodes.items.len(),
        1,
        "exactly one fake node is labelled node2"
    );
    let node2 = nodes.items[0].metadata.name.clone().unwrap();

    let pod = only_pod(&ns, "pinned").await;
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        Some(node2),
        "pod ran elsewhere"
    );
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    assert_eq!(terminated(&pod).exit_code, 0);
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_job_marked_to_fail_fails_with_its_exit_code_and_message() {
    let client = roiergasias_testkit::client().await;
    let ns = TestNamespace::create(&client, "smoke-fail").await;
    let annotations = serde_json::json!({
        "kwok.roiergasias.io/fail": "3",
        "kwok.roiergasias.io/fail-message": "step 2: `make` exited with 3"
    });
    let done = run_job(&ns, &job("doomed", annotations, None)).await;
    assert!(
        has_condition(&done, "Failed"),
        "Job should fail: {:#?}",
        done.status
    );
    assert!(!has_condition(&done, "Complete"));

    let pod = only_pod(&ns, "doomed").await;
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed")
    );
    let state = terminated(&pod);
    assert_eq!(state.exit_code, 3);
    assert_eq!(
        state.message.as_deref(),
        Some("step 2: `make` exited with 3")
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_job_marked_with_a_termination_message_succeeds_with_it() {
    let client = roiergasias_testkit::client().await;
    let ns = TestNamespace::create(&client, "smoke-msg").await;
    let message = r#"{"GREETING":"hello, \"world\"","MULTI":"line 1\nline 2"}"#;
    let annotations = serde_json::json!({ "kwok.roiergasias.io/termination-message": message });
    let done = run_job(&ns, &job("talker", annotations, None)).await;
    assert!(
        has_condition(&done, "Complete"),
        "Job should complete: {:#?}",
        done.status
    );

    let pod = only_pod(&ns, "talker").await;
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    let state = terminated(&pod);
    assert_eq!(state.exit_code, 0);
    assert_eq!(state.message.as_deref(), Some(message));
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn deleting_an_owner_deletes_its_configmap() {
    let client = roiergasias_testkit::client().await;
    let ns = TestNamespace::create(&client, "smoke-gc").await;
    let api = ns.api::<ConfigMap>();
    let owner: ConfigMap =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "owner" } })).unwrap();
    let owner = api
        .create(&PostParams::default(), &owner)
        .await
        .expect("creating the owner");
    let owned: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "owned",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.metadata.uid.clone().unwrap(), "controller": true, "blockOwnerDeletion": true
            }]
        },
        "data": { "k": "v" }
    }))
    .unwrap();
    api.create(&PostParams::default(), &owned)
        .await
        .expect("creating the owned ConfigMap");
    let bystander: ConfigMap =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "bystander" } })).unwrap();
    api.create(&PostParams::default(), &bystander)
        .await
        .expect("creating an unowned ConfigMap");

    api.delete("owner", &DeleteParams::background())
        .await
        .expect("deleting the owner");
    roiergasias_testkit::wait_deleted(&api, "owned", "the owned ConfigMap").await;
    roiergasias_testkit::wait_for(
        &api,
        "bystander",
        "the unowned ConfigMap to stay",
        conditions::is_created(),
    )
    .await;
}
