use super::*;
use crate::names::split_names;
use crate::workflow::Machine;
use k8s_openapi::jiff::Timestamp;

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
}

fn job(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name.into()),
        namespace: Some("ns".into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    }
}

fn names(n: u32) -> SplitNames {
    let node = ["node1", "node2", "node2"][n as usize - 1];
    split_names("demo", "hello-world", n, Some(node))
}

fn three_nodes() -> Vec<Option<String>> {
    vec![
        Some("node1".into()),
        Some("node2".into()),
        Some("node2".into()),
    ]
}

/// Pending → Split(1) of a three-split workflow at time 0.
fn fresh() -> WorkflowStatus {
    started(
        &WorkflowStatus::default(),
        &three_nodes(),
        &names,
        Some(1),
        &at(0),
    )
}

fn condition<'a>(status: &'a WorkflowStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[test]
fn started_records_the_plan_and_points_at_split_one() {
    let s = fresh();
    assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::Split(1));
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(s.total_splits, Some(3));
    assert_eq!(s.progress.as_deref(), Some("0/3"));
    assert_eq!(s.nodes, ["node1", "node2", "node2"]);
    assert_eq!(s.current_node.as_deref(), Some("node1"));
    assert_eq!(s.current_job.as_deref(), Some("demo-1-node1"));
    assert_eq!(s.start_time, Some(at(0)));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.splits.len(), 3);
    assert_eq!(
        s.splits[2].config_map.as_deref(),
        Some("demo-hello-world-3-node2")
    );
    assert_eq!(s.splits[2].job.as_deref(), Some("demo-3-node2"));
    assert!(
        s.splits
            .iter()
            .all(|r| r.phase == Some(SplitPhase::Pending))
    );
    let progressing = condition(&s, CONDITION_PROGRESSING).unwrap();
    assert_eq!(progressing.status, "True");
}

#[test]
fn started_without_nodes_has_no_node_list() {
    let names = |n| split_names("demo", "hello-world", n, None);
    let s = started(&WorkflowStatus::default(), &[None], &names, Some(1), &at(0));
    assert!(s.nodes.is_empty());
    assert_eq!(s.current_node, None);
    assert_eq!(s.current_job.as_deref(), Some("demo"));
    assert_eq!(s.splits[0].config_map.as_deref(), Some("demo-hello-world"));
}

#[test]
fn a_three_split_run_walks_every_state_to_succeeded() {
    let mut s = fresh();
    let outputs = [
        vec![EnvVar::new("A", "1"), EnvVar::new("B", "x")],
        vec![EnvVar::new("A", "2")],
        vec![],
    ];
    for n in 1..=3u32 {
        assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::Split(n));
        let name = names(n).job;
        s = job_created(&s, n, job(&name), &at(10 * n as i64));
        assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::WaitingJob(n));
        assert_eq!(s.active_jobs, vec![job(&name)]);
        assert_eq!(s.current_job.as_deref(), Some(name.as_str()));
        let record = &s.splits[n as usize - 1];
        assert_eq!(record.phase, Some(SplitPhase::Running));
        assert_eq!(record.start_time, Some(at(10 * n as i64)));
        assert!(s.message.as_deref().unwrap().contains(&name));
        s = advanced(&s, n, &outputs[n as usize - 1], &at(10 * n as i64 + 5)).unwrap();
        assert!(s.active_jobs.is_empty());
        assert_eq!(s.successful_jobs.len(), n as usize);
        assert_eq!(s.splits[n as usize - 1].phase, Some(SplitPhase::Succeeded));
        assert_eq!(s.progress.as_deref(), Some(format!("{n}/3").as_str()));
    }
    assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::Done);
    assert_eq!(s.phase, Some(Phase::Succeeded));
    assert_eq!(s.completion_time, Some(at(35)));
    // Later values win and keep assignment order.
    let carried: Vec<(&str, &str)> = s
        .environment
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(carried, [("B", "x"), ("A", "2")]);
    assert_eq!(condition(&s, CONDITION_COMPLETE).unwrap().status, "True");
    assert_eq!(
        condition(&s, CONDITION_PROGRESSING).unwrap().status,
        "False"
    );
    assert!(condition(&s, CONDITION_FAILED).is_none());
}

