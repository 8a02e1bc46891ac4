//! The `roiergasias` cluster commands as a user runs them: the binary against the test cluster
//! (KUBECONFIG) with the operator binary watching a namespace of the test's own.
//!
//! Tests marked `needs a cluster` run under `cargo xtask test`; `logs_show_every_split_in_order`
//! also needs the real nodes. The others need no cluster and run with `cargo test`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams};
use roiergasias_crd::Workflow;
use roiergasias_testkit::workflow::{THREE, setup};
use roiergasias_testkit::{Operator, TestNamespace, wait_deleted};

const CLI: &str = env!("CARGO_BIN_EXE_roiergasias");
/// A hang guard for one command; a three-split run on kwok takes seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The operator binary: `ROIERGASIAS_OPERATOR_BIN`, else built once with cargo.
fn operator_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("ROIERGASIAS_OPERATOR_BIN").filter(|b| !b.is_empty()) {
            return bin.to_string_lossy().into_owned();
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "--message-format=json",
                "-p",
                "roiergasias-controller",
            ])
            .args(["--bin", "roiergasias-operator"])
            .stderr(Stdio::inherit())
            .output()
            .expect("running cargo build");
        assert!(out.status.success(), "building the operator failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|m| {
                (m["target"]["name"] == "roiergasias-operator")
                    .then(|| m["executable"].as_str().map(str::to_owned))
                    .flatten()
            })
            .expect("cargo build names the operator's executable")
    })
}

/// Runs the CLI with `args`, with the environment's KUBECONFIG unless `kubeconfig` replaces it.
async fn cli_with(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut command = tokio::process::Command::new(CLI);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    let run = command.output();
    tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("roiergasias {args:?} still runs after {COMMAND_TIMEOUT:?}"))
        .expect("running roiergasias")
}

async fn cli(args: &[&str]) -> Output {
    cli_with(args, None).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
fn expect_code(out: &Output, code: i32, what: &str) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

fn workflow_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the workflow file");
    path
}

/// A kubeconfig for a server on a port nothing listens on.
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n\
         clusters: [{{name: gone, cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}}}]\n\
         users: [{{name: gone, user: {{token: x}}}}]\n\
         contexts: [{{name: gone, context: {{cluster: gone, user: gone, namespace: elsewhere}}}}]\n"
    );
    workflow_file(dir, "kubeconfig", &config)
}

const INVALID: &str = "version: 0.1\ntask:\n  - sequential:\n      - prnt:\n          - hi\n";

