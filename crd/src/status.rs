//! The Workflow's status: the controller's state machine, made durable.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: True while splits remain to run.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: True once every split succeeded.
pub const CONDITION_COMPLETE: &str = "Complete";
/// Condition type: True once the workflow failed.
pub const CONDITION_FAILED: &str = "Failed";
/// Condition type: True while spec.suspend holds the workflow before its next split.
pub const CONDITION_SUSPENDED: &str = "Suspended";

/// Observed state of a Workflow. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// For people and tools: Pending (not yet checked), Running, Suspended, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The controller's state machine: Pending → Split → WaitingJob → … → Done. In Split the
    /// ConfigMap and Job of `currentSplit` are still to be created (recorded only when creating
    /// them failed and is retried); in WaitingJob its Job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MachineState>,

    /// The split the machine is at, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub current_split: Option<u32>,

    /// Number of splits of the workflow (one per task when tasks name nodes, else 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub total_splits: Option<u32>,

    /// Splits completed / splits in total, e.g. "2/3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,

    /// Node label of the current split, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_node: Option<String>,

    /// Name of the current split's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_job: Option<String>,

    /// Node label of each split in order; empty for a workflow without nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,

    /// Why the workflow is in its phase; on failure, the validation error or the failed Job's
    /// reason and its pod's termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Environment carried to the next splits: the environment-step values of finished splits
    /// and the outputs their pods reported, later values replacing earlier ones of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<CarriedVar>,

    /// One record per split, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<SplitRecord>,

    /// The Job running now, if any (as the original operator's status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_jobs: ActiveJobs,

    /// Jobs that completed successfully.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successful_jobs: Vec<ObjectReference>,

    /// Jobs that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_jobs: Vec<ObjectReference>,

    /// When the operator started the first split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the workflow reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The last spec.retry request acted on, accepted or refused, so each is acted on once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retry: Option<LastRetry>,

    /// Progressing, Complete and Failed, in the Kubernetes condition convention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What the operator did with a spec.retry request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRetry {
    /// The spec.retry.request acted on.
    pub request: i64,
    /// Whether the workflow runs again; if not, `message` says why.
    pub accepted: bool,
    /// The split it runs again from, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub from_split: Option<u32>,
    /// What was done, or why the request was refused.
    pub message: String,
    /// When the operator acted on it.
    pub time: Time,
}

/// An earlier attempt of a split, kept when the split runs again.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Its number, from 1.
    #[schemars(with = "i32")]
    pub attempt: u32,
    /// Its ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Its Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// How it ended: Succeeded, Failed, or Pending for one that never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SplitPhase>,
    /// When its Job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When its Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Why it failed, or why it was run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// References to running Jobs.
pub type ActiveJobs = Vec<ObjectReference>;

/// A variable carried from earlier splits into the next ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CarriedVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: String,
}

/// Phase of a Workflow, for people and tools.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Not yet checked by the operator.
    Pending,
    /// Splits are running.
    Running,
    /// spec.suspend holds the workflow before its next split.
    Suspended,
    /// Every split's Job completed.
    Succeeded,
    /// The workflow is invalid or a Job failed.
    Failed,
}

/// State of the controller's state machine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MachineState {
    /// The workflow text is not yet validated.
    Pending,
    /// The ConfigMap and Job of `currentSplit` are still to be created.
    Split,
    /// Waiting for the Job of `currentSplit` to finish.
    WaitingJob,
    /// Finished: see phase.
    Done,
}

/// What happened to one split.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitRecord {
    /// Position of the split, from 1.
    #[schemars(with = "i32")]
    pub index: u32,
    /// Node label the split runs on, if its task names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Name of the split's ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Name of the split's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Pending, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SplitPhase>,
    /// When the split's Job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the split's Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The attempt the fields above describe, from 1 (unset: 1); a retry's objects are named
    /// `<name>-retry<attempt>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub attempt: Option<u32>,
    /// Automatic retries spent on this split (spec.retryStrategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub automatic_retries: Option<u32>,
    /// An automatic retry waits until then before its Job is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Time>,
    /// The outputs this split's pod reported, so a retry from an earlier split can drop them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<CarriedVar>,
    /// True when `outputs` were too large to keep here too (they are still carried); a retry
    /// cannot then start before the next split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs_omitted: Option<bool>,
    /// Earlier attempts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// Phase of one split.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SplitPhase {
    /// Not started.
    Pending,
    /// Its Job runs.
    Running,
    /// Its Job completed.
    Succeeded,
    /// Its Job failed.
    Failed,
}
