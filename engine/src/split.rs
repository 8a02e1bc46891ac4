//! Splitting a workflow into one workflow per task, for tasks that run on different nodes.
//!
//! Every split carries the environment of all earlier tasks, so the documents together can
//! be quadratic in the workflow's size (900 tasks each setting its own variable). Callers that
//! hold a spec from someone else (the operator) use [`plan`] and [`split_at`], each linear in
//! the workflow; [`splits`] yields the documents one at a time for those that print them all.

use std::collections::HashMap;

use crate::model::{EnvVar, Step, Task, Workflow};
use crate::substitute::references;

/// One piece of a split workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// 1-based position in the original workflow.
    pub index: usize,
    pub node: Option<String>,
    pub workflow: Workflow,
}

/// What [`plan`] knows about one split without building it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSplit {
    /// 1-based, as [`Split::index`] and the argument of [`split_at`].
    pub index: usize,
    /// The task's `node`; `None` for the single split of a workflow without nodes.
    pub node: Option<String>,
}

/// The splits [`split`] would make, in order, without their workflows: time and memory
/// linear in the number of tasks.
pub fn plan(workflow: &Workflow) -> Vec<PlannedSplit> {
    if !workflow.has_nodes() {
        return vec![PlannedSplit {
            index: 1,
            node: None,
        }];
    }
    workflow
        .tasks
        .iter()
        .enumerate()
        .map(|(i, task)| PlannedSplit {
            index: i + 1,
            node: task.node.clone(),
        })
        .collect()
}

/// Split `index` (1-based) alone, equal to `split(workflow)[index - 1]`, in time and memory
/// linear in the workflow; `None` when `index` is 0 or beyond [`split_count`].
pub fn split_at(workflow: &Workflow, index: usize) -> Option<Split> {
    if !workflow.has_nodes() {
        return (index == 1).then(|| whole(workflow));
    }
    let task = workflow.tasks.get(index.checked_sub(1)?)?;
    let mut carried = Carried::default();
    for earlier in &workflow.tasks[..index - 1] {
        carried.push_task(earlier);
    }
    Some(carried.split(workflow, index, task))
}

/// The splits one at a time, in order: memory for one split (plus what is carried), however
/// large all of them together are.
pub fn splits(workflow: &Workflow) -> impl Iterator<Item = Split> + '_ {
    let nodes = workflow.has_nodes();
    let single = (!nodes).then(|| whole(workflow));
    let mut carried = Carried::default();
    let per_task = workflow
        .tasks
        .iter()
        .enumerate()
        .take(if nodes { usize::MAX } else { 0 })
        .map(move |(i, task)| {
            let split = carried.split(workflow, i + 1, task);
            carried.push_task(task);
            split
        });
    single.into_iter().chain(per_task)
}

/// One split per task when tasks carry `node`; otherwise one split: the workflow itself.
///
/// Each split's global environment is the original global environment followed by the
/// `environment`-step values of all earlier splits, so it runs alone on another node.
/// Entries that a later entry overrides, and that nothing in between refers to, are
/// left out: the meaning is the same and the documents grow linearly, not quadratically,
/// when tasks set the same names. When they set distinct names, all splits together are
/// quadratic in size: see [`plan`], [`split_at`] and [`splits`].
pub fn split(workflow: &Workflow) -> Vec<Split> {
    splits(workflow).collect()
}

/// How many splits [`split`] makes, without making them.
pub fn split_count(workflow: &Workflow) -> usize {
    if workflow.has_nodes() {
        workflow.tasks.len()
    } else {
        1
    }
}

fn whole(workflow: &Workflow) -> Split {
    Split {
        index: 1,
        node: None,
        workflow: workflow.clone(),
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
    fn split(&self, workflow: &Workflow, index: usize, task: &Task) -> Split {
        let mut environment = Vec::with_capacity(workflow.environment.len() + self.live);
        environment.extend_from_slice(&workflow.environment);
        environment.extend(self.entries.iter().flatten().cloned());
        Split {
            index,
            node: task.node.clone(),
            workflow: Workflow {
                version: workflow.version.clone(),
                environment,
                tasks: vec![task.clone()],
            },
        }
    }

    fn push_task(&mut self, task: &Task) {
        for step in &task.steps {
            if let Step::Environment(vars) = step {
                for var in vars {
                    self.push(var);
                }
            }
        }
    }

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
