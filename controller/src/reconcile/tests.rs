//! The reconcile as the controller runs it, against the fake API server: chaining, deferred
//! writes, adoption after a 409, conflicts and back-off, the Events published, and a restart at
//! every point between two writes.

use std::sync::Arc;
use std::time::Duration;

use roiergasias_crd::Phase;

use super::*;
use crate::api::fake::{FakeCluster, Fault, failed_create};
use crate::context::Settings;
use crate::telemetry::Metrics;
use crate::workflow::Machine;

/// Three splits; split 1 outputs A, split 3 prints it.
const THREE: &str = "version: 0.1\ntask:\n  - node: node1\n    sequential:\n      - print: [a]\n  - node: node2\n    sequential:\n      - print: [b]\n  - node: node3\n    sequential:\n      - print: [\"{{env:A}}\"]\n";
const JOBS: [&str; 3] = ["wf-1-node1", "wf-2-node2", "wf-3-node3"];

fn new_workflow() -> Workflow {
    crate::workflow::tests::workflow(THREE)
}

/// A fresh operator (a restart) on `fake`.
fn operator(fake: &FakeCluster) -> Arc<Context<FakeCluster>> {
    let settings = Settings {
        runner_image: "runner".into(),
        metrics: Arc::new(Metrics::new()),
        crash: crate::crash::CrashPoints::default(),
        policy: crate::policy::Policy::default(),
    };
    Arc::new(Context::new(fake.clone(), &settings))
}

/// One reconcile of the Workflow as stored.
async fn reconcile_once(
    fake: &FakeCluster,
    ctx: &Arc<Context<FakeCluster>>,
) -> Result<Requeue, Error> {
    reconcile(Arc::new(fake.workflow()), ctx.clone()).await
}

fn reasons(fake: &FakeCluster) -> Vec<&'static str> {
    fake.state().events.iter().map(|e| e.reason).collect()
}

fn phase(fake: &FakeCluster) -> Option<Phase> {
    fake.status().phase
}

#[tokio::test]
async fn a_workflow_runs_split_after_split_with_one_status_write_per_split() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.objects().1,
        ["wf-1-node1"],
        "Pending → Split(1) → Job 1 in one reconcile"
    );
    assert_eq!(fake.state().status_writes.len(), 1);

    fake.finish_job(JOBS[0], true, Some("{\"A\":\"from split 1\"}"));
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.objects().1, &JOBS[..2]);
    assert_eq!(
        fake.state().status_writes.len(),
        2,
        "the hand-off writes status once"
    );
    fake.finish_job(JOBS[1], true, None);
    reconcile_once(&fake, &ctx).await.unwrap();
    let cm3 = fake.state().config_maps["wf-w-3-node3"].clone();
    let text = &cm3.data.unwrap()["w.yaml"];
    assert!(
        text.contains("from split 1"),
        "outputs carried two splits on:\n{text}"
    );

    fake.finish_job(JOBS[2], true, None);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(phase(&fake), Some(Phase::Succeeded));
    assert_eq!(fake.state().status_writes.len(), 4);
    assert_eq!(
        reasons(&fake),
        [
            "Started",
            "JobCreated",
            "SplitSucceeded",
            "JobCreated",
            "SplitSucceeded",
            "JobCreated",
            "Succeeded"
        ]
    );
    // Done: nothing more is written or created.
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.state().status_writes.len(), 4);
    assert_eq!(fake.objects().0.len(), 3);
}

#[tokio::test]
async fn a_job_without_its_pod_is_looked_at_soon_and_a_running_one_waited_for() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    let soon = Requeue::requeue(crate::workflow::POD_RECHECK);
    assert_eq!(reconcile_once(&fake, &ctx).await.unwrap(), soon);
    fake.start_pod(JOBS[0]);
    let later = Requeue::requeue(crate::workflow::WAIT_RECHECK);
    assert_eq!(reconcile_once(&fake, &ctx).await.unwrap(), later);
    assert_eq!(
        fake.state().status_writes.len(),
        1,
        "waiting writes nothing new"
    );
}

