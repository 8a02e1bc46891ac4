//! The ConfigMap and Job of one split, built from the Workflow: pure, no client.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use roiergasias_crd::Workflow;
use roiergasias_engine::{EnvVar, Split};

pub use roiergasias_crd::runner::{RUNNER_CONTAINER, RUNNER_UID, SCRATCH_VOLUME, VOLUME};

use crate::names::{MAX_LABEL_VALUE, SplitNames, fit};

/// Node splits select nodes carrying this label.
pub const NODE_LABEL: &str = "node.roiergasias";
/// Node splits carry this annotation, as in the original operator.
pub const NODE_ANNOTATION: &str = "node";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "roiergasias-operator";
pub const WORKFLOW_LABEL: &str = "batch.ankursoni.github.io/workflow";
pub const SPLIT_LABEL: &str = "batch.ankursoni.github.io/split";

/// Everything a split's objects are built from.
pub struct SplitInput<'a> {
    pub workflow: &'a Workflow,
    pub split: &'a Split,
    /// Outputs of earlier splits' pods, appended after the split's environment.
    pub carried: &'a [EnvVar],
    pub names: &'a SplitNames,
    pub runner_image: &'a str,
}

impl SplitInput<'_> {
    fn file_name(&self) -> String {
        format!("{}.yaml", self.workflow.spec.workflow_yaml.name)
    }

    /// The split's workflow text: what `roiergasias split` prints for it, plus the carried outputs.
    pub fn workflow_text(&self) -> String {
        self.split
            .workflow
            .with_environment_appended(self.carried)
            .to_yaml()
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            (
                WORKFLOW_LABEL.to_owned(),
                fit(
                    &self.workflow.metadata.name.clone().unwrap_or_default(),
                    MAX_LABEL_VALUE,
                ),
            ),
            (SPLIT_LABEL.to_owned(), self.split.index.to_string()),
        ])
    }

    fn meta(&self, name: &str, mut labels: BTreeMap<String, String>) -> ObjectMeta {
        labels.extend(self.labels());
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: self.workflow.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: owner_reference(self.workflow).map(|r| vec![r]),
            ..Default::default()
        }
    }
}

/// A controller reference to the Workflow, so deleting it deletes its ConfigMaps and Jobs.
pub fn owner_reference(workflow: &Workflow) -> Option<OwnerReference> {
    workflow.controller_owner_ref(&())
}

/// ConfigMap n: the split's workflow under the key `<name>.yaml`.
pub fn config_map(input: &SplitInput) -> ConfigMap {
    ConfigMap {
        metadata: input.meta(&input.names.config_map, BTreeMap::new()),
        data: Some(BTreeMap::from([(input.file_name(), input.workflow_text())])),
        ..Default::default()
    }
}

/// Job n from the Workflow's template: named by `names`, with the volume `yaml` from ConfigMap
/// n (replacing any of that name), node splits pinned by nodeSelector, and the default runner
/// container when the template has none.
pub fn job(input: &SplitInput) -> Job {
    let template = input.workflow.spec.job_template.clone().unwrap_or_default();
    let user_template = input
        .workflow
        .spec
        .job_template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .is_some_and(|s| {
            s.template
                .spec
                .as_ref()
                .is_some_and(|p| !p.containers.is_empty())
        });
    let template_meta = template.metadata.unwrap_or_default();
    let mut spec: JobSpec = template.spec.unwrap_or_default();
    if !user_template && spec.backoff_limit.is_none() {
        // The default runner's steps have side effects: do not run them twice unasked.
        spec.backoff_limit = Some(0);
    }

    let mut pod: PodTemplateSpec = spec.template;
    let mut pod_meta = pod.metadata.unwrap_or_default();
    let mut pod_labels = pod_meta.labels.take().unwrap_or_default();
    pod_labels.extend(input.labels());
    pod_meta.labels = Some(pod_labels);

    let mut pod_spec: PodSpec = pod.spec.unwrap_or_default();
    if pod_spec.containers.is_empty() {
        default_runner(&mut pod_spec, input);
    }
    if pod_spec.restart_policy.is_none() {
        pod_spec.restart_policy = Some("Never".into());
    }
    let mut volumes = pod_spec.volumes.take().unwrap_or_default();
    volumes.retain(|v| v.name != VOLUME);
    volumes.push(Volume {
        name: VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: input.names.config_map.clone(),
            ..Default::default()
        }),
        ..Default::default()
    });
    pod_spec.volumes = Some(volumes);

    let mut annotations = template_meta.annotations.unwrap_or_default();
    if let Some(node) = &input.split.node {
        pod_spec
            .node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(NODE_LABEL.into(), node.clone());
        annotations.insert(NODE_ANNOTATION.into(), node.clone());
        pod_meta
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(NODE_ANNOTATION.into(), node.clone());
    }
    pod.metadata = Some(pod_meta);
    pod.spec = Some(pod_spec);
    spec.template = pod;

    let mut metadata = input.meta(&input.names.job, template_meta.labels.unwrap_or_default());
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Job {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

/// The default runner container, in a pod that passes the `restricted` Pod Security Standard:
/// non-root, RuntimeDefault seccomp, no capabilities, read-only root with an emptyDir scratch
/// directory. Security settings the template already made at pod level are kept.
fn default_runner(pod_spec: &mut PodSpec, input: &SplitInput) {
    pod_spec.containers = vec![default_container(input)];
    let security = pod_spec
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    security.run_as_non_root.get_or_insert(true);
    security.run_as_user.get_or_insert(RUNNER_UID);
    security.run_as_group.get_or_insert(RUNNER_UID);
    security
        .seccomp_profile
        .get_or_insert_with(|| SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        });
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| v.name != SCRATCH_VOLUME);
    volumes.push(Volume {
        name: SCRATCH_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
}

fn default_container(input: &SplitInput) -> Container {
    let name = &input.workflow.spec.workflow_yaml.name;
    roiergasias_crd::runner::default_container(name, input.runner_image)
}

#[cfg(test)]
mod tests;
