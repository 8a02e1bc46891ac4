//! The operator's chart under hostile values: `helm template` either renders objects that are
//! valid (checked here name by name and label by label, and on the test cluster by the API server
//! itself with `kubectl apply --dry-run=server`) or fails with values.schema.json's message naming
//! the value. Needs the helm and kubectl that `cargo xtask tools` builds; the dry-run test also
//! needs the test cluster (`KUBECONFIG`): run it with `cargo xtask test`.

use std::io::Write;
use std::process::{Command, Stdio};

use roiergasias_testkit::cluster::{repo, tools_dir};
use serde_json::{Value, json};

use crate::OPERATOR;

const CHART: &str = "helm/roiergasias-operator";

/// `helm template RELEASE CHART --namespace NS --set ...`: the rendered YAML, or helm's error.
fn render(release: &str, namespace: &str, sets: &[impl AsRef<str>]) -> Result<String, String> {
    let mut command = Command::new(tools_dir().join("helm"));
    command
        .args(["template", release, CHART, "--namespace", namespace])
        .current_dir(repo());
    for set in sets {
        command.args(["--set", set.as_ref()]);
    }
    let out = command.output().expect("cannot run helm");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8 output"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

// ---------------------------------------------------------------------------
// What Kubernetes accepts, for the checks that need no cluster

fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

/// A Service name: a DNS label starting with a letter (RFC 1035).
fn dns_1035_label(s: &str) -> bool {
    dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// RBAC names are path segments.
fn path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
}

fn label_value(s: &str) -> bool {
    s.len() <= 63
        && (s.is_empty()
            || (s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`, then a name.
fn qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    prefix.is_none_or(dns_subdomain) && !name.is_empty() && label_value(name)
}

/// Every problem with one rendered object, as `Kind name: problem`.
fn problems(doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap_or("?");
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let mut found = Vec::new();
    let name_ok = match kind {
        "Service" => dns_1035_label(name),
        // Its pods' hostnames are made from it.
        "Deployment" => dns_label(name),
        "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => path_segment(name),
        _ => dns_subdomain(name),
    };
    if !name_ok {
        found.push(format!("invalid name {name:?} ({} characters)", name.len()));
    }
    if let Some(ns) = doc["metadata"].get("namespace")
        && !ns.as_str().is_some_and(dns_label)
    {
        found.push(format!("invalid namespace {ns}"));
    }
    let pod = &doc["spec"]["template"];
    for (at, map) in [
        ("labels", &doc["metadata"]["labels"]),
        ("selector", &doc["spec"]["selector"]["matchLabels"]),
        ("pod labels", &pod["metadata"]["labels"]),
        ("nodeSelector", &pod["spec"]["nodeSelector"]),
    ] {
        string_map_problems(at, map, label_value, &mut found);
    }
    for (at, map) in [
        ("annotations", &doc["metadata"]["annotations"]),
        ("pod annotations", &pod["metadata"]["annotations"]),
    ] {
        string_map_problems(at, map, |_| true, &mut found);
    }
    for arg in pod["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if !arg.is_string() {
            found.push(format!("argument {arg} is not a string"));
        }
    }
    found
        .into_iter()
        .map(|p| format!("{kind} {name}: {p}"))
        .collect()
}

fn string_map_problems(at: &str, map: &Value, value_ok: fn(&str) -> bool, out: &mut Vec<String>) {
    let Some(map) = map.as_object() else {
        return;
    };
    for (key, value) in map {
        if !qualified_name(key) {
            out.push(format!("{at}: invalid key {key:?}"));
        }
        match value.as_str() {
            Some(v) if value_ok(v) => {}
            Some(v) => out.push(format!("{at}: invalid value {v:?} for {key}")),
            None => out.push(format!("{at}: {key} is {value}, not a string")),
        }
    }
}

fn deployment_args(docs: &[Value]) -> Vec<String> {
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The Lease the operator is told to use, and the one its Role grants: the same, or both absent.
fn lease_problems(docs: &[Value]) -> Vec<String> {
    let flag = deployment_args(docs).iter().find_map(|a| {
        a.strip_prefix("--leader-election-lease=")
            .map(str::to_owned)
    });
    let granted: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Role")
        .flat_map(|r| r["rules"].as_array().into_iter().flatten())
        .filter_map(|rule| rule.get("resourceNames"))
        .collect();
    let expected = match &flag {
        Some(lease) => vec![json!([lease])],
        None => vec![],
    };
    if granted.iter().copied().ne(expected.iter()) {
        return vec![format!(
            "the operator uses Lease {flag:?} but RBAC grants {granted:?}"
        )];
    }
    Vec::new()
}

// ---------------------------------------------------------------------------
// The tables

/// A release name at Helm's limit (53 characters) not holding the chart's name: the full name is
/// cut at 63.
const LONG_RELEASE: &str = "a-release-name-of-fifty-three-characters-at-the-limit";

type Check = fn(&[Value]) -> Result<(), String>;

/// Values that render: a release, its namespace, `--set` values, and what must hold of the objects.
struct Render {
    release: &'static str,
    namespace: &'static str,
    sets: Vec<String>,
    check: Check,
}

fn case(release: &'static str, namespace: &'static str, sets: &[&str], check: Check) -> Render {
    Render {
        release,
        namespace,
        sets: sets.iter().map(|s| s.to_string()).collect(),
        check,
    }
}

fn renders() -> Vec<Render> {
    let long_fullname = format!("fullnameOverride={}", "f".repeat(63));
    vec![
        case("r", "ops", &[], |_| Ok(())),
        case("r", "ops", &["leaderElection.leaseName=lease.v2"], |docs| {
            expect_arg(docs, "--leader-election-lease=lease.v2")
        }),
        case("r", "ops", &[&long_fullname], |docs| {
            service_name_ends(docs, "-metrics")
        }),
        case(LONG_RELEASE, "ops", &[], |docs| {
            service_name_ends(docs, "-metrics")
        }),
        case("r.v1", "ops", &[], |docs| {
            service_name_ends(docs, "-metrics")
        }),
        case("1st", "ops", &[], |docs| {
            service_name_ends(docs, "-metrics")
        }),
        // YAML would read these as a boolean and a number (and YAML 1.1 `off` as false), were
        // they not quoted.
        case("true", "123", &["watchNamespaces={team-1,off}"], |docs| {
            expect_arg(docs, "--namespace=off")
        }),
        case(
            "r",
            "ops",
            &[
                "podLabels.tier=1",
                "podLabels.canary=true",
                "podLabels.example\\.com/team=ml",
                "podAnnotations.replicas=5",
                "nodeSelector.disk=1",
                "serviceAccount.annotations.id=123",
                "metrics.service.annotations.port=9090",
            ],
            |docs| {
                let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
                let labels = &deployment["spec"]["template"]["metadata"]["labels"];
                let expected = [
                    ("tier", "1"),
                    ("canary", "true"),
                    ("example.com/team", "ml"),
                ];
                expected
                    .iter()
                    .all(|(k, v)| labels[k] == *v)
                    .then_some(())
                    .ok_or_else(|| format!("pod labels: {labels}"))
            },
        ),
        case(
            "r",
            "ops",
            &[
                "workflowPolicy.jobTemplates=refuse",
                "workflowPolicy.allowedServiceAccounts={runner,s3-writer}",
            ],
            |docs| {
                expect_arg(docs, "--job-templates=refuse")?;
                expect_arg(docs, "--allowed-service-accounts=runner,s3-writer")
            },
        ),
        // Values kept from a release before workflowPolicy existed (`helm upgrade --reuse-values`).
        case("r", "ops", &["workflowPolicy=null"], |docs| {
            let args = deployment_args(docs);
            (!args
                .iter()
                .any(|a| a.contains("job-templates") || a.contains("service-accounts")))
            .then_some(())
            .ok_or_else(|| format!("the defaults pass no policy flag: {args:?}"))
        }),
    ]
}

fn expect_arg(docs: &[Value], arg: &str) -> Result<(), String> {
    let args = deployment_args(docs);
    args.iter()
        .any(|a| a == arg)
        .then_some(())
        .ok_or_else(|| format!("no {arg} in {args:?}"))
}

fn service_name_ends(docs: &[Value], suffix: &str) -> Result<(), String> {
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .ok_or("no Service")?;
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    name.ends_with(suffix)
        .then_some(())
        .ok_or_else(|| format!("Service {name:?} does not end in {suffix}"))
}

/// Values the schema refuses: (--set value, what helm's message must name). For a bad key, helm
/// 3.22 names the key but reports it at an unrelated path, so the key is what is looked for.
const REFUSED: &[(&str, &str)] = &[
    ("leaderElection.leaseName=x #y", "/leaderElection/leaseName"),
    ("leaderElection.leaseName=", "/leaderElection/leaseName"),
    ("fullnameOverride=Bad_Name", "/fullnameOverride"),
    ("nameOverride=-x", "/nameOverride"),
    ("podLabels.tier=-1", "/podLabels"),
    ("podLabels.tier=not ok", "/podLabels"),
    ("podLabels.a b=c", "'a b'"),
    (
        "podLabels.app\\.kubernetes\\.io/name=x",
        "/podLabels/app.kubernetes.io~1name",
    ),
    ("podAnnotations.x/y/z=1", "'x/y/z'"),
    ("nodeSelector.disk=a:b", "/nodeSelector"),
    ("watchNamespaces={Bad_Name}", "/watchNamespaces"),
    ("image.tag=1", "/image/tag"),
    ("image.repository=a b", "/image/repository"),
    ("runnerImage.tag=x y", "/runnerImage/tag"),
    ("metrics.port=0", "/metrics/port"),
    ("metrics.port=70000", "/metrics/port"),
    ("metrics.service.type=ExternalName", "/metrics/service/type"),
    ("replicas=-1", "/replicas"),
    (
        "workflowPolicy.jobTemplates=maybe",
        "/workflowPolicy/jobTemplates",
    ),
    (
        "workflowPolicy.allowedServiceAccounts={Admin}",
        "/workflowPolicy/allowedServiceAccounts",
    ),
    ("serviceAccount.name=x #y", "/serviceAccount/name"),
    ("imagePullSecrets[0].name=x y", "/imagePullSecrets"),
    ("tolerations[0].value=1", "/tolerations"),
    ("resources.limits.cpu=lots", "/resources/limits/cpu"),
    ("priorityClassName=High", "/priorityClassName"),
    ("logFormat=xml", "/logFormat"),
    ("logLevl=debug", "logLevl"),
    (
        "serviceAccount.create=false",
        "serviceAccount.name is required",
    ),
];

#[test]
fn hostile_values_that_render_give_valid_names_labels_and_a_consistent_lease() {
    for r in renders() {
        let case = format!(
            "helm template {} --namespace {} --set {:?}",
            r.release, r.namespace, r.sets
        );
        let text =
            render(r.release, r.namespace, &r.sets).unwrap_or_else(|e| panic!("{case}: {e}"));
        let docs = documents(&text);
        assert!(docs.len() >= 6, "{case}: {} objects", docs.len());
        let mut found: Vec<String> = docs.iter().flat_map(problems).collect();
        found.extend(lease_problems(&docs));
        assert!(found.is_empty(), "{case}:\n{}", found.join("\n"));
        (r.check)(&docs).unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

#[test]
fn the_checks_catch_what_the_old_chart_rendered() {
    // The unquoted, uncut renders of the issue: each must be caught, or the test above proves nothing.
    let bad = [
        json!({"kind": "Service", "metadata": {"name": format!("{}-metrics", "f".repeat(63))}}),
        json!({"kind": "Service", "metadata": {"name": "r.v1-roiergasias-operator-metrics"}}),
        json!({"kind": "Deployment", "metadata": {"name": "d", "labels": {"tier": 1}}}),
        json!({"kind": "Deployment", "metadata": {"name": "d", "namespace": 123}}),
        json!({"kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": {"containers": [{"args": [true]}]}}}}),
    ];
    for doc in bad {
        assert!(!problems(&doc).is_empty(), "not caught: {doc}");
    }
    let inconsistent = [
        json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"args": ["--leader-election-lease=x"]}]}}}}),
        json!({"kind": "Role", "rules": [{"resourceNames": ["x #y"]}]}),
    ];
    assert!(!lease_problems(&inconsistent).is_empty());
}

#[test]
fn long_release_names_get_distinct_services_that_fit() {
    let name = |release: &str| {
        let docs = documents(&render(release, "ops", &[] as &[&str]).unwrap());
        let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
        service["metadata"]["name"].as_str().unwrap().to_owned()
    };
    let (a, b) = (
        name(LONG_RELEASE),
        name(&format!("{}b", &LONG_RELEASE[..52])),
    );
    assert_ne!(a, b, "cut at the same place, yet distinct");
    for s in [&a, &b] {
        assert!(dns_1035_label(s), "{s} ({} characters)", s.len());
    }
    // Short names are left alone.
    assert_eq!(name("r"), "r-roiergasias-operator-metrics");
}

#[test]
fn hostile_values_the_schema_refuses_fail_with_a_message_naming_the_value() {
    for (set, says) in REFUSED {
        let err = render("r", "ops", &[set]).expect_err(&format!("--set {set} rendered"));
        assert!(
            err.contains(says),
            "--set {set}: the message does not name {says}:\n{err}"
        );
    }
}

/// `kubectl apply --dry-run=server --validate=strict`: the API server's own validation. Ok holds
/// what was applied and any warnings.
fn server_dry_run(manifest: &str) -> Result<(String, String), String> {
    let mut child = Command::new(tools_dir().join("kubectl"))
        .args(["apply", "--dry-run=server", "--validate=strict", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("writing to kubectl");
    let out = child.wait_with_output().expect("kubectl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok((text(&out.stdout), text(&out.stderr)))
    } else {
        Err(text(&out.stderr))
    }
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn hostile_values_that_render_are_accepted_by_the_api_server() {
    let client = roiergasias_testkit::client().await;
    let ns = roiergasias_testkit::TestNamespace::create(&client, "helm-values").await;
    // In the test's namespace; the watched namespaces must exist, so only this one is watched.
    let mut cases: Vec<(&str, Vec<String>)> = renders()
        .into_iter()
        .filter(|r| !r.sets.iter().any(|s| s.starts_with("watchNamespaces")))
        .map(|r| (r.release, r.sets))
        .collect();
    // Release names YAML 1.1 (which the API server reads) takes for booleans, and a Role per
    // watched namespace.
    cases.push(("on", vec![]));
    cases.push(("yes", vec![format!("watchNamespaces={{{}}}", ns.name)]));
    cases.push(("true", vec![]));
    for (release, sets) in cases {
        let case = format!("helm template {release} --set {sets:?}");
        let manifest = render(release, &ns.name, &sets).unwrap_or_else(|e| panic!("{case}: {e}"));
        let (applied, warnings) =
            server_dry_run(&manifest).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(applied.contains("service/"), "{case}: {applied}");
        assert!(!warnings.contains("Warning"), "{case}: {warnings}");
    }

    // And the API server does refuse what the old chart rendered: a 71-character Service name.
    let long = format!("{}-metrics", "f".repeat(63));
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {long}\n  namespace: {}\n\
         spec:\n  ports:\n    - port: 8080\n",
        ns.name
    );
    let err = server_dry_run(&service).expect_err("a 71-character Service name");
    assert!(err.contains("63"), "{err}");
}

#[test]
fn the_policy_flags_the_chart_passes_are_the_operators() {
    let out = Command::new(OPERATOR)
        .arg("--help")
        .output()
        .expect("running roiergasias-operator --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for text in [
        "--job-templates <MODE>",
        "allow",
        "refuse",
        "--allowed-service-accounts <NAME,...>",
    ] {
        assert!(help.contains(text), "--help lacks {text}:\n{help}");
    }
}
