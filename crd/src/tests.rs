use super::*;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn crd_json() -> Value {
    serde_json::to_value(Workflow::crd()).unwrap()
}

fn spec_schema() -> Value {
    crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../helm/roiergasias-operator/crds/workflow.yaml"
    );
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run `cargo xtask gen-crd`"));
    assert!(
        committed == crd_yaml(),
        "{path} is stale: run `cargo xtask gen-crd` and commit the result"
    );
}

#[test]
fn crd_identity_matches_the_original_operator() {
    let crd = crd_json();
    assert_eq!(
        crd["metadata"]["name"],
        "workflows.batch.ankursoni.github.io"
    );
    assert_eq!(crd["spec"]["group"], "batch.ankursoni.github.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "Workflow");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1");
    assert_eq!(version["subresources"]["status"], json!({}));
}

#[test]
fn printer_columns_show_phase_progress_node_age_and_wide_job_message() {
    let columns = crd_json()["spec"]["versions"][0]["additionalPrinterColumns"].clone();
    let columns: Vec<(String, String, i64)> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["jsonPath"].as_str().unwrap().to_owned(),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected = [
        ("Phase", ".status.phase", 0),
        ("Progress", ".status.progress", 0),
        ("Node", ".status.currentNode", 0),
        ("Age", ".metadata.creationTimestamp", 0),
        ("Job", ".status.currentJob", 1),
        ("Message", ".status.message", 1),
    ];
    let expected: Vec<(String, String, i64)> = expected
        .iter()
        .map(|(n, p, r)| (n.to_string(), p.to_string(), *r))
        .collect();
    assert_eq!(columns, expected);
}

#[test]
fn spec_is_immutable_but_for_the_lifecycle_controls_and_validated_by_the_api_server() {
    let spec = spec_schema();
    let rules = spec["x-kubernetes-validations"].as_array().unwrap();
    let rules: Vec<&str> = rules.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "self.workflowYAML == oldSelf.workflowYAML",
            "has(self.jobTemplate) == has(oldSelf.jobTemplate) && (!has(self.jobTemplate) || \
             self.jobTemplate == oldSelf.jobTemplate)"
        ]
    );
    for rule in &rules {
        for field in [
            "suspend",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
        ] {
            assert!(!rule.contains(field), "{field} may change: {rule}");
        }
    }
    assert_eq!(spec["properties"]["suspend"]["type"], "boolean");
    for field in ["activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        let schema = &spec["properties"][field];
        assert_eq!(schema["type"], "integer", "{field}");
        assert_eq!(
            schema["minimum"].as_f64(),
            Some(0.0),
            "{field}: non-negative"
        );
    }
    assert_eq!(spec["required"], json!(["workflowYAML"]));
    let wf = &spec["properties"]["workflowYAML"];
    assert_eq!(wf["required"], json!(["name", "yaml"]));
    assert_eq!(wf["properties"]["yaml"]["minLength"], 1);
    assert_eq!(wf["properties"]["yaml"]["maxLength"], MAX_WORKFLOW_YAML_LEN);
    assert_eq!(wf["properties"]["name"]["maxLength"], 63);
    assert!(wf["properties"]["name"]["pattern"].is_string());
}

