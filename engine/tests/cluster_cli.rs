//! The `roiergasias` cluster commands as a user runs them: the binary against the test cluster
//! (KUBECONFIG) with the operator binary watching a namespace of the test's own.
//!
//! Tests marked `needs a cluster` run under `cargo xtask test`; `logs_show_every_split_in_order`
//! also needs the real nodes. The others need no cluster and run with `cargo test`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use roiergasias_crd::{Phase, Workflow};
use roiergasias_testkit::workflow::{
    THREE, owned_names, pod_annotations, setup, wait_phase, wait_status, workflow,
};
use roiergasias_testkit::{Operator, TestNamespace, wait_deleted};

const CLI: &str = env!("CARGO_BIN_EXE_roiergasias");
/// A hang guard for one command; a three-split run on kwok takes seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);
/// A hang guard for a phase the operator reaches in seconds on kwok.
const WAIT: Duration = Duration::from_secs(60);

/// The operator binary: `ROIERGASIAS_OPERATOR_BIN`, else built once with cargo, with the
/// test-only crash points (`ROIERGASIAS_TEST_CRASH_AFTER`, see controller/src/crash.rs).
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
            .args([
                "--bin",
                "roiergasias-operator",
                "--features",
                "crash-points",
            ])
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

/// `roiergasias submit` of workflow `text` as Workflow `name` in namespace `ns`, which succeeds.
async fn submitted(ns: &str, name: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "hello-world.yaml", text);
    let file = file.to_str().unwrap();
    let out = cli(&["submit", "-f", file, "--name", name, "-n", ns]).await;
    expect_code(&out, 0, "submit");
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

/// Takes ConfigMap `name` as someone else's: the split the operator would give that name fails
/// (the operator never adopts an object it does not own), and a retry of it, whose ConfigMap is
/// named `<name>-retry<k>`, does not. How a split fails once and passes later on kwok, where
/// every pod of a Job template ends alike.
async fn take_config_map(ns: &TestNamespace, name: &str) {
    let taken: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name}, "data": {"x": "y"}
    }))
    .unwrap();
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &taken)
        .await
        .unwrap();
}

/// The rows of the table under `get`'s section `title` (e.g. "Splits:"), each cell split on
/// spaces.
fn rows_in(stdout: &str, title: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| *l != title)
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
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
        &["retry", "x"],
        &["suspend", "x"],
        &["resume", "x"],
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
    let out = cli(&["retry", "x", "--from-split", "0"]).await;
    let (_, stderr) = expect_code(&out, 2, "--from-split 0");
    assert!(stderr.contains("'--from-split <N>'"), "{stderr}");
    let out = cli(&["retry", "x", "--timeout", "0"]).await;
    expect_code(&out, 2, "--timeout 0");
    expect_code(&cli(&["suspend"]).await, 2, "suspend without a name");
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
        assert_eq!(
            row[..5],
            [i, "1", node, job.as_str(), "Succeeded"],
            "{stdout}"
        );
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
    take_config_map(&ns, "doomed-hello-world-2-node2").await;
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
    let n = ns.name.as_str();
    submitted(n, "talk", THREE).await;
    // Watched and followed together, while the splits run.
    let (watch, follow) = (["watch", "talk", "-n", n], ["logs", "talk", "-f", "-n", n]);
    let (watched, followed) = tokio::join!(cli(&watch), cli(&follow));
    let (watched, _) = expect_code(&watched, 0, "watch");
    for split in ["split 1/3", "split 2/3", "split 3/3"] {
        let done = watched
            .lines()
            .any(|l| l.contains(split) && l.contains("Succeeded"));
        assert!(done, "{split} Succeeded:\n{watched}");
    }
    assert!(watched.contains("workflow talk Succeeded"), "{watched}");
    let (followed, _) = expect_code(&followed, 0, "logs -f");
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

