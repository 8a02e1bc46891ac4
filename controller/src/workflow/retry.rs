//! Retries. A person asks through spec.retry (a request number raised by one); status.lastRetry
//! records the request acted on, accepted or refused, so each is acted on once, across restarts
//! too: until that is written, the same status gives the same decision and the same names, and
//! objects created before a crash are found again. spec.retryStrategy runs a split whose Job
//! failed again by itself, after a back-off.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use kube::ResourceExt;
use roiergasias_crd::{
    DEFAULT_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, MAX_RETRY_LIMIT, Phase, RetryRequest, SplitRecord,
};

use super::step::{effects, none};
use super::{Decision, Failure, Input, Machine, Note, Step, Wake, normal, warning};
use crate::bounds::{self, status_room};
use crate::names::{SplitNames, attempt_names, split_names};
use crate::transition::{self, Rerun};

/// Why a retry can be refused for its size.
const RETRY_HINT: &str = "each retry keeps the earlier attempts in status; delete and re-create \
     the Workflow instead";

/// The spec.retry request not yet acted on, if any.
pub(super) fn requested(input: &Input) -> Option<i64> {
    let RetryRequest { request, .. } = input.workflow.spec.retry.as_ref()?;
    let acted = input.status.last_retry.as_ref().map_or(0, |r| r.request);
    (*request > acted).then_some(*request)
}

/// A request not yet acted on, in `machine`: a Failed workflow runs again; in any other state
/// it is refused. `None`: no request, or a corrupt status, re-derived first.
pub(super) fn decide(input: &Input, machine: &Result<Machine, super::Corrupt>) -> Option<Decision> {
    let request = requested(input)?;
    match (machine, input.status.phase) {
        (Err(_), _) => None,
        (Ok(Machine::Done), Some(Phase::Failed)) => Some(rerun(input, request)),
        (_, phase) => {
            let why = match phase {
                Some(Phase::Succeeded) => "the workflow succeeded: there is nothing to retry",
                Some(Phase::Suspended) => "the workflow is Suspended, not Failed: resume it",
                _ => "the workflow is still running: only a Failed workflow can be retried",
            };
            Some(refuse(input, request, why))
        }
    }
}

/// Done(Failed): from the failed split (or spec.retry.fromSplit), unless that cannot be done.
fn rerun(input: &Input, request: i64) -> Decision {
    let status = input.status;
    let from = input
        .workflow
        .spec
        .retry
        .as_ref()
        .and_then(|r| r.from_split);
    let Some(failed) = status.current_split.filter(|_| !status.splits.is_empty()) else {
        return match from {
            Some(from) if from > 1 => refuse(
                input,
                request,
                &format!("split {from} never ran: the workflow failed before its first split"),
            ),
            _ => replan(input, request),
        };
    };
    let from = from.unwrap_or(failed);
    if from == 0 || from > failed {
        let why = format!("split {from} has not run: the workflow failed at split {failed}");
        return refuse(input, request, &why);
    }
    if from < failed && !transition::outputs_recorded(status, failed) {
        let why = format!(
            "this status does not record each split's outputs (an older operator wrote it), so \
             only the failed split {failed} can run again"
        );
        return refuse(input, request, &why);
    }
    let names = |n: u32, attempt: u32| attempt_names(first_names(input, n), attempt);
    let retry = Rerun {
        request,
        from,
        failed,
        names: &names,
    };
    let new = transition::rerun(status, &retry, input.now);
    let namespace = input.workflow.namespace().unwrap_or_default();
    let room = status_room(input.workflow);
    if let Err(message) = bounds::check_to_the_end(room, &new, &namespace, RETRY_HINT) {
        return refuse(input, request, &message);
    }
    let note = normal("Retried", "Retry", new.message.clone().unwrap_or_default());
    Decision::Defer(effects(Step::Rerun(from), new, vec![note], None))
}

/// A Failed workflow that never started (invalid, or refused): checked again from Pending.
fn replan(input: &Input, request: i64) -> Decision {
    let new = transition::replanned(input.status, request, input.now);
    let note = normal("Retried", "Retry", new.message.clone().unwrap_or_default());
    Decision::Defer(effects(Step::Rerun(1), new, vec![note], None))
}

