use super::*;
use roiergasias_crd::WorkflowYaml;
use serde_json::json;

fn spec(job_template: Option<Value>) -> WorkflowSpec {
    WorkflowSpec {
        workflow_yaml: WorkflowYaml {
            name: "w".into(),
            yaml: "version: 0.1".into(),
        },
        job_template: job_template.map(|t| serde_json::from_value(t).expect("a JobTemplateSpec")),
        ..Default::default()
    }
}

/// The original's hello-world jobTemplate: its own container, command and `yaml` mount.
fn original_template() -> Value {
    json!({"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{
            "name": "roiergasias",
            "image": "roiergasias:0.2.0",
            "command": ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"],
            "volumeMounts": [{"name": "yaml", "mountPath": "/root/hello-world"}]
        }]
    }}}})
}

fn with_service_account(field: &str, name: &str) -> Value {
    let mut template = original_template();
    template["spec"]["template"]["spec"][field] = json!(name);
    template
}

fn allowing(names: &[&str]) -> Policy {
    Policy {
        job_templates: JobTemplates::Allow,
        allowed_service_accounts: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn refusing() -> Policy {
    Policy {
        job_templates: JobTemplates::Refuse,
        ..Policy::default()
    }
}

#[test]
fn the_default_policy_accepts_the_originals_manifests_and_any_service_account() {
    let policy = Policy::default();
    assert_eq!(policy.job_templates, JobTemplates::Allow);
    for template in [
        None,
        Some(original_template()),
        Some(with_service_account(
            "serviceAccountName",
            "cluster-admin-ish",
        )),
    ] {
        assert_eq!(
            policy.check(&spec(template.clone())),
            Ok(()),
            "{template:?}"
        );
    }
}

#[test]
fn refuse_mode_refuses_any_template_that_sets_something_and_names_what() {
    let err = refusing()
        .check(&spec(Some(original_template())))
        .unwrap_err();
    assert!(err.contains("--job-templates=refuse"), "{err}");
    assert!(err.contains("spec.template.spec.containers"), "{err}");
    assert!(err.contains("spec.template.spec.restartPolicy"), "{err}");
    assert!(err.contains("remove spec.jobTemplate"), "{err}");

    // Even a template that only changes the retries or a label is a custom one.
    for template in [
        json!({"spec": {"backoffLimit": 3, "template": {}}}),
        json!({"metadata": {"labels": {"team": "a"}}}),
    ] {
        let err = refusing().check(&spec(Some(template.clone()))).unwrap_err();
        assert!(err.contains("spec.jobTemplate sets"), "{template}: {err}");
    }
}

#[test]
fn refuse_mode_accepts_no_template_or_an_empty_one() {
    for template in [
        None,
        Some(json!({})),
        Some(json!({"metadata": {}, "spec": {"template": {"spec": {"containers": []}}}})),
    ] {
        assert_eq!(
            refusing().check(&spec(template.clone())),
            Ok(()),
            "{template:?}"
        );
    }
}

#[test]
fn refusal_names_a_bounded_number_of_fields() {
    let labels: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("l{i:03}"), json!("v"))).collect();
    let err = refusing()
        .check(&spec(Some(json!({"metadata": {"labels": labels}}))))
        .unwrap_err();
    assert_eq!(
        err.matches("metadata.labels.").count(),
        MAX_FIELDS_NAMED,
        "{err}"
    );
    assert!(err.contains('…'), "{err}");
}

#[test]
fn the_allow_list_refuses_other_service_accounts_under_either_field() {
    let policy = allowing(&["runner", "s3-writer"]);
    for field in ["serviceAccountName", "serviceAccount"] {
        let err = policy
            .check(&spec(Some(with_service_account(field, "admin"))))
            .unwrap_err();
        assert!(
            err.contains(&format!(
                "spec.jobTemplate.spec.template.spec.{field} \"admin\""
            )),
            "{err}"
        );
        assert!(
            err.contains("--allowed-service-accounts=runner,s3-writer"),
            "{err}"
        );
        assert_eq!(
            policy.check(&spec(Some(with_service_account(field, "s3-writer")))),
            Ok(())
        );
    }
}

#[test]
fn the_allow_list_always_admits_the_default_service_account_and_an_unset_one() {
    let policy = allowing(&["runner"]);
    for template in [
        None,
        Some(original_template()),
        Some(with_service_account("serviceAccountName", "default")),
        Some(with_service_account("serviceAccountName", "")),
    ] {
        assert_eq!(
            policy.check(&spec(template.clone())),
            Ok(()),
            "{template:?}"
        );
    }
}

#[test]
fn both_options_together_refuse_the_template_first() {
    let policy = Policy {
        job_templates: JobTemplates::Refuse,
        allowed_service_accounts: BTreeSet::from(["runner".to_owned()]),
    };
    let err = policy
        .check(&spec(Some(with_service_account(
            "serviceAccountName",
            "runner",
        ))))
        .unwrap_err();
    assert!(err.contains("--job-templates=refuse"), "{err}");
}

#[test]
fn service_account_names_are_checked_as_dns_subdomains() {
    for good in ["runner", "s3-writer", "a.b", "x1"] {
        assert_eq!(parse_service_account(good).as_deref(), Ok(good));
    }
    let long = "a".repeat(254);
    for bad in [
        "",
        "Admin",
        "a_b",
        "-a",
        "a-",
        "a..b",
        "x #y",
        long.as_str(),
    ] {
        let err = parse_service_account(bad).unwrap_err();
        assert!(
            err.contains("is not a ServiceAccount name"),
            "{bad:?}: {err}"
        );
    }
}