#[tokio::test]
async fn no_cluster_is_one_line_naming_the_server_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = unreachable_kubeconfig(dir.path());
    for args in [
        &["list"][..],
        &["get", "x"],
        &["delete", "x"],
        &["logs", "x"],
    ] {
        let out = cli_with(args, Some(&config)).await;
        let (_, stderr) = expect_code(&out, 1, "no cluster");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("cannot reach the cluster at https://127.0.0.1:"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn an_invalid_file_exits_2_with_its_position_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = unreachable_kubeconfig(dir.path());
    let file = workflow_file(dir.path(), "bad.yaml", INVALID);
    let out = cli_with(&["submit", "-f", file.to_str().unwrap()], Some(&config)).await;
    let (stdout, stderr) = expect_code(&out, 2, "invalid workflow");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("bad.yaml:4:9:"), "{stderr}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
}

#[tokio::test]
async fn argument_errors_exit_2() {
    let out = cli(&[
        "submit",
        "-f",
        "x.yaml",
        "--name",
        "a",
        "--generate-name",
        "b-",
    ])
    .await;
    let (_, stderr) = expect_code(&out, 2, "--name with --generate-name");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let out = cli(&["get"]).await;
    expect_code(&out, 2, "get without a name");
    let out = cli(&["get", "x", "-o", "toml"]).await;
    let (_, stderr) = expect_code(&out, 2, "an unknown output format");
    assert!(stderr.contains("wide, json, yaml"), "{stderr}");
}

#[tokio::test]
async fn as_kubectl_plugin_help_names_kubectl_roiergasias() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl-roiergasias");
    std::os::unix::fs::symlink(CLI, &link).unwrap();
    let out = tokio::process::Command::new(&link)
        .args(["list", "--help"])
        .output()
        .await
        .unwrap();
    let (stdout, _) = expect_code(&out, 0, "plugin help");
    assert!(
        stdout.contains("Usage: kubectl roiergasias list"),
        "{stdout}"
    );
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn submit_watch_list_get_delete_a_three_split_workflow() {
    let (_client, ns) = setup("cli-three").await;
    let _operator = Operator::start(operator_bin(), &ns.name);
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "hello-world.yaml", THREE);
    let file = file.to_str().unwrap();
    let n = ns.name.as_str();

    let out = cli(&["submit", "-f", file, "--name", "three", "--watch", "-n", n]).await;
    let (stdout, _) = expect_code(&out, 0, "submit --watch of a succeeding workflow");
    assert!(
        stdout.starts_with("workflow.batch.ankursoni.github.io/three created\n"),
        "{stdout}"
    );
    for (i, node) in [(1, "node1"), (2, "node2"), (3, "node2")] {
        let line = format!("split {i}/3   node {node}   job three-{i}-{node}   Succeeded in ");
        assert!(stdout.contains(&line), "no {line:?} in\n{stdout}");
    }
    assert!(
        stdout.contains("workflow three Succeeded: 3/3 splits"),
        "{stdout}"
    );

    let (stdout, _) = expect_code(&cli(&["list", "-n", n]).await, 0, "list");
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["three", "Succeeded", "3/3", "node2"], "{stdout}");
    let (stdout, _) = expect_code(&cli(&["list", "-A"]).await, 0, "list -A");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(n) && l.contains(" three ")),
        "{stdout}"
    );

    let (stdout, _) = expect_code(&cli(&["get", "three", "-n", n]).await, 0, "get");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("SPLIT"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for (row, (i, node)) in rows
        .iter()
        .zip([("1", "node1"), ("2", "node2"), ("3", "node2")])
    {
        let job = format!("three-{i}-{node}");
        assert_eq!(row[..4], [i, node, job.as_str(), "Succeeded"], "{stdout}");
    }
    assert!(stdout.contains("\nCarried environment:\n"), "{stdout}");
    let (stdout, _) = expect_code(
        &cli(&["get", "three", "-n", n, "-o", "json"]).await,
        0,
        "get -o json",
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["status"]["phase"], "Succeeded");
    assert_eq!(json["spec"]["workflowYAML"]["yaml"], THREE);
    let (stdout, _) = expect_code(
        &cli(&["get", "three", "-n", n, "-o", "yaml"]).await,
        0,
        "get -o yaml",
    );
    assert!(stdout.contains("phase: Succeeded"), "{stdout}");

    let (stdout, _) = expect_code(&cli(&["delete", "three", "-n", n]).await, 0, "delete");
    assert_eq!(stdout, "workflow.batch.ankursoni.github.io/three deleted\n");
    wait_deleted(&ns.api::<Workflow>(), "three", "the deleted Workflow").await;
    let (_, stderr) = expect_code(
        &cli(&["get", "three", "-n", n]).await,
        1,
        "get after delete",
    );
    assert!(stderr.contains("\"three\" not found"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn submit_watch_of_a_failing_workflow_exits_1() {
    let (_client, ns) = setup("cli-fail").await;
    // Split 2's ConfigMap name, taken by someone else: the operator fails the workflow there.
    let taken: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "doomed-hello-world-2-node2"}, "data": {"x": "y"}
    }))
    .unwrap();
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &taken)
        .await
        .unwrap();
    let _operator = Operator::start(operator_bin(), &ns.name);
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "hello-world.yaml", THREE);
    let args = [
        "submit",
        "-f",
        file.to_str().unwrap(),
        "--name",
        "doomed",
        "-w",
        "-n",
        &ns.name,
    ];
    let out = cli(&args).await;
    let (stdout, stderr) = expect_code(&out, 1, "submit --watch of a failing workflow");
    assert!(
        stdout.contains("split 1/3   node node1   job doomed-1-node1   Succeeded"),
        "{stdout}"
    );
    assert!(
        stderr.contains("workflow doomed Failed after 1/3 splits"),
        "{stderr}"
    );
    assert!(stderr.contains("doomed-hello-world-2-node2"), "{stderr}");
    // watch of the ended run reports the same, at once.
    let out = cli(&["watch", "doomed", "-n", &ns.name]).await;
    expect_code(&out, 1, "watch of a failed workflow");
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn an_invalid_file_creates_nothing_and_errors_name_what_to_do() {
    let (client, ns) = setup("cli-invalid").await;
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "bad.yaml", INVALID);
    let out = cli(&["submit", "-f", file.to_str().unwrap(), "-n", &ns.name]).await;
    let (_, stderr) = expect_code(&out, 2, "invalid workflow");
    assert!(stderr.contains("bad.yaml:4:9:"), "{stderr}");
    let listed = Api::<Workflow>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "{:?}", listed.items);
    let (_, stderr) = expect_code(&cli(&["list", "-n", &ns.name]).await, 0, "an empty list");
    assert!(
        stderr.contains(&format!("No workflows in namespace {}", ns.name)),
        "{stderr}"
    );
    let (_, stderr) = expect_code(
        &cli(&["watch", "nope", "-n", &ns.name]).await,
        1,
        "watch of none",
    );
    assert!(stderr.contains("\"nope\" not found"), "{stderr}");
}

/// Real pods: every split's real output, prefixed and in order, after the run and followed.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn logs_show_every_split_in_order() {
    let client = roiergasias_testkit::client().await;
    roiergasias_testkit::ensure_crds(&client).await;
    let ns = TestNamespace::on_real_nodes(&client, "cli-logs").await;
    let _operator = Operator::start_real(operator_bin(), &ns.name, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "hello-world.yaml", THREE);
    let n = ns.name.as_str();
    let out = cli(&[
        "submit",
        "-f",
        file.to_str().unwrap(),
        "--name",
        "talk",
        "-n",
        n,
    ])
    .await;
    expect_code(&out, 0, "submit");
    let (followed, _) = expect_code(&cli(&["logs", "talk", "-f", "-n", n]).await, 0, "logs -f");
    let (after, _) = expect_code(&cli(&["logs", "talk", "-n", n]).await, 0, "logs");
    for stdout in [&followed, &after] {
        let lines: Vec<&str> = stdout.lines().collect();
        let at = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in\n{stdout}"))
        };
        let (one, two, three) = (
            at("[split 1 · node1] one"),
            at("[split 2 · node2] two 1"),
            at("[split 3 · node2] three"),
        );
        assert!(one < two && two < three, "{stdout}");
    }
    let (only, _) = expect_code(
        &cli(&["logs", "talk", "--split", "2", "--no-prefix", "-n", n]).await,
        0,
        "--split 2",
    );
    assert!(only.lines().any(|l| l == "two 1"), "{only}");
    assert!(!only.contains("three"), "{only}");
}