#[tokio::test]
async fn an_api_error_mid_hand_off_writes_the_deferred_split_then_the_retry_adopts() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.finish_job(JOBS[0], true, Some("{\"A\":\"1\"}"));
    fake.state().faults.push(("create Job", Fault::Unavailable));
    let error = reconcile_once(&fake, &ctx).await.unwrap_err();
    assert!(matches!(error, Error::Kube(_)), "{error}");
    // The outputs of split 1 are in status even if its pod goes away now.
    let status = fake.status();
    assert_eq!(Machine::read(&status, Some(3)), Ok(Machine::Split(2)));
    assert_eq!(status.environment[0].value, "1");
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .starts_with("split 2/3: retrying after an error: Kubernetes API error"),
        "{:?}",
        status.message
    );
    assert_eq!(reasons(&fake).last(), Some(&"Retrying"));
    let delay = error_policy(Arc::new(fake.workflow()), &error, ctx.clone());
    assert_eq!(delay, Requeue::requeue(backoff(1)));

    fake.state().pods.clear();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.objects(),
        (
            vec!["wf-w-1-node1".into(), "wf-w-2-node2".into()],
            JOBS[..2].iter().map(|s| s.to_string()).collect()
        )
    );
    assert_eq!(
        Machine::read(&fake.status(), Some(3)),
        Ok(Machine::WaitingJob(2))
    );
}

#[tokio::test]
async fn a_stale_copy_gets_a_conflict_and_backs_off_without_writing() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    let stale = Arc::new(fake.workflow());
    reconcile_once(&fake, &ctx).await.unwrap();
    let writes = fake.state().status_writes.len();
    // Another operator (or our own write the cache has not seen) moved the Workflow on.
    let other = operator(&fake);
    let error = reconcile(stale.clone(), other.clone()).await.unwrap_err();
    assert!(matches!(error, Error::Conflict));
    assert_eq!(fake.state().status_writes.len(), writes);
    assert!(
        !reasons(&fake).contains(&"Retrying"),
        "a conflict is not an error to report"
    );
    for _ in 0..3 {
        error_policy(stale.clone(), &Error::Conflict, other.clone());
    }
    assert_eq!(other.memory.conflicted("ns/wf"), 4, "counted per Workflow");
    assert_eq!(other.memory.failed("ns/wf"), 1, "apart from failures");
    // The operator that wrote skips its own stale copy rather than conflict.
    assert_eq!(
        reconcile(stale, ctx).await.unwrap(),
        Requeue::await_change()
    );
}

#[tokio::test]
async fn objects_this_workflow_already_created_are_adopted_after_a_409() {
    let fake = FakeCluster::with(new_workflow());
    let first = operator(&fake);
    reconcile_once(&fake, &first).await.unwrap();
    // Status lost (the write never happened): the next operator starts from Pending again.
    fake.state().workflow.as_mut().unwrap().status = None;
    let second = operator(&fake);
    reconcile_once(&fake, &second).await.unwrap();
    assert_eq!(fake.objects().1, ["wf-1-node1"], "no second Job");
    assert_eq!(
        Machine::read(&fake.status(), Some(3)),
        Ok(Machine::WaitingJob(1))
    );
}

#[tokio::test]
async fn a_restart_at_every_point_between_two_writes_gives_one_configmap_and_job_per_split() {
    let writes = run_to_the_end(None).await;
    assert_eq!(
        writes,
        3 * 3 + 1,
        "ConfigMap, Job and status per split, plus Succeeded"
    );
    for crash_after in 1..=writes {
        run_to_the_end(Some(crash_after)).await;
    }
}

/// Runs the workflow to its end, the operator crashing after write `crash_after` and restarting;
/// checks the outcome and returns the number of writes made.
async fn run_to_the_end(crash_after: Option<usize>) -> usize {
    let fake = FakeCluster::with(new_workflow());
    fake.state().crash_after = crash_after;
    let mut ctx = operator(&fake);
    for _ in 0..30 {
        let _ = reconcile_once(&fake, &ctx).await;
        if fake.state().crashed {
            fake.state().crashed = false;
            ctx = operator(&fake);
            continue;
        }
        let unfinished: Vec<String> = {
            let state = fake.state();
            let jobs = state.jobs.iter();
            jobs.filter(|(_, j)| j.status.is_none())
                .map(|(n, _)| n.clone())
                .collect()
        };
        for job in unfinished {
            let outputs = (job == JOBS[0]).then_some("{\"A\":\"1\"}");
            fake.finish_job(&job, true, outputs);
        }
        if phase(&fake) == Some(Phase::Succeeded) {
            break;
        }
    }
    let at = format!("crash after write {crash_after:?}");
    assert_eq!(
        phase(&fake),
        Some(Phase::Succeeded),
        "{at}: {:?}",
        fake.status().message
    );
    let (config_maps, jobs) = fake.objects();
    assert_eq!(jobs, JOBS, "{at}");
    assert_eq!(config_maps.len(), 3, "{at}");
    let cm3 = fake.state().config_maps["wf-w-3-node3"].clone();
    assert!(
        cm3.data.unwrap()["w.yaml"].contains("A: \"1\""),
        "{at}: outputs carried"
    );
    assert_eq!(fake.status().successful_jobs.len(), 3, "{at}");
    let state = fake.state();
    state.config_maps.len() + state.jobs.len() + state.status_writes.len()
}

