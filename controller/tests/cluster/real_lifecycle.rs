//! The lifecycle controls and retry with real pods on the real nodes: suspend between splits, the
//! deadline stopping a real command, the TTL removing what a run left, a retry from the failed
//! split, and an operator restart between a retry request and its Job.
//!
//! A pod waits on, or fails without, a file the test makes in a host directory mounted into it
//! (both nodes are this host's processes): every step happens on a condition, not a clock.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use roiergasias_crd::{MachineState, Phase, SplitPhase, Workflow, WorkflowStatus};
use roiergasias_testkit::real::{
    GATE, GATED, REAL, RanPod, host_dir, host_dir_template, one_pod_of, pod_names, real_setup,
    sleeping, wait_file,
};
use roiergasias_testkit::workflow::*;
use roiergasias_testkit::{Operator, TestNamespace, until, wait_deleted, wait_for_within};
use serde_json::json;

use crate::OPERATOR;

/// Exit code of a test crash point.
const CRASHED: i32 = 86;

/// Waits, as long as real pods may take, until the workflow's status satisfies `test`.
async fn wait_real(
    api: &Api<Workflow>,
    name: &str,
    what: &str,
    test: impl Fn(&WorkflowStatus) -> bool + Send + 'static,
) -> WorkflowStatus {
    let cond = move |wf: Option<&Workflow>| wf.and_then(|w| w.status.as_ref()).is_some_and(&test);
    let wf = wait_for_within(api, name, what, REAL, cond).await;
    wf.status.expect("a status")
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn suspended_while_split_1_runs_its_job_finishes_split_2_waits_then_resumes() {
    let (client, ns) = real_setup("real-suspend").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let gate = host_dir();
    let api: Api<Workflow> = ns.api();
    let template = host_dir_template(gate.path(), GATE);
    api.create(
        &PostParams::default(),
        &workflow("pause", GATED, Some(template)),
    )
    .await
    .unwrap();
    wait_file(&gate.path().join("started"), REAL).await;
    patch_spec(&api, "pause", json!({"suspend": true})).await;
    std::fs::write(gate.path().join("go"), "").unwrap();

    let held = wait_real(&api, "pause", "Suspended at split 2", |s| {
        s.phase == Some(Phase::Suspended) && s.current_split == Some(2)
    })
    .await;
    assert_eq!(held.state, Some(MachineState::Split));
    let job1 = ns.api::<Job>().get("pause-1-node1").await.unwrap();
    assert!(job_complete(&job1), "split 1's Job finished: {job1:#?}");
    let first = one_pod_of(&client, &ns.name, "pause-1-node1", "real-node1").await;
    assert!(first.logs.contains("split 1 passed the gate"), "{first:#?}");
    let (_, jobs) = owned_names(&client, &ns.name, "pause").await;
    assert_eq!(
        jobs,
        ["pause-1-node1"],
        "no Job for split 2 while suspended"
    );
    assert_eq!(
        pod_names(&client, &ns.name).await,
        std::slice::from_ref(&first.name)
    );

    patch_spec(&api, "pause", json!({"suspend": false})).await;
    wait_phase(&api, "pause", Phase::Succeeded, REAL).await;
    let (_, jobs) = owned_names(&client, &ns.name, "pause").await;
    assert_eq!(jobs, ["pause-1-node1", "pause-2-node2"]);
    assert_eq!(
        one_pod_of(&client, &ns.name, "pause-1-node1", "real-node1")
            .await
            .name,
        first.name,
        "split 1 ran once"
    );
    let second = one_pod_of(&client, &ns.name, "pause-2-node2", "real-node2").await;
    let carried = format!("split 2 got {}", first.name);
    assert!(second.logs.contains(&carried), "{second:#?}");
    wait_events(&client, &ns.name, "pause", &["Suspended", "Resumed"]).await;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn past_its_deadline_a_real_command_is_stopped_by_suspending_its_job() {
    let (client, ns) = real_setup("real-deadline").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    // A sleep whose length marks it, so the test can find it among the host's processes.
    let marker = format!("{}", 8000 + std::process::id() % 1000);
    let yaml = format!(
        "version: 0.1\ntask:\n  - node: node1\n    sequential:\n      - execute:\n          - \"sleep {marker}\"\n"
    );
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &workflow("late", &yaml, None))
        .await
        .unwrap();
    let what = format!("the command's sleep {marker} to run on the host");
    until(&what, REAL, || {
        std::future::ready(if sleeping(&marker) {
            Ok(())
        } else {
            Err("not yet")
        })
    })
    .await;
    // Set once the command runs, so the deadline cannot pass while the pod is still starting:
    // the workflow started more than a second ago.
    patch_spec(&api, "late", json!({"activeDeadlineSeconds": 1})).await;

    let failed = wait_phase(&api, "late", Phase::Failed, REAL).await;
    let status = failed.status.unwrap();
    let failure = status.conditions.iter().find(|c| c.type_ == "Failed");
    assert_eq!(
        failure.map(|c| c.reason.as_str()),
        Some("DeadlineExceeded"),
        "{status:#?}"
    );
    let message = status.message.unwrap_or_default();
    assert!(
        message.ends_with("its Job late-1-node1 was suspended"),
        "{message}"
    );
    let jobs: Api<Job> = ns.api();
    let job = jobs.get("late-1-node1").await.expect("the Job is kept");
    assert_eq!(job.spec.and_then(|s| s.suspend), Some(true));
    let what = format!("the pod and its sleep {marker} to end");
    until(&what, REAL, || async {
        let pods = pod_names(&client, &ns.name).await;
        let running = sleeping(&marker);
        if pods.is_empty() && !running {
            Ok(())
        } else {
            Err((pods, running))
        }
    })
    .await;
    let job = jobs.get("late-1-node1").await.expect("the Job is kept");
    let active = job.status.and_then(|s| s.active).unwrap_or(0);
    assert_eq!(active, 0, "nothing of the Job runs");
}

/// Two short splits, one on each real node.
const SHORT: &str = r#"version: 0.1
task:
  - node: node1
    sequential:
      - print: ["one"]
  - node: node2
    sequential:
      - print: ["two"]
"#;

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn its_ttl_after_succeeding_the_workflow_and_its_configmaps_jobs_and_pods_are_gone() {
    let (client, ns) = real_setup("real-ttl").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let mut wf = workflow("brief", SHORT, None);
    wf.spec.ttl_seconds_after_finished = Some(2);
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &wf).await.unwrap();
    let done = wait_phase(&api, "brief", Phase::Succeeded, REAL).await;
    let status = done.status.unwrap();
    let made: Vec<(String, String)> = status
        .splits
        .iter()
        .map(|s| (s.config_map.clone().unwrap(), s.job.clone().unwrap()))
        .collect();
    assert_eq!(made.len(), 2, "{status:#?}");

    wait_deleted(&api, "brief", "the Workflow").await;
    wait_event(&client, &ns.name, "brief", "Expired").await;
    for (config_map, job) in &made {
        wait_deleted(&ns.api::<Job>(), job, "the Job").await;
        wait_deleted(&ns.api::<ConfigMap>(), config_map, "the ConfigMap").await;
    }
    until("the workflow's pods to be deleted", REAL, || async {
        let pods = pod_names(&client, &ns.name).await;
        if pods.is_empty() { Ok(()) } else { Err(pods) }
    })
    .await;
    assert_eq!(
        owned_names(&client, &ns.name, "brief").await,
        (vec![], vec![])
    );
}

