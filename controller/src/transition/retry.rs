//! Retries: a Failed workflow run again from one of its splits (spec.retry), and a split whose
//! Job failed run again by itself (spec.retryStrategy). A split that runs again keeps its
//! earlier attempt in `attempts` and gets objects of its own, named for the new attempt, so
//! nothing of the earlier attempt is overwritten or adopted by mistake.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use roiergasias_crd::{
    Attempt, CONDITION_FAILED, CarriedVar, LastRetry, MachineState, Phase, SplitPhase, SplitRecord,
    WorkflowStatus,
};

use super::{
    MAX_MESSAGE_BYTES, merge_outputs, point_at, progressing, record_mut, set_condition, total,
    truncate,
};
use crate::names::SplitNames;

/// A retry the operator accepted: request `request` runs splits `from..=failed` again.
pub struct Rerun<'a> {
    pub request: i64,
    pub from: u32,
    pub failed: u32,
    /// The names of split n's attempt k.
    pub names: &'a dyn Fn(u32, u32) -> SplitNames,
}

/// Done(Failed) → Split(from): each split from `from` to the failed one becomes a new attempt;
/// the carried environment is what the splits before `from` reported, and the deadline counts
/// again from now.
pub fn rerun(old: &WorkflowStatus, retry: &Rerun, now: &Time) -> WorkflowStatus {
    let mut status = old.clone();
    let again = format!(
        "run again by retry {} from split {}",
        retry.request, retry.from
    );
    let failure = old.message.clone();
    for record in status.splits.iter_mut() {
        if (retry.from..=retry.failed).contains(&record.index) {
            let why = match record.index == retry.failed {
                true => failure.clone(),
                false => Some(again.clone()),
            };
            let next = record.attempt.unwrap_or(1) + 1;
            new_attempt(record, why, (retry.names)(record.index, next));
            record.automatic_retries = None;
        }
    }
    status.environment = carried_before(&status, retry.from);
    status.successful_jobs.truncate(retry.from as usize - 1);
    status.active_jobs.clear();
    status.phase = Some(Phase::Running);
    status.state = Some(MachineState::Split);
    status.current_split = Some(retry.from);
    status.completion_time = None;
    status.start_time = Some(now.clone());
    point_at(&mut status, retry.from);
    let attempt = record_mut(&mut status, retry.from).and_then(|r| r.attempt);
    let message = format!(
        "retry {}: split {}/{} runs again as attempt {}",
        retry.request,
        retry.from,
        total(&status),
        attempt.unwrap_or(2)
    );
    status.message = Some(message.clone());
    set_condition(&mut status, CONDITION_FAILED, false, RETRIED, &message, now);
    progressing(&mut status, now);
    status.last_retry = Some(LastRetry {
        request: retry.request,
        accepted: true,
        from_split: Some(retry.from),
        message,
        time: now.clone(),
    });
    status
}

/// Done(Failed) before any split started → Pending: planned again from the spec.
pub fn replanned(old: &WorkflowStatus, request: i64, now: &Time) -> WorkflowStatus {
    let message = format!("retry {request}: the workflow is checked and started again");
    let mut status = WorkflowStatus {
        state: Some(MachineState::Pending),
        phase: Some(Phase::Pending),
        conditions: old.conditions.clone(),
        message: Some(message.clone()),
        ..Default::default()
    };
    set_condition(&mut status, CONDITION_FAILED, false, RETRIED, &message, now);
    status.last_retry = Some(LastRetry {
        request,
        accepted: true,
        from_split: None,
        message,
        time: now.clone(),
    });
    status
}

/// A retry request that is not acted on: `why` is kept in status.lastRetry; nothing else
/// changes.
pub fn refused(old: &WorkflowStatus, request: i64, why: &str, now: &Time) -> WorkflowStatus {
    let mut status = old.clone();
    status.last_retry = Some(LastRetry {
        request,
        accepted: false,
        from_split: None,
        message: truncate(why, MAX_MESSAGE_BYTES),
        time: now.clone(),
    });
    status
}

/// WaitingJob(n), Job n failed (`failure`) with automatic retries left → Split(n) as a new
/// attempt named `names`, whose Job is created at `after`.
pub fn automatic(
    old: &WorkflowStatus,
    n: u32,
    failure: &str,
    names: SplitNames,
    after: &Time,
) -> WorkflowStatus {
    let mut status = old.clone();
    status.failed_jobs.append(&mut status.active_jobs);
    if let Some(record) = record_mut(&mut status, n) {
        let failure = truncate(failure, MAX_MESSAGE_BYTES);
        new_attempt(record, Some(failure), names);
        record.automatic_retries = Some(record.automatic_retries.unwrap_or(0) + 1);
        record.retry_after = Some(after.clone());
    }
    status.state = Some(MachineState::Split);
    status.current_split = Some(n);
    point_at(&mut status, n);
    status
}

/// Condition reason once a Failed workflow runs again.
const RETRIED: &str = "Retried";

/// The record's attempt so far moves into its `attempts` (with `why` it ended); the record
/// describes the new one, named `names`, not yet started.
fn new_attempt(record: &mut SplitRecord, why: Option<String>, names: SplitNames) {
    let attempt = record.attempt.unwrap_or(1);
    record.attempts.push(Attempt {
        attempt,
        config_map: record.config_map.take(),
        job: record.job.take(),
        phase: record.phase,
        start_time: record.start_time.take(),
        completion_time: record.completion_time.take(),
        message: why,
    });
    record.attempt = Some(attempt + 1);
    record.config_map = Some(names.config_map);
    record.job = Some(names.job);
    record.phase = Some(SplitPhase::Pending);
    record.outputs.clear();
    record.outputs_omitted = None;
    record.retry_after = None;
}

/// What splits before `n` reported, merged in order as they were carried.
pub fn carried_before(status: &WorkflowStatus, n: u32) -> Vec<CarriedVar> {
    let mut carried = Vec::new();
    for record in status.splits.iter().filter(|r| r.index < n) {
        let outputs: Vec<_> = record
            .outputs
            .iter()
            .map(|v| roiergasias_engine::EnvVar::new(v.name.clone(), v.value.clone()))
            .collect();
        merge_outputs(&mut carried, &outputs);
    }
    carried
}

/// Whether the records hold each split's outputs, so that a retry from before split `failed`
/// can drop what later splits reported: not when some were too large to keep, nor in a status
/// written by an operator that did not keep them.
pub fn outputs_recorded(status: &WorkflowStatus, failed: u32) -> bool {
    let before = status.splits.iter().filter(|r| r.index < failed);
    before.clone().all(|r| r.outputs_omitted != Some(true))
        && carried_before(status, failed) == status.environment
}
