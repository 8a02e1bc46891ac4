//! The README's Kubernetes sections, followed command by command on the test
//! cluster with the real `helm` and `kubectl`; and what can be checked here of
//! the Helm charts, the Dockerfiles and the examples.
//!
//! README code blocks marked `<!-- walkthrough: NAME -->` are read from the
//! README itself, so it cannot drift from what is tested. In them, a
//! `# lists: a, b` comment after a `kubectl get` is a promise checked against
//! the NAME column (`# lists in order:` also checks the order; `<id>` stands for
//! a generated suffix). Like a person, the test waits (up to a minute) for a
//! listing to show what the README promises.
//!
//! On the cluster the operator runs as a local process under the chart's
//! ServiceAccount (a kubeconfig that impersonates it), with the arguments of
//! the Deployment the chart installed: this proves that the chart's RBAC and
//! flags are enough for it. Cluster tests need `KUBECONFIG`: run them with
//! `cargo xtask test`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Repository, tools and processes

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the controller crate sits in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The directory of the helm and kubectl that `cargo xtask tools` builds.
fn tools_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("ROIERGASIAS_K8S_BIN").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let out = Command::new(cargo())
            .args(["xtask", "tools", "path"])
            .current_dir(repo())
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run `cargo xtask tools path`");
        assert!(
            out.status.success(),
            "`cargo xtask tools path` failed: these tests need the helm and kubectl it builds \
             (or ROIERGASIAS_K8S_BIN=DIR holding them)"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        for tool in ["helm", "kubectl"] {
            assert!(
                dir.join(tool).is_file(),
                "{tool} is missing from {}",
                dir.display()
            );
        }
        dir
    })
    .clone()
}

fn helm() -> Command {
    Command::new(tools_dir().join("helm"))
}

/// Runs a command that must succeed; returns its standard output.
fn run_ok(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs a command that must fail; returns its standard error.
fn run_err(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    assert!(
        !out.status.success(),
        "{command:?} succeeded but should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn workspace_version() -> String {
    let manifest = read("Cargo.toml");
    let package = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("a [workspace.package] table");
    package
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("a workspace version")
}

/// The `[[bin]]` names of the workspace's packages.
fn workspace_binaries() -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    for member in ["engine", "crd", "controller", "xtask"] {
        let manifest = read(&format!("{member}/Cargo.toml"));
        for table in manifest.split("[[bin]]").skip(1) {
            if let Some(name) = table.lines().find_map(|l| l.trim().strip_prefix("name = ")) {
                bins.insert(name.trim_matches('"').to_string());
            }
        }
    }
    bins
}

/// Where `cargo test` put its binaries, so release builds share the target dir.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            repo().join(dir)
        };
    }
    Path::new(env!("CARGO_BIN_EXE_roiergasias-operator"))
        .parent()
        .and_then(Path::parent)
        .expect("the operator binary sits in <target>/<profile>/")
        .to_path_buf()
}

/// Release builds are expensive on two cores: one at a time.
static RELEASE_BUILDS: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// YAML and JSON

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn yaml(text: &str) -> Value {
    let mut docs = yaml_documents(text);
    assert_eq!(docs.len(), 1, "expected one YAML document:\n{text}");
    docs.remove(0)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = by_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

// ---------------------------------------------------------------------------
// The README's walkthrough blocks

#[derive(Debug, Clone, PartialEq)]
struct Listing {
    ordered: bool,
    names: Vec<String>,
}

#[derive(Debug, Clone)]
struct Step {
    line: String,
    listing: Option<Listing>,
    /// `# prints: TEXT` lines after the command: its output holds each TEXT.
    prints: Vec<String>,
}

/// The commands of the README block marked `<!-- walkthrough: NAME -->`.
fn readme_block(name: &str) -> Vec<Step> {
    let readme = read("README.md");
    let marker = format!("<!-- walkthrough: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```sh"),
        "{marker} must be followed by a ```sh block"
    );
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in lines.take_while(|l| !l.starts_with("```")) {
        let line = line.trim();
        if let Some(names) = line.strip_prefix("# lists in order:") {
            attach(&mut steps, names, true);
        } else if let Some(names) = line.strip_prefix("# lists:") {
            attach(&mut steps, names, false);
        } else if let Some(text) = line.strip_prefix("# prints:") {
            let step = steps
                .last_mut()
                .expect("a `# prints` comment follows a command");
            step.prints.push(text.trim().to_string());
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start);
        } else {
            pending.push_str(line);
            steps.push(Step {
                line: std::mem::take(&mut pending),
                listing: None,
                prints: Vec::new(),
            });
        }
    }
    assert!(!steps.is_empty(), "{marker} holds no command");
    steps
}

fn attach(steps: &mut [Step], names: &str, ordered: bool) {
    let step = steps
        .last_mut()
        .expect("a `# lists` comment follows a command");
    assert!(
        step.line.starts_with("kubectl get"),
        "`# lists` follows a kubectl get, not {:?}",
        step.line
    );
    step.listing = Some(Listing {
        ordered,
        names: names.split(',').map(|n| n.trim().to_string()).collect(),
    });
}

/// `<id>` at the end of a pattern stands for a generated suffix of [a-z0-9].
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix("<id>") {
        Some(prefix) => name.strip_prefix(prefix).is_some_and(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }),
        None => name == pattern,
    }
}