/// Split 1 on node1 reports its pod's name as `token`; split 2 on node2 fails until the gate
/// exists; split 3 prints what it received.
const FLAKY: &str = r#"version: 0.1
task:
  - node: node1
    sequential:
      - execute:
          - "sh -c 'echo \"token=$(uname -n)\" >> \"$ROIERGASIAS_ENV\"'"
  - node: node2
    sequential:
      - print: ["split 2 got {{env:token}}"]
      - execute: ["test -e /gate/go"]
  - node: node2
    sequential:
      - print: ["split 3 got {{env:token}}"]
"#;

/// The first attempt of split 2 fails: the workflow is Failed with Jobs 1 and 2; split 1's pod.
async fn first_attempt_fails(client: &Client, ns: &str, api: &Api<Workflow>) -> RanPod {
    let failed = wait_phase(api, "flaky", Phase::Failed, REAL).await;
    let status = failed.status.unwrap();
    assert_eq!(
        status.splits[1].phase,
        Some(SplitPhase::Failed),
        "{status:#?}"
    );
    let (_, jobs) = owned_names(client, ns, "flaky").await;
    assert_eq!(jobs, ["flaky-1-node1", "flaky-2-node2"]);
    one_pod_of(client, ns, "flaky-1-node1", "real-node1").await
}

