//! Why a workflow fails: typed, with the reason its condition and Event carry, and the message
//! people read in status.

/// The condition and Event reason of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailReason {
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
    /// The workflow ran past spec.activeDeadlineSeconds.
    DeadlineExceeded,
    /// The node running the split's pod was lost (see `crate::observe::node_lost`).
    NodeLost,
}

impl FailReason {
    pub(crate) fn as_str(self) -> &'static str {
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
            FailReason::DeadlineExceeded => "DeadlineExceeded",
            FailReason::NodeLost => "NodeLost",
        }
    }
}

/// A failure of the workflow, as decided by the machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// The engine's validation message, one problem per line.
    #[error("invalid workflow:\n{0}")]
    Invalid(String),
    #[error("status points at split {split} but the workflow has {total} split(s)")]
    NoSuchSplit { split: u32, total: usize },
    #[error(
        "{kind} {name} already exists and is not owned by this Workflow ({owner}); \
         retry the Workflow (a retry names its objects anew), or delete or rename it and \
         re-create the Workflow"
    )]
    NameConflict {
        kind: &'static str,
        name: String,
        owner: String,
    },
    #[error("the API server rejected {kind} {name}: {why}")]
    Rejected {
        kind: &'static str,
        name: String,
        why: String,
    },
    #[error("Job {job} of split {split} was deleted before it finished")]
    JobDeleted { split: u32, job: String },
    /// The Job's message, with its pod's: see [`job_failed`].
    #[error("{0}")]
    JobFailed(String),
    #[error("split {split}: Job {job} cannot create its pod: {why}")]
    PodRefused {
        split: u32,
        job: String,
        why: String,
    },
    /// `why` names the node and what its status says.
    #[error("split {split}: Job {job}'s pod cannot finish: {why}; the Job was suspended")]
    NodeLost {
        split: u32,
        job: String,
        why: String,
    },
    /// The operator's policy, in its own words.
    #[error("{0}")]
    Refused(String),
    /// Carried outputs over their cap (the message of `transition::advanced`).
    #[error("{0}")]
    OutputsTooLarge(String),
    /// The status would not fit under the object limit (the message of `crate::bounds`).
    #[error("{0}")]
    StatusTooLarge(String),
    /// `stopped` says what became of the split's Job.
    #[error(
        "the workflow ran longer than its activeDeadlineSeconds ({deadline} s) and was stopped \
         at split {split}/{total}{stopped}"
    )]
    DeadlineExceeded {
        deadline: i64,
        split: u32,
        total: u32,
        stopped: String,
    },
}

impl Failure {
    pub(crate) fn reason(&self) -> FailReason {
        match self {
            Failure::Invalid(_) | Failure::NoSuchSplit { .. } => FailReason::InvalidWorkflow,
            Failure::NameConflict { .. } => FailReason::NameConflict,
            Failure::Rejected { .. } => FailReason::Rejected,
            Failure::JobDeleted { .. } => FailReason::JobDeleted,
            Failure::JobFailed(_) => FailReason::JobFailed,
            Failure::PodRefused { .. } => FailReason::PodRefused,
            Failure::Refused(_) => FailReason::Refused,
            Failure::OutputsTooLarge(_) => FailReason::OutputsTooLarge,
            Failure::StatusTooLarge(_) => FailReason::StatusTooLarge,
            Failure::DeadlineExceeded { .. } => FailReason::DeadlineExceeded,
            Failure::NodeLost { .. } => FailReason::NodeLost,
        }
    }
}

/// Job `job` of split `n` failed (`reason`, `message` from its Failed condition); `pod` is its
/// pod's termination message, `None` when the pod is gone.
pub(crate) fn job_failed(
    n: u32,
    job: &str,
    reason: &str,
    message: &str,
    pod: Option<&str>,
) -> Failure {
    let mut text = format!("split {n}: Job {job} failed");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => text.push_str(&format!(" ({reason}: {message})")),
        (false, true) => text.push_str(&format!(" ({reason})")),
        (true, false) => text.push_str(&format!(" ({message})")),
        (true, true) => {}
    }
    match pod.map(str::trim) {
        Some(pod) if !pod.is_empty() => text.push_str(&format!("; its pod reported: {pod}")),
        Some(_) => text.push_str("; its pod left no termination message"),
        None => text.push_str("; its pod is gone"),
    }
    Failure::JobFailed(text)
}
