//! What the operator remembers of each Workflow between reconciles, in one map that is pruned
//! when a Workflow is deleted (and against the Workflow caches, should a deletion be missed).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;
use roiergasias_crd::Workflow;

/// Per Workflow (`namespace/name`).
#[derive(Default)]
pub(crate) struct Memory(Mutex<HashMap<String, Entry>>);

#[derive(Default)]
struct Entry {
    /// Consecutive failed reconciles, for the error back-off.
    failures: u32,
    /// Consecutive write conflicts, for their own (shorter) back-off.
    conflicts: u32,
    /// The resourceVersions our last reconcile's status writes replaced: a reconcile handed one
    /// of them (the cache has not yet seen our writes) is skipped, since the writes' own watch
    /// events bring the current one. Saves a doomed conflict, and its delay, per transition.
    superseded: Vec<String>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.failures == 0 && self.conflicts == 0 && self.superseded.is_empty()
    }
}

impl Memory {
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key.to_owned()).or_default();
        let result = f(entry);
        if entry.is_empty() {
            map.remove(key);
        }
        result
    }

    /// True when `workflow` is a version our last status writes replaced; otherwise forgets
    /// those writes (the cache has caught up).
    pub(crate) fn behind_own_write(&self, workflow: &Workflow) -> bool {
        let current = workflow.resource_version();
        self.with(&key(workflow), |entry| {
            let behind = current.is_some_and(|rv| entry.superseded.contains(&rv));
            if !behind {
                entry.superseded.clear();
            }
            behind
        })
    }

    /// A status write replaced version `old` of the Workflow `key`.
    pub(crate) fn wrote(&self, key: &str, old: String) {
        self.with(key, |entry| entry.superseded.push(old));
    }

    /// One more consecutive failure; the new count.
    pub(crate) fn failed(&self, key: &str) -> u32 {
        self.with(key, |entry| {
            entry.failures = entry.failures.saturating_add(1);
            entry.failures
        })
    }

    /// One more consecutive write conflict; the new count.
    pub(crate) fn conflicted(&self, key: &str) -> u32 {
        self.with(key, |entry| {
            entry.conflicts = entry.conflicts.saturating_add(1);
            entry.conflicts
        })
    }

    /// A reconcile succeeded: the back-offs start over.
    pub(crate) fn succeeded(&self, key: &str) {
        self.with(key, |entry| {
            entry.failures = 0;
            entry.conflicts = 0;
        });
    }

    /// Forgets every Workflow for which `exists` is false.
    pub(crate) fn retain(&self, exists: impl Fn(&str) -> bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|key, _| exists(key));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// `namespace/name`.
pub(crate) fn key(workflow: &Workflow) -> String {
    format!(
        "{}/{}",
        workflow.namespace().unwrap_or_default(),
        workflow.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use roiergasias_crd::{WorkflowSpec, WorkflowYaml};

    fn at_version(rv: &str) -> Workflow {
        let spec = WorkflowSpec {
            workflow_yaml: WorkflowYaml {
                name: "w".into(),
                yaml: "version: 0.1".into(),
            },
            job_template: None,
            ..Default::default()
        };
        let mut wf = Workflow::new("w", spec);
        wf.metadata.namespace = Some("ns".into());
        wf.metadata.resource_version = Some(rv.into());
        wf
    }

    #[test]
    fn a_copy_older_than_our_own_write_is_skipped_until_the_cache_catches_up() {
        let memory = Memory::default();
        assert!(
            !memory.behind_own_write(&at_version("10")),
            "nothing written"
        );
        // One reconcile chained two status writes: over version 10, then over 11.
        memory.wrote("ns/w", "10".into());
        memory.wrote("ns/w", "11".into());
        assert!(memory.behind_own_write(&at_version("10")), "stale copy");
        assert!(
            memory.behind_own_write(&at_version("11")),
            "intermediate copy"
        );
        assert!(!memory.behind_own_write(&at_version("12")), "caught up");
        assert!(!memory.behind_own_write(&at_version("10")), "forgotten");
        assert_eq!(memory.len(), 0, "the map stays bounded");
    }

    #[test]
    fn counts_grow_until_a_success_and_deleted_workflows_are_forgotten() {
        let memory = Memory::default();
        assert_eq!((memory.failed("a/x"), memory.failed("a/x")), (1, 2));
        assert_eq!(memory.conflicted("a/x"), 1);
        memory.failed("a/y");
        memory.succeeded("a/x");
        assert_eq!(memory.failed("a/x"), 1, "starts over after a success");
        memory.retain(|key| key != "a/x");
        assert_eq!(memory.len(), 1, "a/y is kept, a/x forgotten");
        memory.succeeded("a/y");
        assert_eq!(
            memory.len(),
            0,
            "an entry with nothing to remember is dropped"
        );
    }
}
