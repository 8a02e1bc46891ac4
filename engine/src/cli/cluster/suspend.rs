//! `suspend` and `resume`: `spec.suspend` true or false, and what that does to the run now.

use kube::api::{Patch, PatchParams};
use roiergasias_crd::{Phase, SplitPhase, Workflow};
use serde_json::json;

use super::connect::Target;
use crate::cli::Failure;

/// What a suspend or resume does to a Workflow as read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Patch spec.suspend, then print the text.
    Patch(String),
    /// Already so: print the text, change nothing.
    Nothing(String),
}

pub(crate) async fn run(target: &Target, name: &str, suspend: bool) -> Result<(), Failure> {
    let verb = if suspend { "suspending" } else { "resuming" };
    let doing = format!("{verb} workflow {name}");
    let api = target.workflows();
    let wf = api
        .get(name)
        .await
        .map_err(|e| target.explain(&doing, &e))?;
    match plan(&wf, suspend)? {
        Plan::Nothing(text) => println!("{text}"),
        Plan::Patch(text) => {
            let patch = json!({"spec": {"suspend": suspend}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| target.explain(&doing, &e))?;
            println!("{text}");
        }
    }
    Ok(())
}

/// Refuses an ended workflow; otherwise says what happens next.
pub(crate) fn plan(wf: &Workflow, suspend: bool) -> Result<Plan, Failure> {
    let name = wf.metadata.name.as_deref().unwrap_or_default();
    let status = wf.status_or_default();
    if let Some(phase @ (Phase::Succeeded | Phase::Failed)) = status.phase {
        let (what, then) = match (suspend, phase) {
            (true, _) => ("suspend", ""),
            (false, Phase::Failed) => ("resume", "; `roiergasias retry` runs it again"),
            (false, _) => ("resume", ""),
        };
        return Err(Failure::Step(format!(
            "workflow {name} has ended ({phase:?}): nothing to {what}{then}"
        )));
    }
    let total = status.total_splits.unwrap_or(status.splits.len() as u32);
    let running = status
        .splits
        .iter()
        .find(|s| s.phase == Some(SplitPhase::Running));
    let held = wf.spec.suspend == Some(true);
    Ok(match (suspend, held, running) {
        (true, true, _) => Plan::Nothing(format!("workflow {name} is already suspended")),
        (true, false, Some(s)) => Plan::Patch(format!(
            "workflow {name} suspended: the running Job of split {}/{total}{} finishes, then no \
             further split starts",
            s.index,
            s.job
                .as_deref()
                .map(|j| format!(" ({j})"))
                .unwrap_or_default()
        )),
        // The operator may be creating a split's Job right now, unseen in the status read.
        (true, false, None) => Plan::Patch(format!(
            "workflow {name} suspended: no further split starts (one being started at this \
             moment still runs)"
        )),
        (false, false, _) => Plan::Nothing(format!(
            "workflow {name} is not suspended: nothing to resume"
        )),
        (false, true, Some(s)) => Plan::Patch(format!(
            "workflow {name} resumed: split {}/{total} runs on, and the next splits follow",
            s.index
        )),
        (false, true, None) => Plan::Patch(format!("workflow {name} resumed{}", next(&status))),
    })
}

/// `: split n/total starts next`, when a split is left to start.
fn next(status: &roiergasias_crd::WorkflowStatus) -> String {
    match (status.current_split, status.total_splits) {
        (Some(n), Some(total)) => format!(": split {n}/{total} starts next"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(suspend: Option<bool>, status: serde_json::Value) -> Workflow {
        let mut manifest = json!({
            "apiVersion": "batch.ankursoni.github.io/v1", "kind": "Workflow",
            "metadata": {"name": "demo"},
            "spec": {"workflowYAML": {"name": "demo", "yaml": "version: 0.1\n"}},
            "status": status
        });
        if let Some(s) = suspend {
            manifest["spec"]["suspend"] = s.into();
        }
        serde_json::from_value(manifest).unwrap()
    }

    fn running_split_2() -> serde_json::Value {
        json!({"phase": "Running", "state": "WaitingJob", "currentSplit": 2, "totalSplits": 3,
               "splits": [{"index": 1, "phase": "Succeeded", "job": "demo-1"},
                          {"index": 2, "phase": "Running", "job": "demo-2"},
                          {"index": 3, "phase": "Pending"}]})
    }

    fn text(plan: Result<Plan, Failure>) -> String {
        match plan {
            Ok(Plan::Patch(t)) => format!("patch: {t}"),
            Ok(Plan::Nothing(t)) => format!("nothing: {t}"),
            Err(f) => format!("error: {}", f.text()),
        }
    }

    #[test]
    fn suspending_a_running_split_says_its_job_finishes_first() {
        assert_eq!(
            text(plan(&wf(None, running_split_2()), true)),
            "patch: workflow demo suspended: the running Job of split 2/3 (demo-2) finishes, \
             then no further split starts"
        );
        assert_eq!(
            text(plan(&wf(None, json!({})), true)),
            "patch: workflow demo suspended: no further split starts (one being started at \
             this moment still runs)"
        );
        assert_eq!(
            text(plan(&wf(Some(true), running_split_2()), true)),
            "nothing: workflow demo is already suspended"
        );
    }

    #[test]
    fn resuming_says_what_starts_next() {
        let held = json!({"phase": "Suspended", "state": "Split", "currentSplit": 2,
                          "totalSplits": 3, "splits": [{"index": 1, "phase": "Succeeded"}]});
        assert_eq!(
            text(plan(&wf(Some(true), held), false)),
            "patch: workflow demo resumed: split 2/3 starts next"
        );
        assert_eq!(
            text(plan(&wf(Some(true), running_split_2()), false)),
            "patch: workflow demo resumed: split 2/3 runs on, and the next splits follow"
        );
        assert_eq!(
            text(plan(&wf(Some(false), running_split_2()), false)),
            "nothing: workflow demo is not suspended: nothing to resume"
        );
    }

    #[test]
    fn an_ended_workflow_has_nothing_to_suspend_or_resume() {
        let done = json!({"phase": "Succeeded"});
        assert_eq!(
            text(plan(&wf(None, done.clone()), true)),
            "error: workflow demo has ended (Succeeded): nothing to suspend"
        );
        assert_eq!(
            text(plan(&wf(Some(true), done), false)),
            "error: workflow demo has ended (Succeeded): nothing to resume"
        );
        assert_eq!(
            text(plan(&wf(Some(true), json!({"phase": "Failed"})), false)),
            "error: workflow demo has ended (Failed): nothing to resume; `roiergasias retry` \
             runs it again"
        );
    }
}