/// Suspend before the first split and between splits, resume, then both refused once it ended.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn suspend_and_resume_hold_a_workflow_before_its_next_split() {
    let (client, ns) = setup("cli-suspend").await;
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "hello-world.yaml", THREE);
    let n = ns.name.as_str();
    let held = |verb: &'static str| [verb, "held", "-n", n];
    let out = cli(&[
        "submit",
        "-f",
        file.to_str().unwrap(),
        "--name",
        "held",
        "-n",
        n,
    ])
    .await;
    expect_code(&out, 0, "submit");
    // No operator yet: the suspension is in place before anything runs.
    let (stdout, _) = expect_code(&cli(&held("suspend")).await, 0, "suspend");
    assert_eq!(
        stdout,
        "workflow held suspended: no further split starts (one being started at this moment still runs)\n"
    );
    let (stdout, _) = expect_code(&cli(&held("suspend")).await, 0, "suspend again");
    assert_eq!(stdout, "workflow held is already suspended\n");
    // This operator stops as soon as it sees Job 1 Complete: split 2 is held after that,
    // deterministically, while kwok's pods finish at once.
    let mut operator = Operator::start_with(
        operator_bin(),
        n,
        &[("ROIERGASIAS_TEST_CRASH_AFTER", "advance:1")],
    );
    let api = ns.api::<Workflow>();
    wait_phase(&api, "held", Phase::Suspended, WAIT).await;
    assert_eq!(
        owned_names(&client, n, "held").await.1,
        Vec::<String>::new()
    );
    let (stdout, _) = expect_code(&cli(&held("get")).await, 0, "get");
    assert!(stdout.contains("Phase:       Suspended\n"), "{stdout}");

    let (stdout, _) = expect_code(&cli(&held("resume")).await, 0, "resume");
    assert_eq!(stdout, "workflow held resumed: split 1/3 starts next\n");
    assert_eq!(operator.exited(WAIT).await, Some(86), "{}", operator.log());
    drop(operator);
    let (stdout, _) = expect_code(&cli(&held("suspend")).await, 0, "suspend at split 2");
    assert!(stdout.starts_with("workflow held suspended: "), "{stdout}");
    let _operator = Operator::start(operator_bin(), n);
    wait_status(&api, "held", "held at split 2", |s| {
        s.phase == Some(Phase::Suspended) && s.current_split == Some(2)
    })
    .await;
    assert_eq!(owned_names(&client, n, "held").await.1, ["held-1-node1"]);

    let (stdout, _) = expect_code(&cli(&held("resume")).await, 0, "resume at split 2");
    assert_eq!(stdout, "workflow held resumed: split 2/3 starts next\n");
    let (stdout, _) = expect_code(&cli(&held("resume")).await, 0, "resume again");
    assert_eq!(
        stdout,
        "workflow held is not suspended: nothing to resume\n"
    );
    expect_code(&cli(&held("watch")).await, 0, "watch to the end");
    let (_, jobs) = owned_names(&client, n, "held").await;
    assert_eq!(jobs, ["held-1-node1", "held-2-node2", "held-3-node2"]);
    for verb in ["suspend", "resume"] {
        let (_, stderr) = expect_code(&cli(&held(verb)).await, 1, "after the end");
        assert!(
            stderr.contains(&format!(
                "workflow held has ended (Succeeded): nothing to {verb}"
            )),
            "{stderr}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn unknown_names_are_one_line_errors() {
    let (_client, ns) = setup("cli-unknown").await;
    for verb in ["retry", "suspend", "resume"] {
        let out = cli(&[verb, "nope", "-n", &ns.name]).await;
        let (stdout, stderr) = expect_code(&out, 1, verb);
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("workflow nope: "), "{stderr}");
        assert!(stderr.contains("\"nope\" not found"), "{stderr}");
    }
}

/// Without an operator nothing answers: the wait is bounded and says so, and each request,
/// even two at once, gets a number of its own.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_retry_nobody_answers_times_out_and_requests_never_share_a_number() {
    let (_client, ns) = setup("cli-noanswer").await;
    let n = ns.name.as_str();
    submitted(n, "alone", THREE).await;
    let retry = ["retry", "alone", "--timeout", "2", "-n", n];
    let (stdout, stderr) = expect_code(&cli(&retry).await, 1, "retry without an operator");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "asked for retry 1 of workflow alone; the operator has not acted on it within 2 s: \
             is it running, and watching namespace {n}?"
        )),
        "{stderr}"
    );
    let (first, second) = tokio::join!(cli(&retry), cli(&retry));
    let mut asked: Vec<String> = [first, second]
        .iter()
        .map(|out| {
            let (_, stderr) = expect_code(out, 1, "a concurrent retry");
            let at = stderr.find("asked for retry ").expect("names its request");
            stderr[at..].split(' ').nth(3).unwrap().to_owned()
        })
        .collect();
    asked.sort();
    assert_eq!(asked, ["2", "3"]);
    let wf = ns.api::<Workflow>().get("alone").await.unwrap();
    assert_eq!(wf.spec.retry.map(|r| r.request), Some(3));
}

