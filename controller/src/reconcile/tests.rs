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

/// Changes the stored Workflow as `kubectl edit` would (a new resourceVersion and generation).
fn edit(fake: &FakeCluster, change: impl FnOnce(&mut Workflow)) {
    let mut state = fake.state();
    let wf = state.workflow.as_mut().unwrap();
    change(wf);
    let rv: u64 = wf.resource_version().unwrap().parse().unwrap();
    wf.metadata.resource_version = Some((rv + 1).to_string());
    wf.metadata.generation = Some(wf.metadata.generation.unwrap_or(1) + 1);
}

#[tokio::test]
async fn a_workflow_suspended_between_splits_holds_then_resumes_with_the_outputs() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    edit(&fake, |wf| wf.spec.suspend = Some(true));
    fake.finish_job(JOBS[0], true, Some("{\"A\":\"from split 1\"}"));
    assert_eq!(
        reconcile_once(&fake, &ctx).await.unwrap(),
        Requeue::await_change()
    );
    assert_eq!(fake.objects().1, &JOBS[..1], "split 2 not created");
    let status = fake.status();
    assert_eq!(status.phase, Some(Phase::Suspended));
    assert_eq!(Machine::read(&status, Some(3)), Ok(Machine::Split(2)));
    assert_eq!(status.environment[0].value, "from split 1");
    assert_eq!(
        fake.state().status_writes.len(),
        2,
        "one write: outputs and suspension"
    );
    // Woken again while suspended: nothing is written or created.
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.state().status_writes.len(), 2);
    assert_eq!(fake.objects().1.len(), 1);

    edit(&fake, |wf| wf.spec.suspend = Some(false));
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.objects().1, &JOBS[..2]);
    let status = fake.status();
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(Machine::read(&status, Some(3)), Ok(Machine::WaitingJob(2)));
    assert_eq!(
        fake.state().status_writes.len(),
        3,
        "resumed with WaitingJob(2)"
    );
    let cm2 = fake.state().config_maps["wf-w-2-node2"].clone();
    assert!(cm2.data.unwrap()["w.yaml"].contains("from split 1"));
    assert_eq!(
        reasons(&fake),
        [
            "Started",
            "JobCreated",
            "SplitSucceeded",
            "Suspended",
            "Resumed",
            "JobCreated"
        ]
    );
    fake.finish_job(JOBS[1], true, None);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.finish_job(JOBS[2], true, None);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(phase(&fake), Some(Phase::Succeeded));
}

#[tokio::test]
async fn a_workflow_created_suspended_starts_nothing_until_resumed() {
    let mut wf = new_workflow();
    wf.spec.suspend = Some(true);
    let fake = FakeCluster::with(wf);
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(phase(&fake), Some(Phase::Suspended));
    assert_eq!(fake.objects(), (vec![], vec![]));
    assert_eq!(reasons(&fake), ["Started", "Suspended"]);
    edit(&fake, |wf| wf.spec.suspend = None);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.objects().1, &JOBS[..1]);
}

/// Moves the stored status's startTime (or completionTime) back by `seconds`.
fn age(fake: &FakeCluster, seconds: i64, completion: bool) {
    let mut state = fake.state();
    let status = state.workflow.as_mut().unwrap().status.as_mut().unwrap();
    let time = match completion {
        true => &mut status.completion_time,
        false => &mut status.start_time,
    };
    let then = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(seconds);
    *time = Some(Time(then));
}

#[tokio::test]
async fn past_its_deadline_the_running_job_is_suspended_once_and_the_workflow_fails() {
    let mut wf = new_workflow();
    wf.spec.active_deadline_seconds = Some(600);
    let fake = FakeCluster::with(wf);
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.start_pod(JOBS[0]);
    // Woken by the deadline, not the 300 s safety net, once less than that is left.
    age(&fake, 400, false);
    let wake = reconcile_once(&fake, &ctx).await.unwrap();
    let left = requeued(&wake).expect("a timer");
    let due = (Duration::from_secs(190)..=Duration::from_secs(200)).contains(&left);
    assert!(due, "{wake:?}");
    assert!(fake.state().suspended_jobs.is_empty());
    age(&fake, 601, false);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.state().suspended_jobs, [JOBS[0]], "exactly one patch");
    let job = fake.state().jobs[JOBS[0]].clone();
    assert_eq!(
        job.spec.unwrap().suspend,
        Some(true),
        "suspended, not deleted"
    );
    assert_eq!(phase(&fake), Some(Phase::Failed));
    let status = fake.status();
    assert_eq!(
        status.message.as_deref(),
        Some(
            "the workflow ran longer than its activeDeadlineSeconds (600 s) and was stopped at \
             split 1/3; its Job wf-1-node1 was suspended"
        )
    );
    assert_eq!(reasons(&fake).last(), Some(&"DeadlineExceeded"));
    // Done: not patched again.
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.state().suspended_jobs.len(), 1);
}