#[test]
fn a_job_failure_moves_the_job_to_failed_and_keeps_earlier_successes() {
    let mut s = fresh();
    s = job_created(&s, 1, job("demo-1-node1"), &at(1));
    s = advanced(&s, 1, &[], &at(2)).unwrap();
    s = job_created(&s, 2, job("demo-2-node2"), &at(3));
    let s = failed(
        &s,
        FailReason::JobFailed,
        "split 2: Job demo-2-node2 failed",
        &at(4),
    );
    assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::Done);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.failed_jobs, vec![job("demo-2-node2")]);
    assert_eq!(s.successful_jobs, vec![job("demo-1-node1")]);
    assert!(s.active_jobs.is_empty());
    assert_eq!(s.splits[1].phase, Some(SplitPhase::Failed));
    assert_eq!(s.splits[2].phase, Some(SplitPhase::Pending));
    assert_eq!(s.progress.as_deref(), Some("1/3"));
    assert_eq!(
        s.message.as_deref(),
        Some("split 2: Job demo-2-node2 failed")
    );
    let failed_condition = condition(&s, CONDITION_FAILED).unwrap();
    assert_eq!(failed_condition.status, "True");
    assert_eq!(failed_condition.reason, "JobFailed");
}

#[test]
fn an_invalid_workflow_fails_from_pending() {
    let s = failed(
        &WorkflowStatus::default(),
        FailReason::InvalidWorkflow,
        "bad",
        &at(0),
    );
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::Done);
    assert_eq!(s.start_time, Some(at(0)));
    assert_eq!(s.completion_time, Some(at(0)));
    assert_eq!(
        condition(&s, CONDITION_FAILED).unwrap().reason,
        "InvalidWorkflow"
    );
}

#[test]
fn a_conflict_while_creating_does_not_blame_a_job() {
    let mut s = fresh();
    s = failed(&s, FailReason::NameConflict, "ConfigMap x exists", &at(1));
    assert!(s.failed_jobs.is_empty());
    assert_eq!(s.splits[0].phase, Some(SplitPhase::Pending));
}

#[test]
fn carried_outputs_are_bounded() {
    let s = fresh();
    let s = job_created(&s, 1, job("j"), &at(1));
    let huge = vec![EnvVar::new("BIG", "x".repeat(MAX_CARRIED_BYTES))];
    let err = advanced(&s, 1, &huge, &at(2)).unwrap_err();
    assert!(err.contains("more than the"), "{err}");
    // Counted as status stores them: 50 000 control characters are 300 000 bytes of JSON.
    let escaped = vec![EnvVar::new("ESC", "\u{1}".repeat(50_000))];
    let err = advanced(&s, 1, &escaped, &at(2)).unwrap_err();
    assert!(
        err.contains("bytes as JSON"),
        "50 000 raw bytes pass only if escapes are not counted: {err}"
    );
    // Re-setting a name replaces it, so repeated outputs do not accumulate.
    let mut s = s;
    for _ in 0..3 {
        s = advanced(&s, 1, &[EnvVar::new("A", "y".repeat(100_000))], &at(2)).unwrap();
    }
    assert_eq!(s.environment.len(), 1);
}

#[test]
fn condition_transition_time_changes_only_with_its_status() {
    let s = fresh();
    let s = job_created(&s, 1, job("j"), &at(5));
    let s = advanced(&s, 1, &[], &at(6)).unwrap();
    assert_eq!(
        condition(&s, CONDITION_PROGRESSING)
            .unwrap()
            .last_transition_time,
        at(0)
    );
    let s = failed(&s, FailReason::JobFailed, "x", &at(9));
    assert_eq!(
        condition(&s, CONDITION_PROGRESSING)
            .unwrap()
            .last_transition_time,
        at(9)
    );
}

#[test]
fn observed_generation_is_stamped_on_status_and_conditions() {
    let s = started(
        &WorkflowStatus::default(),
        &three_nodes(),
        &names,
        None,
        &at(0),
    );
    let s = observed(s, Some(4));
    assert_eq!(s.observed_generation, Some(4));
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(4))
    );
}

#[test]
fn long_messages_are_truncated_on_a_char_boundary() {
    let text = "é".repeat(MAX_MESSAGE_BYTES);
    let cut = truncate(&text, MAX_MESSAGE_BYTES);
    assert!(cut.len() <= MAX_MESSAGE_BYTES);
    assert!(cut.ends_with("(truncated)"));
    assert_eq!(truncate("short", 10), "short");
    let s = failed(
        &WorkflowStatus::default(),
        FailReason::InvalidWorkflow,
        &text,
        &at(0),
    );
    assert!(s.message.unwrap().len() <= MAX_MESSAGE_BYTES);
}

