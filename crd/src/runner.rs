//! The default runner container: what the operator adds to a split's pod when the Workflow's
//! jobTemplate has no containers, and what `roiergasias submit --image` writes. In one place so
//! both stay restricted-PSS and read the file where the original's manifests put it.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, SeccompProfile, SecurityContext, VolumeMount,
};

/// Name of the default runner container; also preferred when reading termination messages.
pub const RUNNER_CONTAINER: &str = "roiergasias";
/// The volume the workflow file is mounted from, named as in the original operator.
pub const VOLUME: &str = "yaml";
/// The runner's writable scratch directory (its root filesystem is read-only): an emptyDir at
/// [`SCRATCH_DIR`], named so it cannot clash with a template's volumes.
pub const SCRATCH_VOLUME: &str = "roiergasias-tmp";
/// Where the scratch volume is mounted; `TMPDIR` names it, so the runner's `ROIERGASIAS_ENV`
/// files and the commands' own temporary files land there.
pub const SCRATCH_DIR: &str = "/tmp";
/// The runner image's user (docker/runner.Dockerfile), set explicitly so `runAsNonRoot` holds
/// for an image whose USER is a name.
pub const RUNNER_UID: i64 = 65532;

/// The seccomp profile of the restricted Pod Security Standard.
pub fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// Runs `/root/roiergasias run` on workflow `name`'s file, mounted as the original's manifests do
/// (`/root/<name>/<name>.yaml`), from `image`.
pub fn default_container(name: &str, image: &str) -> Container {
    Container {
        name: RUNNER_CONTAINER.into(),
        image: Some(image.to_owned()),
        command: Some(vec![
            "/root/roiergasias".into(),
            "run".into(),
            format!("--file=/root/{name}/{name}.yaml"),
        ]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: VOLUME.into(),
                mount_path: format!("/root/{name}"),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: SCRATCH_VOLUME.into(),
                mount_path: SCRATCH_DIR.into(),
                ..Default::default()
            },
        ]),
        env: Some(vec![EnvVar {
            name: "TMPDIR".into(),
            value: Some(SCRATCH_DIR.into()),
            ..Default::default()
        }]),
        // The runner writes outputs (or its error) there; a crash leaves the log's tail instead.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
