//! The controller's one pure machine: the Workflow as read, its status (perhaps a transition not
//! yet written) and what was observed give every decision the operator makes, as effects for the
//! I/O layer (`crate::reconcile`) to carry out. No client, no clock.
//!
//! A reconcile asks [`decide`] again after each effect: a [`Decision::Need`] is found out, a
//! [`Decision::Create`] is made and what it gave observed, a [`Decision::Defer`] becomes the status
//! the next decision starts from. A hand-off is so one reconcile and one status write: WaitingJob(n)
//! → (Split(n+1), deferred) → ConfigMap n+1 → Job n+1 → write WaitingJob(n+1). Restart safety holds
//! without writing Split(n+1): a controller killed before that write finds WaitingJob(n) with Job n
//! Complete, reads the same outputs from its pod, builds the same objects, and finds the ones it
//! already created (same names, controlled by this Workflow).

mod failure;
mod lifecycle;
mod machine;
mod observed;
mod retry;
mod step;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use roiergasias_crd::{Workflow, WorkflowStatus};

pub(crate) use failure::{FailReason, Failure};
pub(crate) use machine::{Corrupt, Machine};
pub(crate) use observed::{Created, FinishedPod, JobOutcome, JobSeen, Need, Observed, Presence};

use crate::names::{SplitNames, split_names};
use crate::plan::Plan;
use crate::policy::Policy;
use crate::transition;

/// What every decision is made from.
pub(crate) struct Input<'a> {
    /// The Workflow as last read: its spec, metadata, and the status writes are based on.
    pub(crate) workflow: &'a Workflow,
    /// Its status, or the transition decided in this reconcile but not yet written.
    pub(crate) status: &'a WorkflowStatus,
    pub(crate) observed: &'a Observed,
    pub(crate) policy: &'a Policy,
    pub(crate) runner_image: &'a str,
    pub(crate) now: &'a Time,
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Find this out, then decide again.
    Need(Need),
    /// Create split `split`'s object, then decide again with what it gave.
    Create { split: u32, object: Box<Object> },
    /// Move on to this status without writing it: the step that acts on it writes it with its
    /// own. Then decide again.
    Defer(Effects),
    /// Write the status, if any, publish, and wait.
    Write(Effects, Wake),
    /// Suspend Job `name` (the deadline passed), then decide again.
    StopJob { name: String },
    /// Publish this Event, then delete the Workflow (spec.ttlSecondsAfterFinished).
    Delete(Note),
}

/// What a transition changes, besides the state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Effects {
    pub(crate) step: Step,
    pub(crate) status: Option<Box<WorkflowStatus>>,
    pub(crate) events: Vec<Note>,
    pub(crate) handoff: Option<Handoff>,
}

/// Which transition, for logs and the test-only crash points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Start,
    Rederive,
    /// Split n's objects exist: WaitingJob(n).
    Created(u32),
    Wait(u32),
    /// Job n completed: Split(n+1), or Done(Succeeded) after the last.
    Advance(u32),
    Fail(FailReason),
    /// spec.suspend holds split n.
    Suspend(u32),
    /// spec.suspend is false again: split n starts.
    Resume(u32),
    /// An API error is retried.
    Retry,
    /// A retry request runs the Failed workflow again from split n.
    Rerun(u32),
    /// A retry request was refused.
    RetryRefused,
    /// Job n failed and split n runs again by itself (spec.retryStrategy).
    AutoRetry(u32),
    /// Nothing to do (Done, or the Workflow is being deleted).
    Idle,
}

/// When to look at the Workflow again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// On its next change, or its objects' (the watches wake it).
    OnChange,
    After(Duration),
}

/// One of a split's objects, built from the spec.
// Always boxed in a Decision, and one lives at a time: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Object {
    ConfigMap(ConfigMap),
    Job(Job),
}

/// An Event on the Workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Note {
    pub(crate) warning: bool,
    pub(crate) reason: &'static str,
    pub(crate) action: &'static str,
    pub(crate) message: String,
    /// The split's Job it is about: keeps each split's Events apart (the recorder folds Events
    /// with equal keys into one series).
    pub(crate) job: Option<String>,
}

/// The hand-off timer (`roiergasias_handoff_seconds`): from Job n Complete to Job n+1 created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handoff {
    Started(u32),
    Finished(u32),
    /// The workflow failed: every timer of its `records` splits stops.
    CancelAll {
        records: usize,
    },
}

/// A Job without a pod yet is looked at again this soon: admission refusing its pod changes
/// nothing the watches see (only the Job controller's Events say so).
pub(crate) const POD_RECHECK: Duration = Duration::from_secs(3);
/// A safety net only: Job changes wake the controller through its watch.
pub(crate) const WAIT_RECHECK: Duration = Duration::from_secs(300);
/// A Job gets its pod within moments; one without a pod after this long may have been refused.
const POD_GRACE: Duration = Duration::from_secs(2);

