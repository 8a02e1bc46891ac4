//! The operator's chart: lint, RBAC and the Deployment, as `helm template` renders them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

// ---------------------------------------------------------------------------
// The operator's chart

pub(crate) const CHART: &str = "helm/roiergasias-operator";

pub(crate) fn template(chart: &str, namespace: &str, sets: &[&str]) -> Vec<Value> {
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
            &["get", "list", "watch", "delete"],
        ),
        ("batch.ankursoni.github.io", "workflows/status", &["patch"]),
        ("", "configmaps", &["get", "create"]),
        (
            "batch",
            "jobs",
            &["get", "list", "watch", "create", "patch"],
        ),
        ("", "pods", &["list", "watch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "events", &["list", "watch"]),
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

/// Reading Nodes (readNodes, the default): a lost node's split fails instead of waiting.
fn node_permissions() -> BTreeMap<(String, String), BTreeSet<String>> {
    BTreeMap::from([(
        (String::new(), "nodes".to_string()),
        BTreeSet::from(["get".to_string()]),
    )])
}

#[test]
fn watching_a_list_of_namespaces_the_operator_reads_nodes_and_nothing_else_cluster_wide() {
    let docs = template(CHART, "ops", &["watchNamespaces={team-a}"]);
    let role = one(&docs, "ClusterRole");
    assert_eq!(str_at(role, "/metadata/name"), "roiergasias-operator-ops");
    assert_eq!(permissions(role), node_permissions());
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
}

pub(crate) fn container(deployment: &Value) -> &Value {
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
            "Service",
            "Lease"
        ])
    );
    // The chart makes the Lease, so `helm uninstall` removes it; the operator fills in its spec.
    let lease = one(&docs, "Lease");
    assert_eq!(str_at(lease, "/metadata/name"), "roiergasias-operator");
    assert_eq!(str_at(lease, "/metadata/namespace"), "ops");
    assert!(lease["spec"].is_null(), "{lease:#}");
    let sa = one(&docs, "ServiceAccount");
    let sa_name = str_at(sa, "/metadata/name");
    assert_eq!(str_at(sa, "/metadata/namespace"), "ops");

    let role = one(&docs, "ClusterRole");
    let mut expected = expected_workflow_permissions();
    expected.extend(node_permissions());
    assert_eq!(permissions(role), expected);
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains("secrets"), "no access to secrets");
    assert!(!text.contains("\"*\""), "no wildcards");
    // Owner references delete the rest; the operator deletes only finished Workflows (TTL).
    let deletes: Vec<String> = permissions(role)
        .into_iter()
        .filter(|(_, verbs)| verbs.contains("delete"))
        .map(|((_, resource), _)| resource)
        .collect();
    assert_eq!(deletes, ["workflows"], "delete on Workflows only");
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
            "readNodes=false",
            "leaderElection.enabled=false",
            "metrics.service.enabled=false",
            "logFormat=text",
        ],
    );
    assert!(by_kind(&docs, "ClusterRole").is_empty());
    assert!(by_kind(&docs, "ClusterRoleBinding").is_empty());
    assert!(by_kind(&docs, "Service").is_empty());
    assert!(by_kind(&docs, "Lease").is_empty());
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