/// Checks a `kubectl get` table against its promise: the rows whose names share
/// the promised names' prefix are exactly the promised ones (in order, if asked).
fn check_listing(listing: &Listing, table: &str) -> Result<(), String> {
    let stems: Vec<&str> = listing
        .names
        .iter()
        .map(|n| n.strip_suffix("<id>").unwrap_or(n))
        .collect();
    let mut prefix = stems[0].to_string();
    for stem in &stems[1..] {
        while !stem.starts_with(&prefix) {
            prefix.pop();
        }
    }
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let mut unmatched: Vec<&String> = listing.names.iter().collect();
    let mut order = Vec::new();
    for row in &rows {
        match unmatched.iter().position(|p| name_matches(p, row)) {
            Some(i) => order.push(unmatched.remove(i).clone()),
            None => return Err(format!("unexpected {row}")),
        }
    }
    if !unmatched.is_empty() {
        return Err(format!("missing {unmatched:?}"));
    }
    if listing.ordered && order != listing.names {
        return Err(format!("order {order:?}, promised {:?}", listing.names));
    }
    Ok(())
}

#[test]
fn readme_listings_are_checked_strictly() {
    let ordered = Listing {
        ordered: true,
        names: vec!["wf-1-node1".into(), "wf-2-node2".into()],
    };
    let table = "NAME         COMPLETIONS\nwf-1-node1   1/1\nwf-2-node2   1/1\nother   1/1\n";
    assert_eq!(check_listing(&ordered, table), Ok(()));
    let swapped = "NAME\nwf-2-node2\nwf-1-node1\n";
    assert!(
        check_listing(&ordered, swapped)
            .unwrap_err()
            .contains("order")
    );
    let missing = "NAME\nwf-1-node1\n";
    assert!(
        check_listing(&ordered, missing)
            .unwrap_err()
            .contains("missing")
    );
    let extra = "NAME\nwf-1-node1\nwf-2-node2\nwf-3-node2\n";
    assert!(
        check_listing(&ordered, extra)
            .unwrap_err()
            .contains("unexpected")
    );
    let pods = Listing {
        ordered: false,
        names: vec!["wf-<id>".into()],
    };
    assert_eq!(check_listing(&pods, "NAME READY\nwf-x7k2p 0/1\n"), Ok(()));
    assert!(check_listing(&pods, "NAME READY\nwf-1-node1-x7k2p 0/1\n").is_err());
    assert!(check_listing(&pods, "NAME READY\n").is_err());
}

#[test]
fn readme_walkthrough_blocks_are_well_formed() {
    for block in [
        "images",
        "install",
        "hello-world",
        "multi-node",
        "uninstall",
        "machine-learning",
    ] {
        let steps = readme_block(block);
        for step in &steps {
            let program = step.line.split_whitespace().next().unwrap_or_default();
            assert!(
                ["helm", "kubectl", "docker", "cat", "cargo", "pip"].contains(&program),
                "block {block}: unexpected command {:?}",
                step.line
            );
        }
    }
    let hello = readme_block("hello-world");
    assert!(hello.iter().any(|s| s.listing.is_some()));
    let multi = readme_block("multi-node");
    assert!(
        multi
            .iter()
            .filter_map(|s| s.listing.as_ref())
            .any(|l| l.ordered && l.names.len() == 3),
        "the multi-node block promises the three jobs in order"
    );
}

// ---------------------------------------------------------------------------
// The operator's chart

const CHART: &str = "helm/roiergasias-operator";

fn template(chart: &str, namespace: &str, sets: &[&str]) -> Vec<Value> {
    let mut command = helm();
    command
        .args([
            "template",
            "roiergasias-operator",
            chart,
            "--namespace",
            namespace,
        ])
        .current_dir(repo());
    for set in sets {
        command.args(["--set", set]);
    }
    yaml_documents(&run_ok(&mut command))
}

/// (apiGroup, resource) → verbs, over every rule of a Role or ClusterRole.
fn permissions(role: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut map: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                map.entry((group.clone(), resource))
                    .or_default()
                    .extend(strings(&rule["verbs"]));
            }
        }
    }
    map
}

