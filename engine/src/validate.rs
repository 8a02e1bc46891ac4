//! Checks that every `{{env:NAME}}` can be resolved, before anything runs.
//!
//! A name is defined at a point of the workflow when it is set earlier in the global
//! `environment`, by an earlier `environment` step, or in the process environment
//! (`is_defined`). Commands may add variables through `ROIERGASIAS_ENV`, which cannot
//! be known statically: once an `execute` or `shell` command has run before a
//! reference, an unknown name is left to the runner, which fails that step if the
//! variable is still missing when the step runs.

use std::collections::{HashMap, HashSet};

use crate::error::{Pos, Problem};
use crate::model::{Step, Workflow};
use crate::parse::{Positions, did_you_mean};
use crate::substitute::references;

pub(crate) fn check_variables(
    workflow: &Workflow,
    positions: &Positions,
    is_defined: &dyn Fn(&str) -> bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut defined: HashSet<&str> = HashSet::new();

    // A global entry redefined later may be unresolvable on purpose: split documents
    // carry earlier steps' raw values, which the operator then overrides with outputs.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, var) in workflow.environment.iter().enumerate() {
        last.insert(&var.name, i);
    }
    for (i, var) in workflow.environment.iter().enumerate() {
        if last[var.name.as_str()] == i {
            for name in references(&var.value) {
                if !defined.contains(name) && !is_defined(name) {
                    let at = positions.environment.get(i).copied().unwrap_or_default();
                    problems.push(undefined(
                        at,
                        &format!("global environment, `{}`", var.name),
                        name,
                        &defined,
                    ));
                }
            }
        }
        defined.insert(&var.name);
    }

    let mut commands_ran = false;
    for (t, task) in workflow.tasks.iter().enumerate() {
        for (s, step) in task.steps.iter().enumerate() {
            let step_at = positions.tasks.get(t).and_then(|p| p.steps.get(s));
            let item_at = |k: usize| {
                step_at
                    .and_then(|p| p.items.get(k).copied())
                    .or(step_at.map(|p| p.at))
                    .unwrap_or(Pos::UNKNOWN)
            };
            let where_ = || format!("task {}, step {} ({})", t + 1, s + 1, step.kind());
            let mut reported: HashSet<String> = HashSet::new();
            let mut check = |text: &'_ str,
                             at: Pos,
                             open: bool,
                             defined: &HashSet<&str>,
                             problems: &mut Vec<Problem>| {
                for name in references(text) {
                    if !open
                        && !defined.contains(name)
                        && !is_defined(name)
                        && reported.insert(name.to_owned())
                    {
                        problems.push(undefined(at, &where_(), name, defined));
                    }
                }
            };
            match step {
                Step::Print(items) => {
                    for (k, item) in items.iter().enumerate() {
                        check(item, item_at(k), commands_ran, &defined, &mut problems);
                    }
                }
                Step::Execute(items) | Step::Shell(items) => {
                    for (k, item) in items.iter().enumerate() {
                        check(item, item_at(k), commands_ran, &defined, &mut problems);
                        // Each command's ROIERGASIAS_ENV applies before the next one.
                        commands_ran = true;
                    }
                }
                Step::Environment(vars) => {
                    for (k, var) in vars.iter().enumerate() {
                        check(
                            &var.value,
                            item_at(k),
                            commands_ran,
                            &defined,
                            &mut problems,
                        );
                        defined.insert(&var.name);
                    }
                }
            }
        }
    }
    problems
}

fn undefined(at: Pos, where_: &str, name: &str, defined: &HashSet<&str>) -> Problem {
    let known: Vec<&str> = defined.iter().copied().collect();
    let hint = did_you_mean(name, &known);
    Problem::at(
        at,
        format!(
            "{where_}: `{{{{env:{name}}}}}` refers to undefined variable `{name}`{hint}; set it earlier in an `environment` or in the process environment"
        ),
    )
}
