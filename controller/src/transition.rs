//! How each transition of the state machine changes the Workflow's status: pure functions of the
//! old status, what happened, and the time.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use roiergasias_crd::{
    CONDITION_COMPLETE, CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_SUSPENDED, CarriedVar,
    MachineState, Phase, SplitPhase, SplitRecord, WorkflowStatus,
};
use roiergasias_engine::EnvVar;

use crate::bounds::json_len;
use crate::names::SplitNames;
use crate::workflow::FailReason;

mod retry;
pub use retry::{Rerun, automatic, outputs_recorded, refused, replanned, rerun};

/// Carried outputs are written into every later ConfigMap and kept in status: bounded so both stay
/// below their limits (1 MiB and 1.5 MiB). Counted as JSON, as status stores them: escaping can
/// make a value up to six times its length (`\u0001`).
pub const MAX_CARRIED_BYTES: usize = 256 * 1024;
/// The records' copies of their outputs, together, as JSON: room for them is kept from the start
/// (see `bounds::check_to_the_end`); past it a split's outputs are carried but not kept twice.
pub const MAX_KEPT_OUTPUTS_BYTES: usize = 64 * 1024;
/// Longer messages are cut: they are for people, and status must stay small.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// Pending → Split(1).
pub fn started(
    old: &WorkflowStatus,
    nodes: &[Option<String>],
    names: &dyn Fn(u32) -> SplitNames,
    generation: Option<i64>,
    now: &Time,
) -> WorkflowStatus {
    let total = nodes.len() as u32;
    let splits = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let index = i as u32 + 1;
            let n = names(index);
            SplitRecord {
                index,
                node: node.clone(),
                config_map: Some(n.config_map),
                job: Some(n.job),
                phase: Some(SplitPhase::Pending),
                ..Default::default()
            }
        })
        .collect();
    let mut status = WorkflowStatus {
        phase: Some(Phase::Running),
        state: Some(MachineState::Split),
        current_split: Some(1),
        total_splits: Some(total),
        nodes: nodes.iter().flatten().cloned().collect(),
        splits,
        start_time: Some(now.clone()),
        observed_generation: generation,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    point_at(&mut status, 1);
    status.message = Some(format!(
        "valid workflow of {total} split(s); starting split 1"
    ));
    progressing(&mut status, now);
    status
}

/// Split(n) → WaitingJob(n): ConfigMap n and Job n exist.
pub fn job_created(
    old: &WorkflowStatus,
    n: u32,
    job: ObjectReference,
    now: &Time,
) -> WorkflowStatus {
    let mut status = old.clone();
    status.state = Some(MachineState::WaitingJob);
    status.current_split = Some(n);
    point_at(&mut status, n);
    if let Some(record) = record_mut(&mut status, n) {
        record.phase = Some(SplitPhase::Running);
        record.start_time.get_or_insert_with(|| now.clone());
        record.retry_after = None;
    }
    status.active_jobs = vec![job];
    status.message = Some(running_message(&status, n));
    status
}

/// Reason of the Progressing condition while the current split's pod fits no node.
pub const UNSCHEDULABLE: &str = "Unschedulable";
const STARTED: &str = "Started";
const STARTED_MESSAGE: &str = "splits are running one after another";

/// WaitingJob(n), Job running: says whether its pod cannot be scheduled (`unschedulable`, the
/// scheduler's reason) and puts the usual message back once it can. Unchanged when nothing
/// changed, so a caller writes only differences.
pub fn waiting(
    old: &WorkflowStatus,
    n: u32,
    unschedulable: Option<&str>,
    now: &Time,
) -> WorkflowStatus {
    let mut status = old.clone();
    let stuck = status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_PROGRESSING && c.reason == UNSCHEDULABLE);
    match unschedulable {
        Some(why) => {
            let job = status.current_job.clone().unwrap_or_default();
            let wanted = match status.current_node.as_deref() {
                Some(node) => format!("a node labelled {}={node}", crate::build::NODE_LABEL),
                None => "a node".to_owned(),
            };
            status.message = Some(truncate(
                &format!(
                    "split {n}/{}: the pod of Job {job} is waiting for {wanted}: {why}",
                    total(&status)
                ),
                MAX_MESSAGE_BYTES,
            ));
            set_condition(
                &mut status,
                CONDITION_PROGRESSING,
                true,
                UNSCHEDULABLE,
                why,
                now,
            );
        }
        None if stuck => {
            status.message = Some(running_message(&status, n));
            progressing(&mut status, now);
        }
        None => {}
    }
    status
}

/// Progressing=True: splits run one after another.
fn progressing(status: &mut WorkflowStatus, now: &Time) {
    set_condition(
        status,
        CONDITION_PROGRESSING,
        true,
        STARTED,
        STARTED_MESSAGE,
        now,
    );
}

fn running_message(status: &WorkflowStatus, n: u32) -> String {
    let job = status
        .active_jobs
        .first()
        .and_then(|j| j.name.clone())
        .unwrap_or_default();
    match status.current_node.as_deref() {
        Some(node) => format!("split {n}/{}: Job {job} runs on node {node}", total(status)),
        None => format!("split {n}/{}: Job {job} runs", total(status)),
    }
}

