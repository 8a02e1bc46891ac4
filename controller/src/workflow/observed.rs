//! What the machine saw of the cluster, gathered step by step as it asks (see [`Need`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::plan::Plan;

/// Whether an object the controller names exists and who controls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    Missing,
    /// Exists, controlled by this Workflow (same UID): created by us, perhaps before a restart.
    Ours,
    /// Exists, controlled by something else; the text says by what.
    Foreign(String),
}

/// What a Job's conditions say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JobOutcome {
    Running,
    Complete,
    Failed { reason: String, message: String },
}

/// The finished pod of a Job that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FinishedPod {
    /// Its termination message (outputs JSON on success, the error on failure), if it left one.
    Found(Option<String>),
    /// Deleted, or garbage-collected while no controller ran: whatever it reported is lost.
    Gone,
}

/// The current split's Job, as read from the caches or the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JobSeen {
    pub(crate) presence: Presence,
    pub(crate) outcome: JobOutcome,
    /// Read only once the Job ended.
    pub(crate) pod: Option<FinishedPod>,
    /// The scheduler's reason when the running Job's pod fits no node.
    pub(crate) unschedulable: Option<String>,
    /// The running Job has no pod yet.
    pub(crate) no_pod_yet: bool,
    /// The running Job's pod is on a node that is lost: what is known of it, naming the node.
    pub(crate) lost_node: Option<String>,
    pub(crate) created: Option<Time>,
    pub(crate) uid: Option<String>,
}

impl JobSeen {
    pub(crate) fn missing() -> JobSeen {
        JobSeen {
            presence: Presence::Missing,
            outcome: JobOutcome::Running,
            pod: None,
            unschedulable: None,
            no_pod_yet: false,
            lost_node: None,
            created: None,
            uid: None,
        }
    }
}

/// What creating an object gave.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Created {
    /// Created now, or it already existed (a 409); either way, as it is now.
    Exists(Box<ObjectMeta>),
    /// Invalid (422) or too large (413): retrying cannot help.
    Rejected(String),
}

/// Something the machine must know before it can decide; the I/O layer finds it out and asks
/// again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The engine's plan of the spec, with split `build` built when it names one.
    Plan { build: Option<u32> },
    /// Job `name` (the current split's), its outcome, and its pod's.
    Job { name: String },
    /// The Job controller's FailedCreate Events for Job `name`: admission may refuse its pod.
    Refusal { name: String },
    /// The Jobs this Workflow controls, by split: to re-derive a corrupt status.
    OwnedJobs,
}

/// What has been seen so far in this step; each field is filled by the [`Need`] that asks for it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Observed {
    pub(crate) plan: Option<(Option<u32>, Result<Plan, String>)>,
    pub(crate) job: Option<JobSeen>,
    /// Why admission refused the Job's pod for good, if it did.
    pub(crate) refusal: Option<Option<String>>,
    /// The metadata of the Jobs labelled as this Workflow's.
    pub(crate) owned_jobs: Option<Vec<ObjectMeta>>,
    /// The current split's ConfigMap and Job, once created (or found) in this step.
    pub(crate) config_map: Option<Created>,
    pub(crate) created_job: Option<Created>,
    /// The current split's Job was suspended in this step (the deadline passed).
    pub(crate) job_stopped: bool,
}

impl Observed {
    /// The plan, if one was made with split `build` built.
    pub(crate) fn plan_for(&self, build: Option<u32>) -> Option<&Result<Plan, String>> {
        match &self.plan {
            Some((built, plan)) if *built == build => Some(plan),
            _ => None,
        }
    }
}
