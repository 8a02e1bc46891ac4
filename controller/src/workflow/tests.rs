//! Every arm of the machine, reached from what the I/O layer really observes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use roiergasias_crd::{MachineState, Phase, WorkflowSpec, WorkflowYaml};

use super::*;
use crate::plan::plan;
use crate::policy::JobTemplates;

mod retry;

const THREE: &str = "version: 0.1\ntask:\n  - node: node1\n    sequential:\n      - print: [a]\n  - node: node2\n    sequential:\n      - print: [\"{{env:A}}\"]\n  - node: node3\n    sequential:\n      - print: [c]\n";

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
}

/// Workflow `wf` in namespace `ns` running `yaml`, as the API server would hand it over.
pub(crate) fn workflow(yaml: &str) -> Workflow {
    let spec = WorkflowSpec {
        workflow_yaml: WorkflowYaml {
            name: "w".into(),
            yaml: yaml.into(),
        },
        job_template: None,
        ..Default::default()
    };
    let mut wf = Workflow::new("wf", spec);
    wf.metadata.namespace = Some("ns".into());
    wf.metadata.uid = Some("wf-uid".into());
    wf.metadata.generation = Some(1);
    wf.metadata.resource_version = Some("7".into());
    wf
}

/// Decides for `wf` in `status` having observed `observed`, with the default policy, at `now`.
fn decide_at(wf: &Workflow, status: &WorkflowStatus, observed: &Observed, now: &Time) -> Decision {
    decide(&Input {
        workflow: wf,
        status,
        observed,
        policy: &Policy::default(),
        runner_image: "runner",
        now,
    })
}

fn decide_for(wf: &Workflow, status: &WorkflowStatus, observed: &Observed) -> Decision {
    decide_at(wf, status, observed, &at(100))
}

fn planned(wf: &Workflow, build: Option<u32>) -> Observed {
    Observed {
        plan: Some((build, plan(&wf.spec, build))),
        ..Default::default()
    }
}