/// Every field a user writes or reads carries a description, for `kubectl explain`.
#[test]
fn every_field_outside_job_template_has_a_description() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if path.ends_with(".jobTemplate") {
            if schema.get("description").is_none() {
                missing.push(path.into());
            }
            return;
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let child_path = format!("{path}.{name}");
                let opaque =
                    ["metadata", "apiVersion", "kind"].contains(&name.as_str()) && path.is_empty();
                if !opaque && child.get("description").is_none() {
                    missing.push(child_path.clone());
                }
                walk(&child_path, child, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let root = crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let mut missing = Vec::new();
    walk("", &root, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without description: {missing:?}"
    );
}

#[test]
fn job_template_schema_is_structural_without_nested_descriptions() {
    let template = spec_schema()["properties"]["jobTemplate"].clone();
    assert!(
        template["description"]
            .as_str()
            .unwrap()
            .contains("kubectl explain job.spec")
    );
    let containers = &template["properties"]["spec"]["properties"]["template"]["properties"]["spec"]
        ["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(containers["items"]["required"], json!(["name"]));
    // The operator adds the runner container itself: neither template nor containers required.
    assert!(template["properties"]["spec"]["required"].is_null());
    assert!(
        template["properties"]["spec"]["properties"]["template"]["properties"]["spec"]["required"]
            .is_null()
    );
    let nested = serde_json::to_string(&template["properties"]).unwrap();
    assert!(
        !nested.contains("\"description\":"),
        "nested descriptions remain"
    );
}

/// Client-side `kubectl apply` stores the object in an annotation limited to 256 KiB.
#[test]
fn crd_fits_client_side_kubectl_apply() {
    let size = serde_json::to_vec(&Workflow::crd()).unwrap().len();
    assert!(size < 256 * 1024, "CRD is {size} bytes");
}

#[test]
fn original_manifest_deserializes() {
    let manifest = r#"
apiVersion: batch.ankursoni.github.io/v1
kind: Workflow
metadata: {name: roiergasias-demo}
spec:
  workflowYAML: {name: hello-world, yaml: "version: 0.1"}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: roiergasias
              image: docker.io/ankursoni/roiergasias-operator:workflow
              command: ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"]
              volumeMounts: [{name: yaml, mountPath: /root/hello-world}]
"#;
    let wf: Workflow = serde_saphyr::from_str(manifest).unwrap();
    assert_eq!(wf.spec.workflow_yaml.name, "hello-world");
    let pod = wf
        .spec
        .job_template
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(pod.containers[0].name, "roiergasias");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
}

#[test]
fn minimal_manifest_deserializes_and_reserializes_without_job_template() {
    let wf: Workflow = serde_json::from_value(json!({
        "apiVersion": "batch.ankursoni.github.io/v1", "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"workflowYAML": {"name": "x", "yaml": "version: 0.1"}}
    }))
    .unwrap();
    assert!(wf.spec.job_template.is_none());
    let back = serde_json::to_value(&wf.spec).unwrap();
    assert_eq!(
        back,
        json!({"workflowYAML": {"name": "x", "yaml": "version: 0.1"}}),
        "unset lifecycle controls are not written back"
    );
    assert_eq!(
        (
            wf.spec.suspend,
            wf.spec.active_deadline_seconds,
            wf.spec.ttl_seconds_after_finished
        ),
        (None, None, None)
    );
}

#[test]
fn lifecycle_controls_and_the_suspended_phase_read_and_write_back() {
    let spec = json!({
        "workflowYAML": {"name": "x", "yaml": "version: 0.1"},
        "suspend": true, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 0
    });
    let parsed: WorkflowSpec = serde_json::from_value(spec.clone()).unwrap();
    assert_eq!(parsed.suspend, Some(true));
    assert_eq!(parsed.active_deadline_seconds, Some(600));
    assert_eq!(parsed.ttl_seconds_after_finished, Some(0));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), spec);
    // A status written by the operator before these controls still reads.
    let old: WorkflowStatus = serde_json::from_value(json!({
        "phase": "Running", "state": "WaitingJob", "currentSplit": 1, "totalSplits": 1,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "Started",
            "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }))
    .unwrap();
    assert_eq!(old.phase, Some(Phase::Running));
    let suspended: WorkflowStatus = serde_json::from_value(json!({"phase": "Suspended"})).unwrap();
    assert_eq!(suspended.phase, Some(Phase::Suspended));
}

fn job_ref(name: String) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name),
        namespace: Some("a-rather-long-namespace-name".into()),
        uid: Some("0f6a3d3c-8c1e-4b43-9f2a-5d8b2a3c4e5f".into()),
        ..Default::default()
    }
}

/// etcd refuses objects over 1.5 MB; a 1000-split workflow's status must stay far below it.
#[test]
fn status_of_a_thousand_splits_stays_far_below_the_etcd_limit() {
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let wf = "a-workflow-name-of-forty-characters-long";
    let splits: Vec<SplitRecord> = (1..=1000)
        .map(|n| SplitRecord {
            index: n,
            node: Some("node-group-one".into()),
            config_map: Some(format!("{wf}-machine-learning-{n}-node-group-one")),
            job: Some(format!("{wf}-{n}-node-group-one")),
            phase: Some(SplitPhase::Succeeded),
            start_time: Some(now.clone()),
            completion_time: Some(now.clone()),
            ..Default::default()
        })
        .collect();
    let status = WorkflowStatus {
        phase: Some(Phase::Succeeded),
        state: Some(MachineState::Done),
        current_split: Some(1000),
        total_splits: Some(1000),
        progress: Some("1000/1000".into()),
        current_node: Some("node-group-one".into()),
        current_job: Some(format!("{wf}-1000-node-group-one")),
        nodes: vec!["node-group-one".into(); 1000],
        message: Some("x".repeat(4096)),
        environment: (0..100)
            .map(|i| CarriedVar {
                name: format!("VAR_{i}"),
                value: "v".repeat(100),
            })
            .collect(),
        successful_jobs: (1..=1000)
            .map(|n| job_ref(format!("{wf}-{n}-node-group-one")))
            .collect(),
        splits,
        start_time: Some(now.clone()),
        completion_time: Some(now.clone()),
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: CONDITION_COMPLETE.into(),
            status: "True".into(),
            reason: "Succeeded".into(),
            message: "all splits succeeded".into(),
            last_transition_time: now,
            observed_generation: Some(1),
        }],
        ..Default::default()
    };
    let size = serde_json::to_vec(&status).unwrap().len();
    assert!(size < 600 * 1024, "status of 1000 splits is {size} bytes");
    let back: WorkflowStatus =
        serde_json::from_slice(&serde_json::to_vec(&status).unwrap()).unwrap();
    assert_eq!(back, status);
}
