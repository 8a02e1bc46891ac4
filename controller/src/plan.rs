//! From a Workflow's spec to its plan and to the one split being created, through the engine:
//! each linear in the spec (the engine's `plan` and `split_at`; all splits at once can be
//! quadratic). Run off the async workers, a few at a time, so a large spec never stalls
//! `/healthz`, the Lease or other Workflows' reconciles.

use std::sync::Arc;

use roiergasias_crd::WorkflowSpec;
use roiergasias_engine::{Split, parse, split_at};
use tokio::sync::Semaphore;

/// More splits would make the status (one record per split) approach etcd's object limit.
pub const MAX_SPLITS: usize = 1000;

/// The engine's verdict on a valid spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Each split's node, in order.
    pub nodes: Vec<Option<String>>,
    /// The split asked for, when it exists.
    pub split: Option<Split>,
}

/// The plan of the workflow and, if `build` names one, that split; or the engine's validation
/// message, one problem per line, each located as `workflowYAML.yaml:line:column`.
pub fn plan(spec: &WorkflowSpec, build: Option<u32>) -> Result<Plan, String> {
    let workflow =
        parse(&spec.workflow_yaml.yaml).map_err(|e| e.display_for("workflowYAML.yaml"))?;
    let planned = roiergasias_engine::plan(&workflow);
    if planned.len() > MAX_SPLITS {
        return Err(format!(
            "workflowYAML.yaml: {} tasks run on nodes; at most {MAX_SPLITS} are supported",
            planned.len()
        ));
    }
    Ok(Plan {
        nodes: planned.into_iter().map(|s| s.node).collect(),
        split: build.and_then(|n| split_at(&workflow, n as usize)),
    })
}

/// [`plan`] on a blocking thread, at most `limit`'s permits at once (parsing a 512 KiB spec
/// takes tens of milliseconds and some megabytes; many at once must not add up).
pub async fn plan_off_thread(
    limit: &Arc<Semaphore>,
    spec: &WorkflowSpec,
    build: Option<u32>,
) -> Result<Plan, String> {
    let permit = limit
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "the operator is shutting down".to_owned())?;
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        plan(&spec, build)
    })
    .await
    .unwrap_or_else(|e| Err(format!("planning the workflow failed: {e}")))
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
            ..Default::default()
        }
    }

    #[test]
    fn valid_workflow_without_nodes_is_one_split() {
        let plan = plan(
            &spec("version: 0.1\ntask:\n  - sequential:\n      - print:\n          - hi\n"),
            Some(1),
        )
        .unwrap();
        assert_eq!(plan.nodes, [None]);
        assert_eq!(plan.split.unwrap().index, 1);
    }

    #[test]
    fn only_the_split_asked_for_is_built() {
        let yaml = "version: 0.1\ntask:\n  - node: a\n    sequential:\n      - environment:\n          - X: \"1\"\n  - node: b\n    sequential:\n      - print: [\"{{env:X}}\"]\n";
        let plan_only = plan(&spec(yaml), None).unwrap();
        assert_eq!(plan_only.nodes, [Some("a".into()), Some("b".into())]);
        assert_eq!(plan_only.split, None);
        let second = plan(&spec(yaml), Some(2)).unwrap().split.unwrap();
        assert_eq!((second.index, second.node.as_deref()), (2, Some("b")));
        assert!(
            second.workflow.environment.iter().any(|v| v.name == "X"),
            "split 2 carries split 1's environment: {:?}",
            second.workflow.environment
        );
        assert_eq!(plan(&spec(yaml), Some(3)).unwrap().split, None);
    }

    #[test]
    fn too_many_splits_is_a_clear_error() {
        let mut yaml = String::from("version: 0.1\ntask:\n");
        for i in 0..=MAX_SPLITS {
            yaml.push_str(&format!(
                "  - node: n{i}\n    sequential:\n      - print: [x]\n"
            ));
        }
        let err = plan(&spec(&yaml), None).unwrap_err();
        assert!(
            err.contains("1001 tasks") && err.contains("at most 1000"),
            "{err}"
        );
    }

    #[test]
    fn invalid_workflow_reports_the_engine_message_with_its_location() {
        let err = plan(
            &spec("version: 0.1\ntask:\n  - sequential:\n      - frobnicate: [x]\n"),
            None,
        )
        .unwrap_err();
        assert!(err.starts_with("workflowYAML.yaml:"), "{err}");
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[tokio::test]
    async fn planning_off_thread_gives_the_same_answer() {
        let limit = Arc::new(Semaphore::new(1));
        let s = spec("version: 0.1\ntask:\n  - sequential:\n      - print:\n          - hi\n");
        assert_eq!(
            plan_off_thread(&limit, &s, Some(1)).await,
            plan(&s, Some(1))
        );
        assert_eq!(limit.available_permits(), 1, "the permit is returned");
    }
}
