//! A workflow file wrapped in a Workflow resource: pure, no client.

use k8s_openapi::api::batch::v1::{JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use roiergasias_crd::runner::{RUNNER_UID, SCRATCH_VOLUME, default_container, runtime_default};
use roiergasias_crd::{Workflow, WorkflowSpec, WorkflowYaml};

/// Longest DNS-1123 label (the workflow name names ConfigMaps and a mount path).
const MAX_LABEL: usize = 63;
/// Room the API server leaves a generateName prefix before its 5-character suffix.
const MAX_PREFIX: usize = 58;

/// How the resource is named: exactly, or by a prefix the API server completes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Naming {
    Name(String),
    GenerateName(String),
}

/// The Workflow for workflow text `yaml`, its workflow named `workflow_name`; with `image`, a
/// jobTemplate running that runner image as the operator's default runner would.
pub(crate) fn workflow(
    naming: Naming,
    workflow_name: &str,
    yaml: &str,
    image: Option<&str>,
) -> Workflow {
    let (name, generate_name) = match naming {
        Naming::Name(n) => (Some(n), None),
        Naming::GenerateName(p) => (None, Some(p)),
    };
    let mut resource = Workflow::new(
        "",
        WorkflowSpec {
            workflow_yaml: WorkflowYaml {
                name: workflow_name.to_owned(),
                yaml: yaml.to_owned(),
            },
            job_template: image.map(|i| job_template(i, workflow_name)),
            ..Default::default()
        },
    );
    resource.metadata = ObjectMeta {
        name,
        generate_name,
        ..Default::default()
    };
    resource
}

/// A DNS-1123 label from a file's stem: lower case, other characters as '-', at most `max`.
pub(crate) fn label_from(stem: &str, max: usize) -> String {
    let mapped: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(max).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "workflow".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The workflow name for a file stem.
pub(crate) fn workflow_name(stem: &str) -> String {
    label_from(stem, MAX_LABEL)
}

/// The default naming for a file stem: a generated name starting `<stem>-`.
pub(crate) fn default_naming(stem: &str) -> Naming {
    Naming::GenerateName(format!("{}-", label_from(stem, MAX_PREFIX - 1)))
}

/// What the operator's default runner runs (controller/src/build.rs), in `image`: the same
/// command, mounts and restricted-PSS security settings, and no second attempt.
fn job_template(image: &str, name: &str) -> JobTemplateSpec {
    let container = default_container(name, image);
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUNNER_UID),
            run_as_group: Some(RUNNER_UID),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        volumes: Some(vec![Volume {
            name: SCRATCH_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    JobTemplateSpec {
        metadata: None,
        spec: Some(JobSpec {
            // The steps have side effects: a failed split is not run again unasked.
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(pod),
            },
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "version: 0.1\ntask:\n  - node: a\n    steps:\n      - execute: [\"true\"]\n";

    #[test]
    fn default_runner_has_no_job_template() {
        let wf = workflow(Naming::Name("hello".into()), "hello", TEXT, None);
        let json = serde_json::to_value(&wf).unwrap();
        assert_eq!(json["apiVersion"], "batch.ankursoni.github.io/v1");
        assert_eq!(json["kind"], "Workflow");
        assert_eq!(json["metadata"]["name"], "hello");
        assert!(json["metadata"].get("generateName").is_none());
        assert_eq!(json["spec"]["workflowYAML"]["name"], "hello");
        assert_eq!(json["spec"]["workflowYAML"]["yaml"], TEXT);
        assert!(json["spec"].get("jobTemplate").is_none(), "{json}");
    }

    #[test]
    fn generate_name_sets_only_the_prefix() {
        let wf = workflow(default_naming("Hello_World"), "hello-world", TEXT, None);
        assert_eq!(wf.metadata.name, None);
        assert_eq!(wf.metadata.generate_name.as_deref(), Some("hello-world-"));
    }

    #[test]
    fn image_runs_the_runner_like_the_default_and_restricted() {
        let wf = workflow(Naming::Name("x".into()), "demo", TEXT, Some("reg/runner:1"));
        let job = wf.spec.job_template.expect("a jobTemplate");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        let [c] = pod.containers.as_slice() else {
            panic!("one container")
        };
        assert_eq!(c.name, "roiergasias");
        assert_eq!(c.image.as_deref(), Some("reg/runner:1"));
        assert_eq!(
            c.command.as_deref().unwrap(),
            ["/root/roiergasias", "run", "--file=/root/demo/demo.yaml"]
        );
        let mounts = c.volume_mounts.as_deref().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "yaml" && m.mount_path == "/root/demo")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m.name == SCRATCH_VOLUME && m.mount_path == "/tmp")
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref().unwrap(),
            ["ALL"]
        );
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        // The operator adds the `yaml` volume itself; the scratch one is ours to declare.
        let volumes = pod.volumes.unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0].name, SCRATCH_VOLUME);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn labels_from_file_names() {
        assert_eq!(workflow_name("hello-world"), "hello-world");
        assert_eq!(workflow_name("My Flow.v2"), "my-flow-v2");
        assert_eq!(workflow_name("__"), "workflow");
        assert_eq!(workflow_name(&"a".repeat(100)).len(), 63);
        assert_eq!(
            workflow_name(&format!("{}-b", "a".repeat(62))),
            "a".repeat(62)
        );
        let Naming::GenerateName(p) = default_naming(&"x".repeat(100)) else {
            panic!()
        };
        assert_eq!(p.len(), MAX_PREFIX);
        assert!(p.ends_with('-'));
    }
}
