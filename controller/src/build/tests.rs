use super::*;
use crate::names::split_names;
use roiergasias_crd::runner::SCRATCH_DIR;
use roiergasias_crd::{WorkflowSpec, WorkflowYaml};
use roiergasias_engine::{parse, split};

const MULTI: &str = r#"version: 0.1
environment:
  - GREETING: "hello"
task:
  - node: node1
    sequential:
      - print:
          - "one"
      - environment:
          - FIRST: "1"
  - node: node2
    sequential:
      - print:
          - "two {{env:FIRST}}"
"#;

const SINGLE: &str = r#"version: 0.1
task:
  - sequential:
      - print:
          - "hi"
"#;

fn workflow(yaml: &str, job_template: Option<serde_json::Value>) -> Workflow {
    let mut wf = Workflow::new(
        "demo",
        WorkflowSpec {
            workflow_yaml: WorkflowYaml {
                name: "hello-world".into(),
                yaml: yaml.into(),
            },
            job_template: job_template.map(|t| serde_json::from_value(t).unwrap()),
            ..Default::default()
        },
    );
    wf.metadata.namespace = Some("ns".into());
    wf.metadata.uid = Some("wf-uid".into());
    wf
}

struct Built {
    config_map: ConfigMap,
    job: Job,
}

fn build(wf: &Workflow, index: usize, carried: &[EnvVar]) -> Built {
    let splits = split(&parse(&wf.spec.workflow_yaml.yaml).unwrap());
    let split = &splits[index - 1];
    let names = split_names(
        "demo",
        "hello-world",
        split.index as u32,
        split.node.as_deref(),
    );
    let input = SplitInput {
        workflow: wf,
        split,
        carried,
        names: &names,
        runner_image: "registry.example/roiergasias:1",
    };
    Built {
        config_map: config_map(&input),
        job: job(&input),
    }
}

fn pod_spec(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn original_template() -> serde_json::Value {
    serde_json::json!({
        "metadata": {"labels": {"team": "ml"}},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"annotations": {"kwok.roiergasias.io/termination-message": "{}"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "nodeSelector": {"disk": "ssd"},
                    "containers": [{
                        "name": "roiergasias",
                        "image": "docker.io/ankursoni/roiergasias-operator:workflow",
                        "command": ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"],
                        "volumeMounts": [{"name": "yaml", "mountPath": "/root/hello-world"}]
                    }],
                    "volumes": [
                        {"name": "yaml", "emptyDir": {}},
                        {"name": "data", "emptyDir": {}}
                    ]
                }
            }
        }
    })
}

#[test]
fn configmap_holds_the_split_under_name_yaml_plus_carried_outputs() {
    let wf = workflow(MULTI, None);
    let carried = [EnvVar::new("MODEL", "m.pkl")];
    let built = build(&wf, 2, &carried);
    let data = built.config_map.data.unwrap();
    assert_eq!(data.len(), 1);
    let text = &data["hello-world.yaml"];
    let splits = split(&parse(MULTI).unwrap());
    let expected = splits[1]
        .workflow
        .with_environment_appended(&carried)
        .to_yaml();
    assert_eq!(text, &expected);
    // It is a valid workflow whose environment ends with the carried outputs.
    let reparsed = parse(text).unwrap();
    assert_eq!(
        reparsed.environment.last(),
        Some(&EnvVar::new("MODEL", "m.pkl"))
    );
    assert!(reparsed.environment.contains(&EnvVar::new("FIRST", "1")));
    assert_eq!(
        built.config_map.metadata.name.as_deref(),
        Some("demo-hello-world-2-node2")
    );
}

#[test]
fn objects_are_controlled_by_the_workflow_and_labelled() {
    let wf = workflow(MULTI, None);
    let built = build(&wf, 1, &[]);
    for meta in [&built.config_map.metadata, &built.job.metadata] {
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "wf-uid");
        assert_eq!(owners[0].kind, "Workflow");
        assert_eq!(owners[0].api_version, "batch.ankursoni.github.io/v1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels[WORKFLOW_LABEL], "demo");
        assert_eq!(labels[SPLIT_LABEL], "1");
    }
}