#[test]
fn carried_reads_the_status_environment() {
    let s = WorkflowStatus {
        environment: vec![roiergasias_crd::CarriedVar {
            name: "A".into(),
            value: "1".into(),
        }],
        ..Default::default()
    };
    assert_eq!(carried(Some(&s)), vec![EnvVar::new("A", "1")]);
    assert!(carried(None).is_empty());
}

#[test]
fn waiting_reports_an_unschedulable_pod_and_recovers() {
    let s = fresh();
    let running = job_created(&s, 1, job("demo-1-node1"), &at(1));
    assert_eq!(
        waiting(&running, 1, None, &at(2)),
        running,
        "nothing to report: unchanged, so nothing is written"
    );
    let why = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.";
    let stuck = waiting(&running, 1, Some(why), &at(2));
    assert_eq!(
        stuck.message.as_deref(),
        Some(
            "split 1/3: the pod of Job demo-1-node1 is waiting for a node labelled \
             node.roiergasias=node1: 0/3 nodes are available: 3 node(s) didn't match Pod's \
             node affinity/selector."
        )
    );
    let progressing = condition(&stuck, CONDITION_PROGRESSING).unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("True", UNSCHEDULABLE)
    );
    assert_eq!(progressing.last_transition_time, at(0), "still progressing");
    assert_eq!(
        waiting(&stuck, 1, Some(why), &at(3)),
        stuck,
        "reported once"
    );
    let again = waiting(&stuck, 1, None, &at(4));
    assert_eq!(again.message, running.message);
    assert_eq!(
        condition(&again, CONDITION_PROGRESSING).unwrap().reason,
        "Started"
    );
}

#[test]
fn retrying_says_what_failed_and_keeps_the_state() {
    let s = fresh();
    let r = retrying(&s, "Kubernetes API error: exceeded quota");
    assert_eq!(
        r.message.as_deref(),
        Some("split 1/3: retrying after an error: Kubernetes API error: exceeded quota")
    );
    assert_eq!(
        WorkflowStatus {
            message: s.message.clone(),
            ..r.clone()
        },
        s,
        "only the message changes"
    );
    assert_eq!(
        retrying(&WorkflowStatus::default(), "e").message.as_deref(),
        Some("retrying after an error: e")
    );
}

#[test]
fn a_corrupt_status_is_rederived_from_the_plan_and_the_jobs() {
    let mut corrupt = fresh();
    corrupt.total_splits = Some(4_000_000_000);
    corrupt.current_split = Some(3_999_999_999);
    corrupt.environment = vec![CarriedVar {
        name: "A".into(),
        value: "1".into(),
    }];
    let why = Machine::read(&corrupt, Some(3)).unwrap_err().0;
    // No Job yet: back to split 1, to be created (or adopted).
    let none = std::collections::BTreeMap::new();
    let s = rederived(
        &corrupt,
        &three_nodes(),
        &names,
        Some(1),
        &none,
        &why,
        &at(5),
    );
    assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::Split(1));
    assert!(Machine::read(&s, Some(3)).is_ok());
    assert!(
        s.message
            .as_deref()
            .unwrap()
            .contains("totalSplits 4000000000")
    );
    assert_eq!(
        s.environment, corrupt.environment,
        "carried outputs are kept"
    );
    // Jobs 1 and 2 exist: split 2 is waited for, split 1 succeeded.
    let jobs = [(1, job("demo-1-node1")), (2, job("demo-2-node2"))].into();
    let s = rederived(
        &corrupt,
        &three_nodes(),
        &names,
        Some(1),
        &jobs,
        &why,
        &at(5),
    );
    assert_eq!(Machine::read(&s, Some(3)).unwrap(), Machine::WaitingJob(2));
    assert!(Machine::read(&s, Some(3)).is_ok());
    assert_eq!(s.splits[0].phase, Some(SplitPhase::Succeeded));
    assert_eq!(s.splits[1].phase, Some(SplitPhase::Running));
    assert_eq!(s.active_jobs, [job("demo-2-node2")]);
    assert_eq!(s.successful_jobs, [job("demo-1-node1")]);
    assert_eq!(s.total_splits, Some(3));
}
