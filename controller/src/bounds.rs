//! The stored Workflow stays under etcd's object limit: its status is sized (as JSON, as the
//! API server stores custom resources) before every write, and a run whose status could not
//! hold every split's record to the end fails when it starts, or at the hand-off whose outputs
//! would not fit, with the reason in status. A status write that fails forever is not a limit.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use roiergasias_crd::{SplitPhase, Workflow, WorkflowStatus};
use roiergasias_engine::EnvVar;
use serde::Serialize;

use crate::transition;
use crate::workflow::FailReason;

/// etcd refuses requests over 1.5 MiB (`--max-request-bytes`, 1 572 864 by default). The
/// Workflow as stored stays under this, leaving room for etcd's own envelope.
pub const MAX_OBJECT_BYTES: usize = 1_500_000;
/// The object's keys around metadata, spec and status, and the managedFields entries status
/// writes add (field names, not values).
const ENVELOPE_BYTES: usize = 8 * 1024;
/// `,"outputs":` or `,"outputsOmitted":true`, which a record gains when its split succeeds.
const OUTPUTS_FIELD_BYTES: usize = 24;
/// Length of a Kubernetes UID (a UUID), for the Jobs not yet created.
const UID_LEN: usize = 36;

/// Bytes of `value` as compact JSON, counted without building the text.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing plain data into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Bytes left for the status beside the Workflow's metadata and spec.
pub fn status_room(workflow: &Workflow) -> usize {
    let used = json_len(&workflow.metadata) + json_len(&workflow.spec) + ENVELOPE_BYTES;
    MAX_OBJECT_BYTES.saturating_sub(used)
}

/// Whether `status` fits in `room` bytes; the error says how far it is over, and why.
pub fn check(room: usize, status: &WorkflowStatus, why: &str) -> Result<(), String> {
    let size = json_len(status);
    if size <= room {
        return Ok(());
    }
    Err(format!(
        "the Workflow's status would take {size} bytes, but only {room} are left beside its spec \
         and metadata (etcd stores at most {MAX_OBJECT_BYTES} bytes per object, as JSON): {why}"
    ))
}

/// Whether the run can finish from `status`: its status at the end of a successful run (every
/// split Succeeded with both times, every Job in successfulJobs, the records' copies of their
/// outputs at their cap) fits in `room`.
pub fn check_to_the_end(
    room: usize,
    status: &WorkflowStatus,
    namespace: &str,
    why: &str,
) -> Result<(), String> {
    let kept: usize = status.splits.iter().map(|r| json_len(&r.outputs)).sum();
    let pending = status.splits.iter();
    let pending = pending
        .filter(|r| r.phase != Some(SplitPhase::Succeeded))
        .count();
    let to_come = match pending {
        0 => 0,
        _ => {
            transition::MAX_KEPT_OUTPUTS_BYTES.saturating_sub(kept) + pending * OUTPUTS_FIELD_BYTES
        }
    };
    check(
        room.saturating_sub(to_come),
        &finished_shape(status, namespace),
        why,
    )
}

/// Why a run could not start or go on within the object limit.
pub const START_HINT: &str = "use fewer splits (tasks with a node), or a shorter workflow text";
pub const OUTPUTS_HINT: &str = "the outputs carried to later splits leave too little room for \
     the remaining splits' records; pass large data through a volume instead";

/// Pending → Split(1), refused when the run's status could not hold every split to the end.
pub fn start_within(room: usize, started: &WorkflowStatus, namespace: &str) -> Result<(), String> {
    check_to_the_end(room, started, namespace, START_HINT)
}

/// WaitingJob(n) → Split(n+1) or Done, as [`transition::advanced`], refused when the carried
/// outputs outgrow their own cap or would leave too little room for the remaining records.
pub fn advanced_within(
    room: usize,
    old: &WorkflowStatus,
    n: u32,
    outputs: &[EnvVar],
    now: &Time,
    namespace: &str,
) -> Result<WorkflowStatus, (FailReason, String)> {
    let new = transition::advanced(old, n, outputs, now)
        .map_err(|message| (FailReason::OutputsTooLarge, message))?;
    check_to_the_end(room, &new, namespace, OUTPUTS_HINT)
        .map_err(|message| (FailReason::StatusTooLarge, message))?;
    Ok(new)
}

/// `status` as it would look after every remaining split succeeded (outputs aside).
fn finished_shape(status: &WorkflowStatus, namespace: &str) -> WorkflowStatus {
    let mut end = status.clone();
    let time = status.start_time.clone();
    let done = end.successful_jobs.len();
    for record in end.splits.iter_mut() {
        if record.phase != Some(SplitPhase::Succeeded) {
            record.phase = Some(SplitPhase::Succeeded);
            record.start_time = record.start_time.clone().or_else(|| time.clone());
            record.completion_time = time.clone();
        }
    }
    let jobs = end.splits.iter().skip(done).map(|record| ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: record.job.clone(),
        namespace: Some(namespace.to_owned()),
        uid: Some("0".repeat(UID_LEN)),
        ..Default::default()
    });
    let jobs: Vec<_> = jobs.collect();
    end.successful_jobs.extend(jobs);
    end.active_jobs.clear();
    end.completion_time = time;
    end
}

/// A failed status cut down until it fits in `room`: first without the carried environment,
/// then without the per-split lists; what is left (phase, message, conditions) is small.
pub fn shrink_to_fit(mut status: WorkflowStatus, room: usize) -> WorkflowStatus {
    if json_len(&status) <= room {
        return status;
    }
    status.environment.clear();
    if json_len(&status) <= room {
        return status;
    }
    status.splits.clear();
    status.nodes.clear();
    status.active_jobs.clear();
    status.successful_jobs.clear();
    status.failed_jobs.clear();
    status
}

#[cfg(test)]
mod tests;
