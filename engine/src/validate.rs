//! Checks that every `{{env:NAME}}` can be resolved, before anything runs.
//!
//! A name is defined at a point of the workflow when it is set earlier in the global
//! `environment`, by an earlier `environment` step, or in the process environment
//! (`is_defined`). Commands may add variables through `ROIERGASIAS_ENV`, which cannot
//! be known statically: once an `execute` or `shell` command has run before a
//! reference, an unknown name is left to the runner, which fails that step if the
//! variable is still missing when the step runs.

use std::collections::{HashMap, HashSet};

use crate::error::{Pos, Problem, Problems};
use crate::model::{Step, Workflow};
use crate::parse::Positions;
use crate::substitute::references;
use crate::suggest::Suggester;

/// Names defined so far, and what to report about the others.
struct Checker<'a, 'f> {
    defined: HashSet<&'a str>,
    suggest: Suggester<'a>,
    is_defined: &'f dyn Fn(&str) -> bool,
    problems: Problems,
}

impl<'a> Checker<'a, '_> {
    fn define(&mut self, name: &'a str) {
        if self.defined.insert(name) {
            self.suggest.add(name);
        }
    }

    fn is_known(&self, name: &str) -> bool {
        self.defined.contains(name) || (self.is_defined)(name)
    }

    fn undefined(&mut self, at: Pos, where_: &str, name: &str) {
        if self.problems.is_full() {
            return self.problems.omit();
        }
        let hint = self.suggest.hint(name);
        self.problems.push(Problem::at(
            at,
            format!(
                "{where_}: `{{{{env:{name}}}}}` refers to undefined variable `{name}`{hint}; set it earlier in an `environment` or in the process environment"
            ),
        ));
    }
}

pub(crate) fn check_variables(
    workflow: &Workflow,
    positions: &Positions,
    is_defined: &dyn Fn(&str) -> bool,
) -> Problems {
    let mut checker = Checker {
        defined: HashSet::new(),
        suggest: Suggester::new(),
        is_defined,
        problems: Problems::default(),
    };
    // A rejected entry was reported already; reporting each use of its name would bury that.
    for name in &positions.rejected_environment {
        checker.define(name);
    }
    check_global(&mut checker, workflow, positions);
    let mut commands_ran = false;
    for (t, task) in workflow.tasks.iter().enumerate() {
        for (s, step) in task.steps.iter().enumerate() {
            let at = positions.tasks.get(t).and_then(|p| p.steps.get(s));
            let item_at = |k: usize| {
                at.and_then(|p| p.items.get(k).copied())
                    .or(at.map(|p| p.at))
                    .unwrap_or(Pos::UNKNOWN)
            };
            let where_ = format!("task {}, step {} ({})", t + 1, s + 1, step.kind());
            let mut step_check = StepCheck {
                where_,
                reported: HashSet::new(),
            };
            match step {
                Step::Print(items) => {
                    for (k, item) in items.iter().enumerate() {
                        step_check.text(&mut checker, item, item_at(k), commands_ran);
                    }
                }
                Step::Execute(items) | Step::Shell(items) => {
                    for (k, item) in items.iter().enumerate() {
                        step_check.text(&mut checker, item, item_at(k), commands_ran);
                        // Each command's ROIERGASIAS_ENV applies before the next one.
                        commands_ran = true;
                    }
                }
                Step::Environment(vars) => {
                    // Entries apply in order: a later one sees an earlier one.
                    for (k, var) in vars.iter().enumerate() {
                        step_check.text(&mut checker, &var.value, item_at(k), commands_ran);
                        checker.define(&var.name);
                    }
                }
            }
        }
    }
    checker.problems
}

fn check_global<'a>(checker: &mut Checker<'a, '_>, workflow: &'a Workflow, positions: &Positions) {
    // A global entry redefined later may be unresolvable on purpose: split documents
    // carry earlier steps' raw values, which the operator then overrides with outputs.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, var) in workflow.environment.iter().enumerate() {
        last.insert(&var.name, i);
    }
    for (i, var) in workflow.environment.iter().enumerate() {
        if last[var.name.as_str()] == i {
            for name in references(&var.value) {
                if !checker.is_known(name) {
                    let at = positions.environment.get(i).copied().unwrap_or_default();
                    checker.undefined(at, &format!("global environment, `{}`", var.name), name);
                }
            }
        }
        checker.define(&var.name);
    }
}

/// One step's references: each undefined name is reported once a step.
struct StepCheck {
    where_: String,
    reported: HashSet<String>,
}

impl StepCheck {
    /// `open`: a command has run before, so an unknown name may come from its output.
    fn text(&mut self, checker: &mut Checker<'_, '_>, text: &str, at: Pos, open: bool) {
        if open {
            return;
        }
        for name in references(text) {
            if !checker.is_known(name) && self.reported.insert(name.to_owned()) {
                checker.undefined(at, &self.where_, name);
            }
        }
    }
}
