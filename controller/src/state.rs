//! The controller's state machine, pure: the Workflow's persisted state plus what the controller
//! observed of its objects gives the next action. No client, no clock; unit-tested below.
//!
//! Pending ──valid──▶ Split(1) ──ConfigMap+Job created──▶ WaitingJob(1) ──Complete──▶ Split(2) …
//!    │                   │                                    │
//!    └──invalid──▶ Done(Failed)    foreign object ──▶ Done(Failed) ◀──Failed / Job gone
//! WaitingJob(last) ──Complete──▶ Done(Succeeded)
//!
//! The I/O layer acts on Split(n) in the reconcile that reaches it and writes it together with
//! WaitingJob(n) (one status write per split); see `reconcile`.

use roiergasias_crd::{MachineState, WorkflowStatus};
use roiergasias_engine::EnvVar;
use roiergasias_engine::outputs::parse_outputs;

/// The machine's state, as persisted in status (`state` + `currentSplit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    Pending,
    Split(u32),
    WaitingJob(u32),
    Done,
}

impl Machine {
    /// Reads the state from a status; a missing or inconsistent one restarts at Pending, which
    /// only validates and re-plans (nothing is created from Pending).
    pub fn of(status: Option<&WorkflowStatus>) -> Machine {
        let Some(status) = status else {
            return Machine::Pending;
        };
        match (status.state, status.current_split) {
            (Some(MachineState::Split), Some(n)) if n >= 1 => Machine::Split(n),
            (Some(MachineState::WaitingJob), Some(n)) if n >= 1 => Machine::WaitingJob(n),
            (Some(MachineState::Done), _) => Machine::Done,
            _ => Machine::Pending,
        }
    }
}

/// Whether an object the controller names exists and who controls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    Missing,
    /// Exists, controlled by this Workflow (same UID): created by us, perhaps before a restart.
    Ours,
    /// Exists, controlled by something else; the text says by what.
    Foreign(String),
}

/// What a Job's conditions say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    Complete,
    Failed { reason: String, message: String },
}

/// What the controller saw before deciding; only the fields the current state needs are filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub config_map: Presence,
    pub job: Presence,
    pub job_outcome: Option<JobOutcome>,
    /// Termination message of the Job's finished pod (outputs JSON on success, the error on
    /// failure); `None` when no such pod was found.
    pub pod_message: Option<String>,
    /// The Job finished but its finished pod is gone (deleted, or garbage-collected while no
    /// controller ran), so whatever it reported is lost.
    pub pod_gone: bool,
    /// The scheduler's reason when the running Job's pod fits no node (say, no node carries the
    /// split's label).
    pub unschedulable: Option<String>,
    /// Why the running Job cannot create its pod, when admission refused it for good (Pod
    /// Security, a validating webhook): the Job controller's FailedCreate Event. The Job itself
    /// never fails for this; it retries forever.
    pub pod_refused: Option<String>,
    /// The running Job has no pod yet, so a refusal may still come: look again soon.
    pub no_pod_yet: bool,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            config_map: Presence::Missing,
            job: Presence::Missing,
            job_outcome: None,
            pod_message: None,
            pod_gone: false,
            unschedulable: None,
            pod_refused: None,
            no_pod_yet: false,
        }
    }
}

/// The plan of a valid workflow: each split's node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub nodes: Vec<Option<String>>,
}

/// The next thing to do; each ends in exactly one status write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Pending → Split(1): the workflow is valid.
    Start { nodes: Vec<Option<String>> },
    /// Split(n) → WaitingJob(n): create what is missing, ConfigMap first.
    CreateSplit {
        split: u32,
        config_map: bool,
        job: bool,
    },
    /// WaitingJob(n), Job still running: the Job's next change wakes us. Status says whether
    /// its pod cannot be scheduled (and why), so a split stuck on a node nobody has is visible.
    Wait {
        split: u32,
        unschedulable: Option<String>,
    },
    /// WaitingJob(n) → Split(n+1), or Done(Succeeded) after the last split.
    Advance {
        split: u32,
        outputs: Vec<EnvVar>,
        /// Set when the pod's termination message was present but not outputs JSON.
        ignored_message: Option<String>,
    },
    /// → Done(Failed).
    Fail { reason: FailReason, message: String },
    /// Done: nothing ever again.
    Nothing,
}

/// Why a workflow failed; the Event and condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    InvalidWorkflow,
    NameConflict,
    JobFailed,
    JobDeleted,
    /// The API server refused an object the controller built from the spec.
    Rejected,
    /// Carried outputs grew past what a status and ConfigMap can hold.
    OutputsTooLarge,
    /// The status would outgrow the object limit (see `crate::bounds`).
    StatusTooLarge,
    /// The pod template was refused by admission (Pod Security, a quota, a webhook).
    PodRefused,
    /// The operator's policy refuses what the jobTemplate asks for (see `crate::policy`).
    Refused,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::InvalidWorkflow => "InvalidWorkflow",
            FailReason::NameConflict => "NameConflict",
            FailReason::JobFailed => "JobFailed",
            FailReason::JobDeleted => "JobDeleted",
            FailReason::Rejected => "Rejected",
            FailReason::OutputsTooLarge => "OutputsTooLarge",
            FailReason::StatusTooLarge => "StatusTooLarge",
            FailReason::PodRefused => "PodRefused",
            FailReason::Refused => "Refused",
        }
    }
}