/// WaitingJob(n) → Split(n+1) or Done(Succeeded): Job n completed with `outputs`.
/// Fails when the carried outputs would outgrow [`MAX_CARRIED_BYTES`].
pub fn advanced(
    old: &WorkflowStatus,
    n: u32,
    outputs: &[EnvVar],
    now: &Time,
) -> Result<WorkflowStatus, String> {
    let mut status = old.clone();
    let kept: usize = old.splits.iter().map(|r| json_len(&r.outputs)).sum();
    merge_outputs(&mut status.environment, outputs);
    let size = json_len(&status.environment);
    if size > MAX_CARRIED_BYTES {
        return Err(format!(
            "split {n}: the outputs carried to later splits take {size} bytes as JSON, more \
             than the {MAX_CARRIED_BYTES} allowed; pass large data through a volume instead"
        ));
    }
    if let Some(record) = record_mut(&mut status, n) {
        record.phase = Some(SplitPhase::Succeeded);
        record.completion_time = Some(now.clone());
        keep_outputs(record, outputs, kept);
    }
    status.successful_jobs.append(&mut status.active_jobs);
    let total = total(&status);
    if n >= total {
        status.phase = Some(Phase::Succeeded);
        status.state = Some(MachineState::Done);
        status.completion_time = Some(now.clone());
        status.message = Some(format!("all {total} split(s) succeeded"));
        status.progress = Some(progress(&status));
        set_condition(
            &mut status,
            CONDITION_PROGRESSING,
            false,
            "Succeeded",
            "no split left to run",
            now,
        );
        set_condition(
            &mut status,
            CONDITION_COMPLETE,
            true,
            "Succeeded",
            "every split's Job completed",
            now,
        );
    } else {
        status.state = Some(MachineState::Split);
        status.current_split = Some(n + 1);
        point_at(&mut status, n + 1);
        status.message = Some(format!("split {n} succeeded; starting split {}", n + 1));
    }
    Ok(status)
}

/// Keeps split `record`'s `outputs` in it too (for a retry from an earlier split), unless with
/// the `kept` bytes of the other records' they would pass [`MAX_KEPT_OUTPUTS_BYTES`].
fn keep_outputs(record: &mut SplitRecord, outputs: &[EnvVar], kept: usize) {
    let outputs: Vec<CarriedVar> = outputs
        .iter()
        .map(|v| CarriedVar {
            name: v.name.clone(),
            value: v.value.clone(),
        })
        .collect();
    if kept + json_len(&outputs) > MAX_KEPT_OUTPUTS_BYTES {
        record.outputs_omitted = Some(true);
        return;
    }
    record.outputs = outputs;
}