#[tokio::test]
async fn a_finished_workflow_is_deleted_once_its_ttl_has_passed() {
    let mut wf = new_workflow();
    wf.spec.ttl_seconds_after_finished = Some(3600);
    let fake = FakeCluster::with(wf);
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.finish_job(JOBS[0], false, Some("exit 1"));
    let wake = reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(phase(&fake), Some(Phase::Failed));
    assert_eq!(
        wake,
        Requeue::await_change(),
        "the failure is written first"
    );
    // Finished a moment ago: woken when the hour is up, nothing deleted.
    let wake = reconcile_once(&fake, &ctx).await.unwrap();
    let due = (Duration::from_secs(3590)..=Duration::from_secs(3600))
        .contains(&requeued(&wake).expect("a timer"));
    assert!(due, "{wake:?}");
    assert!(fake.state().deleted.is_empty());
    age(&fake, 3601, true);
    let stale = Arc::new(fake.workflow());
    reconcile(stale.clone(), ctx.clone()).await.unwrap();
    assert_eq!(fake.state().deleted, ["wf-uid"]);
    assert!(fake.state().workflow.is_none());
    assert_eq!(reasons(&fake).last(), Some(&"Expired"));
    // A stale copy reconciled again deletes nothing more (the uid precondition).
    fake.state().workflow = Some(Workflow {
        metadata: kube::api::ObjectMeta {
            uid: Some("a-new-uid".into()),
            ..stale.metadata.clone()
        },
        ..(*stale).clone()
    });
    reconcile(stale, ctx.clone()).await.unwrap();
    assert_eq!(fake.state().deleted.len(), 1);
}