/// Exactly what the controller needs in the namespaces it watches.
fn expected_workflow_permissions() -> BTreeMap<(String, String), BTreeSet<String>> {
    let rows: [(&str, &str, &[&str]); 7] = [
        (
            "batch.ankursoni.github.io",
            "workflows",
            &["get", "list", "watch"],
        ),
        ("batch.ankursoni.github.io", "workflows/status", &["patch"]),
        ("", "configmaps", &["get", "create"]),
        ("batch", "jobs", &["get", "list", "watch", "create"]),
        ("", "pods", &["list", "watch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "events", &["list"]),
    ];
    rows.iter()
        .map(|(g, r, v)| {
            (
                (g.to_string(), r.to_string()),
                v.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn operator_chart_lints_and_its_version_is_the_workspace_version() {
    let out = run_ok(helm().args(["lint", "--strict", CHART]).current_dir(repo()));
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let chart = yaml(&read(&format!("{CHART}/Chart.yaml")));
    assert_eq!(chart["appVersion"], json!(workspace_version()));
    assert_eq!(chart["version"], json!(workspace_version()));
    let crds = run_ok(
        helm()
            .args(["template", "r", CHART, "--include-crds"])
            .current_dir(repo()),
    );
    let crd = one(&yaml_documents(&crds), "CustomResourceDefinition").clone();
    assert_eq!(
        str_at(&crd, "/metadata/name"),
        "workflows.batch.ankursoni.github.io"
    );
}

#[test]
fn operator_chart_watching_all_namespaces_grants_exactly_what_the_controller_uses() {
    let docs = template(CHART, "ops", &[]);
    let kinds: BTreeSet<&str> = docs.iter().map(|d| str_at(d, "/kind")).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service"
        ])
    );
    let sa = one(&docs, "ServiceAccount");
    let sa_name = str_at(sa, "/metadata/name");
    assert_eq!(str_at(sa, "/metadata/namespace"), "ops");

    let role = one(&docs, "ClusterRole");
    assert_eq!(permissions(role), expected_workflow_permissions());
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains("secrets"), "no access to secrets");
    assert!(!text.contains("\"*\""), "no wildcards");
    assert!(
        !text.contains("\"delete\""),
        "owner references delete, not the operator"
    );
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": sa_name, "namespace": "ops"}])
    );
    assert!(
        str_at(role, "/metadata/name").ends_with("-ops"),
        "cluster-scoped names carry the namespace, so the chart installs once per namespace"
    );

    // Leader election: its Lease only, in the release namespace.
    let lease_role = one(&docs, "Role");
    assert_eq!(str_at(lease_role, "/metadata/namespace"), "ops");
    assert_eq!(
        lease_role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["roiergasias-operator"], "verbs": ["get", "patch"]}
        ])
    );
    assert_eq!(
        one(&docs, "RoleBinding")["subjects"][0]["name"],
        json!(sa_name)
    );
}

#[test]
fn operator_chart_deployment_is_hardened_and_passes_the_operator_flags() {
    let docs = template(CHART, "ops", &[]);
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(
        pod["serviceAccountName"],
        one(&docs, "ServiceAccount")["metadata"]["name"]
    );
    assert_eq!(
        c["image"],
        json!(format!("roiergasias-operator:{}", workspace_version()))
    );
    assert_eq!(
        strings(&c["args"]),
        [
            format!("--runner-image=roiergasias:{}", workspace_version()),
            "--leader-election=true".into(),
            "--leader-election-lease=roiergasias-operator".into(),
            "--metrics-addr=0.0.0.0:8080".into(),
            "--log-format=json".into(),
            "--log-level=info".into(),
        ]
    );
    // Non-root, read-only, no capabilities, default seccomp.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], json!(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        json!("RuntimeDefault")
    );
    assert_ne!(pod["securityContext"]["runAsUser"], json!(0));
    let security = &c["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], json!(true));
    assert_eq!(security["allowPrivilegeEscalation"], json!(false));
    assert_eq!(security["runAsNonRoot"], json!(true));
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} is set"
            );
        }
    }
    // Probes on the metrics port, which the Service exposes.
    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], json!("metrics"));
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    // Every flag the chart passes is one the operator takes (GUIDE.md's contract).
    let help = run_ok(Command::new(env!("CARGO_BIN_EXE_roiergasias-operator")).arg("--help"));
    for flag in [
        "--runner-image",
        "--namespace",
        "--leader-election",
        "--leader-election-lease",
        "--metrics-addr",
        "--log-format",
        "--log-level",
    ] {
        assert!(
            help.contains(flag),
            "roiergasias-operator --help lacks {flag}:\n{help}"
        );
    }
}