#[tokio::test]
async fn refusals_failures_and_corrupt_status_each_end_with_their_event() {
    // A pod admission refuses for good.
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    {
        let mut state = fake.state();
        let job = state.jobs.get_mut(JOBS[0]).unwrap();
        job.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
        let uid = job.metadata.uid.clone().unwrap();
        let message =
            "Error creating: pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\"";
        state
            .failed_creates
            .push(failed_create(JOBS[0], &uid, message));
    }
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(phase(&fake), Some(Phase::Failed));
    assert_eq!(reasons(&fake).last(), Some(&"PodRefused"));

    // A failed Job, with its pod's message.
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.finish_job(JOBS[0], false, Some("command exited with 3"));
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(
        fake.status()
            .message
            .unwrap()
            .ends_with("its pod reported: command exited with 3")
    );
    assert_eq!(fake.status().failed_jobs.len(), 1);
    assert_eq!(reasons(&fake).last(), Some(&"JobFailed"));

    // A hand-edited totalSplits is re-derived, and the workflow goes on.
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.state()
        .workflow
        .as_mut()
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .total_splits = Some(4_000_000_000);
    fake.finish_job(JOBS[0], true, None);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(reasons(&fake).contains(&"StatusRederived"));
    assert_eq!(
        fake.objects().1,
        &JOBS[..2],
        "re-derived at split 1, then advanced"
    );
}

#[tokio::test]
async fn an_object_the_api_server_refuses_fails_the_workflow_and_errors_are_retried() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    fake.state()
        .faults
        .push(("create ConfigMap", Fault::Invalid("data: Too long".into())));
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(phase(&fake), Some(Phase::Failed));
    assert_eq!(
        fake.status().message.as_deref(),
        Some("the API server rejected ConfigMap wf-w-1-node1: data: Too long")
    );

    // A Job that cannot be read is retried with a growing back-off, then reset by a success.
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    for attempt in 1..=3 {
        fake.state().faults.push(("get Job", Fault::Unavailable));
        let error = reconcile_once(&fake, &ctx).await.unwrap_err();
        let requeue = error_policy(Arc::new(fake.workflow()), &error, ctx.clone());
        assert_eq!(requeue, Requeue::requeue(backoff(attempt)));
    }
    assert_eq!(
        reasons(&fake).iter().filter(|r| **r == "Retrying").count(),
        1,
        "said once"
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(ctx.memory.failed("ns/wf"), 1, "the back-off starts over");
}

#[test]
fn backoff_grows_and_is_capped() {
    let first = backoff(1);
    assert!(
        first >= Duration::from_millis(500) && first < Duration::from_secs(2),
        "{first:?}"
    );
    assert!(backoff(5) > first);
    assert!(backoff(100) <= Duration::from_secs(300));
    assert_eq!(
        backoff(u32::MAX),
        Duration::from_secs(300),
        "no walk to 4e9"
    );
}

#[test]
fn conflicts_back_off_from_50_ms_to_a_cap() {
    for _ in 0..20 {
        let first = conflict_backoff(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let tenth = conflict_backoff(10);
        assert!(tenth >= Duration::from_secs(5) && tenth <= Duration::from_secs(10));
        assert!(conflict_backoff(u32::MAX) <= Duration::from_secs(10));
    }
    let growing: Vec<Duration> = (1..=5).map(conflict_backoff).collect();
    assert!(growing[4] >= Duration::from_millis(800), "{growing:?}");
}
