//! Splitting a workflow into one workflow per task, for tasks that run on different nodes.

use std::collections::HashMap;

use crate::model::{EnvVar, Step, Workflow};
use crate::substitute::references;

/// One piece of a split workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// 1-based position in the original workflow.
    pub index: usize,
    pub node: Option<String>,
    pub workflow: Workflow,
}

/// One split per task when tasks carry `node`; otherwise one split: the workflow itself.
///
/// Each split's global environment is the original global environment followed by the
/// `environment`-step values of all earlier splits, so it runs alone on another node.
/// Entries that a later entry overrides, and that nothing in between refers to, are
/// left out: the meaning is the same and the documents grow linearly, not quadratically.
pub fn split(workflow: &Workflow) -> Vec<Split> {
    if !workflow.has_nodes() {
        return vec![Split {
            index: 1,
            node: None,
            workflow: workflow.clone(),
        }];
    }
    let mut carried = Carried::default();
    let mut splits = Vec::with_capacity(workflow.tasks.len());
    for (i, task) in workflow.tasks.iter().enumerate() {
        let mut environment = Vec::with_capacity(workflow.environment.len() + carried.live);
        environment.extend_from_slice(&workflow.environment);
        environment.extend(carried.entries.iter().flatten().cloned());
        splits.push(Split {
            index: i + 1,
            node: task.node.clone(),
            workflow: Workflow {
                version: workflow.version.clone(),
                environment,
                tasks: vec![task.clone()],
            },
        });
        for step in &task.steps {
            if let Step::Environment(vars) = step {
                for var in vars {
                    carried.push(var);
                }
            }
        }
    }
    splits
}

/// How many splits [`split`] makes, without making them.
pub fn split_count(workflow: &Workflow) -> usize {
    if workflow.has_nodes() {
        workflow.tasks.len()
    } else {
        1
    }
}

/// Environment entries carried forward, with overridden ones dropped.
#[derive(Default)]
struct Carried {
    /// `None` marks a dropped entry; compacted when they pile up.
    entries: Vec<Option<EnvVar>>,
    live: usize,
    /// Name → (index of its latest entry, whether a later entry refers to it).
    latest: HashMap<String, (usize, bool)>,
}

impl Carried {
    fn push(&mut self, var: &EnvVar) {
        // References are resolved before the entry itself is set (`A: "{{env:A}}x"`).
        for name in references(&var.value) {
            if let Some(latest) = self.latest.get_mut(name) {
                latest.1 = true;
            }
        }
        if let Some(&(old, referenced)) = self.latest.get(&var.name)
            && !referenced
        {
            self.entries[old] = None;
            self.live -= 1;
        }
        self.latest
            .insert(var.name.clone(), (self.entries.len(), false));
        self.entries.push(Some(var.clone()));
        self.live += 1;
        if self.entries.len() > 64 && self.entries.len() > 2 * self.live {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut moved = vec![usize::MAX; self.entries.len()];
        let mut kept = Vec::with_capacity(self.live);
        for (i, entry) in self.entries.drain(..).enumerate() {
            if let Some(entry) = entry {
                moved[i] = kept.len();
                kept.push(Some(entry));
            }
        }
        self.entries = kept;
        for (index, _) in self.latest.values_mut() {
            *index = moved[*index];
        }
    }
}