#[test]
fn operator_chart_watching_a_list_of_namespaces_grants_nothing_cluster_wide() {
    let docs = template(
        CHART,
        "ops",
        &[
            "watchNamespaces={team-a,team-b}",
            "leaderElection.enabled=false",
            "metrics.service.enabled=false",
            "logFormat=text",
        ],
    );
    assert!(by_kind(&docs, "ClusterRole").is_empty());
    assert!(by_kind(&docs, "ClusterRoleBinding").is_empty());
    assert!(by_kind(&docs, "Service").is_empty());
    let roles = by_kind(&docs, "Role");
    let namespaces: Vec<&str> = roles
        .iter()
        .map(|r| str_at(r, "/metadata/namespace"))
        .collect();
    assert_eq!(
        namespaces,
        ["team-a", "team-b"],
        "no lease Role without leader election"
    );
    for role in roles {
        assert_eq!(permissions(role), expected_workflow_permissions());
    }
    let bindings = by_kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 2);
    for binding in bindings {
        assert_eq!(binding["subjects"][0]["namespace"], json!("ops"));
    }
    let args = strings(&container(one(&docs, "Deployment"))["args"]);
    assert!(args.contains(&"--namespace=team-a".to_string()), "{args:?}");
    assert!(args.contains(&"--namespace=team-b".to_string()), "{args:?}");
    assert!(
        args.contains(&"--leader-election=false".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--log-format=text".to_string()), "{args:?}");
}

// Hostile and bad values: tests/helm_values.rs.

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
fn split_nodes(text: &str) -> Vec<String> {
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

const AWS_CHART: &str = "examples/machine-learning/aws/helm/roiergasias-aws";

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

// ---------------------------------------------------------------------------
// Dockerfiles

struct Dockerfile {
    path: &'static str,
    /// (image, stage name) per FROM.
    stages: Vec<(String, Option<String>)>,
    /// Sources of COPY without --from: paths in the build context.
    context_copies: Vec<String>,
    /// (stage, source, destination) of COPY --from.
    stage_copies: Vec<(String, String, String)>,
    /// `cargo build` commands of RUN instructions.
    cargo_builds: Vec<String>,
    /// USER of the final stage.
    final_user: Option<String>,
}

fn parse_dockerfile(path: &'static str) -> Dockerfile {
    let text = read(path);
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.starts_with('#') || line.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut file = Dockerfile {
        path,
        stages: Vec::new(),
        context_copies: Vec::new(),
        stage_copies: Vec::new(),
        cargo_builds: Vec::new(),
        final_user: None,
    };
    for instruction in instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        match words[0] {
            "FROM" => {
                let name = (words.get(2) == Some(&"AS")).then(|| words[3].to_string());
                file.stages.push((words[1].to_string(), name));
                file.final_user = None;
            }
            "COPY" => {
                let from = words.iter().find_map(|w| w.strip_prefix("--from="));
                let paths: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let (destination, sources) = paths.split_last().expect("COPY src dest");
                for source in sources {
                    match from {
                        Some(stage) => file.stage_copies.push((
                            stage.to_string(),
                            source.to_string(),
                            destination.to_string(),
                        )),
                        None => file.context_copies.push(source.to_string()),
                    }
                }
            }
            "RUN" => {
                for command in instruction.split("&&") {
                    if let Some(at) = command.find("cargo build") {
                        file.cargo_builds.push(command[at..].trim().to_string());
                    }
                }
            }
            "USER" => file.final_user = Some(words[1].to_string()),
            _ => {}
        }
    }
    file
}

const DOCKERFILES: [(&str, &str, &[&str]); 2] = [
    (
        "docker/runner.Dockerfile",
        "roiergasias",
        &["/usr/local/bin/roiergasias", "/root/roiergasias"],
    ),
    (
        "docker/operator.Dockerfile",
        "roiergasias-operator",
        &["/usr/local/bin/roiergasias-operator"],
    ),
];

#[test]
fn dockerfiles_are_multi_stage_pinned_non_root_and_copy_workspace_binaries() {
    let binaries = workspace_binaries();
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for (path, binary, destinations) in DOCKERFILES {
        let file = parse_dockerfile(path);
        assert!(file.stages.len() >= 2, "{path} is multi-stage");
        let (builder, name) = &file.stages[0];
        assert_eq!(
            builder, "docker.io/library/rust:1.95-slim-bookworm",
            "{path}: a pinned Rust builder"
        );
        for (image, _) in &file.stages {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{path}: {image} is pinned to a tag"
            );
        }
        let user = file
            .final_user
            .as_deref()
            .expect("a USER in the final stage");
        assert!(
            !user.starts_with("root") && !user.starts_with("0"),
            "{path} runs as non-root, not {user}"
        );

        // The build context holds what it copies, and every workspace member
        // (cargo reads them all).
        for source in &file.context_copies {
            assert!(repo().join(source).exists(), "{path}: {source} exists");
            assert!(
                !ignored
                    .iter()
                    .any(|i| source == i || source.starts_with(&format!("{i}/"))),
                "{path}: {source} is not excluded by .dockerignore"
            );
        }
        for member in ["engine", "crd", "controller", "xtask"] {
            assert!(
                file.context_copies.iter().any(|s| s == member),
                "{path} copies the workspace member {member}"
            );
        }

        // What it builds is the binary it copies, a workspace binary.
        assert_eq!(
            file.cargo_builds,
            [format!("cargo build --release --locked --bin {binary}")],
            "{path}"
        );
        assert!(binaries.contains(binary), "{binary} is a workspace [[bin]]");
        let builder_stage = name.as_deref().expect("a named builder stage");
        let copied: Vec<&str> = file
            .stage_copies
            .iter()
            .map(|(stage, source, destination)| {
                assert_eq!(stage, builder_stage);
                assert_eq!(Path::new(source).file_name().unwrap(), binary);
                destination.as_str()
            })
            .collect();
        assert_eq!(copied, destinations, "{path}");
        assert!(file.path.ends_with(".Dockerfile"));
    }
}

/// The `cargo build` each Dockerfile runs, run here: the binaries they copy build in
/// release mode, and run.
#[test]
fn dockerfile_cargo_builds_produce_the_binaries_they_copy() {
    let _one_at_a_time = RELEASE_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let target = target_dir();
    for (path, binary, _) in DOCKERFILES {
        let file = parse_dockerfile(path);
        let build = &file.cargo_builds[0];
        let args: Vec<&str> = build.split_whitespace().skip(1).collect();
        run_ok(
            Command::new(cargo())
                .args(&args)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(repo()),
        );
        let built = target.join("release").join(binary);
        assert!(
            built.is_file(),
            "{path}: `{build}` produced {}",
            built.display()
        );
        let help = run_ok(Command::new(&built).arg("--help"));
        assert!(!help.trim().is_empty(), "{binary} --help says something");
    }
    let version = run_ok(Command::new(target.join("release/roiergasias")).arg("version"));
    assert!(version.contains(&workspace_version()), "{version}");
}