/// The delay of a timed requeue (kube keeps it private; its Debug shows it).
fn requeued(requeue: &Requeue) -> Option<Duration> {
    let text = format!("{requeue:?}");
    let inner = text.split_once("Some(")?.1.split_once(')')?.0;
    let (number, unit) = inner.split_at(inner.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "µs" => 1e-6,
        "ns" => 1e-9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

#[tokio::test]
async fn a_retry_survives_a_restart_after_every_write_and_makes_one_new_job() {
    // ConfigMap, Job and status of split 2's retry, then of split 3, then Succeeded.
    for crash_after in 1..=7 {
        retry_to_the_end(Some(crash_after)).await;
    }
    retry_to_the_end(None).await;
}

/// Runs the workflow until Job 2 has failed it, asks for a retry, and runs it to its end with the
/// operator crashing after the retry's write `crash_after` and restarting.
async fn retry_to_the_end(crash_after: Option<usize>) {
    let fake = FakeCluster::with(new_workflow());
    let mut ctx = operator(&fake);
    let at = format!("crash after retry write {crash_after:?}");
    run_jobs(&fake, &mut ctx, Phase::Failed, &at).await;
    // Counted from here: the retry's writes.
    fake.state().crash_after = crash_after;
    edit(&fake, |wf| {
        wf.spec.retry = Some(roiergasias_crd::RetryRequest {
            request: 1,
            from_split: None,
        })
    });
    let restarts = run_jobs(&fake, &mut ctx, Phase::Succeeded, &at).await;
    assert_eq!(restarts, usize::from(crash_after.is_some()), "{at}");
    let (_, jobs) = fake.objects();
    assert_eq!(
        jobs,
        [
            "wf-1-node1",
            "wf-2-node2",
            "wf-2-node2-retry2",
            "wf-3-node3"
        ],
        "{at}"
    );
    // Published with the status that records the retry: once, unless the operator died between
    // that write (the 3rd) and the publish, like any Event.
    let retried = reasons(&fake).iter().filter(|r| **r == "Retried").count();
    assert_eq!(retried, usize::from(crash_after != Some(3)), "{at}");
    let status = fake.status();
    let last = status.last_retry.expect("acted on");
    assert_eq!((last.request, last.accepted), (1, true), "{at}");
    assert_eq!(status.splits[1].attempt, Some(2), "{at}");
    let cm3 = fake.state().config_maps["wf-w-3-node3"].clone();
    assert!(cm3.data.unwrap()["w.yaml"].contains("A: \"1\""), "{at}");
}

/// Reconciles, restarting after a crash, and ends each Job as it appears (Job 2's first attempt
/// fails, Job 1 outputs A=1), until the workflow is in `phase`; returns the restarts.
async fn run_jobs(
    fake: &FakeCluster,
    ctx: &mut Arc<Context<FakeCluster>>,
    phase_wanted: Phase,
    at: &str,
) -> usize {
    let mut restarts = 0;
    for _ in 0..30 {
        let _ = reconcile_once(fake, ctx).await;
        if fake.state().crashed {
            fake.state().crashed = false;
            *ctx = operator(fake);
            restarts += 1;
            continue;
        }
        let unfinished: Vec<String> = {
            let state = fake.state();
            let jobs = state.jobs.iter();
            let open = jobs.filter(|(_, j)| j.status.is_none());
            open.map(|(n, _)| n.clone()).collect()
        };
        for job in unfinished {
            let outputs = (job == JOBS[0]).then_some("{\"A\":\"1\"}");
            fake.finish_job(&job, job != JOBS[1], outputs);
        }
        if phase(fake) == Some(phase_wanted) {
            return restarts;
        }
    }
    panic!("{at}: never {phase_wanted:?}: {:?}", fake.status().message);
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_the_api_server_never_answers_is_given_up_and_retried() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.finish_job(JOBS[0], true, None);
    fake.state().faults.push(("create ConfigMap", Fault::Hang));
    let error = reconcile_once(&fake, &ctx).await.unwrap_err();
    assert!(matches!(error, Error::TimedOut(_)), "{error}");
    let requeue = error_policy(Arc::new(fake.workflow()), &error, ctx.clone());
    assert!(requeued(&requeue).is_some(), "retried: {requeue:?}");
    // Answering again, the next reconcile picks up where the given-up one stopped.
    fake.state().faults.clear();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.objects().1, JOBS[..2]);
}

/// Job `job`'s pod runs on `node` and is not Ready (as the node controller marks it), and
/// `node`'s Ready condition is `ready`.
fn on_node(fake: &FakeCluster, job: &str, node: &str, ready: &str) {
    use k8s_openapi::api::batch::v1::JobStatus;
    use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
    let mut state = fake.state();
    let job_uid = state.jobs[job].metadata.uid.clone();
    let status = state
        .jobs
        .get_mut(job)
        .unwrap()
        .status
        .get_or_insert_with(JobStatus::default);
    (status.active, status.ready) = (Some(1), Some(0));
    for pod in &mut state.pods {
        if pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::cache::JOB_UID_LABEL))
            == job_uid.as_ref()
        {
            pod.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        }
    }
    let condition = NodeCondition {
        type_: "Ready".into(),
        status: ready.into(),
        reason: Some("NodeStatusUnknown".into()),
        ..Default::default()
    };
    let status = NodeStatus {
        conditions: Some(vec![condition]),
        ..Default::default()
    };
    let node_object = Node {
        status: Some(status),
        ..Default::default()
    };
    state.nodes.insert(node.into(), node_object);
}

#[tokio::test]
async fn a_split_whose_node_is_lost_has_its_job_suspended_and_fails_naming_the_node() {
    let fake = FakeCluster::with(new_workflow());
    let ctx = operator(&fake);
    reconcile_once(&fake, &ctx).await.unwrap();
    fake.start_pod(JOBS[0]);
    // Not Ready on a node whose kubelet still reports (a restart): it waits.
    on_node(&fake, JOBS[0], "node1", "False");
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(fake.state().suspended_jobs.is_empty());
    assert_eq!(phase(&fake), Some(Phase::Running));
    on_node(&fake, JOBS[0], "node1", "Unknown");
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.state().suspended_jobs,
        [JOBS[0]],
        "no new pod once evicted"
    );
    assert_eq!(phase(&fake), Some(Phase::Failed));
    let message = fake.status().message.unwrap_or_default();
    assert!(
        message.contains("is on node node1, which is lost: its Ready condition is Unknown"),
        "{message}"
    );
    assert_eq!(reasons(&fake).last(), Some(&"NodeLost"));
}
