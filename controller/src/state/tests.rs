use super::*;
use roiergasias_crd::WorkflowStatus;

fn names(n: u32) -> (String, String) {
    (format!("wf-w-{n}-node"), format!("wf-{n}-node"))
}

fn decide(machine: Machine, observed: &Observed) -> Action {
    next_action(machine, None, observed, names)
}

fn waiting(outcome: JobOutcome, pod_message: Option<&str>) -> Observed {
    Observed {
        job: Presence::Ours,
        job_outcome: Some(outcome),
        pod_message: pod_message.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn machine_is_read_from_status() {
    let status = |state, split| WorkflowStatus {
        state,
        current_split: split,
        ..Default::default()
    };
    assert_eq!(Machine::of(None), Machine::Pending);
    assert_eq!(Machine::of(Some(&status(None, None))), Machine::Pending);
    assert_eq!(
        Machine::of(Some(&status(Some(MachineState::Pending), None))),
        Machine::Pending
    );
    assert_eq!(
        Machine::of(Some(&status(Some(MachineState::Split), Some(2)))),
        Machine::Split(2)
    );
    assert_eq!(
        Machine::of(Some(&status(Some(MachineState::WaitingJob), Some(3)))),
        Machine::WaitingJob(3)
    );
    assert_eq!(
        Machine::of(Some(&status(Some(MachineState::Done), None))),
        Machine::Done
    );
    // Inconsistent: a split state without a split (or split 0) re-validates from Pending.
    assert_eq!(
        Machine::of(Some(&status(Some(MachineState::Split), None))),
        Machine::Pending
    );
    assert_eq!(
        Machine::of(Some(&status(Some(MachineState::WaitingJob), Some(0)))),
        Machine::Pending
    );
}

#[test]
fn pending_valid_starts_with_the_planned_nodes() {
    let plan = Ok(Planned {
        nodes: vec![
            Some("node1".into()),
            Some("node2".into()),
            Some("node2".into()),
        ],
    });
    let action = next_action(Machine::Pending, Some(&plan), &Observed::default(), names);
    assert_eq!(
        action,
        Action::Start {
            nodes: vec![
                Some("node1".into()),
                Some("node2".into()),
                Some("node2".into())
            ]
        }
    );
}

#[test]
fn pending_invalid_fails_with_the_engine_message() {
    let plan = Err("workflowYAML.yaml:3:7: unknown step `frobnicate`".to_owned());
    let action = next_action(Machine::Pending, Some(&plan), &Observed::default(), names);
    match action {
        Action::Fail { reason, message } => {
            assert_eq!(reason, FailReason::InvalidWorkflow);
            assert!(
                message.contains("workflowYAML.yaml:3:7: unknown step `frobnicate`"),
                "{message}"
            );
        }
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[test]
fn pending_without_a_plan_does_nothing() {
    assert_eq!(
        next_action(Machine::Pending, None, &Observed::default(), names),
        Action::Nothing
    );
}

#[test]
fn split_creates_configmap_and_job_when_both_are_missing() {
    assert_eq!(
        decide(Machine::Split(2), &Observed::default()),
        Action::CreateSplit {
            split: 2,
            config_map: true,
            job: true
        }
    );
}

#[test]
fn split_after_restart_between_configmap_and_job_creates_only_the_job() {
    let observed = Observed {
        config_map: Presence::Ours,
        ..Default::default()
    };
    assert_eq!(
        decide(Machine::Split(1), &observed),
        Action::CreateSplit {
            split: 1,
            config_map: false,
            job: true
        }
    );
}

#[test]
fn split_after_restart_before_status_write_creates_nothing_and_moves_on() {
    let observed = Observed {
        config_map: Presence::Ours,
        job: Presence::Ours,
        ..Default::default()
    };
    assert_eq!(
        decide(Machine::Split(3), &observed),
        Action::CreateSplit {
            split: 3,
            config_map: false,
            job: false
        }
    );
}

#[test]
fn split_with_a_foreign_configmap_or_job_fails_naming_it() {
    for (observed, kind, name) in [
        (
            Observed {
                config_map: Presence::Foreign("controlled by Deployment x".into()),
                ..Default::default()
            },
            "ConfigMap",
            "wf-w-2-node",
        ),
        (
            Observed {
                config_map: Presence::Ours,
                job: Presence::Foreign("it has no controlling owner".into()),
                ..Default::default()
            },
            "Job",
            "wf-2-node",
        ),
    ] {
        match decide(Machine::Split(2), &observed) {
            Action::Fail { reason, message } => {
                assert_eq!(reason, FailReason::NameConflict);
                assert!(
                    message.contains(&format!("{kind} {name} already exists")),
                    "{message}"
                );
                assert!(message.contains("not owned by this Workflow"), "{message}");
            }
            other => panic!("expected Fail, got {other:?}"),
        }
    }
}

#[test]
fn waiting_while_the_job_runs_waits() {
    let wait = Action::Wait {
        split: 1,
        unschedulable: None,
    };
    assert_eq!(
        decide(Machine::WaitingJob(1), &waiting(JobOutcome::Running, None)),
        wait
    );
    // Job seen but conditions not read yet: also wait.
    let observed = Observed {
        job: Presence::Ours,
        ..Default::default()
    };
    assert_eq!(decide(Machine::WaitingJob(1), &observed), wait);
}

#[test]
fn waiting_on_a_pod_no_node_can_take_says_why() {
    let observed = Observed {
        unschedulable: Some("0/3 nodes are available".into()),
        ..waiting(JobOutcome::Running, None)
    };
    assert_eq!(
        decide(Machine::WaitingJob(2), &observed),
        Action::Wait {
            split: 2,
            unschedulable: Some("0/3 nodes are available".into())
        }
    );
    // Once the Job has finished, a stale scheduling problem no longer matters.
    let observed = Observed {
        unschedulable: Some("0/3 nodes are available".into()),
        ..waiting(JobOutcome::Complete, None)
    };
    assert!(matches!(
        decide(Machine::WaitingJob(2), &observed),
        Action::Advance { split: 2, .. }
    ));
}

#[test]
fn waiting_complete_without_message_advances_without_outputs() {
    assert_eq!(
        decide(Machine::WaitingJob(2), &waiting(JobOutcome::Complete, None)),
        Action::Advance {
            split: 2,
            outputs: vec![],
            ignored_message: None
        }
    );
    assert_eq!(
        decide(
            Machine::WaitingJob(2),
            &waiting(JobOutcome::Complete, Some("  \n"))
        ),
        Action::Advance {
            split: 2,
            outputs: vec![],
            ignored_message: None
        }
    );
}

#[test]
fn waiting_complete_carries_the_pods_outputs() {
    let action = decide(
        Machine::WaitingJob(1),
        &waiting(
            JobOutcome::Complete,
            Some(r#"{"MODEL":"s3://bucket/m.pkl","SCORE":"0.93"}"#),
        ),
    );
    match action {
        Action::Advance {
            split,
            outputs,
            ignored_message,
        } => {
            assert_eq!(split, 1);
            assert_eq!(ignored_message, None);
            let mut pairs: Vec<(String, String)> =
                outputs.into_iter().map(|v| (v.name, v.value)).collect();
            pairs.sort();
            assert_eq!(
                pairs,
                [
                    ("MODEL".to_owned(), "s3://bucket/m.pkl".to_owned()),
                    ("SCORE".to_owned(), "0.93".to_owned())
                ]
            );
        }
        other => panic!("expected Advance, got {other:?}"),
    }
}

#[test]
fn waiting_complete_with_a_non_json_message_advances_and_says_why_outputs_were_ignored() {
    match decide(
        Machine::WaitingJob(1),
        &waiting(JobOutcome::Complete, Some("done, bye")),
    ) {
        Action::Advance {
            outputs,
            ignored_message: Some(why),
            ..
        } => {
            assert!(outputs.is_empty());
            assert!(why.contains("wf-1-node"), "{why}");
            assert!(why.contains("not outputs JSON"), "{why}");
        }
        other => panic!("expected Advance with a warning, got {other:?}"),
    }
}

#[test]
fn waiting_failed_fails_with_the_job_reason_and_the_pod_message() {
    let failed = JobOutcome::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    };
    match decide(
        Machine::WaitingJob(2),
        &waiting(
            failed.clone(),
            Some("task 1 step 2: `false` exited with status 1"),
        ),
    ) {
        Action::Fail { reason, message } => {
            assert_eq!(reason, FailReason::JobFailed);
            assert!(
                message.contains("split 2: Job wf-2-node failed"),
                "{message}"
            );
            assert!(message.contains("BackoffLimitExceeded"), "{message}");
            assert!(
                message.contains("`false` exited with status 1"),
                "{message}"
            );
        }
        other => panic!("expected Fail, got {other:?}"),
    }
    match decide(Machine::WaitingJob(2), &waiting(failed, None)) {
        Action::Fail { message, .. } => {
            assert!(message.contains("left no termination message"), "{message}")
        }
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[test]
fn waiting_with_the_job_gone_or_foreign_fails() {
    let gone = Observed::default();
    match decide(Machine::WaitingJob(1), &gone) {
        Action::Fail { reason, message } => {
            assert_eq!(reason, FailReason::JobDeleted);
            assert!(
                message.contains("Job wf-1-node of split 1 was deleted"),
                "{message}"
            );
        }
        other => panic!("expected Fail, got {other:?}"),
    }
    let foreign = Observed {
        job: Presence::Foreign("controlled by CronJob nightly".into()),
        ..Default::default()
    };
    match decide(Machine::WaitingJob(1), &foreign) {
        Action::Fail { reason, message } => {
            assert_eq!(reason, FailReason::NameConflict);
            assert!(message.contains("CronJob nightly"), "{message}");
        }
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[test]
fn done_does_nothing_whatever_it_sees() {
    for observed in [
        Observed::default(),
        waiting(JobOutcome::Complete, Some("{}")),
        Observed {
            config_map: Presence::Foreign("x".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(decide(Machine::Done, &observed), Action::Nothing);
    }
}

#[test]
fn a_finished_job_whose_pod_is_gone_says_so() {
    let gone = |outcome| Observed {
        pod_gone: true,
        ..waiting(outcome, None)
    };
    match decide(Machine::WaitingJob(1), &gone(JobOutcome::Complete)) {
        Action::Advance {
            split: 1,
            outputs,
            ignored_message: Some(message),
        } => {
            assert!(outputs.is_empty());
            assert_eq!(
                message,
                "Job wf-1-node completed but its pod is gone, so any outputs it reported could \
                 not be carried forward"
            );
        }
        other => panic!("{other:?}"),
    }
    let failed = JobOutcome::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: String::new(),
    };
    match decide(Machine::WaitingJob(1), &gone(failed)) {
        Action::Fail { message, .. } => assert_eq!(
            message,
            "split 1: Job wf-1-node failed (BackoffLimitExceeded); its pod is gone"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_pod_fails_the_workflow_with_admissions_reason() {
    let observed = Observed {
        job: Presence::Ours,
        job_outcome: Some(JobOutcome::Running),
        pod_refused: Some("pods \"p\" is forbidden: violates PodSecurity".into()),
        ..Default::default()
    };
    match decide(Machine::WaitingJob(2), &observed) {
        Action::Fail { reason, message } => {
            assert_eq!(reason, FailReason::PodRefused);
            assert_eq!(
                message,
                "split 2: Job wf-2-node cannot create its pod: pods \"p\" is forbidden: violates PodSecurity"
            );
        }
        other => panic!("{other:?}"),
    }
}

fn consistent() -> WorkflowStatus {
    use roiergasias_crd::SplitRecord;
    WorkflowStatus {
        state: Some(MachineState::WaitingJob),
        current_split: Some(2),
        total_splits: Some(3),
        splits: (1..=3)
            .map(|index| SplitRecord {
                index,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_status_this_operator_wrote_is_not_corrupt() {
    assert_eq!(corruption(&consistent(), None), None);
    assert_eq!(corruption(&consistent(), Some(3)), None);
    // Pending and Done are never acted on from status.
    let done = WorkflowStatus {
        state: Some(MachineState::Done),
        total_splits: Some(4_000_000_000),
        ..Default::default()
    };
    assert_eq!(corruption(&done, None), None);
    assert_eq!(corruption(&WorkflowStatus::default(), Some(1)), None);
}

#[test]
fn absurd_or_inconsistent_status_is_corrupt() {
    let edited = |edit: fn(&mut WorkflowStatus)| {
        let mut s = consistent();
        edit(&mut s);
        s
    };
    let cases: [(WorkflowStatus, Option<usize>, &str); 7] = [
        (
            edited(|s| s.total_splits = Some(4_000_000_000)),
            None,
            "totalSplits 4000000000 is not between 1 and 1000",
        ),
        (
            edited(|s| s.total_splits = None),
            None,
            "totalSplits is missing",
        ),
        (
            consistent(),
            Some(2),
            "totalSplits 3, but the workflow has 2 split(s)",
        ),
        (
            edited(|s| {
                s.splits.pop();
            }),
            None,
            "2 split record(s) for totalSplits 3",
        ),
        (
            edited(|s| s.current_split = Some(4)),
            None,
            "currentSplit Some(4) is not between 1 and totalSplits 3",
        ),
        (
            edited(|s| s.current_split = None),
            None,
            "currentSplit None",
        ),
        (
            edited(|s| s.splits[2].index = 7),
            None,
            "split record 3 has index 7",
        ),
    ];
    for (status, planned, expected) in cases {
        let why = corruption(&status, planned).unwrap_or_else(|| panic!("{status:?}"));
        assert!(why.starts_with(expected), "{why} vs {expected}");
    }
}