#[test]
fn readme_image_commands_build_the_images_the_charts_and_examples_use() {
    let steps = readme_block("images");
    let version = workspace_version();
    let mut built = BTreeMap::new();
    for step in steps {
        let words: Vec<&str> = step.line.split_whitespace().collect();
        assert_eq!(&words[..2], ["docker", "build"], "{}", step.line);
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .map(|i| words[i + 1].to_string())
                .unwrap_or_else(|| panic!("{} lacks {flag}", step.line))
        };
        assert_eq!(words.last(), Some(&"."), "built from the repository root");
        built.insert(after("-t"), after("-f"));
    }
    assert_eq!(
        built,
        BTreeMap::from([
            (
                format!("roiergasias:{version}"),
                "docker/runner.Dockerfile".to_string()
            ),
            (
                format!("roiergasias-operator:{version}"),
                "docker/operator.Dockerfile".to_string()
            ),
        ])
    );
    // The chart's defaults are these tags.
    let deployment = template(CHART, "ops", &[]);
    let c = container(one(&deployment, "Deployment"));
    assert!(built.contains_key(str_at(c, "/image")));
    let runner = strings(&c["args"])[0].replace("--runner-image=", "");
    assert!(built.contains_key(&runner));
}

// ---------------------------------------------------------------------------
// Machine learning on this machine (python3 with pandas and scikit-learn)

fn require_python_ml() {
    let ok = Command::new("python3")
        .args(["-c", "import pandas, sklearn"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the machine-learning example needs python3 with pandas and scikit-learn: \
         `pip install pandas scikit-learn` (CI installs them)"
    );
}

#[test]
fn weather_generator_is_seeded_deterministic_and_shaped_like_the_kaggle_set() {
    require_python_ml();
    let dir = tempfile::tempdir().unwrap();
    let generate = |seed: &str, file: &str| {
        let path = dir.path().join(file);
        run_ok(
            Command::new("python3")
                .arg(repo().join("examples/machine-learning/local/generate-data.py"))
                .args([
                    "--seed",
                    seed,
                    "--locations",
                    "3",
                    "--days",
                    "200",
                    "--output",
                ])
                .arg(&path),
        );
        std::fs::read_to_string(path).unwrap()
    };
    let first = generate("7", "a.csv");
    assert_eq!(first, generate("7", "b.csv"), "same seed, same bytes");
    assert_ne!(first, generate("8", "c.csv"), "another seed, other data");
    let mut lines = first.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Date,Location,MinTemp,MaxTemp,Rainfall,Evaporation,Sunshine,WindGustDir,WindGustSpeed,\
         WindDir9am,WindDir3pm,WindSpeed9am,WindSpeed3pm,Humidity9am,Humidity3pm,Pressure9am,\
         Pressure3pm,Cloud9am,Cloud3pm,Temp9am,Temp3pm,RainToday,RainTomorrow"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 600, "3 locations x 200 days");
    let rain_tomorrow: Vec<&str> = rows.iter().map(|r| r[22]).collect();
    let yes = rain_tomorrow.iter().filter(|v| **v == "Yes").count();
    assert!(
        (30..=300).contains(&yes),
        "rain on some days, not all: {yes}"
    );
    assert!(
        rows.iter().any(|r| r.contains(&"NA")),
        "readings go missing, as in the real set"
    );
    let err = run_err(
        Command::new("python3")
            .arg(repo().join("examples/machine-learning/local/generate-data.py"))
            .args(["--locations", "99", "--output", "/dev/null"]),
    );
    assert!(err.contains("--locations must be between 1 and"), "{err}");
}

#[test]
fn readme_machine_learning_walkthrough_runs_locally_and_learns() {
    require_python_ml();
    let _one_at_a_time = RELEASE_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let output = repo().join("examples/machine-learning/local/output");
    let _ = std::fs::remove_dir_all(&output);
    let mut ran = String::new();
    for step in readme_block("machine-learning") {
        if step.line.starts_with("pip install") {
            continue; // checked by require_python_ml; CI installs them
        }
        let out = run_ok(
            Command::new("sh")
                .args(["-c", &step.line])
                .env("CARGO_TARGET_DIR", target_dir())
                .current_dir(repo()),
        );
        ran.push_str(&out);
    }
    for promise in [
        "Completed processing data: ",
        "Completed training machine learning model: training accuracy 0.",
        "Completed evaluating machine learning model: test accuracy 0.",
    ] {
        assert!(ran.contains(promise), "output lacks {promise:?}:\n{ran}");
    }
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("metrics.json")).unwrap())
            .unwrap();
    let number = |k: &str| {
        metrics[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {metrics}"))
    };
    assert!(
        number("accuracy") > number("baseline_accuracy") + 0.02,
        "the model beats always answering 'no rain': {metrics}"
    );
    assert!(number("roc_auc") > 0.85, "{metrics}");
    // The figures the scripts report through ROIERGASIAS_ENV reached the last print.
    assert!(
        ran.contains(&format!("test accuracy {:.3}", number("accuracy"))),
        "{ran}"
    );
    for file in [
        "weatherAUS.csv",
        "processed-weatherAUS.csv",
        "ml-model.joblib",
    ] {
        let path = output.join(file);
        assert!(path.is_file(), "{} was written", path.display());
    }
    let ignored = Command::new("git")
        .args([
            "check-ignore",
            "-q",
            "examples/machine-learning/local/output/metrics.json",
        ])
        .current_dir(repo())
        .status()
        .expect("git");
    assert!(ignored.success(), "the outputs are ignored by git");
}

// ---------------------------------------------------------------------------
// The walkthrough on the test cluster