/// After the retry: Succeeded, one new Job (split 2's `-retry2`), split 2 on attempt 2 with
/// attempt 1 kept, and split 1's token carried into the retry and beyond.
async fn retry_succeeds(client: &Client, ns: &str, api: &Api<Workflow>, first: &RanPod) {
    let acted = wait_real(api, "flaky", "the retry request acted on", |s| {
        s.last_retry.is_some()
    })
    .await;
    let last = acted.last_retry.unwrap();
    assert!(last.accepted && last.request == 1, "{last:#?}");
    let done = wait_phase(api, "flaky", Phase::Succeeded, REAL).await;
    let status = done.status.unwrap();
    let (_, jobs) = owned_names(client, ns, "flaky").await;
    assert_eq!(
        jobs,
        [
            "flaky-1-node1",
            "flaky-2-node2",
            "flaky-2-node2-retry2",
            "flaky-3-node2"
        ]
    );
    let split2 = &status.splits[1];
    assert_eq!(split2.attempt, Some(2), "{split2:#?}");
    assert_eq!(split2.job.as_deref(), Some("flaky-2-node2-retry2"));
    let earlier: Vec<_> = split2
        .attempts
        .iter()
        .map(|a| (a.attempt, a.phase, a.job.as_deref()))
        .collect();
    assert_eq!(
        earlier,
        [(1, Some(SplitPhase::Failed), Some("flaky-2-node2"))]
    );
    let again = one_pod_of(client, ns, "flaky-1-node1", "real-node1").await;
    assert_eq!(again.name, first.name, "split 1 not run again");
    let carried = first.name.as_str();
    for (job, split) in [("flaky-2-node2-retry2", 2), ("flaky-3-node2", 3)] {
        let pod = one_pod_of(client, ns, job, "real-node2").await;
        let line = format!("split {split} got {carried}");
        assert!(pod.logs.contains(&line), "{pod:#?}");
    }
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_retry_runs_only_the_failed_split_again_and_the_workflow_succeeds() {
    let (client, ns) = real_setup("real-retry").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let gate = host_dir();
    let api: Api<Workflow> = ns.api();
    let template = host_dir_template(gate.path(), GATE);
    api.create(
        &PostParams::default(),
        &workflow("flaky", FLAKY, Some(template)),
    )
    .await
    .unwrap();
    let first = first_attempt_fails(&client, &ns.name, &api).await;
    let job1 = ns.api::<Job>().get("flaky-1-node1").await.unwrap();

    std::fs::write(gate.path().join("go"), "").unwrap();
    patch_spec(&api, "flaky", json!({"retry": {"request": 1}})).await;
    retry_succeeds(&client, &ns.name, &api, &first).await;
    let kept = ns.api::<Job>().get("flaky-1-node1").await.unwrap();
    assert_eq!(kept.uid(), job1.uid(), "split 1's Job not re-created");
    wait_events(&client, &ns.name, "flaky", &["Retried", "Succeeded"]).await;
    assert_eq!(
        event_count(&client, &ns.name, "flaky", "Retried").await,
        1,
        "{:?}",
        event_reasons(&client, &ns.name, "flaky").await
    );
}

/// An operator that stops at crash point `point`; what it left: the Workflow's status, its
/// ConfigMaps and its Jobs.
async fn crash_at(
    client: &Client,
    ns: &str,
    api: &Api<Workflow>,
    point: &str,
) -> (WorkflowStatus, Vec<String>, Vec<String>) {
    let env = [("ROIERGASIAS_TEST_CRASH_AFTER", point)];
    let mut crashing = Operator::start_real_with(OPERATOR, ns, &env);
    let code = crashing.exited(REAL).await;
    assert_eq!(code, Some(CRASHED), "stops at {point}: {}", crashing.log());
    drop(crashing);
    let status = api.get("flaky").await.unwrap().status.unwrap();
    let (cms, jobs) = owned_names(client, ns, "flaky").await;
    (status, cms, jobs)
}

/// A run of FLAKY whose split 2 failed, then a retry asked for while no operator runs (so the
/// next one started sees it first); the gate is open, so the retry passes.
struct Requested {
    client: Client,
    ns: TestNamespace,
    api: Api<Workflow>,
    first: RanPod,
    /// Kept for the test's length: the pods mount it.
    _gate: tempfile::TempDir,
}

async fn failed_then_retry_requested(prefix: &str) -> Requested {
    let (client, ns) = real_setup(prefix).await;
    let operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let gate = host_dir();
    let api: Api<Workflow> = ns.api();
    let template = host_dir_template(gate.path(), GATE);
    api.create(
        &PostParams::default(),
        &workflow("flaky", FLAKY, Some(template)),
    )
    .await
    .unwrap();
    let first = first_attempt_fails(&client, &ns.name, &api).await;
    operator.kill();
    std::fs::write(gate.path().join("go"), "").unwrap();
    patch_spec(&api, "flaky", json!({"retry": {"request": 1}})).await;
    Requested {
        client,
        ns,
        api,
        first,
        _gate: gate,
    }
}

/// The Retried Events of the run, each a (reason, note).
async fn retried_events(client: &Client, ns: &str) -> Vec<(String, String)> {
    wait_events(client, ns, "flaky", &["Retried", "Succeeded"]).await;
    let events = event_reasons(client, ns, "flaky").await;
    events.into_iter().filter(|(r, _)| r == "Retried").collect()
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn an_operator_stopped_after_a_retry_request_before_acting_acts_on_it_once() {
    let Requested {
        client,
        ns,
        api,
        first,
        _gate,
    } = failed_then_retry_requested("real-retry-crash").await;
    // Stopped once it has decided to retry, before it writes, creates or publishes anything.
    let (status, cms, jobs) = crash_at(&client, &ns.name, &api, "retry:2").await;
    assert_eq!(status.last_retry, None, "{status:#?}");
    assert_eq!((cms.len(), jobs.len()), (2, 2), "{cms:?} {jobs:?}");

    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    retry_succeeds(&client, &ns.name, &api, &first).await;
    let retried = retried_events(&client, &ns.name).await;
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(
        event_count(&client, &ns.name, "flaky", "Retried").await,
        1,
        "{retried:?}"
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn an_operator_stopped_once_the_retry_job_exists_adopts_it_and_records_the_request_once() {
    let Requested {
        client,
        ns,
        api,
        first,
        _gate,
    } = failed_then_retry_requested("real-retry-job").await;
    // Stopped once the retry's Job exists, before the request is recorded as acted on.
    let (status, cms, jobs) = crash_at(&client, &ns.name, &api, "job:2").await;
    assert_eq!(status.last_retry, None, "{status:#?}");
    assert_eq!(cms.len(), 3, "{cms:?}");
    assert_eq!(
        jobs,
        ["flaky-1-node1", "flaky-2-node2", "flaky-2-node2-retry2"]
    );
    let made = ns.api::<Job>().get("flaky-2-node2-retry2").await.unwrap();

    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    retry_succeeds(&client, &ns.name, &api, &first).await;
    let kept = ns.api::<Job>().get("flaky-2-node2-retry2").await.unwrap();
    assert_eq!(
        kept.uid(),
        made.uid(),
        "the retry's Job adopted, not re-created"
    );
    // A deferred step's Events go out with the status that records it: the operator stopped
    // before that write published none, so there is one.
    let retried = retried_events(&client, &ns.name).await;
    let notes: Vec<&str> = retried.iter().map(|(_, note)| note.as_str()).collect();
    assert_eq!(notes, ["retry 1: split 2/3 runs again as attempt 2"]);
    assert_eq!(
        event_count(&client, &ns.name, "flaky", "Retried").await,
        1,
        "{retried:?}"
    );
}