#[test]
fn default_job_runs_the_runner_on_the_mounted_file_and_never_retries() {
    let wf = workflow(SINGLE, None);
    let built = build(&wf, 1, &[]);
    assert_eq!(built.job.metadata.name.as_deref(), Some("demo"));
    let spec = built.job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    let pod = pod_spec(&built.job);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.node_selector, None);
    let c = &pod.containers[0];
    assert_eq!(c.name, "roiergasias");
    assert_eq!(c.image.as_deref(), Some("registry.example/roiergasias:1"));
    assert_eq!(
        c.command.clone().unwrap(),
        [
            "/root/roiergasias",
            "run",
            "--file=/root/hello-world/hello-world.yaml"
        ]
    );
    let mount = &c.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.name.as_str(), mount.mount_path.as_str()),
        ("yaml", "/root/hello-world")
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let volumes = pod.volumes.as_ref().unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, [SCRATCH_VOLUME, VOLUME]);
    let yaml = volumes.iter().find(|v| v.name == VOLUME).unwrap();
    assert_eq!(yaml.config_map.as_ref().unwrap().name, "demo-hello-world");
}

/// What the `restricted` Pod Security Standard (v1.36) refuses in a pod spec, one line per
/// violation; empty when the pod passes.
fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut found = Vec::new();
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    for (field, value) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if value == Some(true) {
            found.push(field.to_owned());
        }
    }
    for v in pod.volumes.iter().flatten() {
        let allowed = v.config_map.is_some()
            || v.empty_dir.is_some()
            || v.secret.is_some()
            || v.projected.is_some()
            || v.downward_api.is_some()
            || v.persistent_volume_claim.is_some()
            || v.ephemeral.is_some()
            || v.csi.is_some();
        if !allowed {
            found.push(format!("volume {} has a restricted type", v.name));
        }
    }
    let pod_seccomp = pod_sc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        let sc = c.security_context.clone().unwrap_or_default();
        let name = &c.name;
        if sc.privileged == Some(true) {
            found.push(format!("{name}: privileged"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            found.push(format!("{name}: allowPrivilegeEscalation != false"));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            found.push(format!("{name}: capabilities do not drop ALL"));
        }
        if caps.add.iter().flatten().any(|a| a != "NET_BIND_SERVICE") {
            found.push(format!("{name}: adds capabilities"));
        }
        if sc.run_as_non_root.or(pod_sc.run_as_non_root) != Some(true) {
            found.push(format!("{name}: runAsNonRoot != true"));
        }
        if sc.run_as_user.or(pod_sc.run_as_user) == Some(0) {
            found.push(format!("{name}: runAsUser 0"));
        }
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str())
            .or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            found.push(format!("{name}: seccompProfile {seccomp:?}"));
        }
        if c.ports
            .iter()
            .flatten()
            .any(|p| p.host_port.is_some_and(|h| h != 0))
        {
            found.push(format!("{name}: hostPort"));
        }
    }
    found
}

#[test]
fn the_default_pod_passes_the_restricted_pod_security_standard() {
    for (yaml, split) in [(SINGLE, 1), (MULTI, 2)] {
        let built = build(&workflow(yaml, None), split, &[]);
        let pod = pod_spec(&built.job);
        assert_eq!(restricted_violations(pod), Vec::<String>::new(), "{pod:#?}");
    }
    // The checker itself catches what the standard refuses: the original's template (root,
    // no securityContext) fails it.
    let original = build(&workflow(MULTI, Some(original_template())), 1, &[]);
    let violations = restricted_violations(pod_spec(&original.job));
    assert!(
        violations.iter().any(|v| v.contains("runAsNonRoot"))
            && violations.iter().any(|v| v.contains("seccompProfile")),
        "{violations:?}"
    );
}

#[test]
fn the_default_runner_has_a_read_only_root_and_a_scratch_dir_named_by_tmpdir() {
    let built = build(&workflow(SINGLE, None), 1, &[]);
    let pod = pod_spec(&built.job);
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let env = c.env.as_ref().unwrap();
    let tmpdir = env.iter().find(|e| e.name == "TMPDIR").unwrap();
    assert_eq!(tmpdir.value.as_deref(), Some(SCRATCH_DIR));
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == SCRATCH_DIR)
        .expect("TMPDIR is a mount");
    assert_eq!(mount.name, SCRATCH_VOLUME);
    assert_ne!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == SCRATCH_VOLUME)
        .unwrap();
    assert!(volume.empty_dir.is_some(), "{volume:?}");
    let pod_sc = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_user, Some(RUNNER_UID));
}