fn owned_meta(name: &str, owner_uid: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        uid: Some(format!("{name}-uid")),
        owner_references: Some(vec![OwnerReference {
            kind: "Workflow".into(),
            name: "wf".into(),
            uid: owner_uid.into(),
            controller: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The status of `wf` right after Job n was created (WaitingJob(n)), reached as the I/O layer
/// would, every earlier Job completing without outputs.
fn waiting_at(wf: &Workflow, n: u32) -> WorkflowStatus {
    let mut status = WorkflowStatus::default();
    let mut observed = Observed::default();
    for _ in 0..100 {
        match decide_for(wf, &status, &observed) {
            Decision::Need(Need::Plan { build }) => observed = planned(wf, build),
            Decision::Need(Need::Job { .. }) => observed.job = Some(complete_job(None)),
            Decision::Create { object, .. } => {
                let meta = owned_meta(&object_name(&object), "wf-uid");
                let created = Some(Created::Exists(Box::new(meta)));
                match *object {
                    Object::ConfigMap(_) => observed.config_map = created,
                    Object::Job(_) => observed.created_job = created,
                }
            }
            Decision::Defer(effects) | Decision::Write(effects, _) => {
                status = *effects.status.expect("a transition");
                if Machine::read(&status, None) == Ok(Machine::WaitingJob(n)) {
                    return status;
                }
                observed = Observed::default();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("WaitingJob({n}) never reached")
}

fn object_name(object: &Object) -> String {
    match object {
        Object::ConfigMap(o) => o.metadata.name.clone().unwrap(),
        Object::Job(o) => o.metadata.name.clone().unwrap(),
    }
}

fn job_seen(outcome: JobOutcome, pod: Option<FinishedPod>) -> JobSeen {
    JobSeen {
        presence: Presence::Ours,
        outcome,
        pod,
        created: Some(at(0)),
        uid: Some("job-uid".into()),
        ..JobSeen::missing()
    }
}

fn complete_job(message: Option<&str>) -> JobSeen {
    let pod = FinishedPod::Found(message.map(Into::into));
    job_seen(JobOutcome::Complete, Some(pod))
}

fn with_job(job: JobSeen) -> Observed {
    Observed {
        job: Some(job),
        ..Default::default()
    }
}

/// The Write decision's effects, failing the test on anything else.
fn written(decision: Decision) -> (Effects, Wake) {
    match decision {
        Decision::Write(effects, wake) => (effects, wake),
        other => panic!("expected a write, got {other:?}"),
    }
}

fn failed_with(decision: Decision) -> (FailReason, String) {
    let (effects, wake) = written(decision);
    assert_eq!(wake, Wake::OnChange, "a failure is never retried");
    let status = effects.status.expect("a failed status");
    assert_eq!(status.phase, Some(Phase::Failed));
    let Step::Fail(reason) = effects.step else {
        panic!("not a failure: {:?}", effects.step)
    };
    assert_eq!(effects.events[0].reason, reason.as_str());
    assert!(effects.events[0].warning);
    (reason, status.message.unwrap_or_default())
}

#[test]
fn the_state_is_read_with_its_fields_together() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 2);
    assert_eq!(Machine::read(&status, Some(3)), Ok(Machine::WaitingJob(2)));
    assert_eq!(
        Machine::read(&WorkflowStatus::default(), None),
        Ok(Machine::Pending)
    );
    type Edit = fn(&mut WorkflowStatus);
    let cases: [(&str, Edit); 6] = [
        ("totalSplits is missing", |s| s.total_splits = None),
        ("not between 1 and 1000", |s| {
            s.total_splits = Some(4_000_000_000)
        }),
        ("2 split record(s) for totalSplits 3", |s| {
            s.splits.pop();
        }),
        ("currentSplit Some(0)", |s| s.current_split = Some(0)),
        ("currentSplit None", |s| s.current_split = None),
        ("split record 2 has index 5", |s| s.splits[1].index = 5),
    ];
    for (why, corrupt) in cases {
        let mut bad = status.clone();
        corrupt(&mut bad);
        let err = Machine::read(&bad, None).unwrap_err();
        assert!(err.0.contains(why), "{why}: {err}");
    }
    let err = Machine::read(&status, Some(2)).unwrap_err();
    assert!(err.0.contains("the workflow has 2 split(s)"), "{err}");
    // Done is never acted on, whatever else status says.
    let mut done = status;
    done.state = Some(MachineState::Done);
    done.total_splits = None;
    assert_eq!(Machine::read(&done, None), Ok(Machine::Done));
}

#[test]
fn pending_plans_then_starts_deferred_with_the_planned_nodes() {
    let wf = workflow(THREE);
    let fresh = WorkflowStatus::default();
    let need = decide_for(&wf, &fresh, &Observed::default());
    assert_eq!(need, Decision::Need(Need::Plan { build: None }));
    let Decision::Defer(effects) = decide_for(&wf, &fresh, &planned(&wf, None)) else {
        panic!("a valid workflow starts")
    };
    let status = effects.status.unwrap();
    assert_eq!(Machine::read(&status, Some(3)), Ok(Machine::Split(1)));
    assert_eq!(status.nodes, ["node1", "node2", "node3"]);
    assert_eq!(effects.events[0].reason, "Started");
    assert_eq!(
        effects.events[0].message,
        "valid workflow: 3 split(s) on nodes node1, node2, node3"
    );
}

#[test]
fn an_invalid_or_refused_workflow_fails_where_it_is_decided() {
    let wf = workflow("version: 0.1\ntask:\n  - sequential:\n      - frobnicate: [x]\n");
    let (reason, message) = failed_with(decide_for(
        &wf,
        &WorkflowStatus::default(),
        &planned(&wf, None),
    ));
    assert_eq!(reason, FailReason::InvalidWorkflow);
    assert!(
        message.starts_with("invalid workflow:\nworkflowYAML.yaml:"),
        "{message}"
    );

    // A stricter policy stops a workflow in Split(n) too (the operator restarted with it).
    let mut wf = workflow(THREE);
    wf.spec.job_template = Some(
        serde_json::from_value(serde_json::json!({
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap(),
    );
    let status = waiting_at(&workflow(THREE), 1);
    let mut split = status.clone();
    split.state = Some(MachineState::Split);
    let refuse = Policy {
        job_templates: JobTemplates::Refuse,
        ..Policy::default()
    };
    for status in [WorkflowStatus::default(), split] {
        let observed = Observed::default();
        let input = Input {
            workflow: &wf,
            status: &status,
            observed: &observed,
            policy: &refuse,
            runner_image: "runner",
            now: &at(1),
        };
        let (reason, _) = failed_with(decide(&input));
        assert_eq!(reason, FailReason::Refused);
    }
}

#[test]
fn a_split_creates_its_configmap_then_its_job_then_writes_waiting() {
    let wf = workflow(THREE);
    let mut status = waiting_at(&wf, 1);
    status.state = Some(MachineState::Split);
    status.current_split = Some(2);
    let need = decide_for(&wf, &status, &Observed::default());
    assert_eq!(need, Decision::Need(Need::Plan { build: Some(2) }));
    let mut observed = planned(&wf, Some(2));
    let Decision::Create { split: 2, object } = decide_for(&wf, &status, &observed) else {
        panic!("the ConfigMap first")
    };
    assert!(matches!(*object, Object::ConfigMap(_)));
    assert_eq!(object_name(&object), "wf-w-2-node2");
    observed.config_map = Some(Created::Exists(Box::new(owned_meta(
        "wf-w-2-node2",
        "wf-uid",
    ))));
    let Decision::Create { split: 2, object } = decide_for(&wf, &status, &observed) else {
        panic!("then the Job")
    };
    assert_eq!(object_name(&object), "wf-2-node2");
    observed.created_job = Some(Created::Exists(Box::new(owned_meta(
        "wf-2-node2",
        "wf-uid",
    ))));
    let (effects, wake) = written(decide_for(&wf, &status, &observed));
    assert_eq!((effects.step, wake), (Step::Created(2), Wake::OnChange));
    assert_eq!(effects.handoff, Some(Handoff::Finished(1)));
    let new = effects.status.unwrap();
    assert_eq!(Machine::read(&new, Some(3)), Ok(Machine::WaitingJob(2)));
    assert_eq!(new.active_jobs[0].uid.as_deref(), Some("wf-2-node2-uid"));
    assert_eq!(
        effects.events[0].message,
        "split 2/3: created ConfigMap wf-w-2-node2 and Job wf-2-node2 on node node2"
    );
    assert_eq!(effects.events[0].job.as_deref(), Some("wf-2-node2"));
}

#[test]
fn an_object_taken_by_another_owner_or_refused_fails_naming_it() {
    let wf = workflow(THREE);
    let mut status = waiting_at(&wf, 1);
    status.state = Some(MachineState::Split);
    let foreign = |name: &str| Created::Exists(Box::new(owned_meta(name, "other-uid")));
    let mut unowned = owned_meta("wf-1-node1", "x");
    unowned.owner_references = None;
    let ours = || {
        Some(Created::Exists(Box::new(owned_meta(
            "wf-w-1-node1",
            "wf-uid",
        ))))
    };
    let cases = [
        (
            Some(foreign("wf-w-1-node1")),
            None,
            FailReason::NameConflict,
            "ConfigMap wf-w-1-node1 already exists and is not owned by this Workflow (controlled by Workflow wf)",
        ),
        (
            ours(),
            Some(Created::Exists(Box::new(unowned))),
            FailReason::NameConflict,
            "Job wf-1-node1 already exists and is not owned by this Workflow (it has no controlling owner)",
        ),
        (
            Some(Created::Rejected("too long".into())),
            None,
            FailReason::Rejected,
            "the API server rejected ConfigMap wf-w-1-node1: too long",
        ),
        (
            ours(),
            Some(Created::Rejected("bad".into())),
            FailReason::Rejected,
            "the API server rejected Job wf-1-node1: bad",
        ),
    ];
    for (config_map, created_job, want, text) in cases {
        let observed = Observed {
            config_map,
            created_job,
            ..planned(&wf, Some(1))
        };
        let (reason, message) = failed_with(decide_for(&wf, &status, &observed));
        assert_eq!(reason, want);
        assert!(message.starts_with(text), "{message}");
    }
}

#[test]
fn waiting_asks_for_the_job_and_waits_while_it_runs() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 2);
    let need = decide_for(&wf, &status, &Observed::default());
    assert_eq!(
        need,
        Decision::Need(Need::Job {
            name: "wf-2-node2".into()
        })
    );
    let running = JobSeen {
        no_pod_yet: false,
        ..job_seen(JobOutcome::Running, None)
    };
    let (effects, wake) = written(decide_for(&wf, &status, &with_job(running)));
    assert_eq!((effects.status, wake), (None, Wake::After(WAIT_RECHECK)));
    // A Job without its pod yet is looked at again soon; refusals are looked for after a grace.
    let young = JobSeen {
        no_pod_yet: true,
        created: Some(at(99)),
        ..job_seen(JobOutcome::Running, None)
    };
    let (_, wake) = written(decide_for(&wf, &status, &with_job(young.clone())));
    assert_eq!(wake, Wake::After(POD_RECHECK));
    let old = JobSeen {
        created: Some(at(0)),
        ..young
    };
    let need = decide_for(&wf, &status, &with_job(old.clone()));
    assert_eq!(
        need,
        Decision::Need(Need::Refusal {
            name: "wf-2-node2".into()
        })
    );
    let transient = Observed {
        refusal: Some(None),
        ..with_job(old.clone())
    };
    assert_eq!(
        written(decide_for(&wf, &status, &transient)).1,
        Wake::After(POD_RECHECK)
    );
    let refused = Observed {
        refusal: Some(Some("violates PodSecurity \"restricted:latest\"".into())),
        ..with_job(old)
    };
    let (reason, message) = failed_with(decide_for(&wf, &status, &refused));
    assert_eq!(reason, FailReason::PodRefused);
    assert_eq!(
        message,
        "split 2: Job wf-2-node2 cannot create its pod: violates PodSecurity \"restricted:latest\""
    );
}

#[test]
fn a_pod_no_node_can_take_is_said_once_in_status_and_an_event() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 1);
    let stuck = JobSeen {
        unschedulable: Some("0/3 nodes are available".into()),
        ..job_seen(JobOutcome::Running, None)
    };
    let (effects, _) = written(decide_for(&wf, &status, &with_job(stuck.clone())));
    let new = effects.status.expect("status says so");
    assert!(
        new.message.as_deref().unwrap().contains(
            "waiting for a node labelled node.roiergasias=node1: 0/3 nodes are available"
        ),
        "{:?}",
        new.message
    );
    assert_eq!(effects.events[0].reason, "Unschedulable");
    let (again, _) = written(decide_for(&wf, &new, &with_job(stuck)));
    assert_eq!((again.status, again.events), (None, vec![]), "said once");
}

#[test]
fn a_job_on_a_lost_node_is_suspended_then_its_split_fails_naming_the_node_or_runs_again() {
    let mut wf = workflow(THREE);
    let status = waiting_at(&wf, 1);
    let why =
        "pod wf-1-node1-x is on node real-node1, which is lost: its Ready condition is Unknown";
    let lost = JobSeen {
        lost_node: Some(why.into()),
        ..job_seen(JobOutcome::Running, None)
    };
    let stop = decide_for(&wf, &status, &with_job(lost.clone()));
    let name = "wf-1-node1".to_owned();
    assert_eq!(
        stop,
        Decision::StopJob { name },
        "no new pod for it once evicted"
    );
    let stopped = Observed {
        job_stopped: true,
        ..with_job(lost)
    };
    let (reason, message) = failed_with(decide_for(&wf, &status, &stopped));
    assert_eq!(reason, FailReason::NodeLost);
    assert_eq!(
        message,
        format!("split 1: Job wf-1-node1's pod cannot finish: {why}; the Job was suspended")
    );
    wf.spec.retry_strategy = Some(roiergasias_crd::RetryStrategy {
        limit: Some(1),
        backoff_seconds: Some(5),
    });
    let (effects, wake) = written(decide_for(&wf, &status, &stopped));
    assert_eq!(
        (effects.step, wake),
        (Step::AutoRetry(1), Wake::After(Duration::from_secs(5)))
    );
    assert!(
        effects.events[0].message.contains("node real-node1"),
        "{:?}",
        effects.events
    );
}

#[test]
fn a_completed_job_carries_its_outputs_to_the_next_split_deferred() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 1);
    let observed = with_job(complete_job(Some("{\"A\":\"1\"}")));
    let Decision::Defer(effects) = decide_for(&wf, &status, &observed) else {
        panic!("the next split is acted on at once")
    };
    assert_eq!(effects.step, Step::Advance(1));
    assert_eq!(effects.handoff, Some(Handoff::Started(1)));
    let new = effects.status.unwrap();
    assert_eq!(Machine::read(&new, Some(3)), Ok(Machine::Split(2)));
    assert_eq!(
        (
            new.environment[0].name.as_str(),
            new.environment[0].value.as_str()
        ),
        ("A", "1")
    );
    assert_eq!(
        effects.events[0].message,
        "split 1/3: Job wf-1-node1 completed, carrying 1 output(s); starting split 2"
    );
}

#[test]
fn the_last_completed_job_succeeds_the_workflow() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 3);
    let (effects, wake) = written(decide_for(&wf, &status, &with_job(complete_job(None))));
    assert_eq!((effects.step, wake), (Step::Advance(3), Wake::OnChange));
    assert_eq!(effects.status.unwrap().phase, Some(Phase::Succeeded));
    assert_eq!(effects.events[0].reason, "Succeeded");
    assert_eq!(
        effects.events[0].message,
        "Job wf-3-node3 completed; all 3 split(s) succeeded"
    );
}

