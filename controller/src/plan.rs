//! From a Workflow's spec to its splits, through the engine: pure, no client.

use roiergasias_crd::WorkflowSpec;
use roiergasias_engine::{Split, parse, split};

/// More splits would make the status (one record per split) approach etcd's object limit.
pub const MAX_SPLITS: usize = 1000;

/// The splits of the workflow, or the engine's validation message, one problem per line, each
/// located as `workflowYAML.yaml:line:column`.
pub fn plan(spec: &WorkflowSpec) -> Result<Vec<Split>, String> {
    let workflow =
        parse(&spec.workflow_yaml.yaml).map_err(|e| e.display_for("workflowYAML.yaml"))?;
    let splits = split(&workflow);
    if splits.len() > MAX_SPLITS {
        return Err(format!(
            "workflowYAML.yaml: {} tasks run on nodes; at most {MAX_SPLITS} are supported",
            splits.len()
        ));
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roiergasias_crd::WorkflowYaml;

    fn spec(yaml: &str) -> WorkflowSpec {
        WorkflowSpec {
            workflow_yaml: WorkflowYaml {
                name: "w".into(),
                yaml: yaml.into(),
            },
            job_template: None,
        }
    }

    #[test]
    fn valid_workflow_without_nodes_is_one_split() {
        let splits = plan(&spec(
            "version: 0.1\ntask:\n  - sequential:\n      - print:\n          - hi\n",
        ))
        .unwrap();
        assert_eq!(splits.len(), 1);
        assert_eq!(splits[0].node, None);
    }

    #[test]
    fn invalid_workflow_reports_the_engine_message_with_its_location() {
        let err = plan(&spec(
            "version: 0.1\ntask:\n  - sequential:\n      - frobnicate: [x]\n",
        ))
        .unwrap_err();
        assert!(err.starts_with("workflowYAML.yaml:"), "{err}");
        assert!(err.contains("frobnicate"), "{err}");
    }
}
