//! The client, as kubectl finds its cluster, and one-line errors for what goes wrong talking to it.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use roiergasias_crd::Workflow;

use super::TargetArgs;
use crate::cli::Failure;

/// The resource, as RBAC rules and kubectl name it.
pub(crate) const RESOURCE: &str = "workflows.batch.ankursoni.github.io";

/// A client and the namespace commands act in.
pub(crate) struct Target {
    pub client: Client,
    pub namespace: String,
    /// Where the client connects, for error messages.
    pub server: String,
}

impl Target {
    /// KUBECONFIG (or ~/.kube/config) with `--context`, else the in-cluster service account.
    pub async fn connect(args: &TargetArgs) -> Result<Target, Failure> {
        let config = config(args).await?;
        let server = config.cluster_url.to_string();
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| {
            Failure::Step(format!(
                "cannot set up a client for {server}: {}",
                chain(&e)
            ))
        })?;
        Ok(Target {
            client,
            namespace,
            server,
        })
    }

    pub fn workflows(&self) -> Api<Workflow> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A one-line message for an API error, naming what to do about it.
    pub fn explain(&self, doing: &str, error: &kube::Error) -> Failure {
        Failure::Step(explain(doing, &self.server, &self.namespace, error))
    }
}

async fn config(args: &TargetArgs) -> Result<Config, Failure> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let has_kubeconfig =
        std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) || Kubeconfig::read().is_ok();
    if !has_kubeconfig && in_cluster && args.context.is_none() {
        return Config::incluster().map_err(|e| {
            Failure::Step(format!(
                "cannot use the in-cluster service account: {}",
                chain(&e)
            ))
        });
    }
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    Config::from_kubeconfig(&options).await.map_err(|e| {
        let hint = if has_kubeconfig {
            "check KUBECONFIG and --context (`kubectl config get-contexts` lists them)"
        } else {
            "set KUBECONFIG to your cluster's kubeconfig, or run inside a pod"
        };
        Failure::Step(format!("no cluster configured: {}; {hint}", chain(&e)))
    })
}

/// The message for `error` met while `doing` (e.g. "creating workflow x").
pub(crate) fn explain(doing: &str, server: &str, namespace: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => match status.code {
            // A missing resource type reads so; a missing object names itself in quotes.
            404 if status
                .message
                .contains("could not find the requested resource") =>
            {
                format!(
                    "{doing}: the cluster at {server} has no {RESOURCE} resource: \
                 install the roiergasias operator's CRD (`helm install` the chart, or \
                 `kubectl apply -f helm/roiergasias-operator/crds/workflow.yaml`)"
                )
            }
            404 => format!("{doing}: {} (namespace {namespace})", status.message),
            403 => format!(
                "{doing}: forbidden: {}; ask your cluster admin for a Role granting {RESOURCE} \
                 (and pods/log for `logs`) in namespace {namespace}",
                status.message
            ),
            401 => format!(
                "{doing}: the cluster at {server} rejected the credentials ({}); \
                 refresh them in your kubeconfig",
                status.message
            ),
            _ => format!(
                "{doing}: {} ({} {})",
                status.message, status.code, status.reason
            ),
        },
        _ => format!(
            "{doing}: cannot reach the cluster at {server}: {}; is it up, and are KUBECONFIG \
             and --context right?",
            chain(error)
        ),
    }
}

/// The error and its sources on one line (the innermost usually names the cause).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": message
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_missing_crd_says_to_install_it() {
        let e = api_error(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        let text = explain("listing workflows", "https://k:6443/", "ns", &e);
        assert!(
            text.contains("has no workflows.batch.ankursoni.github.io resource"),
            "{text}"
        );
        assert!(
            text.contains("install the roiergasias operator's CRD"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn a_missing_workflow_is_not_a_missing_crd() {
        let message = r#"workflows.batch.ankursoni.github.io "x" not found"#;
        let text = explain(
            "getting workflow x",
            "s",
            "ns",
            &api_error(404, "NotFound", message),
        );
        assert_eq!(
            text,
            format!("getting workflow x: {message} (namespace ns)")
        );
    }

    #[test]
    fn forbidden_names_the_resource_and_namespace_to_ask_for() {
        let e = api_error(403, "Forbidden", "User \"bob\" cannot list resource");
        let text = explain("listing workflows", "s", "team-a", &e);
        assert!(
            text.contains("forbidden: User \"bob\" cannot list resource"),
            "{text}"
        );
        assert!(
            text.contains("Role granting workflows.batch.ankursoni.github.io"),
            "{text}"
        );
        assert!(text.contains("in namespace team-a"), "{text}");
    }
}