#[test]
fn outputs_that_cannot_be_carried_are_said_so() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 1);
    let cases = [
        (
            Some(FinishedPod::Gone),
            "Job wf-1-node1 completed but its pod is gone",
        ),
        (
            Some(FinishedPod::Found(Some("not json".into()))),
            "the termination message of Job wf-1-node1's pod is not outputs JSON",
        ),
    ];
    for (pod, text) in cases {
        let observed = with_job(job_seen(JobOutcome::Complete, pod));
        let Decision::Defer(effects) = decide_for(&wf, &status, &observed) else {
            panic!("the workflow goes on")
        };
        assert_eq!(effects.events[0].reason, "OutputsIgnored");
        assert!(
            effects.events[0].message.starts_with(text),
            "{:?}",
            effects.events[0]
        );
        assert!(effects.status.unwrap().environment.is_empty());
    }
    let huge = format!("{{\"A\":\"{}\"}}", "x".repeat(300 * 1024));
    let observed = with_job(complete_job(Some(&huge)));
    let (reason, message) = failed_with(decide_for(&wf, &status, &observed));
    assert_eq!(reason, FailReason::OutputsTooLarge);
    assert!(
        message.contains("pass large data through a volume"),
        "{message}"
    );
}

#[test]
fn a_failed_deleted_or_foreign_job_fails_the_workflow() {
    let wf = workflow(THREE);
    let status = waiting_at(&wf, 2);
    let failed = |pod| {
        let outcome = JobOutcome::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "limit".into(),
        };
        with_job(job_seen(outcome, pod))
    };
    let foreign = JobSeen {
        presence: Presence::Foreign("controlled by Job x".into()),
        ..JobSeen::missing()
    };
    let cases = [
        (
            failed(Some(FinishedPod::Found(Some("exit 3".into())))),
            FailReason::JobFailed,
            "split 2: Job wf-2-node2 failed (BackoffLimitExceeded: limit); its pod reported: exit 3",
        ),
        (
            failed(Some(FinishedPod::Found(None))),
            FailReason::JobFailed,
            "split 2: Job wf-2-node2 failed (BackoffLimitExceeded: limit); its pod left no termination message",
        ),
        (
            failed(Some(FinishedPod::Gone)),
            FailReason::JobFailed,
            "split 2: Job wf-2-node2 failed (BackoffLimitExceeded: limit); its pod is gone",
        ),
        (
            with_job(JobSeen::missing()),
            FailReason::JobDeleted,
            "Job wf-2-node2 of split 2 was deleted before it finished",
        ),
        (
            with_job(foreign),
            FailReason::NameConflict,
            "Job wf-2-node2 already exists and is not owned by this Workflow (controlled by Job x)",
        ),
    ];
    for (observed, want, text) in cases {
        let (reason, message) = failed_with(decide_for(&wf, &status, &observed));
        assert_eq!(reason, want);
        assert!(message.starts_with(text), "{message}");
    }
}

