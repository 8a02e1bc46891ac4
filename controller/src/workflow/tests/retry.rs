//! Retries, driven as the I/O layer drives the machine: every Need answered from a table of
//! Job outcomes, every Create found again, every wait passed by moving the clock.

use roiergasias_crd::{RetryRequest, RetryStrategy, SplitPhase};

use super::*;

/// What a run did: the objects it created, the Event reasons, the waits it asked for.
#[derive(Default)]
struct Ran {
    created: Vec<String>,
    events: Vec<String>,
    waits: Vec<Duration>,
    config_maps: Vec<String>,
}

/// Drives `wf` from `status` until it rests in Done (or `limit` decisions), Job outcomes given
/// by `outcome(job name)`; returns the status it rests in.
fn drive(
    wf: &Workflow,
    mut status: WorkflowStatus,
    outcome: &dyn Fn(&str) -> JobSeen,
) -> (WorkflowStatus, Ran) {
    let mut ran = Ran::default();
    let mut observed = Observed::default();
    let mut now = at(100);
    for _ in 0..200 {
        match decide_at(wf, &status, &observed, &now) {
            Decision::Need(Need::Plan { build }) => observed.plan = planned(wf, build).plan,
            Decision::Need(Need::Job { name }) => observed.job = Some(outcome(&name)),
            Decision::Need(other) => panic!("unexpected {other:?}"),
            Decision::Create { object, .. } => {
                let name = object_name(&object);
                let created = Some(Created::Exists(Box::new(owned_meta(&name, "wf-uid"))));
                match *object {
                    Object::ConfigMap(cm) => {
                        let data = cm.data.unwrap_or_default();
                        ran.config_maps.push(data.into_values().collect());
                        observed.config_map = created;
                    }
                    Object::Job(_) => observed.created_job = created,
                }
                ran.created.push(name);
            }
            Decision::Defer(effects) | Decision::Write(effects, Wake::OnChange)
                if effects.step == Step::Idle =>
            {
                assert!(effects.status.is_none());
                return (status, ran);
            }
            Decision::Defer(effects) => {
                ran.events
                    .extend(effects.events.iter().map(|e| e.reason.to_owned()));
                status = *effects.status.expect("a transition");
                observed = Observed {
                    plan: observed.plan.take(),
                    ..Default::default()
                };
            }
            Decision::Write(effects, wake) => {
                ran.events
                    .extend(effects.events.iter().map(|e| e.reason.to_owned()));
                if let Some(new) = effects.status {
                    status = *new;
                }
                if let Wake::After(wait) = wake {
                    ran.waits.push(wait);
                    now = Time(now.0 + k8s_openapi::jiff::SignedDuration::try_from(wait).unwrap());
                }
                if effects.step == Step::RetryRefused {
                    return (status, ran);
                }
                observed = Observed::default();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("no rest in 200 decisions: {status:?}")
}

fn failed_job() -> JobSeen {
    let outcome = JobOutcome::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "limit".into(),
    };
    job_seen(outcome, Some(FinishedPod::Found(Some("exit 3".into()))))
}

/// Split 1 reports A=1 and split 2 B=2; Jobs named in `failing` fail.
fn outcomes(failing: &'static [&'static str]) -> impl Fn(&str) -> JobSeen {
    move |job: &str| match job {
        _ if failing.contains(&job) => failed_job(),
        "wf-1-node1" => complete_job(Some("{\"A\":\"1\"}")),
        j if j.starts_with("wf-2-node2") => complete_job(Some("{\"B\":\"2\"}")),
        _ => complete_job(None),
    }
}

fn retried(wf: &Workflow, request: i64, from_split: Option<u32>) -> Workflow {
    let mut wf = wf.clone();
    wf.spec.retry = Some(RetryRequest {
        request,
        from_split,
    });
    wf
}

fn env(status: &WorkflowStatus) -> Vec<(String, String)> {
    let pairs = status.environment.iter();
    pairs.map(|v| (v.name.clone(), v.value.clone())).collect()
}

#[test]
fn a_retry_runs_the_failed_split_again_as_a_new_attempt_and_carries_the_earlier_outputs() {
    let wf = workflow(THREE);
    let (failed, _) = drive(&wf, WorkflowStatus::default(), &outcomes(&["wf-2-node2"]));
    assert_eq!(failed.phase, Some(Phase::Failed));
    let wf = retried(&wf, 1, None);
    let (done, ran) = drive(&wf, failed.clone(), &outcomes(&["wf-2-node2"]));
    assert_eq!(done.phase, Some(Phase::Succeeded), "{:?}", done.message);
    // Split 1 is not run again: only split 2's new attempt and split 3.
    assert_eq!(
        ran.created,
        [
            "wf-w-2-node2-retry2",
            "wf-2-node2-retry2",
            "wf-w-3-node3",
            "wf-3-node3"
        ]
    );
    assert!(
        ran.config_maps[0].contains("A"),
        "split 1's outputs carried"
    );
    assert_eq!(ran.events.first().map(String::as_str), Some("Retried"));
    let record = &done.splits[1];
    assert_eq!(record.attempt, Some(2));
    assert_eq!(record.job.as_deref(), Some("wf-2-node2-retry2"));
    let first = &record.attempts[0];
    assert_eq!((first.attempt, first.phase), (1, Some(SplitPhase::Failed)));
    assert_eq!(first.job.as_deref(), Some("wf-2-node2"));
    assert!(
        first
            .message
            .as_deref()
            .unwrap()
            .contains("its pod reported: exit 3")
    );
    assert_eq!(done.splits[0].attempts.len(), 0);
    let last = done.last_retry.clone().unwrap();
    assert_eq!(
        (last.request, last.accepted, last.from_split),
        (1, true, Some(2))
    );
    assert_eq!(last.message, "retry 1: split 2/3 runs again as attempt 2");
    assert_eq!(
        env(&done),
        [("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    let jobs: Vec<_> = done
        .successful_jobs
        .iter()
        .flat_map(|j| j.name.clone())
        .collect();
    assert_eq!(jobs, ["wf-1-node1", "wf-2-node2-retry2", "wf-3-node3"]);
    // Acted on once: the same request asks for nothing more.
    let (again, ran) = drive(&wf, done.clone(), &outcomes(&[]));
    assert_eq!((again, ran.created.len()), (done, 0));
}

#[test]
fn until_it_is_written_a_retry_is_decided_the_same_so_a_restart_finds_its_objects() {
    let wf = workflow(THREE);
    let (failed, _) = drive(&wf, WorkflowStatus::default(), &outcomes(&["wf-2-node2"]));
    let wf = retried(&wf, 1, None);
    let first = decide_for(&wf, &failed, &Observed::default());
    let Decision::Defer(effects) = &first else {
        panic!("the retry goes on to create split 2's objects: {first:?}")
    };
    assert_eq!(effects.step, Step::Rerun(2));
    assert_eq!(decide_for(&wf, &failed, &Observed::default()), first);
}

#[test]
fn a_retry_from_an_earlier_split_drops_the_later_splits_outputs() {
    let wf = workflow(THREE);
    let (failed, _) = drive(&wf, WorkflowStatus::default(), &outcomes(&["wf-3-node3"]));
    assert_eq!(env(&failed).len(), 2);
    let wf = retried(&wf, 1, Some(2));
    let (done, ran) = drive(&wf, failed, &outcomes(&["wf-3-node3"]));
    assert_eq!(done.phase, Some(Phase::Succeeded));
    let names = &ran.created;
    assert_eq!(names[1], "wf-2-node2-retry2");
    assert_eq!(names[3], "wf-3-node3-retry2");
    assert!(ran.config_maps[0].contains('A') && !ran.config_maps[0].contains("B"));
    assert_eq!(
        done.splits[1].attempts[0].phase,
        Some(SplitPhase::Succeeded)
    );
    assert_eq!(
        done.splits[1].attempts[0].message.as_deref(),
        Some("run again by retry 1 from split 2")
    );
}

#[test]
fn a_retry_that_cannot_be_done_is_refused_once_with_the_reason() {
    let wf = workflow(THREE);
    let (succeeded, _) = drive(&wf, WorkflowStatus::default(), &outcomes(&[]));
    let (failed, _) = drive(&wf, WorkflowStatus::default(), &outcomes(&["wf-2-node2"]));
    let mut old = failed.clone();
    old.splits.iter_mut().for_each(|r| r.outputs.clear());
    let mut omitted = failed.clone();
    omitted.splits[0].outputs_omitted = Some(true);
    let cases = [
        (
            succeeded,
            None,
            "the workflow succeeded: there is nothing to retry",
        ),
        (waiting_at(&wf, 2), None, "the workflow is still running"),
        (
            failed.clone(),
            Some(3),
            "split 3 has not run: the workflow failed at split 2",
        ),
        (old, Some(1), "only the failed split 2 can run again"),
        (omitted, Some(1), "only the failed split 2 can run again"),
    ];
    for (status, from, why) in cases {
        let wf = retried(&wf, 4, from);
        let (effects, wake) = written(decide_for(&wf, &status, &Observed::default()));
        assert_eq!((effects.step, wake), (Step::RetryRefused, Wake::OnChange));
        let new = effects.status.clone().unwrap();
        let last = new.last_retry.clone().unwrap();
        assert_eq!((last.request, last.accepted), (4, false));
        assert!(
            last.message.starts_with("retry 4 refused: "),
            "{}",
            last.message
        );
        assert!(last.message.contains(why), "{}", last.message);
        assert_eq!(effects.events[0].reason, "RetryRefused");
        assert!(effects.events[0].warning);
        assert_eq!(
            (new.phase, new.state),
            (status.phase, status.state),
            "nothing else"
        );
        assert_ne!(
            decide_for(&wf, &new, &Observed::default()),
            Decision::Write(effects, wake)
        );
    }
}

#[test]
fn a_workflow_that_failed_before_its_first_split_is_checked_again() {
    let wf = workflow("version: 0.1\ntask: []\n");
    let (failed, _) = drive(&wf, WorkflowStatus::default(), &outcomes(&[]));
    assert!(failed.splits.is_empty());
    let (again, ran) = drive(&retried(&wf, 1, None), failed, &outcomes(&[]));
    assert_eq!(again.phase, Some(Phase::Failed), "still invalid");
    assert_eq!(ran.events, ["Retried", "InvalidWorkflow"]);
    assert!(again.last_retry.unwrap().accepted);
}

#[test]
fn a_failed_split_runs_again_by_itself_after_a_doubling_backoff_up_to_the_limit() {
    let mut wf = workflow(THREE);
    wf.spec.retry_strategy = Some(RetryStrategy {
        limit: Some(2),
        backoff_seconds: Some(5),
    });
    let flaky = outcomes(&["wf-2-node2", "wf-2-node2-retry2"]);
    let (done, ran) = drive(&wf, WorkflowStatus::default(), &flaky);
    assert_eq!(done.phase, Some(Phase::Succeeded));
    assert!(ran.created.contains(&"wf-2-node2-retry3".to_owned()));
    let backoffs: Vec<_> = ran.waits.iter().filter(|w| w.as_secs() >= 5).collect();
    assert_eq!(
        backoffs,
        [&Duration::from_secs(5), &Duration::from_secs(10)]
    );
    let record = &done.splits[1];
    assert_eq!(
        (record.attempt, record.automatic_retries),
        (Some(3), Some(2))
    );
    assert_eq!(record.attempts.len(), 2);
    let scheduled = ran.events.iter().filter(|e| *e == "RetryScheduled").count();
    assert_eq!(scheduled, 2);
    let failed_jobs: Vec<_> = done
        .failed_jobs
        .iter()
        .flat_map(|j| j.name.clone())
        .collect();
    assert_eq!(failed_jobs, ["wf-2-node2", "wf-2-node2-retry2"]);

    // Past the limit, the workflow fails.
    let always = outcomes(&["wf-2-node2", "wf-2-node2-retry2", "wf-2-node2-retry3"]);
    let (failed, _) = drive(&wf, WorkflowStatus::default(), &always);
    assert_eq!(failed.phase, Some(Phase::Failed));
    assert_eq!(failed.splits[1].attempt, Some(3));
}
