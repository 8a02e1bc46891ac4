//! The examples: hello-world manifests and the machine-learning AWS chart and image.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helm::template;
use crate::support::*;

// ---------------------------------------------------------------------------
// Examples

const HELLO_WORLD: [(&str, &str, &[&str]); 2] = [
    (
        "examples/hello-world/hello-world-kubernetes.yaml",
        "examples/hello-world/hello-world.yaml",
        &[],
    ),
    (
        "examples/hello-world/hello-world-multi-node-kubernetes.yaml",
        "examples/hello-world/hello-world-multi-node.yaml",
        &["node1", "node2", "node2"],
    ),
];

/// Node labels of a workflow's splits (empty without nodes).
pub(crate) fn split_nodes(text: &str) -> Vec<String> {
    let workflow = roiergasias_engine::parse(text).unwrap_or_else(|e| panic!("{e}"));
    roiergasias_engine::split(&workflow)
        .into_iter()
        .filter_map(|s| s.node)
        .collect()
}

#[test]
fn hello_world_manifests_embed_the_example_workflows_in_the_original_format() {
    for (manifest, workflow, nodes) in HELLO_WORLD {
        let doc = yaml(&read(manifest));
        assert_eq!(
            doc["apiVersion"],
            json!("batch.ankursoni.github.io/v1"),
            "{manifest}"
        );
        assert_eq!(doc["kind"], json!("Workflow"), "{manifest}");
        assert_eq!(
            doc["metadata"]["name"],
            json!("roiergasias-demo"),
            "{manifest}"
        );
        assert_eq!(
            doc["spec"]["workflowYAML"]["name"],
            json!("hello-world"),
            "{manifest}"
        );
        let embedded = str_at(&doc, "/spec/workflowYAML/yaml");
        assert_eq!(
            embedded,
            read(workflow),
            "{manifest} must embed {workflow} unchanged"
        );
        assert_eq!(split_nodes(embedded), *nodes, "{manifest}");
        let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], json!("Never"));
        let c = &pod["containers"][0];
        assert_eq!(
            c["image"],
            json!(format!("roiergasias:{}", workspace_version())),
            "the runner image the README builds"
        );
        assert_eq!(
            c["command"],
            json!([
                "/root/roiergasias",
                "run",
                "--file=/root/hello-world/hello-world.yaml"
            ])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "yaml", "mountPath": "/root/hello-world"}])
        );
    }
}

pub(crate) const AWS_CHART: &str = "examples/machine-learning/aws/helm/roiergasias-aws";

#[test]
fn machine_learning_aws_chart_renders_a_workflow_over_two_node_groups() {
    let out = run_ok(
        helm()
            .args(["lint", "--strict", AWS_CHART])
            .current_dir(repo()),
    );
    assert!(out.contains("0 chart(s) failed"), "{out}");

    // Default: a ReadWriteMany claim shared by every task's pod.
    let docs = template(AWS_CHART, "ml", &[]);
    let claim = one(&docs, "PersistentVolumeClaim");
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteMany"]));
    let workflow = one(&docs, "Workflow");
    assert_eq!(workflow["metadata"]["name"], json!("roiergasias-aws"));
    let text = str_at(workflow, "/spec/workflowYAML/yaml");
    assert_eq!(
        text.trim_end(),
        read(&format!("{AWS_CHART}/machine-learning-aws.yaml")).trim_end()
    );
    assert_eq!(split_nodes(text), ["node1", "node2", "node2"]);
    let pod = &workflow["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}])
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "yaml", "mountPath": "/workflow"}, {"name": "data", "mountPath": "/data"}])
    );
    assert_eq!(
        c["command"],
        json!([
            "roiergasias",
            "run",
            "--file=/workflow/machine-learning.yaml"
        ]),
        "the ConfigMap key is <workflowYAML.name>.yaml"
    );
    assert!(c.get("env").is_none());

    // S3 only: no claim, a scratch volume, the bucket in the environment.
    let docs = template(
        AWS_CHART,
        "ml",
        &[
            "storage.persistentVolumeClaim.enabled=false",
            "storage.s3URI=s3://bucket/ml/",
        ],
    );
    assert!(by_kind(&docs, "PersistentVolumeClaim").is_empty());
    let pod = &one(&docs, "Workflow")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"], json!([{"name": "data", "emptyDir": {}}]));
    assert_eq!(
        pod["containers"][0]["env"],
        json!([{"name": "S3_URI", "value": "s3://bucket/ml/"}])
    );

    // Neither: the node groups could not share files.
    let err = run_err(
        helm()
            .args(["template", "r", AWS_CHART])
            .args(["--set", "storage.persistentVolumeClaim.enabled=false"])
            .current_dir(repo()),
    );
    assert!(
        err.contains("storage: enable persistentVolumeClaim or set s3URI"),
        "{err}"
    );
}

#[test]
fn machine_learning_aws_image_holds_every_script_its_workflow_runs() {
    let workflow = read(&format!("{AWS_CHART}/machine-learning-aws.yaml"));
    let dockerfile = read("examples/machine-learning/aws/Dockerfile");
    let scripts: BTreeSet<&str> = workflow
        .split("{{env:scripts}}/")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(
        scripts,
        BTreeSet::from([
            "evaluate-model.py",
            "generate-data.py",
            "process-data.py",
            "train-model.py"
        ])
    );
    for script in scripts.iter().copied().chain(["outputs.py"]) {
        let path = format!("examples/machine-learning/local/{script}");
        assert!(repo().join(&path).is_file(), "{path} exists");
        assert!(dockerfile.contains(&path), "the ML image copies {path}");
    }
    assert!(workflow.contains("sync-data pull"));
    assert!(
        dockerfile
            .contains("COPY examples/machine-learning/aws/sync-data.sh /usr/local/bin/sync-data")
    );
    assert!(
        repo()
            .join("examples/machine-learning/aws/sync-data.sh")
            .is_file()
    );
}
