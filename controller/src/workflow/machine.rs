//! The persisted state: `state`, `currentSplit`, `totalSplits` and the split records of a
//! Workflow's status, read and validated together in one place.
//!
//! Pending ──valid──▶ Split(1) ──ConfigMap+Job created──▶ WaitingJob(1) ──Complete──▶ Split(2) …
//!    │                   │                                    │
//!    └──invalid──▶ Done(Failed)    foreign object ──▶ Done(Failed) ◀──Failed / Job gone
//! WaitingJob(last) ──Complete──▶ Done(Succeeded)

use roiergasias_crd::{MachineState, WorkflowStatus};

use crate::plan::MAX_SPLITS;

/// The machine's state, as persisted in status (`state` + `currentSplit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Machine {
    Pending,
    Split(u32),
    WaitingJob(u32),
    Done,
}

/// A status this operator cannot have written (a hand edit, or a bug): never acted on or looped
/// over, but re-derived from the spec and the cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub(crate) String);

impl Machine {
    /// Reads the state from `status`, its fields checked together; `planned` is the number of
    /// splits of the spec, when known. No state (a new Workflow) is Pending; Pending (re-planned
    /// from the spec anyway) and Done (never acted on) need no other field.
    pub(crate) fn read(
        status: &WorkflowStatus,
        planned: Option<usize>,
    ) -> Result<Machine, Corrupt> {
        match status.state {
            None | Some(MachineState::Pending) => Ok(Machine::Pending),
            Some(MachineState::Done) => Ok(Machine::Done),
            Some(MachineState::Split) => Ok(Machine::Split(current(status, planned)?)),
            Some(MachineState::WaitingJob) => Ok(Machine::WaitingJob(current(status, planned)?)),
        }
    }
}

/// `currentSplit` of a running status, once `totalSplits`, the records and the plan agree.
fn current(status: &WorkflowStatus, planned: Option<usize>) -> Result<u32, Corrupt> {
    let corrupt = |why: String| Err(Corrupt(why));
    let Some(total) = status.total_splits else {
        return corrupt("totalSplits is missing".into());
    };
    let total = total as usize;
    if total == 0 || total > MAX_SPLITS {
        return corrupt(format!(
            "totalSplits {total} is not between 1 and {MAX_SPLITS}"
        ));
    }
    if let Some(planned) = planned
        && planned != total
    {
        return corrupt(format!(
            "totalSplits {total}, but the workflow has {planned} split(s)"
        ));
    }
    if status.splits.len() != total {
        return corrupt(format!(
            "{} split record(s) for totalSplits {total}",
            status.splits.len()
        ));
    }
    let misplaced = status
        .splits
        .iter()
        .enumerate()
        .find(|(i, r)| r.index as usize != i + 1);
    if let Some((i, record)) = misplaced {
        return corrupt(format!("split record {} has index {}", i + 1, record.index));
    }
    match status.current_split {
        Some(n) if n >= 1 && n as usize <= total => Ok(n),
        other => corrupt(format!(
            "currentSplit {other:?} is not between 1 and totalSplits {total}"
        )),
    }
}