#[test]
fn done_and_deleting_workflows_are_left_alone() {
    let wf = workflow(THREE);
    let mut done = waiting_at(&wf, 3);
    done.state = Some(MachineState::Done);
    let (effects, wake) = written(decide_for(&wf, &done, &with_job(complete_job(None))));
    assert_eq!(
        (effects.step, effects.status, wake),
        (Step::Idle, None, Wake::OnChange)
    );
    let mut deleting = wf.clone();
    deleting.metadata.deletion_timestamp = Some(at(0));
    let status = waiting_at(&wf, 1);
    let (effects, _) = written(decide_for(&deleting, &status, &Observed::default()));
    assert_eq!(effects.step, Step::Idle);
}

#[test]
fn a_corrupt_status_is_rederived_from_the_plan_and_this_workflows_jobs() {
    let wf = workflow(THREE);
    let mut corrupt = waiting_at(&wf, 2);
    corrupt.total_splits = Some(4_000_000_000);
    let need = decide_for(&wf, &corrupt, &Observed::default());
    assert_eq!(need, Decision::Need(Need::Plan { build: None }));
    let observed = planned(&wf, None);
    assert_eq!(
        decide_for(&wf, &corrupt, &observed),
        Decision::Need(Need::OwnedJobs)
    );
    let label = |mut meta: ObjectMeta, split: &str| {
        meta.labels = Some([(crate::build::SPLIT_LABEL.to_owned(), split.to_owned())].into());
        meta
    };
    let jobs = vec![
        label(owned_meta("wf-1-node1", "wf-uid"), "1"),
        label(owned_meta("wf-2-node2", "wf-uid"), "2"),
        label(owned_meta("someone-else", "other"), "3"),
    ];
    let observed = Observed {
        owned_jobs: Some(jobs),
        ..observed
    };
    let Decision::Defer(effects) = decide_for(&wf, &corrupt, &observed) else {
        panic!("re-derived, then acted on")
    };
    assert_eq!(effects.events[0].reason, "StatusRederived");
    let new = effects.status.unwrap();
    assert_eq!(Machine::read(&new, Some(3)), Ok(Machine::WaitingJob(2)));
    assert!(
        new.message
            .unwrap()
            .contains("totalSplits 4000000000 is not between 1 and 1000")
    );
}