fn admin_kubeconfig() -> PathBuf {
    match std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "KUBECONFIG is not set: the walkthrough runs on the test cluster; \
             run it with `cargo xtask test`"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The status code of `GET path` on 127.0.0.1:port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).ok()?;
    status.split_whitespace().nth(1)?.parse().ok()
}

/// One walkthrough: its own namespace, kubeconfigs, helm homes and operator process.
struct Walk {
    namespace: String,
    dir: tempfile::TempDir,
    /// The admin's, with the walkthrough's namespace as the current one.
    kubeconfig: PathBuf,
    operator: Option<std::process::Child>,
    /// The manifest of the last `kubectl apply -f`.
    applied: Option<String>,
}

impl Walk {
    fn new(name: &str) -> Walk {
        let admin = admin_kubeconfig();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let namespace = format!("walk-{name}-{:x}", nanos ^ std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let config = Self::kubeconfig_json(&admin, &namespace, None);
        std::fs::write(&kubeconfig, config.to_string()).unwrap();
        let walk = Walk {
            namespace,
            dir,
            kubeconfig,
            operator: None,
            applied: None,
        };
        run_ok(
            walk.kubectl()
                .args(["create", "namespace", &walk.namespace]),
        );
        walk
    }

    /// Pods of this walk's namespace go to kwok's fake nodes (see `common::ON_FAKE_NODES`).
    fn pin_to_fake_nodes(&self) {
        run_ok(self.kubectl().args([
            "annotate",
            "namespace",
            &self.namespace,
            "scheduler.alpha.kubernetes.io/node-selector=type=kwok",
            r#"scheduler.alpha.kubernetes.io/defaultTolerations=[{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]"#,
        ]));
    }

    /// The admin kubeconfig, flattened, with `namespace` current and, if given,
    /// impersonating `user`.
    fn kubeconfig_json(admin: &Path, namespace: &str, user: Option<&str>) -> Value {
        let out = run_ok(
            Command::new(tools_dir().join("kubectl"))
                .args([
                    "config",
                    "view",
                    "--raw",
                    "--minify",
                    "--flatten",
                    "-o",
                    "json",
                ])
                .env("KUBECONFIG", admin),
        );
        let mut config: Value = serde_json::from_str(&out).unwrap();
        for context in config["contexts"].as_array_mut().expect("contexts") {
            context["context"]["namespace"] = json!(namespace);
        }
        if let Some(user) = user {
            for entry in config["users"].as_array_mut().expect("users") {
                entry["user"]["as"] = json!(user);
            }
        }
        config
    }

    fn kubectl(&self) -> Command {
        let mut command = Command::new(tools_dir().join("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    fn get_json(&self, args: &[&str]) -> Value {
        let out = run_ok(self.kubectl().arg("get").args(args).args(["-o", "json"]));
        serde_json::from_str(&out).unwrap()
    }

    /// A README command as a person types it, in a shell at the repository root.
    fn shell(&self, line: &str) -> std::process::Output {
        let path = format!(
            "{}:{}",
            tools_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let helm_home = self.dir.path().join("helm");
        Command::new("sh")
            .args(["-c", line])
            .current_dir(repo())
            .env("PATH", path)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_DATA_HOME", helm_home.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {line:?}: {e}"))
    }

    fn follow(&mut self, block: &str) {
        for step in readme_block(block) {
            let line = step.line.as_str();
            if line.starts_with("kubectl delete -f") {
                self.check_run(line.trim_start_matches("kubectl delete -f").trim());
            }
            if line.starts_with("helm uninstall") {
                self.check_operator_alive();
            }
            eprintln!("[{}] $ {line}", self.namespace);
            match &step.listing {
                None => {
                    let out = self.shell(line);
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success(),
                        "README command {line:?} failed ({}):\n{stdout}\n{}\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr),
                        self.operator_log()
                    );
                    for text in &step.prints {
                        assert!(
                            stdout.contains(text.as_str()),
                            "README promise after {line:?} not kept: it prints no {text:?}:\n{stdout}"
                        );
                    }
                }
                Some(listing) => self.wait_for_listing(line, listing),
            }
            if line.starts_with("helm install") {
                self.start_operator();
            }
            if let Some(manifest) = line.strip_prefix("kubectl apply -f") {
                self.applied = Some(manifest.trim().to_string());
            }
            if let Some(manifest) = line.strip_prefix("kubectl delete -f") {
                self.check_cleaned_up(manifest.trim());
            }
            if line.starts_with("helm uninstall") {
                self.check_uninstalled();
                self.stop_operator();
            }
        }
    }

    fn wait_for_listing(&self, line: &str, listing: &Listing) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.shell(line);
            let table = String::from_utf8_lossy(&out.stdout).into_owned();
            let verdict = if out.status.success() {
                check_listing(listing, &table)
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            };
            match verdict {
                Ok(()) => return,
                Err(why) if Instant::now() > deadline => panic!(
                    "README promise after {line:?} not kept: {why}\n{table}\n{}",
                    self.operator_log()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// The operator, as the chart's Deployment would run it: its arguments and
    /// ServiceAccount, here as a local process that impersonates that account.
    fn start_operator(&mut self) {
        let deployments = self.get_json(&[
            "deployment",
            "-l",
            "app.kubernetes.io/name=roiergasias-operator",
        ]);
        let items = deployments["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "helm install made one Deployment");
        let pod = &items[0]["spec"]["template"]["spec"];
        let account = str_at(pod, "/serviceAccountName");
        let c = &pod["containers"][0];
        let port = free_port();
        let mut args: Vec<String> = strings(&c["args"])
            .into_iter()
            .map(|a| {
                if a.starts_with("--metrics-addr=") {
                    format!("--metrics-addr=127.0.0.1:{port}")
                } else {
                    a
                }
            })
            .collect();
        // The chart watches every namespace; other tests share this cluster.
        if !args.iter().any(|a| a.starts_with("--namespace")) {
            args.push(format!("--namespace={}", self.namespace));
        }
        let user = format!("system:serviceaccount:{}:{account}", self.namespace);
        let config = Self::kubeconfig_json(&admin_kubeconfig(), &self.namespace, Some(&user));
        let kubeconfig = self.dir.path().join("operator-kubeconfig");
        std::fs::write(&kubeconfig, config.to_string()).unwrap();
        let log = std::fs::File::create(self.dir.path().join("operator.log")).unwrap();
        eprintln!("[{}] operator as {user}: {args:?}", self.namespace);
        let child = Command::new(env!("CARGO_BIN_EXE_roiergasias-operator"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", &self.namespace)
            .env("POD_NAME", format!("{}-walkthrough", self.namespace))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start roiergasias-operator");
        self.operator = Some(child);

        // The Deployment's probes answer.
        let probes = [
            str_at(c, "/readinessProbe/httpGet/path").to_string(),
            str_at(c, "/livenessProbe/httpGet/path").to_string(),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        for path in probes {
            while http_status(port, &path) != Some(200) {
                self.check_operator_alive();
                assert!(
                    Instant::now() < deadline,
                    "the operator's {path} never answered 200\n{}",
                    self.operator_log()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    fn operator_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("operator.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- operator log (last 40 lines) ---\n{}", tail.join("\n"))
    }

    fn check_operator_alive(&mut self) {
        let child = self.operator.as_mut().expect("the operator was started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the operator exited ({status})\n{}", self.operator_log());
        }
    }

    fn stop_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Before the README deletes it: the workflow ran as promised. One Job per
    /// split, owned by the Workflow, complete, its pod on the node labelled for it.
    fn check_run(&self, manifest: &str) {
        self.check_workflow_ran(&yaml(&read(manifest)));
    }

    fn check_workflow_ran(&self, doc: &Value) {
        let name = str_at(doc, "/metadata/name");
        let workflow_yaml = str_at(doc, "/spec/workflowYAML/yaml");
        let nodes = split_nodes(workflow_yaml);
        let expected: Vec<(String, Option<String>)> = if nodes.is_empty() {
            vec![(name.to_string(), None)]
        } else {
            nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{name}-{}-{n}", i + 1), Some(n.clone())))
                .collect()
        };
        let workflow = self.get_json(&["workflow", name]);
        assert_eq!(
            workflow["status"]["phase"],
            json!("Succeeded"),
            "{workflow:#}"
        );
        let uid = str_at(&workflow, "/metadata/uid");
        let node_labels: BTreeMap<String, Option<String>> = self.get_json(&["nodes"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    str_at(n, "/metadata/name").to_string(),
                    n["metadata"]["labels"]["node.roiergasias"]
                        .as_str()
                        .map(String::from),
                )
            })
            .collect();
        for (job_name, node) in &expected {
            let job = self.get_json(&["job", job_name]);
            let owner = &job["metadata"]["ownerReferences"][0];
            assert_eq!(owner["uid"], json!(uid), "{job_name} is owned by {name}");
            assert_eq!(owner["controller"], json!(true));
            let complete = job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            });
            assert!(complete, "{job_name} is Complete: {:#}", job["status"]);
            let selector = &job["spec"]["template"]["spec"]["nodeSelector"]["node.roiergasias"];
            assert_eq!(
                selector.as_str(),
                node.as_deref(),
                "{job_name}'s nodeSelector"
            );
            let pods = self.get_json(&["pod", "-l", &format!("job-name={job_name}")]);
            let pods = pods["items"].as_array().unwrap();
            assert!(!pods.is_empty(), "{job_name} has a pod");
            for pod in pods {
                let on = str_at(pod, "/spec/nodeName");
                if node.is_some() {
                    assert_eq!(
                        node_labels.get(on).cloned().flatten(),
                        *node,
                        "{job_name}'s pod ran on {on}"
                    );
                }
            }
        }
    }

    fn check_cleaned_up(&self, manifest: &str) {
        let name = str_at(&yaml(&read(manifest)), "/metadata/name").to_string();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out =
                run_ok(
                    self.kubectl()
                        .args(["get", "workflow,configmap,job,pod", "-o", "name"]),
                );
            let left: Vec<&str> = out
                .lines()
                .filter(|l| l.split('/').nth(1).is_some_and(|n| n.starts_with(&name)))
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl delete left {left:?} behind"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn check_uninstalled(&self) {
        let left = run_ok(self.kubectl().args([
            "get",
            "deployment,serviceaccount,service,role,rolebinding",
            "-l",
            "app.kubernetes.io/name=roiergasias-operator",
            "-o",
            "name",
        ]));
        assert!(left.trim().is_empty(), "helm uninstall left {left}");
        let cluster_wide = run_ok(self.kubectl().args([
            "get",
            "clusterrole,clusterrolebinding",
            "-l",
            "app.kubernetes.io/name=roiergasias-operator",
            "-o",
            "name",
        ]));
        assert!(
            !cluster_wide.contains(&self.namespace),
            "helm uninstall left {cluster_wide}"
        );
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.stop_operator();
        if std::thread::panicking() {
            let _ = self.shell("helm uninstall roiergasias-operator");
            eprintln!("{}", self.operator_log());
        }
        let _ = self
            .kubectl()
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
    }
}

#[test]
fn readme_hello_world_walkthrough_on_the_cluster() {
    let mut walk = Walk::new("hello");
    walk.follow("install");
    walk.follow("hello-world");
    assert_eq!(
        walk.applied.as_deref(),
        Some("examples/hello-world/hello-world-kubernetes.yaml")
    );
    walk.follow("uninstall");
}

/// Jobs in the order the API server reports them: (name, complete).
type JobEvents = Arc<Mutex<Vec<(String, bool)>>>;

/// Watches the namespace's Jobs from before the workflow starts.
fn watch_jobs(namespace: &str) -> JobEvents {
    use futures::StreamExt;
    use k8s_openapi::api::batch::v1::Job;
    use kube::runtime::watcher;

    let events: JobEvents = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = events.clone();
    let namespace = namespace.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = kube::Client::try_default()
                .await
                .expect("a client from KUBECONFIG");
            let api: kube::Api<Job> = kube::Api::namespaced(client, &namespace);
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(watcher::Event::Apply(job)) | Ok(watcher::Event::InitApply(job)) => {
                        let complete = job
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter()
                                    .any(|c| c.type_ == "Complete" && c.status == "True")
                            });
                        let name = job.metadata.name.unwrap_or_default();
                        sink.lock().unwrap().push((name, complete));
                    }
                    _ => {}
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the Job watch started");
    events
}

/// Job n+1 is first seen only after Job n was seen Complete.
fn check_one_after_another(events: &[(String, bool)], jobs: &[&str]) -> Result<(), String> {
    let first_seen = |job: &str| events.iter().position(|(n, _)| n == job);
    let completed = |job: &str| events.iter().position(|(n, c)| n == job && *c);
    for pair in jobs.windows(2) {
        let done = completed(pair[0]).ok_or(format!("{} never completed", pair[0]))?;
        let next = first_seen(pair[1]).ok_or(format!("{} never appeared", pair[1]))?;
        if next < done {
            return Err(format!("{} appeared before {} completed", pair[1], pair[0]));
        }
    }
    Ok(())
}

#[test]
fn job_order_check_catches_a_job_created_too_early() {
    let ok = [("a", false), ("a", true), ("b", false), ("b", true)];
    let ok: Vec<(String, bool)> = ok.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(check_one_after_another(&ok, &["a", "b"]), Ok(()));
    let early = [("a", false), ("b", false), ("a", true), ("b", true)];
    let early: Vec<(String, bool)> = early.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert!(check_one_after_another(&early, &["a", "b"]).is_err());
    assert!(check_one_after_another(&ok, &["a", "b", "c"]).is_err());
}

#[test]
fn readme_multi_node_walkthrough_on_the_cluster() {
    let mut walk = Walk::new("multi");
    let events = watch_jobs(&walk.namespace);
    walk.follow("install");
    walk.follow("multi-node");
    walk.follow("uninstall");
    let jobs = [
        "roiergasias-demo-1-node1",
        "roiergasias-demo-2-node2",
        "roiergasias-demo-3-node2",
    ];
    let events = events.lock().unwrap().clone();
    if let Err(why) = check_one_after_another(&events, &jobs) {
        panic!("{why}; Job events: {events:?}");
    }
}

/// The AWS example's Workflow, as its chart renders it in S3 mode, is accepted by the CRD and runs
/// as three Jobs on its two node groups: on kwok's fake nodes, since there is no S3 here (real pods
/// run the shared-volume mode: `real_pods.rs`).
#[test]
fn machine_learning_aws_workflow_runs_on_the_cluster() {
    let mut walk = Walk::new("ml-aws");
    walk.pin_to_fake_nodes();
    walk.follow("install");
    let rendered = run_ok(
        helm()
            .args([
                "template",
                "roiergasias-aws",
                AWS_CHART,
                "--namespace",
                &walk.namespace,
            ])
            .args(["--set", "storage.persistentVolumeClaim.enabled=false"])
            .args(["--set", "storage.s3URI=s3://bucket/machine-learning/"])
            .current_dir(repo()),
    );
    let manifest = walk.dir.path().join("machine-learning-aws.yaml");
    std::fs::write(&manifest, &rendered).unwrap();
    run_ok(walk.kubectl().arg("apply").arg("-f").arg(&manifest));
    run_ok(walk.kubectl().args([
        "wait",
        "workflow/roiergasias-aws",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=120s",
    ]));
    let workflow = one(&yaml_documents(&rendered), "Workflow").clone();
    walk.check_workflow_ran(&workflow);
    let job = walk.get_json(&["job", "roiergasias-aws-3-node2"]);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "S3_URI", "value": "s3://bucket/machine-learning/"}])
    );
    walk.check_operator_alive();
    run_ok(walk.kubectl().arg("delete").arg("-f").arg(&manifest));
    walk.follow("uninstall");
}
