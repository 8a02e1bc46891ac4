//! Workflows whose pods really run: on the test cluster's two real kubelet nodes (containerd, runc),
//! with the runner image built from docker/runner.Dockerfile. What kwok can only pretend is proven
//! here: the image, the mounted workflow, the runner's output and termination message, signals.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use roiergasias_crd::{Phase, Workflow};
use serde_json::json;

use crate::OPERATOR;
use roiergasias_testkit::TestNamespace;
use roiergasias_testkit::real::{
    RanPod, host_dir, host_dir_template, pods_of, sleeping, wait_file,
};
use roiergasias_testkit::workflow::{wait_phase, workflow};
use roiergasias_testkit::{Operator, until};

/// Real pods start in seconds, not at once as on kwok.
const REAL: Duration = Duration::from_secs(180);

async fn real_setup(prefix: &str) -> (Client, TestNamespace) {
    let client = roiergasias_testkit::client().await;
    roiergasias_testkit::ensure_crds(&client).await;
    let ns = TestNamespace::on_real_nodes(&client, prefix).await;
    (client, ns)
}

fn example(file: &str) -> Workflow {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hello-world")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn the_original_operators_hello_world_manifest_runs_unchanged_on_a_real_node() {
    let (client, ns) = real_setup("real-hello").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let api: Api<Workflow> = ns.api();
    api.create(
        &PostParams::default(),
        &example("hello-world-kubernetes.yaml"),
    )
    .await
    .unwrap();
    wait_phase(&api, "roiergasias-demo", Phase::Succeeded, REAL).await;
    let pods = pods_of(&client, &ns.name, "roiergasias-demo").await;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let RanPod { node, logs, .. } = &pods[0];
    assert!(node.starts_with("real-node"), "ran on {node}");
    for line in [
        "Welcome to roiergasias! Hello, world.",
        "world is cheerful",
        "Task 2 still knows the mood (cheerful) and the lucky number (42).",
        "THE MOOD IS CHEERFUL",
    ] {
        assert!(logs.contains(line), "the pod's log lacks {line:?}:\n{logs}");
    }
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn each_split_runs_on_the_real_node_of_its_label_and_outputs_travel_between_nodes() {
    let (client, ns) = real_setup("real-multi").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let api: Api<Workflow> = ns.api();
    api.create(
        &PostParams::default(),
        &example("hello-world-multi-node-kubernetes.yaml"),
    )
    .await
    .unwrap();
    wait_phase(&api, "roiergasias-demo", Phase::Succeeded, REAL).await;
    let mut logs = Vec::new();
    for (job, node) in [
        ("roiergasias-demo-1-node1", "real-node1"),
        ("roiergasias-demo-2-node2", "real-node2"),
        ("roiergasias-demo-3-node2", "real-node2"),
    ] {
        let pods = pods_of(&client, &ns.name, job).await;
        assert_eq!(pods.len(), 1, "{job}: {pods:?}");
        assert_eq!(pods[0].node, node, "{job} ran on the node its label names");
        logs.push(pods[0].logs.clone());
    }
    assert!(
        logs[1].contains("received: Warm greetings from node1"),
        "{}",
        logs[1]
    );
    // Split 1's command wrote its pod's host name to ROIERGASIAS_ENV on node1.
    assert!(
        logs[2].contains("(data prepared by roiergasias-demo-1-n)"),
        "{}",
        logs[2]
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_command_failing_on_a_real_node_fails_the_workflow_with_the_runners_message() {
    let (_client, ns) = real_setup("real-fail").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let api: Api<Workflow> = ns.api();
    let yaml = "version: 0.1\ntask:\n  - node: node1\n    sequential:\n      - print: [starting]\n      - execute:\n          - \"sh -c 'exit 3'\"\n";
    api.create(&PostParams::default(), &workflow("doomed", yaml, None))
        .await
        .unwrap();
    let done = wait_phase(&api, "doomed", Phase::Failed, REAL).await;
    let message = done.status.and_then(|s| s.message).unwrap_or_default();
    for part in [
        "task 1, step 2 (execute)",
        "sh -c 'exit 3'",
        "exited with status 3",
    ] {
        assert!(
            message.contains(part),
            "status message lacks {part:?}: {message}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn deleting_a_running_workflow_sends_its_command_sigterm_and_leaves_nothing_running() {
    let (client, ns) = real_setup("real-term").await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let witness = host_dir();
    // A sleep whose length marks it, so the test can look for it among the host's processes.
    let marker = format!("{}", 7000 + std::process::id() % 1000);
    let script = format!(
        "trap 'echo got-TERM > /witness/term; exit 143' TERM; sleep {marker} & echo started > /witness/started; wait"
    );
    let yaml = format!(
        "version: 0.1\ntask:\n  - sequential:\n      - shell:\n          - {}\n",
        json!(script)
    );
    let template = host_dir_template(witness.path(), "/witness");
    let api: Api<Workflow> = ns.api();
    api.create(
        &PostParams::default(),
        &workflow("sleeper", &yaml, Some(template)),
    )
    .await
    .unwrap();
    wait_file(&witness.path().join("started"), REAL).await;
    assert!(
        sleeping(&marker),
        "the command's sleep {marker} runs on the host"
    );
    api.delete("sleeper", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_file(&witness.path().join("term"), REAL).await;
    let pods: Api<Pod> = ns.api();
    let what = format!("the pod and its sleep {marker} to end with the deleted Workflow");
    until(&what, REAL, || async {
        let pods: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        let running = sleeping(&marker);
        if pods.is_empty() && !running {
            Ok(())
        } else {
            Err((pods, running))
        }
    })
    .await;
    let _ = client;
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn the_default_pod_passes_restricted_pod_security_and_its_commands_run_on_a_read_only_root() {
    let client = roiergasias_testkit::client().await;
    roiergasias_testkit::ensure_crds(&client).await;
    roiergasias_testkit::require_real_nodes(&client).await;
    let ns = TestNamespace::create_with(
        &client,
        "real-restricted",
        roiergasias_testkit::ON_REAL_NODES,
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    )
    .await;
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let api: Api<Workflow> = ns.api();
    // execute and shell both need the runner's scratch file for ROIERGASIAS_ENV, and TMPDIR.
    let yaml = r#"version: 0.1
task:
  - node: node1
    sequential:
      - execute:
          - "sh -c 'echo \"runas=$(id -u)\" >> \"$ROIERGASIAS_ENV\"'"
      - shell:
          - 'touch "$TMPDIR/scratch" && echo "tmp is writable as uid $runas"'
          - 'if touch /should-fail 2>/dev/null; then echo "root is writable"; exit 1; fi'
  - node: node2
    sequential:
      - print: ["node2 got {{env:runas}}"]
"#;
    api.create(&PostParams::default(), &workflow("locked", yaml, None))
        .await
        .unwrap();
    wait_phase(&api, "locked", Phase::Succeeded, REAL).await;
    let first = pods_of(&client, &ns.name, "locked-1-node1").await;
    assert!(
        first[0].logs.contains("tmp is writable as uid 65532"),
        "{first:?}"
    );
    let second = pods_of(&client, &ns.name, "locked-2-node2").await;
    assert!(second[0].logs.contains("node2 got 65532"), "{second:?}");
}

/// A cluster-wide object deleted when dropped.
struct ClusterScoped(&'static str, String);

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        let _ = std::process::Command::new(roiergasias_testkit::tools_dir().join("kubectl"))
            .args(["delete", self.0, &self.1, "--wait=false"])
            .output();
    }
}

fn kubectl_apply(json: &serde_json::Value) {
    use std::io::Write;
    let mut child = std::process::Command::new(roiergasias_testkit::tools_dir().join("kubectl"))
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "kubectl apply {json}");
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn the_machine_learning_example_runs_on_both_real_nodes_sharing_a_volume() {
    let (client, ns) = real_setup("real-ml").await;
    // On this one machine a hostPath volume stands in for EFS: both nodes see the same directory.
    let data = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let class = format!("efs-{}", ns.name);
    kubectl_apply(&json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": ns.name},
        "spec": {
            "capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
            "storageClassName": class, "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": data.path(), "type": "Directory"},
        },
    }));
    let _pv = ClusterScoped("persistentvolume", ns.name.clone());
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/machine-learning/aws/helm/roiergasias-aws"
    );
    let helm_home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(roiergasias_testkit::tools_dir().join("helm"))
        .args([
            "install",
            "ml",
            chart,
            "--namespace",
            &ns.name,
            "--wait=false",
        ])
        .args([
            "--set",
            &format!("storage.persistentVolumeClaim.storageClassName={class}"),
        ])
        // Two cores run the whole suite: ask for little.
        .args([
            "--set",
            "resources.requests.cpu=100m",
            "--set",
            "resources.requests.memory=256Mi",
        ])
        .env("HELM_CACHE_HOME", helm_home.path().join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.path().join("config"))
        .env("HELM_DATA_HOME", helm_home.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _operator = Operator::start_real(OPERATOR, &ns.name, &[]);
    let api: Api<Workflow> = ns.api();
    wait_phase(
        &api,
        "roiergasias-aws",
        Phase::Succeeded,
        Duration::from_secs(600),
    )
    .await;
    for (job, node) in [
        ("roiergasias-aws-1-node1", "real-node1"),
        ("roiergasias-aws-2-node2", "real-node2"),
        ("roiergasias-aws-3-node2", "real-node2"),
    ] {
        let pods = pods_of(&client, &ns.name, job).await;
        assert_eq!(pods[0].node, node, "{job}");
    }
    let last = pods_of(&client, &ns.name, "roiergasias-aws-3-node2").await;
    let logs = &last[0].logs;
    assert!(
        logs.contains("Completed evaluating machine learning model: test accuracy 0."),
        "{logs}"
    );
    assert!(
        data.path().join("machine-learning/metrics.json").is_file(),
        "the shared volume holds the metrics"
    );
}