#[test]
fn a_retried_error_is_said_once_and_a_status_too_large_is_cut_to_fit() {
    let mut wf = workflow(THREE);
    let status = waiting_at(&wf, 1);
    let observed = Observed::default();
    let input = |wf: &Workflow| decide_retry(wf, &status, &observed);
    let Some(Decision::Write(effects, _)) = input(&wf) else {
        panic!("said in status")
    };
    assert_eq!(effects.events[0].reason, "Retrying");
    wf.status = effects.status.map(|s| *s);
    assert_eq!(input(&wf), None, "already said");

    let mut big = status.clone();
    big.environment = vec![roiergasias_crd::CarriedVar {
        name: "A".into(),
        value: "x".repeat(2_000_000),
    }];
    let too_large = super::too_large(
        &Input {
            workflow: &wf,
            status: &big,
            observed: &observed,
            policy: &Policy::default(),
            runner_image: "r",
            now: &at(1),
        },
        "too big",
    );
    let (reason, _) = failed_with(too_large.clone());
    assert_eq!(reason, FailReason::StatusTooLarge);
    let (effects, _) = written(too_large);
    assert!(effects.status.unwrap().environment.is_empty(), "cut to fit");
}

fn decide_retry(wf: &Workflow, status: &WorkflowStatus, observed: &Observed) -> Option<Decision> {
    retrying(
        &Input {
            workflow: wf,
            status,
            observed,
            policy: &Policy::default(),
            runner_image: "r",
            now: &at(1),
        },
        "Kubernetes API error: etcdserver: request timed out",
    )
}

