//! The `Workflow` custom resource (`batch.ankursoni.github.io/v1`).
//!
//! The spec is compatible with the original Go operator's manifests; `jobTemplate` became optional.
//! The status holds the controller's state machine so a restarted controller resumes where it was.

pub mod runner;
mod schema;
mod status;

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use status::{
    ActiveJobs, Attempt, CONDITION_COMPLETE, CONDITION_FAILED, CONDITION_PROGRESSING,
    CONDITION_SUSPENDED, CarriedVar, LastRetry, MachineState, Phase, SplitPhase, SplitRecord,
    WorkflowStatus,
};

/// API group of the Workflow resource.
pub const GROUP: &str = "batch.ankursoni.github.io";
/// Largest accepted workflow text, in characters: a ConfigMap holds at most 1 MiB, and the
/// carried environment and the Workflow's status need room beside it.
pub const MAX_WORKFLOW_YAML_LEN: u32 = 512 * 1024;

/// A workflow run on Kubernetes: one ConfigMap and one Job per split, one after another, each
/// pinned to the nodes labelled `node.roiergasias=<node>` when its task names a node.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "batch.ankursoni.github.io",
    version = "v1",
    kind = "Workflow",
    namespaced,
    status = "WorkflowStatus",
    derive = "PartialEq",
    shortname = "wf",
    category = "roiergasias",
    doc = "A roiergasias workflow run as a chain of Jobs, one per split, one after another.",
    printcolumn = r#"{"name":"Phase", "type":"string", "jsonPath":".status.phase", "description":"Pending, Running, Suspended, Succeeded or Failed"}"#,
    printcolumn = r#"{"name":"Progress", "type":"string", "jsonPath":".status.progress", "description":"Splits completed / splits in total"}"#,
    printcolumn = r#"{"name":"Node", "type":"string", "jsonPath":".status.currentNode", "description":"Node label of the current split"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Job", "type":"string", "jsonPath":".status.currentJob", "description":"Job of the current split", "priority":1}"#,
    printcolumn = r#"{"name":"Message", "type":"string", "jsonPath":".status.message", "description":"Why the workflow is in its phase", "priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.workflowYAML == oldSelf.workflowYAML",
    "message": "spec.workflowYAML is immutable: a running workflow cannot change under its Jobs; delete and re-create it"
}, {
    "rule": "has(self.jobTemplate) == has(oldSelf.jobTemplate) && (!has(self.jobTemplate) || self.jobTemplate == oldSelf.jobTemplate)",
    "message": "spec.jobTemplate is immutable: a running workflow cannot change under its Jobs; delete and re-create it"
}]))]
pub struct WorkflowSpec {
    /// The workflow to run: its name and its YAML text (roiergasias workflow syntax, version 0.1).
    #[serde(rename = "workflowYAML")]
    pub workflow_yaml: WorkflowYaml,

    /// Template of the Job that runs each split. Optional: without it, or without containers,
    /// the operator runs its default runner container. The operator mounts the split's workflow
    /// as the volume `yaml` (replacing any volume of that name) from the split's ConfigMap, at
    /// `/root/<name>` in the default container, and pins node splits with the nodeSelector
    /// `node.roiergasias: <node>`. The schema below checks structure only; see
    /// `kubectl explain job.spec` for field documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::job_template")]
    pub job_template: Option<JobTemplateSpec>,

    /// True stops the workflow before its next split: a running Job finishes (its outputs are
    /// kept), then no split starts and the phase is Suspended. False (or unset) resumes it. May
    /// change at any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Seconds the workflow may run, counted from status.startTime (suspended time included);
    /// past it the workflow fails with reason DeadlineExceeded and its running Job is suspended.
    /// May change at any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds after status.completionTime (Succeeded or Failed) when the operator deletes the
    /// Workflow, and with it its ConfigMaps, Jobs and pods. Unset keeps it. May change at any
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,

    /// Asks for a retry of a Failed workflow: raise `request` (`roiergasias retry` adds one) and
    /// the operator runs the workflow again from its failed split, or from `fromSplit`, once per
    /// request (status.lastRetry records the request acted on). A request while the workflow is
    /// not Failed is refused, with the reason in status.lastRetry and an Event. May change at
    /// any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryRequest>,

    /// Automatic retries of a split whose Job failed. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
}

/// A request to run a Failed workflow again (spec.retry).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryRequest {
    /// Raised by one for each retry wanted; a value the operator has acted on (status.lastRetry)
    /// asks for nothing.
    #[schemars(range(min = 1))]
    pub request: i64,
    /// The split to run again from, from 1; unset: the split that failed. Earlier splits are
    /// not run again and their outputs are carried; later splits' outputs are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(with = "Option<i32>")]
    pub from_split: Option<u32>,
}

/// How often, and after how long, a split whose Job failed is run again by itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Automatic retries of each split, after its first attempt (default 0, at most 10). A
    /// manual retry gives the splits it runs again this many once more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    #[schemars(with = "Option<i32>")]
    pub limit: Option<u32>,
    /// Seconds before the first automatic retry of a split (default 10), doubled for each
    /// further one, at most an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    #[schemars(with = "Option<i32>")]
    pub backoff_seconds: Option<u32>,
}

/// Automatic retries at most: each adds an attempt record to the status.
pub const MAX_RETRY_LIMIT: u32 = 10;
/// Default seconds before a split's first automatic retry.
pub const DEFAULT_BACKOFF_SECONDS: u32 = 10;
/// Longest wait between automatic retries.
pub const MAX_BACKOFF_SECONDS: u32 = 3600;

/// The workflow's name and text.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct WorkflowYaml {
    /// Name of the workflow: names its ConfigMaps (`<workflow>-<name>...`), the file `<name>.yaml`
    /// in them and the mount path `/root/<name>`. A DNS-1123 label: lower case letters, digits
    /// and '-', at most 63 characters.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The workflow text in roiergasias syntax (version 0.1), checked by the operator before any
    /// Job runs. At most 512 KiB, so that each split's ConfigMap stays under 1 MiB.
    #[schemars(length(min = 1, max = 524288))]
    pub yaml: String,
}

/// Path of the generated CRD, relative to the repository root.
pub const CRD_PATH: &str = "helm/roiergasias-operator/crds/workflow.yaml";

/// The CRD as YAML, exactly as `cargo xtask gen-crd` writes it.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&Workflow::crd()).expect("a CRD always serializes");
    format!("# Generated by `cargo xtask gen-crd` from crd/src; do not edit.\n{body}")
}

impl Workflow {
    /// The status, or an empty one for a workflow never reconciled.
    pub fn status_or_default(&self) -> WorkflowStatus {
        self.status.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