/// Decides the next action. `plan` is the engine's verdict on the spec (only used in Pending);
/// `names` gives split n's ConfigMap and Job names for messages.
pub fn next_action(
    machine: Machine,
    plan: Option<&Result<Planned, String>>,
    observed: &Observed,
    names: impl Fn(u32) -> (String, String),
) -> Action {
    match machine {
        Machine::Done => Action::Nothing,
        Machine::Pending => match plan {
            Some(Ok(planned)) => Action::Start {
                nodes: planned.nodes.clone(),
            },
            Some(Err(message)) => Action::Fail {
                reason: FailReason::InvalidWorkflow,
                message: format!("invalid workflow:\n{message}"),
            },
            // The caller always plans in Pending; without a plan, do nothing rather than guess.
            None => Action::Nothing,
        },
        Machine::Split(n) => {
            let (config_map, job) = names(n);
            if let Presence::Foreign(owner) = &observed.config_map {
                return conflict("ConfigMap", &config_map, owner);
            }
            if let Presence::Foreign(owner) = &observed.job {
                return conflict("Job", &job, owner);
            }
            Action::CreateSplit {
                split: n,
                config_map: observed.config_map == Presence::Missing,
                job: observed.job == Presence::Missing,
            }
        }
        Machine::WaitingJob(n) => {
            let (_, job) = names(n);
            match &observed.job {
                Presence::Foreign(owner) => return conflict("Job", &job, owner),
                Presence::Missing => {
                    return Action::Fail {
                        reason: FailReason::JobDeleted,
                        message: format!("Job {job} of split {n} was deleted before it finished"),
                    };
                }
                Presence::Ours => {}
            }
            match &observed.job_outcome {
                None | Some(JobOutcome::Running) if observed.pod_refused.is_some() => {
                    Action::Fail {
                        reason: FailReason::PodRefused,
                        message: format!(
                            "split {n}: Job {job} cannot create its pod: {}",
                            observed.pod_refused.as_deref().unwrap_or_default()
                        ),
                    }
                }
                None | Some(JobOutcome::Running) => Action::Wait {
                    split: n,
                    unschedulable: observed.unschedulable.clone(),
                },
                Some(JobOutcome::Failed { reason, message }) => Action::Fail {
                    reason: FailReason::JobFailed,
                    message: job_failure_message(n, &job, reason, message, observed),
                },
                Some(JobOutcome::Complete) => {
                    if observed.pod_gone {
                        return Action::Advance {
                            split: n,
                            outputs: Vec::new(),
                            ignored_message: Some(format!(
                                "Job {job} completed but its pod is gone, so any outputs it \
                                 reported could not be carried forward"
                            )),
                        };
                    }
                    let text = observed.pod_message.as_deref().unwrap_or("").trim();
                    if text.is_empty() {
                        return Action::Advance {
                            split: n,
                            outputs: Vec::new(),
                            ignored_message: None,
                        };
                    }
                    match parse_outputs(text) {
                        Ok(outputs) => Action::Advance {
                            split: n,
                            outputs,
                            ignored_message: None,
                        },
                        Err(e) => Action::Advance {
                            split: n,
                            outputs: Vec::new(),
                            ignored_message: Some(format!(
                                "the termination message of Job {job}'s pod is not outputs JSON \
                                 and was not carried forward: {e}"
                            )),
                        },
                    }
                }
            }
        }
    }
}

/// Why `status` cannot be one this operator wrote, if it cannot: a hand edit, or a bug. Such a
/// status is never acted on or looped over; the caller re-derives it from the spec and the
/// cluster. `planned` is the number of splits of the spec, when known. Pending (re-planned from
/// the spec anyway) and Done (never acted on) need no check.
pub fn corruption(status: &WorkflowStatus, planned: Option<usize>) -> Option<String> {
    if !matches!(
        status.state,
        Some(MachineState::Split | MachineState::WaitingJob)
    ) {
        return None;
    }
    let Some(total) = status.total_splits else {
        return Some("totalSplits is missing".into());
    };
    let total = total as usize;
    if total == 0 || total > crate::plan::MAX_SPLITS {
        return Some(format!(
            "totalSplits {total} is not between 1 and {}",
            crate::plan::MAX_SPLITS
        ));
    }
    if let Some(planned) = planned
        && planned != total
    {
        return Some(format!(
            "totalSplits {total}, but the workflow has {planned} split(s)"
        ));
    }
    if status.splits.len() != total {
        return Some(format!(
            "{} split record(s) for totalSplits {total}",
            status.splits.len()
        ));
    }
    match status.current_split {
        Some(n) if n >= 1 && n as usize <= total => {}
        other => {
            return Some(format!(
                "currentSplit {other:?} is not between 1 and totalSplits {total}"
            ));
        }
    }
    let misplaced = status
        .splits
        .iter()
        .enumerate()
        .find(|(i, r)| r.index as usize != i + 1);
    if let Some((i, record)) = misplaced {
        return Some(format!("split record {} has index {}", i + 1, record.index));
    }
    None
}

fn conflict(kind: &str, name: &str, owner: &str) -> Action {
    Action::Fail {
        reason: FailReason::NameConflict,
        message: format!(
            "{kind} {name} already exists and is not owned by this Workflow ({owner}); \
             delete or rename it, then re-create the Workflow"
        ),
    }
}

fn job_failure_message(
    n: u32,
    job: &str,
    reason: &str,
    message: &str,
    observed: &Observed,
) -> String {
    let mut text = format!("split {n}: Job {job} failed");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => text.push_str(&format!(" ({reason}: {message})")),
        (false, true) => text.push_str(&format!(" ({reason})")),
        (true, false) => text.push_str(&format!(" ({message})")),
        (true, true) => {}
    }
    match observed.pod_message.as_deref().map(str::trim) {
        Some(pod) if !pod.is_empty() => text.push_str(&format!("; its pod reported: {pod}")),
        _ if observed.pod_gone => text.push_str("; its pod is gone"),
        _ => text.push_str("; its pod left no termination message"),
    }
    text
}

#[cfg(test)]
mod tests;