/// `wf` with spec.suspend, activeDeadlineSeconds and ttlSecondsAfterFinished set so.
fn with_lifecycle(suspend: Option<bool>, deadline: Option<i64>, ttl: Option<i64>) -> Workflow {
    let mut wf = workflow(THREE);
    wf.spec.suspend = suspend;
    wf.spec.active_deadline_seconds = deadline;
    wf.spec.ttl_seconds_after_finished = ttl;
    wf
}

#[test]
fn a_suspended_workflow_collects_the_running_splits_outputs_then_holds_the_next_split() {
    let wf = with_lifecycle(Some(true), None, None);
    // Job 1 completes while suspended: its outputs are carried, as usual (deferred) …
    let status = waiting_at(&workflow(THREE), 1);
    let observed = with_job(complete_job(Some("{\"A\":\"1\"}")));
    let Decision::Defer(advanced) = decide_for(&wf, &status, &observed) else {
        panic!("Job 1's outputs are collected")
    };
    let split2 = advanced.status.unwrap();
    // … then Split(2) is written Suspended, without planning or creating anything.
    let (effects, wake) = written(decide_for(&wf, &split2, &Observed::default()));
    assert_eq!((effects.step, wake), (Step::Suspend(2), Wake::OnChange));
    assert_eq!(effects.handoff, Some(Handoff::CancelAll { records: 3 }));
    let suspended = effects.status.unwrap();
    assert_eq!(Machine::read(&suspended, Some(3)), Ok(Machine::Split(2)));
    assert_eq!(suspended.phase, Some(Phase::Suspended));
    assert_eq!(suspended.environment[0].value, "1", "outputs kept");
    let condition = |s: &WorkflowStatus, t: &str| {
        let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(
        condition(&suspended, "Suspended"),
        ("True".into(), "Suspended".into())
    );
    assert_eq!(
        condition(&suspended, "Progressing"),
        ("False".into(), "Suspended".into())
    );
    assert_eq!(effects.events[0].reason, "Suspended");
    assert_eq!(
        effects.events[0].message,
        "split 2/3: suspended (spec.suspend); split 2 is not started"
    );
    // Said once: a later reconcile writes and publishes nothing.
    let (again, _) = written(decide_for(&wf, &suspended, &Observed::default()));
    assert_eq!((again.status, again.events), (None, vec![]));

    // Resumed: deferred (written with WaitingJob(2)), then split 2 is planned and created.
    let resumed_wf = with_lifecycle(Some(false), None, None);
    let Decision::Defer(resumed) = decide_for(&resumed_wf, &suspended, &Observed::default()) else {
        panic!("resuming is written with the next split")
    };
    assert_eq!(resumed.step, Step::Resume(2));
    assert_eq!(resumed.events[0].reason, "Resumed");
    let running = resumed.status.unwrap();
    assert_eq!(running.phase, Some(Phase::Running));
    assert_eq!(
        condition(&running, "Suspended"),
        ("False".into(), "Resumed".into())
    );
    assert_eq!(
        condition(&running, "Progressing"),
        ("True".into(), "Started".into())
    );
    assert_eq!(
        decide_for(&resumed_wf, &running, &Observed::default()),
        Decision::Need(Need::Plan { build: Some(2) })
    );
}

#[test]
fn a_workflow_suspended_before_its_first_split_is_validated_but_not_started() {
    let wf = with_lifecycle(Some(true), None, None);
    let fresh = WorkflowStatus::default();
    let Decision::Defer(started) = decide_for(&wf, &fresh, &planned(&wf, None)) else {
        panic!("validated first")
    };
    let split1 = started.status.unwrap();
    let (effects, _) = written(decide_for(&wf, &split1, &planned(&wf, None)));
    assert_eq!(effects.step, Step::Suspend(1));
    let status = effects.status.unwrap();
    assert_eq!(Machine::read(&status, Some(3)), Ok(Machine::Split(1)));
    assert_eq!(status.phase, Some(Phase::Suspended));
    // An invalid workflow fails rather than suspends.
    let mut invalid = workflow("version: 0.1\ntask:\n  - sequential:\n      - frobnicate: [x]\n");
    invalid.spec.suspend = Some(true);
    let observed = planned(&invalid, None);
    let (reason, _) = failed_with(decide_for(&invalid, &fresh, &observed));
    assert_eq!(reason, FailReason::InvalidWorkflow);
}

#[test]
fn past_its_deadline_a_running_job_is_suspended_then_the_workflow_fails() {
    let wf = with_lifecycle(None, Some(60), None);
    let mut status = waiting_at(&wf, 2);
    status.start_time = Some(at(0));
    let running = || with_job(job_seen(JobOutcome::Running, None));
    // Before the deadline: waiting, woken when it is due (not after WAIT_RECHECK).
    let (_, wake) = written(decide_at(&wf, &status, &running(), &at(20)));
    assert_eq!(wake, Wake::After(Duration::from_secs(40)));
    // At it: the Job is read, suspended, then the workflow fails.
    assert_eq!(
        decide_at(&wf, &status, &Observed::default(), &at(60)),
        Decision::Need(Need::Job {
            name: "wf-2-node2".into()
        })
    );
    assert_eq!(
        decide_at(&wf, &status, &running(), &at(60)),
        Decision::StopJob {
            name: "wf-2-node2".into()
        }
    );
    let stopped = Observed {
        job_stopped: true,
        ..running()
    };
    let (reason, message) = failed_with(decide_at(&wf, &status, &stopped, &at(60)));
    assert_eq!(reason, FailReason::DeadlineExceeded);
    assert_eq!(
        message,
        "the workflow ran longer than its activeDeadlineSeconds (60 s) and was stopped at split \
         2/3; its Job wf-2-node2 was suspended"
    );
    let (effects, _) = written(decide_at(&wf, &status, &stopped, &at(60)));
    let failed = effects.status.unwrap();
    assert_eq!(failed.failed_jobs[0].name.as_deref(), Some("wf-2-node2"));
    assert!(failed.active_jobs.is_empty());
    // A Job that already ended is not patched.
    let ended = with_job(complete_job(None));
    let (reason, message) = failed_with(decide_at(&wf, &status, &ended, &at(61)));
    assert_eq!(reason, FailReason::DeadlineExceeded);
    assert!(
        message.ends_with("; its Job wf-2-node2 had ended"),
        "{message}"
    );
}

#[test]
fn the_deadline_also_ends_a_workflow_between_splits_or_suspended() {
    let wf = with_lifecycle(Some(true), Some(30), None);
    let mut status = waiting_at(&workflow(THREE), 1);
    status.state = Some(MachineState::Split);
    status.current_split = Some(2);
    status.start_time = Some(at(0));
    // Suspended at 10 s: woken at the deadline, then failed.
    let (effects, wake) = written(decide_at(&wf, &status, &Observed::default(), &at(10)));
    assert_eq!(wake, Wake::After(Duration::from_secs(20)));
    let suspended = effects.status.unwrap();
    let (reason, message) = failed_with(decide_at(&wf, &suspended, &Observed::default(), &at(30)));
    assert_eq!(reason, FailReason::DeadlineExceeded);
    assert!(
        message.ends_with("at split 2/3, while suspended"),
        "{message}"
    );
    let unsuspended = with_lifecycle(None, Some(30), None);
    let (_, message) = failed_with(decide_at(
        &unsuspended,
        &status,
        &Observed::default(),
        &at(31),
    ));
    assert!(
        message.ends_with(", before its Job was created"),
        "{message}"
    );
    // A raised deadline lets it go on; none, or a finished workflow, sets no timer.
    let later = with_lifecycle(None, Some(3600), None);
    let observed = Observed::default();
    assert_eq!(
        decide_at(&later, &status, &observed, &at(31)),
        Decision::Need(Need::Plan { build: Some(2) })
    );
    let mut done = status.clone();
    done.state = Some(MachineState::Done);
    let (_, wake) = written(decide_at(&later, &done, &observed, &at(31)));
    assert_eq!(wake, Wake::OnChange);
}

#[test]
fn a_finished_workflow_is_deleted_its_ttl_after_completion() {
    let wf = with_lifecycle(None, None, Some(100));
    let mut done = waiting_at(&wf, 3);
    done.state = Some(MachineState::Done);
    done.phase = Some(Phase::Succeeded);
    done.completion_time = Some(at(50));
    let observed = Observed::default();
    let (effects, wake) = written(decide_at(&wf, &done, &observed, &at(80)));
    assert_eq!(
        (effects.status, wake),
        (None, Wake::After(Duration::from_secs(70)))
    );
    let Decision::Delete(note) = decide_at(&wf, &done, &observed, &at(150)) else {
        panic!("deleted at completionTime + ttl")
    };
    assert_eq!((note.reason, note.warning), ("Expired", false));
    assert!(
        note.message.starts_with(
            "deleting the Workflow, its ConfigMaps, Jobs and pods: Succeeded at 2027-01-15T08:00:50Z"
        ),
        "{}",
        note.message
    );
    assert!(note.message.ends_with("ttlSecondsAfterFinished is 100 s"));
    // Zero deletes at once; without a ttl, or a completionTime, it is kept.
    let now = with_lifecycle(None, None, Some(0));
    assert!(matches!(
        decide_at(&now, &done, &observed, &at(50)),
        Decision::Delete(_)
    ));
    let (_, wake) = written(decide_for(&workflow(THREE), &done, &observed));
    assert_eq!(wake, Wake::OnChange);
    done.completion_time = None;
    let (_, wake) = written(decide_at(&wf, &done, &observed, &at(500)));
    assert_eq!(wake, Wake::OnChange);
    // A Workflow being deleted is left alone.
    let mut deleting = wf.clone();
    deleting.metadata.deletion_timestamp = Some(at(0));
    done.completion_time = Some(at(0));
    assert_eq!(
        written(decide_at(&deleting, &done, &observed, &at(500)))
            .0
            .step,
        Step::Idle
    );
}
