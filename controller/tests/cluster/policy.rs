//! The operator's policy on what a Workflow's jobTemplate may ask for, on the real control plane:
//! a refused Workflow fails with reason Refused, a message naming the option, a Warning Event, and
//! no ConfigMap or Job; what the policy allows still runs.

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use roiergasias_crd::{CONDITION_FAILED, Phase, Workflow};
use roiergasias_testkit::Operator;
use roiergasias_testkit::workflow::*;
use serde_json::{Value, json};

const DONE: Duration = Duration::from_secs(60);

/// The original operator's style of jobTemplate: its own container and `yaml` mount, run as `sa`.
fn custom_template(service_account: Option<&str>) -> Value {
    let mut template = json!({"spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{
            "name": "roiergasias",
            "image": "registry.invalid/roiergasias/runner:test",
            "command": ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"],
            "volumeMounts": [{"name": "yaml", "mountPath": "/root/hello-world"}]
        }]
    }}}});
    if let Some(sa) = service_account {
        template["spec"]["template"]["spec"]["serviceAccountName"] = json!(sa);
    }
    template
}

/// Waits for `name` to fail with reason Refused; checks the message, the Event and that nothing
/// was created. Returns the message.
async fn expect_refused(client: &kube::Client, ns: &str, name: &str, says: &str) -> String {
    expect_refused_after(client, ns, name, says, &[]).await
}

/// As [`expect_refused`], once the Jobs `ran` (and as many ConfigMaps) had been created.
async fn expect_refused_after(
    client: &kube::Client,
    ns: &str,
    name: &str,
    says: &str,
    ran: &[&str],
) -> String {
    let api: Api<Workflow> = Api::namespaced(client.clone(), ns);
    let done = wait_phase(&api, name, Phase::Failed, DONE).await;
    let status = done.status.expect("a status");
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains(says), "{name}: {message}");
    let failed = status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_FAILED)
        .expect("a Failed condition");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "Refused")
    );
    let note = wait_event(client, ns, name, "Refused").await;
    assert!(note.contains(says), "{name}'s Event: {note}");
    let (cms, jobs) = owned_names(client, ns, name).await;
    assert_eq!(jobs, ran, "{name}: Jobs");
    assert_eq!(cms.len(), ran.len(), "{name}: ConfigMaps {cms:?}");
    message
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn refuse_mode_fails_a_custom_job_template_and_runs_the_default_runner() {
    let (client, ns) = setup("op-policy-refuse").await;
    let _operator = Operator::start_with_args(OPERATOR, &ns.name, &["--job-templates=refuse"]);
    let api: Api<Workflow> = ns.api();
    let custom = workflow("custom", SINGLE, Some(custom_template(None)));
    api.create(&PostParams::default(), &custom).await.unwrap();
    api.create(&PostParams::default(), &workflow("plain", SINGLE, None))
        .await
        .unwrap();

    let message = expect_refused(&client, &ns.name, "custom", "--job-templates=refuse").await;
    assert!(
        message.contains("spec.template.spec.containers"),
        "names what the template sets: {message}"
    );
    wait_phase(&api, "plain", Phase::Succeeded, DONE).await;

    // Refused once, for good: no retries, no further writes.
    let version = api.get("custom").await.unwrap().metadata.resource_version;
    // A window in which nothing may happen: the operator leaves a finished Workflow alone and
    // reports no condition for "I decided to do nothing", so no wait can replace this one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.get("custom").await.unwrap().metadata.resource_version,
        version
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn the_service_account_allow_list_refuses_others_and_runs_the_allowed_one() {
    let (client, ns) = setup("op-policy-sa").await;
    let runner: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "runner"}})).unwrap();
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &runner)
        .await
        .unwrap();
    let _operator = Operator::start_with_args(
        OPERATOR,
        &ns.name,
        &["--allowed-service-accounts=runner,other"],
    );
    let api: Api<Workflow> = ns.api();
    for (name, sa) in [
        ("admin", Some("admin")),
        ("allowed", Some("runner")),
        ("unset", None),
    ] {
        api.create(
            &PostParams::default(),
            &workflow(name, SINGLE, Some(custom_template(sa))),
        )
        .await
        .unwrap();
    }
    let message = expect_refused(
        &client,
        &ns.name,
        "admin",
        "--allowed-service-accounts=other,runner",
    )
    .await;
    assert!(
        message.contains("serviceAccountName \"admin\""),
        "{message}"
    );
    wait_phase(&api, "allowed", Phase::Succeeded, DONE).await;
    wait_phase(&api, "unset", Phase::Succeeded, DONE).await;
}

#[test]
fn a_bad_service_account_name_stops_the_operator_at_once_with_a_clear_message() {
    let out = std::process::Command::new(OPERATOR)
        .args(["--allowed-service-accounts=runner,Not_A_Name"])
        .output()
        .expect("running roiergasias-operator");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"Not_A_Name\" is not a ServiceAccount name"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_stricter_policy_after_a_restart_stops_a_running_workflow_at_its_next_split() {
    let (client, ns) = setup("op-policy-restart").await;
    let api: Api<Workflow> = ns.api();
    // Allowed at first: split 1 runs; the operator stops once Job 1 is complete.
    let mut operator = Operator::start_with(
        OPERATOR,
        &ns.name,
        &[("ROIERGASIAS_TEST_CRASH_AFTER", "advance:1")],
    );
    let midway = workflow("midway", THREE, Some(custom_template(None)));
    api.create(&PostParams::default(), &midway).await.unwrap();
    assert_eq!(operator.exited(DONE).await, Some(86), "the crash point");
    drop(operator);

    let _strict = Operator::start_with_args(OPERATOR, &ns.name, &["--job-templates=refuse"]);
    expect_refused_after(
        &client,
        &ns.name,
        "midway",
        "--job-templates=refuse",
        &["midway-1-node1"],
    )
    .await;
}