/// Split 2 fails once (its ConfigMap name is taken); the retry runs it again as attempt 2 under
/// new names, split 1's Job is not re-created, and the run succeeds.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn retry_runs_the_failed_split_again_and_not_the_earlier_ones() {
    let (client, ns) = setup("cli-retry").await;
    take_config_map(&ns, "again-hello-world-2-node2").await;
    let _operator = Operator::start(operator_bin(), &ns.name);
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "hello-world.yaml", THREE);
    let n = ns.name.as_str();
    let out = cli(&[
        "submit",
        "-f",
        file.to_str().unwrap(),
        "--name",
        "again",
        "-w",
        "-n",
        n,
    ])
    .await;
    expect_code(&out, 1, "the first run fails at split 2");
    let jobs: Api<Job> = ns.api();
    let first = jobs.get("again-1-node1").await.unwrap().uid();

    let out = cli(&["retry", "again", "--watch", "-n", n]).await;
    let (stdout, _) = expect_code(&out, 0, "retry --watch");
    assert!(
        stdout.starts_with(
            "retry 1 accepted: split 2/3 runs again as attempt 2 (Job again-2-node2-retry2)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("split 2/3   node node2   job again-2-node2-retry2   Succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("workflow again Succeeded: 3/3 splits"),
        "{stdout}"
    );
    let (_, names) = owned_names(&client, n, "again").await;
    assert_eq!(
        names,
        ["again-1-node1", "again-2-node2-retry2", "again-3-node2"]
    );
    assert_eq!(
        jobs.get("again-1-node1").await.unwrap().uid(),
        first,
        "split 1's Job was re-created"
    );

    let (stdout, _) = expect_code(&cli(&["get", "again", "-n", n]).await, 0, "get");
    let splits = rows_in(&stdout, "Splits:");
    let current: Vec<[&str; 3]> = splits
        .iter()
        .map(|r| [r[1].as_str(), r[3].as_str(), r[4].as_str()])
        .collect();
    assert_eq!(
        current,
        [
            ["1", "again-1-node1", "Succeeded"],
            ["2", "again-2-node2-retry2", "Succeeded"],
            ["1", "again-3-node2", "Succeeded"]
        ],
        "{stdout}"
    );
    // Attempt 1 failed before its Job was created: it never started.
    let earlier = rows_in(&stdout, "Earlier attempts:");
    assert_eq!(earlier.len(), 1, "{stdout}");
    assert_eq!(
        earlier[0][..4],
        ["2", "1", "again-2-node2", "Pending"],
        "{stdout}"
    );
    assert!(
        stdout.contains("Last retry:  retry 1 accepted (from split 2) at "),
        "{stdout}"
    );

    let (stdout, stderr) = expect_code(&cli(&["retry", "again", "-n", n]).await, 1, "again");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("error: retry 2 refused: "), "{stderr}");
    assert!(stderr.contains("succeeded"), "{stderr}");
    assert_eq!(
        owned_names(&client, n, "again").await.1,
        names,
        "nothing ran"
    );
}