/// Decides the next thing to do; see the module's documentation.
pub(crate) fn decide(input: &Input) -> Decision {
    if input.workflow.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove ConfigMaps and Jobs.
        return idle();
    }
    let planned = input
        .observed
        .plan
        .as_ref()
        .and_then(|(_, p)| p.as_ref().ok());
    let machine = Machine::read(input.status, planned.map(|p| p.nodes.len()));
    if let Some(decision) = retry::decide(input, &machine) {
        return lifecycle::wake_by_deadline(input, decision);
    }
    let decision = match machine {
        Err(corrupt) => step::rederive(input, &corrupt),
        Ok(Machine::Done) => lifecycle::done(input),
        Ok(Machine::Pending) => step::pending(input),
        Ok(Machine::Split(n)) => {
            lifecycle::past_deadline(input, n, false).unwrap_or_else(|| step::split(input, n))
        }
        Ok(Machine::WaitingJob(n)) => {
            lifecycle::past_deadline(input, n, true).unwrap_or_else(|| step::waiting(input, n))
        }
    };
    lifecycle::wake_by_deadline(input, decision)
}

/// Before a retry of an API error: status says what is being retried (and a Warning Event, once
/// per distinct error), so an error that persists (a quota, a missing permission) is visible on
/// the Workflow and not only in the operator's log. `None` when status says so already.
pub(crate) fn retrying(input: &Input, error: &str) -> Option<Decision> {
    let new = transition::retrying(input.status, error);
    if input.workflow.status.as_ref() == Some(&new) {
        return None;
    }
    let note = warning("Retrying", "Retry", new.message.clone().unwrap_or_default());
    let effects = Effects {
        step: Step::Retry,
        status: Some(Box::new(new)),
        events: vec![note],
        handoff: None,
    };
    Some(Decision::Write(effects, Wake::OnChange))
}

/// A status that would not fit under the object limit (`message` says by how much): the
/// Workflow fails, its status cut down to what fits.
pub(crate) fn too_large(input: &Input, message: &str) -> Decision {
    let failure = Failure::StatusTooLarge(message.to_owned());
    let Decision::Write(mut effects, wake) = step::fail(input, failure) else {
        unreachable!("fail always writes");
    };
    let room = crate::bounds::status_room(input.workflow);
    effects.status = effects
        .status
        .map(|s| Box::new(crate::bounds::shrink_to_fit(*s, room)));
    Decision::Write(effects, wake)
}

fn idle() -> Decision {
    let effects = Effects {
        step: Step::Idle,
        status: None,
        events: Vec::new(),
        handoff: None,
    };
    Decision::Write(effects, Wake::OnChange)
}

fn normal(reason: &'static str, action: &'static str, message: String) -> Note {
    Note {
        warning: false,
        reason,
        action,
        message,
        job: None,
    }
}

fn warning(reason: &'static str, action: &'static str, message: String) -> Note {
    Note {
        warning: true,
        ..normal(reason, action, message)
    }
}

/// Names of split n: as recorded in status when it was planned (so an upgrade never renames
/// objects mid-workflow), else computed from the plan.
pub(crate) fn names_of(
    workflow: &Workflow,
    status: &WorkflowStatus,
    plan: Option<&Plan>,
    n: u32,
) -> SplitNames {
    let record = status.splits.iter().find(|r| r.index == n);
    if let Some(record) = record
        && let (Some(config_map), Some(job)) = (&record.config_map, &record.job)
    {
        return SplitNames {
            config_map: config_map.clone(),
            job: job.clone(),
        };
    }
    let node = match plan {
        Some(plan) => plan
            .nodes
            .get((n as usize).wrapping_sub(1))
            .cloned()
            .flatten(),
        None => record.and_then(|r| r.node.clone()),
    };
    split_names(
        &workflow.name_any(),
        &workflow.spec.workflow_yaml.name,
        n,
        node.as_deref(),
    )
}

/// The Jobs among `jobs` this Workflow (`uid`) controls, by their split label, for splits
/// 1..=`total`.
pub(crate) fn owned_by_split(
    jobs: &[ObjectMeta],
    uid: &str,
    total: usize,
) -> BTreeMap<u32, k8s_openapi::api::core::v1::ObjectReference> {
    jobs.iter()
        .filter(|meta| presence(Some(meta), uid) == Presence::Ours)
        .filter_map(|meta| {
            let split: u32 = meta
                .labels
                .as_ref()?
                .get(crate::build::SPLIT_LABEL)?
                .parse()
                .ok()?;
            (split >= 1 && split as usize <= total).then(|| (split, job_reference(meta)))
        })
        .collect()
}

/// Who controls the object with `meta`: this Workflow (`uid`), something else, or nobody.
pub(crate) fn presence(meta: Option<&ObjectMeta>, uid: &str) -> Presence {
    match meta.map(|meta| foreign_owner(meta, uid)) {
        None => Presence::Missing,
        Some(None) => Presence::Ours,
        Some(Some(owner)) => Presence::Foreign(owner),
    }
}

/// What controls the existing object with `meta`, unless it is this Workflow (`uid`).
fn foreign_owner(meta: &ObjectMeta, uid: &str) -> Option<String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(owner) if owner.uid == uid => None,
        Some(owner) => Some(format!("controlled by {} {}", owner.kind, owner.name)),
        None => Some("it has no controlling owner".into()),
    }
}

/// The reference a split record keeps to its Job, from the Job's metadata.
pub(crate) fn job_reference(job: &ObjectMeta) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.name.clone(),
        namespace: job.namespace.clone(),
        uid: job.uid.clone(),
        ..Default::default()
    }
}

/// Whether a Job created at `created` has had long enough, at `now`, to get its pod.
fn past_pod_grace(created: Option<&Time>, now: &Time) -> bool {
    let Some(created) = created else {
        return true;
    };
    let age = now.0.duration_since(created.0);
    age >= k8s_openapi::jiff::SignedDuration::try_from(POD_GRACE).unwrap_or_default()
}