fn refuse(input: &Input, request: i64, why: &str) -> Decision {
    let message = format!("retry {request} refused: {why}");
    let new = transition::refused(input.status, request, &message, input.now);
    let note = warning("RetryRefused", "Retry", message);
    Decision::Write(
        effects(Step::RetryRefused, new, vec![note], None),
        Wake::OnChange,
    )
}

/// The names split n's first attempt had: as the original operator named them.
fn first_names(input: &Input, n: u32) -> SplitNames {
    let node = record(input, n).and_then(|r| r.node.clone());
    let wf = input.workflow;
    split_names(
        &wf.name_any(),
        &wf.spec.workflow_yaml.name,
        n,
        node.as_deref(),
    )
}

fn record<'a>(input: &'a Input, n: u32) -> Option<&'a SplitRecord> {
    input.status.splits.iter().find(|r| r.index == n)
}

/// WaitingJob(n), its Job failed (`failure`): with automatic retries left, split n runs again
/// as a new attempt after its back-off. `None`: no retry left, so the workflow fails.
pub(super) fn automatic(input: &Input, n: u32, failure: &Failure) -> Option<Decision> {
    let strategy = input.workflow.spec.retry_strategy.as_ref()?;
    let limit = strategy.limit.unwrap_or(0).min(MAX_RETRY_LIMIT);
    let record = record(input, n)?;
    let spent = record.automatic_retries.unwrap_or(0);
    if spent >= limit {
        return None;
    }
    let delay = backoff(strategy.backoff_seconds, spent + 1);
    let after = later(input.now, delay);
    let attempt = record.attempt.unwrap_or(1) + 1;
    let names = attempt_names(first_names(input, n), attempt);
    let job = names.job.clone();
    let failure = failure.to_string();
    let mut new = transition::automatic(input.status, n, &failure, names, &after);
    let total = input.status.total_splits.unwrap_or(1);
    let message = format!(
        "{failure}; automatic retry {} of {limit} in {} s, as Job {job}",
        spent + 1,
        delay.as_secs()
    );
    new.message = Some(transition::truncate(
        &format!("split {n}/{total}: {message}"),
        transition::MAX_MESSAGE_BYTES,
    ));
    let namespace = input.workflow.namespace().unwrap_or_default();
    let room = status_room(input.workflow);
    bounds::check_to_the_end(room, &new, &namespace, RETRY_HINT).ok()?;
    let note = Note {
        job: input.status.current_job.clone(),
        ..warning("RetryScheduled", "Retry", message)
    };
    Some(Decision::Write(
        effects(Step::AutoRetry(n), new, vec![note], None),
        Wake::After(delay),
    ))
}

/// Split(n) of an automatic retry whose back-off has not passed: wait until it has.
pub(super) fn backing_off(input: &Input, n: u32) -> Option<Decision> {
    let after = record(input, n)?.retry_after.as_ref()?;
    let left = Duration::try_from(after.0.duration_since(input.now.0)).ok()?;
    (!left.is_zero()).then(|| Decision::Write(none(Step::Wait(n)), Wake::After(left)))
}

/// Before automatic retry `k` (from 1): `first` seconds doubled k-1 times, at most an hour.
fn backoff(first: Option<u32>, k: u32) -> Duration {
    let first = u64::from(first.unwrap_or(DEFAULT_BACKOFF_SECONDS));
    let doubled = first.saturating_mul(1 << (k.saturating_sub(1)).min(20));
    Duration::from_secs(doubled.min(u64::from(MAX_BACKOFF_SECONDS)))
}

fn later(now: &Time, delay: Duration) -> Time {
    let delay = SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO);
    Time(now.0.checked_add(delay).unwrap_or(now.0))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn the_backoff_doubles_from_its_first_wait_up_to_an_hour() {
        let secs = |first, k| backoff(first, k).as_secs();
        assert_eq!((secs(None, 1), secs(None, 2), secs(None, 3)), (10, 20, 40));
        assert_eq!(secs(Some(0), 5), 0);
        assert_eq!(secs(Some(3000), 2), 3600);
        assert_eq!(backoff(Some(3600), 10), Duration::from_secs(3600));
    }
}
