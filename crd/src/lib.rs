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
    ActiveJobs, CONDITION_COMPLETE, CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_SUSPENDED,
    CarriedVar, MachineState, Phase, SplitPhase, SplitRecord, WorkflowStatus,
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
}

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