#[test]
fn a_template_without_containers_keeps_its_own_pod_security_choices() {
    let wf = workflow(
        SINGLE,
        Some(serde_json::json!({
            "spec": {"template": {"spec": {
                "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
                "volumes": [{"name": SCRATCH_VOLUME, "hostPath": {"path": "/x"}}]
            }}}
        })),
    );
    let built = build(&wf, 1, &[]);
    let pod = pod_spec(&built.job);
    let sc = pod.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(1000));
    assert_eq!(sc.fs_group, Some(2000));
    assert_eq!(sc.run_as_non_root, Some(true));
    let scratch: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name == SCRATCH_VOLUME)
        .collect();
    assert_eq!(scratch.len(), 1);
    assert!(scratch[0].empty_dir.is_some() && scratch[0].host_path.is_none());
}

#[test]
fn a_template_with_its_own_containers_gets_no_security_settings_added() {
    let built = build(&workflow(MULTI, Some(original_template())), 1, &[]);
    let pod = pod_spec(&built.job);
    assert_eq!(pod.security_context, None);
    assert!(
        !pod.volumes
            .iter()
            .flatten()
            .any(|v| v.name == SCRATCH_VOLUME),
        "the original's pods are left as written"
    );
    assert_eq!(pod.containers[0].security_context, None);
}

#[test]
fn node_splits_are_pinned_by_selector_and_annotated() {
    let wf = workflow(MULTI, None);
    let built = build(&wf, 2, &[]);
    assert_eq!(built.job.metadata.name.as_deref(), Some("demo-2-node2"));
    let pod = pod_spec(&built.job);
    assert_eq!(pod.node_selector.as_ref().unwrap()[NODE_LABEL], "node2");
    assert_eq!(
        built.job.metadata.annotations.as_ref().unwrap()[NODE_ANNOTATION],
        "node2"
    );
    let pod_meta = built
        .job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        pod_meta.annotations.as_ref().unwrap()[NODE_ANNOTATION],
        "node2"
    );
    assert_eq!(pod_meta.labels.as_ref().unwrap()[SPLIT_LABEL], "2");
}

#[test]
fn an_original_template_is_kept_except_the_yaml_volume_and_the_name() {
    let wf = workflow(MULTI, Some(original_template()));
    let built = build(&wf, 1, &[]);
    let job = &built.job;
    assert_eq!(job.metadata.name.as_deref(), Some("demo-1-node1"));
    assert_eq!(job.metadata.labels.as_ref().unwrap()["team"], "ml");
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(2), "the user's choice stays");
    let pod = pod_spec(job);
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("docker.io/ankursoni/roiergasias-operator:workflow")
    );
    let selector = pod.node_selector.as_ref().unwrap();
    assert_eq!(selector["disk"], "ssd");
    assert_eq!(selector[NODE_LABEL], "node1");
    let volumes = pod.volumes.as_ref().unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["data", "yaml"]);
    let yaml = volumes.iter().find(|v| v.name == "yaml").unwrap();
    assert!(yaml.empty_dir.is_none());
    assert_eq!(
        yaml.config_map.as_ref().unwrap().name,
        "demo-hello-world-1-node1"
    );
    let pod_meta = spec.template.metadata.as_ref().unwrap();
    assert_eq!(
        pod_meta.annotations.as_ref().unwrap()["kwok.roiergasias.io/termination-message"],
        "{}"
    );
}

#[test]
fn a_template_without_containers_gets_the_default_container_and_keeps_the_rest() {
    let wf = workflow(
        SINGLE,
        Some(serde_json::json!({
            "spec": {"template": {"spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}}}
        })),
    );
    let built = build(&wf, 1, &[]);
    let pod = pod_spec(&built.job);
    assert_eq!(pod.containers[0].name, RUNNER_CONTAINER);
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("gpu")
    );
    assert_eq!(built.job.spec.as_ref().unwrap().backoff_limit, Some(0));
}

#[test]
fn building_is_deterministic_so_a_restart_rebuilds_the_same_objects() {
    let wf = workflow(MULTI, Some(original_template()));
    let carried = [EnvVar::new("A", "1")];
    let a = build(&wf, 2, &carried);
    let b = build(&wf, 2, &carried);
    assert_eq!(a.config_map, b.config_map);
    assert_eq!(a.job, b.job);
}
