//! The lifecycle controls of the spec, which may change while the workflow runs:
//! `suspend` (hold before the next split), `activeDeadlineSeconds` (fail, stopping the running
//! Job) and `ttlSecondsAfterFinished` (delete the Workflow that long after it ended).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use roiergasias_crd::{MachineState, Phase};

use super::step::{effects, fail, none};
use super::{
    Decision, Failure, Handoff, Input, JobOutcome, Need, Note, Presence, Step, Wake, idle,
    names_of, normal,
};
use crate::transition;

/// Split(n) while spec.suspend is true: suspended (once: status, a condition and an Event), then
/// nothing is created. Once it is false again, resumed (deferred: written with WaitingJob(n)).
/// `None`: neither, split n goes on.
pub(super) fn suspend(input: &Input, n: u32) -> Option<Decision> {
    let wanted = input.workflow.spec.suspend == Some(true);
    let is = input.status.phase == Some(Phase::Suspended);
    let total = input.status.total_splits.unwrap_or(1);
    match (wanted, is) {
        (true, true) => Some(Decision::Write(none(Step::Suspend(n)), Wake::OnChange)),
        (true, false) => {
            let new = transition::suspended(input.status, n, input.now);
            let note = normal(
                "Suspended",
                "Suspend",
                format!("split {n}/{total}: suspended (spec.suspend); split {n} is not started"),
            );
            // A hand-off waiting on a person is not a hand-off: its timer stops.
            let handoff = Some(Handoff::CancelAll {
                records: input.status.splits.len(),
            });
            let effects = effects(Step::Suspend(n), new, vec![note], handoff);
            Some(Decision::Write(effects, Wake::OnChange))
        }
        (false, true) => {
            let new = transition::resumed(input.status, n, input.now);
            let note = normal(
                "Resumed",
                "Resume",
                format!("split {n}/{total}: resumed; starting split {n}"),
            );
            Some(Decision::Defer(effects(
                Step::Resume(n),
                new,
                vec![note],
                None,
            )))
        }
        (false, false) => None,
    }
}

/// Split(n) or WaitingJob(n) (`waiting`) past spec.activeDeadlineSeconds: the running Job is
/// suspended (once per reconcile; again after a restart, which changes nothing), then the
/// workflow fails. `None` while the deadline is not reached (or there is none).
pub(super) fn past_deadline(input: &Input, n: u32, waiting: bool) -> Option<Decision> {
    let deadline = input.workflow.spec.active_deadline_seconds?;
    if remaining(input.status.start_time.as_ref()?, deadline, input.now).is_some() {
        return None;
    }
    let total = input.status.total_splits.unwrap_or(1);
    let job = names_of(input.workflow, input.status, None, n).job;
    let stopped = match waiting {
        false if input.status.phase == Some(Phase::Suspended) => ", while suspended".to_owned(),
        false => ", before its Job was created".to_owned(),
        true => {
            let Some(seen) = &input.observed.job else {
                return Some(Decision::Need(Need::Job { name: job }));
            };
            let running = seen.presence == Presence::Ours && seen.outcome == JobOutcome::Running;
            match (running, input.observed.job_stopped) {
                (true, false) => return Some(Decision::StopJob { name: job }),
                (true, true) => format!("; its Job {job} was suspended"),
                (false, _) => format!("; its Job {job} had ended"),
            }
        }
    };
    let failure = Failure::DeadlineExceeded {
        deadline,
        split: n,
        total,
        stopped,
    };
    Some(fail(input, failure))
}

/// A decision that waits, woken no later than the deadline when one is pending after it.
pub(super) fn wake_by_deadline(input: &Input, decision: Decision) -> Decision {
    let Decision::Write(effects, wake) = decision else {
        return decision;
    };
    let status = effects.status.as_deref().unwrap_or(input.status);
    let running = matches!(
        status.state,
        Some(MachineState::Split | MachineState::WaitingJob)
    );
    let left = match (
        running,
        input.workflow.spec.active_deadline_seconds,
        &status.start_time,
    ) {
        (true, Some(deadline), Some(start)) => remaining(start, deadline, input.now),
        _ => None,
    };
    let wake = match (wake, left) {
        (wake, None) => wake,
        (Wake::OnChange, Some(left)) => Wake::After(left),
        (Wake::After(after), Some(left)) => Wake::After(after.min(left)),
    };
    Decision::Write(effects, wake)
}

/// Done: with spec.ttlSecondsAfterFinished, the Workflow is deleted that long after its
/// completionTime (an Event first); until then, woken when it is due.
pub(super) fn done(input: &Input) -> Decision {
    let (Some(ttl), Some(finished)) = (
        input.workflow.spec.ttl_seconds_after_finished,
        &input.status.completion_time,
    ) else {
        return idle();
    };
    if let Some(left) = remaining(finished, ttl, input.now) {
        return Decision::Write(none(Step::Idle), Wake::After(left));
    }
    let phase = input
        .status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_default();
    let note: Note = normal(
        "Expired",
        "Delete",
        format!(
            "deleting the Workflow, its ConfigMaps, Jobs and pods: {phase} at {}, \
             ttlSecondsAfterFinished is {ttl} s",
            finished.0
        ),
    );
    Decision::Delete(note)
}

/// What is left at `now` of `seconds` counted from `since`; `None` once they have passed. A
/// negative count (refused by the schema) has passed at once.
fn remaining(since: &Time, seconds: i64, now: &Time) -> Option<Duration> {
    let left = SignedDuration::from_secs(seconds.max(0)) - now.0.duration_since(since.0);
    match left.is_positive() {
        true => Duration::try_from(left).ok(),
        false => None,
    }
}
