use super::*;
use crate::names::split_names;
use crate::plan::plan;
use crate::transition::{failed, job_created, started};
use k8s_openapi::jiff::Timestamp;
use roiergasias_crd::{MachineState, Phase, WorkflowSpec, WorkflowYaml};

/// etcd's default `--max-request-bytes`.
const ETCD_LIMIT: usize = 1024 * 1024 * 3 / 2;
const SPLITS: usize = 1000;

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
}

/// A workflow of 1000 tasks on 63-character node names, each printing `filler` bytes of `"`
/// and `\` (two bytes each in JSON), with the longest names Kubernetes allows around it.
fn workflow(filler: usize) -> Workflow {
    let mut yaml = String::from("version: 0.1\ntask:\n");
    for i in 0..SPLITS {
        let node = format!("node{i:04}{}", "x".repeat(55));
        yaml.push_str(&format!(
            "  - node: {node}\n    sequential:\n      - print:\n          - '{}'\n",
            "\"\\".repeat(filler / 2)
        ));
    }
    let mut wf = Workflow::new(
        &"w".repeat(253),
        WorkflowSpec {
            workflow_yaml: WorkflowYaml {
                name: "n".repeat(63),
                yaml,
            },
            job_template: None,
            ..Default::default()
        },
    );
    wf.metadata.namespace = Some("s".repeat(63));
    wf.metadata.uid = Some("0".repeat(36));
    wf.metadata.resource_version = Some("123456789".into());
    wf.metadata.generation = Some(1);
    wf.metadata.creation_timestamp = Some(at(0));
    wf
}

/// The object as the API server stores it, with `status`.
fn stored(wf: &Workflow, status: &WorkflowStatus) -> usize {
    let mut wf = wf.clone();
    wf.status = Some(status.clone());
    serde_json::to_vec(&wf).unwrap().len()
}

fn job(name: &str, namespace: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        uid: Some("f".repeat(36)),
        ..Default::default()
    }
}

/// What the operator writes for `wf`, hand-off after hand-off, each split reporting `outputs`
/// (its n-th call): every write checked as `write_status` checks it. Returns the last status
/// written and the largest stored object seen.
fn run(wf: &Workflow, outputs: impl Fn(u32) -> Vec<EnvVar>) -> (WorkflowStatus, usize) {
    let room = status_room(wf);
    let namespace = wf.metadata.namespace.clone().unwrap();
    let (workflow, name) = (
        wf.metadata.name.clone().unwrap(),
        &wf.spec.workflow_yaml.name,
    );
    let nodes = plan(&wf.spec, None).expect("a valid workflow").nodes;
    assert_eq!(nodes.len(), SPLITS);
    let names = |n: u32| split_names(&workflow, name, n, nodes[n as usize - 1].as_deref());
    let mut largest = 0;
    let mut write = |status: &WorkflowStatus| {
        check(room, status, "test").expect("every write is checked before it is sent");
        largest = largest.max(stored(wf, status));
    };
    let fail = |status: &WorkflowStatus, reason, message: &str| {
        shrink_to_fit(failed(status, reason, message, &at(9)), room)
    };
    let mut status = started(&WorkflowStatus::default(), &nodes, &names, Some(1), &at(1));
    if let Err(message) = start_within(room, &status, &namespace) {
        let end = fail(
            &WorkflowStatus::default(),
            FailReason::StatusTooLarge,
            &message,
        );
        write(&end);
        return (end, largest);
    }
    for n in 1..=SPLITS as u32 {
        status = job_created(&status, n, job(&names(n).job, &namespace), &at(2));
        // Sizing a 1000-record status takes ~50 ms in a debug build, so the checks run at every
        // 50th hand-off, and at each of the last ten, where the outputs are largest. In between
        // the status only grows (records fill in, Jobs are appended, outputs re-set to values
        // of the same size), so the largest object is among those checked.
        if n % 50 != 1 && n <= SPLITS as u32 - 10 {
            status = transition::advanced(&status, n, &outputs(n), &at(3)).unwrap();
            continue;
        }
        write(&status);
        match advanced_within(room, &status, n, &outputs(n), &at(3), &namespace) {
            Ok(next) => status = next,
            Err((reason, message)) => {
                let end = fail(&status, reason, &message);
                write(&end);
                return (end, largest);
            }
        }
    }
    write(&status);
    (status, largest)
}

