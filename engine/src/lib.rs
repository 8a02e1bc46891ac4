//! The roiergasias workflow engine: parse, validate, split and run version 0.1 workflows.
//!
//! The operator uses [`parse`], [`plan`], [`split_at`], [`Workflow::to_yaml`] and
//! [`Workflow::with_environment_appended`]; the `roiergasias` binary adds the runner.
//!
//! Work is linear in the input: YAML aliases are budgeted,
//! and [`plan`] and [`split_at`] make one split at a time where [`split`] makes them all
//! (which can be quadratic in size when every task sets its own variables).

mod error;
mod model;
pub mod outputs;
mod parse;
pub mod run;
mod split;
pub mod substitute;
mod suggest;
mod validate;
mod yaml;

pub use error::{MAX_PROBLEMS, Pos, Problem, WorkflowError};
pub use model::{EnvVar, Step, Task, VERSION, Workflow};
use parse::Unparsed;
pub use parse::{MAX_WORKFLOW_BYTES, workflow_text};
pub use split::{PlannedSplit, Split, plan, split, split_at, split_count, splits};

/// Parses and validates a workflow, reporting every problem found.
///
/// `{{env:NAME}}` names that are not set earlier in the workflow are assumed to come
/// from the environment the workflow will run in (a Job's container env, say), which
/// this process cannot see; use [`parse_with_env`] to check them too.
pub fn parse(text: &str) -> Result<Workflow, WorkflowError> {
    parse_with_env(text, |_| true)
}

/// Like [`parse`], also reporting `{{env:NAME}}` references that are not set earlier in
/// the workflow and for which `is_defined(NAME)` is false (see the rule in the
/// `roiergasias` README: names used after a command has run may come from its
/// `ROIERGASIAS_ENV` and are checked when the step runs).
pub fn parse_with_env(
    text: &str,
    is_defined: impl Fn(&str) -> bool,
) -> Result<Workflow, WorkflowError> {
    match parse::parse_structure(text) {
        Ok(parsed) => {
            let problems =
                validate::check_variables(&parsed.workflow, &parsed.positions, &is_defined);
            if problems.is_empty() {
                Ok(parsed.workflow)
            } else {
                Err(WorkflowError::new(problems))
            }
        }
        Err(unparsed) => {
            let Unparsed {
                mut problems,
                partial,
            } = *unparsed;
            if let Some(p) = partial {
                problems.extend(validate::check_variables(
                    &p.workflow,
                    &p.positions,
                    &is_defined,
                ));
            }
            Err(WorkflowError::new(problems))
        }
    }
}

/// Checks names against the process environment, as `roiergasias run` and `validate` do.
pub fn parse_with_process_env(text: &str) -> Result<Workflow, WorkflowError> {
    parse_with_env(text, |name| std::env::var_os(name).is_some())
}
