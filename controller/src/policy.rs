//! What a Workflow's `jobTemplate` may ask the operator for (`--job-templates`,
//! `--allowed-service-accounts`): pure, no client.
//!
//! The operator creates Jobs with its own permissions, so without a policy anyone who can create a
//! Workflow in a namespace gets a Job with any pod template and ServiceAccount there. The check
//! runs before every split's objects are built, so a stricter policy also stops Workflows that
//! were already running when the operator restarted with it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodSpec;
use roiergasias_crd::WorkflowSpec;
use serde_json::Value;

/// The ServiceAccount of a pod that names none; always allowed, since the default runner's pods
/// run as it.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// At most this many fields are named when a custom jobTemplate is refused.
const MAX_FIELDS_NAMED: usize = 5;

/// Whether Workflows may bring their own `jobTemplate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JobTemplates {
    /// Any jobTemplate (the original operator's behaviour, and the default).
    #[default]
    Allow,
    /// Only the default runner: a Workflow whose jobTemplate sets anything fails.
    Refuse,
}

/// The operator's policy for what Workflows may ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub job_templates: JobTemplates,
    /// ServiceAccounts a Job's pods may run as besides `default`; empty: any.
    pub allowed_service_accounts: BTreeSet<String>,
}

impl Policy {
    /// `Err` says what the Workflow asked for and which operator option refuses it.
    pub fn check(&self, spec: &WorkflowSpec) -> Result<(), String> {
        let Some(template) = &spec.job_template else {
            return Ok(());
        };
        if self.job_templates == JobTemplates::Refuse {
            let value = serde_json::to_value(template).unwrap_or(Value::Null);
            let fields = fields_set(&value);
            if !fields.is_empty() {
                return Err(format!(
                    "refused by the operator's policy (--job-templates=refuse): Workflows run only \
                     with the default runner, and spec.jobTemplate sets {}; remove spec.jobTemplate",
                    fields.join(", ")
                ));
            }
        }
        let pod = template
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        if let Some(pod) = pod {
            self.check_service_account(pod)?;
        }
        Ok(())
    }

    fn check_service_account(&self, pod: &PodSpec) -> Result<(), String> {
        if self.allowed_service_accounts.is_empty() {
            return Ok(());
        }
        // `serviceAccount` is the deprecated alias Kubernetes still honours: check both.
        let asked = [
            ("serviceAccountName", &pod.service_account_name),
            ("serviceAccount", &pod.service_account),
        ];
        for (field, name) in asked {
            let Some(name) = name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            if name != DEFAULT_SERVICE_ACCOUNT && !self.allowed_service_accounts.contains(name) {
                return Err(format!(
                    "refused by the operator's policy: spec.jobTemplate.spec.template.spec.{field} \
                     {name:?} is not an allowed ServiceAccount (--allowed-service-accounts={}; \
                     {DEFAULT_SERVICE_ACCOUNT:?} is always allowed)",
                    self.allowed_list()
                ));
            }
        }
        Ok(())
    }

    fn allowed_list(&self) -> String {
        let names: Vec<&str> = self
            .allowed_service_accounts
            .iter()
            .map(String::as_str)
            .collect();
        names.join(",")
    }
}

/// Checks one `--allowed-service-accounts` entry: a ServiceAccount name is a DNS subdomain.
pub fn parse_service_account(name: &str) -> Result<String, String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a ServiceAccount name (lower-case letters, digits, '-' and '.', \
             at most 253 characters)"
        ));
    }
    Ok(name.to_owned())
}

/// Paths (relative to the jobTemplate) of the values it sets, the first few only: empty objects,
/// empty lists and nulls set nothing.
fn fields_set(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut more = false;
    collect_fields(value, "", &mut out, &mut more);
    if more {
        out.push("…".to_owned());
    }
    out
}

fn collect_fields(value: &Value, path: &str, out: &mut Vec<String>, more: &mut bool) {
    match value {
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                collect_fields(child, &child_path, out, more);
            }
        }
        _ if out.len() >= MAX_FIELDS_NAMED => *more = true,
        _ => out.push(path.to_owned()),
    }
}

#[cfg(test)]
mod tests;