/// A Job that fails every time: each retry is one more Job for the same split, and `--watch`
/// exits 1 when the retried run fails again.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_retry_that_fails_again_exits_1_and_each_attempt_is_kept() {
    let (client, ns) = setup("cli-refail").await;
    let failing = pod_annotations(serde_json::json!({
        "kwok.roiergasias.io/fail": "3",
        "kwok.roiergasias.io/fail-message": "step 1: `make` exited with status 3"
    }));
    let api = ns.api::<Workflow>();
    api.create(
        &PostParams::default(),
        &workflow("stubborn", THREE, Some(failing)),
    )
    .await
    .unwrap();
    let _operator = Operator::start(operator_bin(), &ns.name);
    let n = ns.name.as_str();
    wait_phase(&api, "stubborn", Phase::Failed, WAIT).await;
    for k in [2, 3] {
        let out = cli(&["retry", "stubborn", "-w", "-n", n]).await;
        let (stdout, stderr) = expect_code(&out, 1, "a retry that fails again");
        let job = format!("stubborn-1-node1-retry{k}");
        let accepted = format!(
            "retry {} accepted: split 1/3 runs again as attempt {k} (Job {job})\n",
            k - 1
        );
        assert!(stdout.starts_with(&accepted), "{stdout}");
        assert!(stdout.contains(&format!("job {job}   Failed")), "{stdout}");
        assert!(
            stderr.contains("workflow stubborn Failed after 0/3 splits"),
            "{stderr}"
        );
    }
    let (_, jobs) = owned_names(&client, n, "stubborn").await;
    assert_eq!(
        jobs,
        [
            "stubborn-1-node1",
            "stubborn-1-node1-retry2",
            "stubborn-1-node1-retry3"
        ]
    );
    let (stdout, _) = expect_code(&cli(&["get", "stubborn", "-n", n]).await, 0, "get");
    let earlier = rows_in(&stdout, "Earlier attempts:");
    let earlier: Vec<[&str; 4]> = earlier
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()])
        .collect();
    assert_eq!(
        earlier,
        [
            ["1", "1", "stubborn-1-node1", "Failed"],
            ["1", "2", "stubborn-1-node1-retry2", "Failed"]
        ],
        "{stdout}"
    );
    assert!(stdout.contains("exited with status 3"), "{stdout}");
}

/// `--from-split` past the failed split is refused by the operator; from an earlier one, that
/// split and every later one run again, and the splits before it do not.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn retry_from_an_earlier_split_runs_it_and_the_later_ones_again() {
    let (client, ns) = setup("cli-from").await;
    take_config_map(&ns, "early-hello-world-3-node2").await;
    // Each split's pod reports MODEL (kwok's termination-message stage).
    let outputs = pod_annotations(serde_json::json!({
        "kwok.roiergasias.io/termination-message": "{\"MODEL\":\"m.pkl\"}"
    }));
    let api = ns.api::<Workflow>();
    api.create(
        &PostParams::default(),
        &workflow("early", THREE, Some(outputs)),
    )
    .await
    .unwrap();
    let _operator = Operator::start(operator_bin(), &ns.name);
    let n = ns.name.as_str();
    wait_phase(&api, "early", Phase::Failed, WAIT).await;
    let jobs: Api<Job> = ns.api();
    let first = jobs.get("early-1-node1").await.unwrap().uid();

    let out = cli(&["retry", "early", "--from-split", "4", "-n", n]).await;
    let (_, stderr) = expect_code(&out, 1, "--from-split past the failed split");
    assert!(
        stderr.contains("error: retry 1 refused: split 4 "),
        "{stderr}"
    );

    let out = cli(&["retry", "early", "--from-split", "2", "-w", "-n", n]).await;
    let (stdout, _) = expect_code(&out, 0, "--from-split 2");
    assert!(
        stdout.starts_with(
            "retry 2 accepted: split 2/3 runs again as attempt 2 (Job early-2-node2-retry2)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("workflow early Succeeded: 3/3 splits"),
        "{stdout}"
    );
    let (_, names) = owned_names(&client, n, "early").await;
    assert_eq!(
        names,
        [
            "early-1-node1",
            "early-2-node2",
            "early-2-node2-retry2",
            "early-3-node2-retry2"
        ]
    );
    assert_eq!(jobs.get("early-1-node1").await.unwrap().uid(), first);
    let (stdout, _) = expect_code(&cli(&["get", "early", "-n", n]).await, 0, "get");
    let reported = rows_in(&stdout, "Outputs:");
    assert_eq!(
        reported,
        [
            ["1", "MODEL", "m.pkl"],
            ["2", "MODEL", "m.pkl"],
            ["3", "MODEL", "m.pkl"]
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("Carried environment:\n  MODEL=m.pkl\n"),
        "{stdout}"
    );
    let wf = api.get("early").await.unwrap();
    let last = wf.status.unwrap().last_retry.unwrap();
    assert_eq!(
        (last.request, last.accepted, last.from_split),
        (2, true, Some(2))
    );
}