fn reason(status: &WorkflowStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .map(|c| c.reason.as_str())
}

#[test]
fn a_512_kib_spec_of_1000_splits_fails_at_the_start_within_the_limit() {
    let wf = workflow(500);
    assert!(
        wf.spec.workflow_yaml.yaml.len() >= 512 * 1000,
        "a 512 KiB spec"
    );
    let (end, largest) = run(&wf, |_| Vec::new());
    assert_eq!(end.phase, Some(Phase::Failed));
    assert_eq!(reason(&end), Some("StatusTooLarge"));
    let message = end.message.as_deref().unwrap();
    assert!(message.contains("fewer splits"), "{message}");
    assert!(largest < ETCD_LIMIT, "{largest} bytes stored");
    assert!(end.splits.is_empty(), "nothing ran: {:?}", end.state);
}

#[test]
fn maximal_escape_heavy_outputs_over_1000_splits_stay_within_the_limit() {
    // As much spec as still leaves room for 1000 records and the outputs' cap.
    let wf = workflow(100);
    // The last splits each re-set one variable to the largest value the cap allows: control
    // characters, six bytes each in JSON. (Earlier splits carry small outputs: the object is
    // largest at the end, and sizing a maximal status at each of 1000 hand-offs is slow in a
    // debug build.)
    let value = "\u{1}".repeat(transition::MAX_CARRIED_BYTES / 6 - 100);
    let (end, largest) = run(&wf, |n| match n {
        991.. => vec![EnvVar::new("OUT", format!("{n}{value}"))],
        _ => vec![EnvVar::new("SMALL", format!("{n}{}", "\"".repeat(64)))],
    });
    assert!(largest < ETCD_LIMIT, "{largest} bytes stored");
    assert_eq!(end.phase, Some(Phase::Succeeded), "{:?}", end.message);
    assert_eq!(end.successful_jobs.len(), SPLITS);
    let out = end.environment.iter().find(|v| v.name == "OUT").unwrap();
    assert!(
        out.value.starts_with("1000"),
        "the last split's value is carried"
    );
    assert_eq!(end.state, Some(MachineState::Done));
}

#[test]
fn outputs_that_leave_no_room_for_later_records_fail_the_hand_off_within_the_limit() {
    let wf = workflow(220);
    let value = "\u{1}".repeat(transition::MAX_CARRIED_BYTES / 6 - 100);
    let (end, largest) = run(&wf, |n| match n {
        1 => vec![EnvVar::new("OUT", value.clone())],
        _ => Vec::new(),
    });
    assert!(largest < ETCD_LIMIT, "{largest} bytes stored");
    assert_eq!(reason(&end), Some("StatusTooLarge"), "{:?}", end.message);
    assert!(end.message.as_deref().unwrap().contains("volume"));
}

#[test]
fn a_failed_status_is_cut_down_to_what_fits() {
    let full = WorkflowStatus {
        environment: vec![roiergasias_crd::CarriedVar {
            name: "A".into(),
            value: "x".repeat(10_000),
        }],
        successful_jobs: vec![job("j", "ns"); 100],
        message: Some("m".into()),
        ..Default::default()
    };
    let room = json_len(&full) - 1;
    let cut = shrink_to_fit(full.clone(), room);
    assert!(cut.environment.is_empty() && cut.successful_jobs.len() == 100);
    let cut = shrink_to_fit(full.clone(), 100);
    assert!(cut.successful_jobs.is_empty());
    assert_eq!(cut.message.as_deref(), Some("m"));
    assert_eq!(shrink_to_fit(full.clone(), usize::MAX), full);
}

#[test]
fn json_len_counts_what_serde_json_writes() {
    let status = WorkflowStatus {
        message: Some("a \"quoted\"\n\u{1} line".into()),
        ..Default::default()
    };
    assert_eq!(
        json_len(&status),
        serde_json::to_vec(&status).unwrap().len()
    );
}