/// A corrupt status (see `state::corruption`, for the reason `why`) → a consistent one from the
/// plan (`nodes`) and this Workflow's Jobs by split: the latest split with a Job is the current
/// one, WaitingJob (the earlier ones ran before it, so they succeeded); without Jobs, Split(1).
/// The carried environment is kept: it is all that is left of the earlier pods' outputs.
pub fn rederived(
    old: &WorkflowStatus,
    nodes: &[Option<String>],
    names: &dyn Fn(u32) -> SplitNames,
    generation: Option<i64>,
    jobs: &std::collections::BTreeMap<u32, ObjectReference>,
    why: &str,
    now: &Time,
) -> WorkflowStatus {
    let base = WorkflowStatus {
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let mut status = started(&base, nodes, names, generation, now);
    status.environment = old.environment.clone();
    if let Some(start) = &old.start_time {
        status.start_time = Some(start.clone());
    }
    if let Some((&n, job)) = jobs.iter().next_back() {
        for record in status.splits.iter_mut().filter(|r| r.index < n) {
            record.phase = Some(SplitPhase::Succeeded);
        }
        status.successful_jobs = jobs.range(..n).map(|(_, job)| job.clone()).collect();
        status = job_created(&status, n, job.clone(), now);
    }
    status.message = Some(truncate(
        &format!(
            "status was inconsistent ({why}); re-derived from the spec and the cluster: {}",
            status.message.as_deref().unwrap_or_default()
        ),
        MAX_MESSAGE_BYTES,
    ));
    status
}

/// Split(n), spec.suspend true: nothing of split n is created until it is false again.
pub fn suspended(old: &WorkflowStatus, n: u32, now: &Time) -> WorkflowStatus {
    let mut status = old.clone();
    status.phase = Some(Phase::Suspended);
    status.active_jobs.clear();
    let message = format!(
        "split {n}/{}: suspended (spec.suspend) before starting this split",
        total(&status)
    );
    status.message = Some(message.clone());
    set_condition(
        &mut status,
        CONDITION_PROGRESSING,
        false,
        SUSPENDED,
        &message,
        now,
    );
    set_condition(
        &mut status,
        CONDITION_SUSPENDED,
        true,
        SUSPENDED,
        &message,
        now,
    );
    status
}

/// Split(n), Suspended, spec.suspend false again: running, split n about to be created.
pub fn resumed(old: &WorkflowStatus, n: u32, now: &Time) -> WorkflowStatus {
    let mut status = old.clone();
    status.phase = Some(Phase::Running);
    status.message = Some(format!(
        "split {n}/{}: resumed; starting this split",
        total(&status)
    ));
    set_condition(
        &mut status,
        CONDITION_SUSPENDED,
        false,
        RESUMED,
        "spec.suspend is false",
        now,
    );
    progressing(&mut status, now);
    status
}

const SUSPENDED: &str = "Suspended";
const RESUMED: &str = "Resumed";

/// Any state, after an error that will be retried: the message says so; nothing else changes.
pub fn retrying(old: &WorkflowStatus, error: &str) -> WorkflowStatus {
    let mut status = old.clone();
    let at = match (status.state, status.current_split) {
        (Some(MachineState::Split | MachineState::WaitingJob), Some(n)) => {
            format!("split {n}/{}: ", total(&status))
        }
        _ => String::new(),
    };
    status.message = Some(truncate(
        &format!("{at}retrying after an error: {error}"),
        MAX_MESSAGE_BYTES,
    ));
    status
}

/// Any state → Done(Failed).
pub fn failed(
    old: &WorkflowStatus,
    reason: FailReason,
    message: &str,
    now: &Time,
) -> WorkflowStatus {
    let mut status = old.clone();
    let message = truncate(message, MAX_MESSAGE_BYTES);
    if let Some(n) = status.current_split
        && status.state == Some(MachineState::WaitingJob)
        && let Some(record) = record_mut(&mut status, n)
    {
        record.phase = Some(SplitPhase::Failed);
        record.completion_time = Some(now.clone());
    }
    if matches!(reason, FailReason::JobFailed | FailReason::DeadlineExceeded) {
        status.failed_jobs.append(&mut status.active_jobs);
    } else {
        status.active_jobs.clear();
    }
    status.phase = Some(Phase::Failed);
    status.state = Some(MachineState::Done);
    status.completion_time = Some(now.clone());
    status.start_time.get_or_insert_with(|| now.clone());
    status.progress = Some(progress(&status));
    status.message = Some(message.clone());
    set_condition(
        &mut status,
        CONDITION_PROGRESSING,
        false,
        reason.as_str(),
        "the workflow failed",
        now,
    );
    set_condition(
        &mut status,
        CONDITION_FAILED,
        true,
        reason.as_str(),
        &message,
        now,
    );
    status
}

/// Sets `metadata.generation` observed; the spec is immutable, so this only changes once.
pub fn observed(mut status: WorkflowStatus, generation: Option<i64>) -> WorkflowStatus {
    if generation.is_some() {
        status.observed_generation = generation;
        for c in &mut status.conditions {
            c.observed_generation = generation;
        }
    }
    status
}

fn total(status: &WorkflowStatus) -> u32 {
    status.total_splits.unwrap_or(1).max(1)
}

fn progress(status: &WorkflowStatus) -> String {
    let done = status
        .splits
        .iter()
        .filter(|r| r.phase == Some(SplitPhase::Succeeded))
        .count();
    format!("{done}/{}", status.total_splits.unwrap_or(0))
}

/// Points the printer columns at split `n`.
fn point_at(status: &mut WorkflowStatus, n: u32) {
    let record = status.splits.iter().find(|r| r.index == n).cloned();
    status.current_node = record.as_ref().and_then(|r| r.node.clone());
    status.current_job = record.and_then(|r| r.job);
    status.progress = Some(progress(status));
}

fn record_mut(status: &mut WorkflowStatus, n: u32) -> Option<&mut SplitRecord> {
    status.splits.iter_mut().find(|r| r.index == n)
}

/// Later values win; a re-set name moves to the end so the order of assignments is kept.
fn merge_outputs(carried: &mut Vec<CarriedVar>, outputs: &[EnvVar]) {
    for var in outputs {
        carried.retain(|c| c.name != var.name);
        carried.push(CarriedVar {
            name: var.name.clone(),
            value: var.value.clone(),
        });
    }
}

/// The carried outputs as engine variables, to append to a split's environment.
pub fn carried(status: Option<&WorkflowStatus>) -> Vec<EnvVar> {
    status
        .map(|s| {
            s.environment
                .iter()
                .map(|v| EnvVar::new(v.name.clone(), v.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps `lastTransitionTime` when the condition's status does not change (API convention).
fn set_condition(
    status: &mut WorkflowStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: &Time,
) {
    let value = if value { "True" } else { "False" }.to_owned();
    let generation = status.observed_generation;
    let message = truncate(message, 1024);
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = now.clone();
            }
            c.status = value;
            c.reason = reason.to_owned();
            c.message = message;
            c.observed_generation = generation;
        }
        None => status.conditions.push(Condition {
            type_: type_.to_owned(),
            status: value,
            reason: reason.to_owned(),
            message,
            last_transition_time: now.clone(),
            observed_generation: generation,
        }),
    }
}

/// At most `max` bytes, cut on a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let marker = " … (truncated)";
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

#[cfg(test)]
mod tests;
