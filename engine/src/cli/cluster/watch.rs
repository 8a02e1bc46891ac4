//! `watch` (and `submit --watch`): a line each time a split changes phase, until the run ends.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use roiergasias_crd::{Phase, SplitPhase, Workflow};
use tracing::warn;

use super::connect::Target;
use super::table::span;
use crate::cli::Failure;

pub(crate) async fn run(target: &Target, name: &str) -> Result<(), Failure> {
    // A first GET, so a missing workflow or CRD is an error now, not a watch retrying.
    let first = target
        .workflows()
        .get(name)
        .await
        .map_err(|e| target.explain(&format!("getting workflow {name}"), &e))?;
    let mut seen = Seen::default();
    if let Some(done) = report(&mut seen, &first) {
        return done;
    }
    let stream = watcher::watch_object(target.workflows(), name).default_backoff();
    let mut stream = std::pin::pin!(stream.into_stream());
    while let Some(event) = stream.next().await {
        match event {
            Ok(Some(wf)) => {
                if let Some(done) = report(&mut seen, &wf) {
                    return done;
                }
            }
            Ok(None) => {
                return Err(Failure::Step(format!(
                    "workflow {name} was deleted while being watched"
                )));
            }
            Err(e) => warn!("watching workflow {name}: {e}; retrying"),
        }
    }
    Err(Failure::Step(format!("the watch of workflow {name} ended")))
}

/// Prints what changed; once the run ended, its result: Ok on Succeeded, a Failure on Failed.
fn report(seen: &mut Seen, wf: &Workflow) -> Option<Result<(), Failure>> {
    for line in seen.changes(wf, Timestamp::now()) {
        println!("{line}");
    }
    outcome(wf, Timestamp::now())
}

/// The phase last printed for each split, and for the workflow.
#[derive(Default)]
pub(crate) struct Seen {
    splits: BTreeMap<u32, SplitPhase>,
    phase: Option<Phase>,
}

impl Seen {
    /// One line per split whose phase changed since the last call, and one when the workflow's did.
    pub(crate) fn changes(&mut self, wf: &Workflow, now: Timestamp) -> Vec<String> {
        let status = wf.status_or_default();
        let total = status.total_splits.unwrap_or(status.splits.len() as u32);
        let mut lines = vec![];
        if status.phase != self.phase
            && let Some(phase) = status.phase
            && phase != Phase::Succeeded
            && phase != Phase::Failed
        {
            lines.push(format!("workflow {}: {phase:?}", name(wf)));
        }
        self.phase = status.phase;
        for s in &status.splits {
            let Some(phase) = s.phase else { continue };
            if phase == SplitPhase::Pending || self.splits.get(&s.index) == Some(&phase) {
                continue;
            }
            self.splits.insert(s.index, phase);
            let mut line = format!(
                "split {}/{total}   node {}   job {}   {phase:?}",
                s.index,
                s.node.as_deref().unwrap_or("-"),
                s.job.as_deref().unwrap_or("-"),
            );
            if matches!(phase, SplitPhase::Succeeded | SplitPhase::Failed)
                && let Some(start) = &s.start_time
            {
                line.push_str(&format!(
                    " in {}",
                    span(start, s.completion_time.as_ref(), now)
                ));
            }
            lines.push(line);
        }
        lines
    }
}

fn name(wf: &Workflow) -> &str {
    wf.metadata.name.as_deref().unwrap_or_default()
}

/// Ok on Succeeded, a Failure (exit 1) on Failed, None while it runs.
pub(crate) fn outcome(wf: &Workflow, now: Timestamp) -> Option<Result<(), Failure>> {
    let status = wf.status_or_default();
    let took = status
        .start_time
        .as_ref()
        .map(|s| format!(" in {}", span(s, status.completion_time.as_ref(), now)))
        .unwrap_or_default();
    let progress = status.progress.as_deref().unwrap_or("-");
    match status.phase? {
        Phase::Succeeded => {
            println!("workflow {} Succeeded: {progress} splits{took}", name(wf));
            Some(Ok(()))
        }
        Phase::Failed => Some(Err(Failure::Step(format!(
            "workflow {} Failed after {progress} splits{took}: {}",
            name(wf),
            status.message.as_deref().unwrap_or("no message")
        )))),
        Phase::Pending | Phase::Running | Phase::Suspended => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(status: serde_json::Value) -> Workflow {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.ankursoni.github.io/v1", "kind": "Workflow",
            "metadata": {"name": "demo"},
            "spec": {"workflowYAML": {"name": "demo", "yaml": "version: 0.1\n"}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn each_phase_change_is_one_line_and_repeats_are_not() {
        let now: Timestamp = "2026-12-01T12:00:09Z".parse().unwrap();
        let mut seen = Seen::default();
        let running = wf(
            serde_json::json!({"phase": "Running", "totalSplits": 2, "splits": [
                {"index": 1, "node": "a", "job": "demo-1", "phase": "Running", "startTime": "2026-12-01T12:00:01Z"}
            ]}),
        );
        assert_eq!(
            seen.changes(&running, now),
            [
                "workflow demo: Running",
                "split 1/2   node a   job demo-1   Running"
            ]
        );
        assert!(seen.changes(&running, now).is_empty());
        let next = wf(
            serde_json::json!({"phase": "Running", "totalSplits": 2, "splits": [
                {"index": 1, "node": "a", "job": "demo-1", "phase": "Succeeded",
                 "startTime": "2026-12-01T12:00:01Z", "completionTime": "2026-12-01T12:00:04Z"},
                {"index": 2, "node": "b", "job": "demo-2", "phase": "Running", "startTime": "2026-12-01T12:00:05Z"}
            ]}),
        );
        assert_eq!(
            seen.changes(&next, now),
            [
                "split 1/2   node a   job demo-1   Succeeded in 3s",
                "split 2/2   node b   job demo-2   Running"
            ]
        );
        assert!(outcome(&next, now).is_none());
    }

    #[test]
    fn the_run_ends_ok_on_succeeded_and_exit_1_on_failed() {
        let now: Timestamp = "2026-12-01T12:00:09Z".parse().unwrap();
        let ok = wf(serde_json::json!({"phase": "Succeeded", "progress": "2/2"}));
        assert!(matches!(outcome(&ok, now), Some(Ok(()))));
        let failed = wf(
            serde_json::json!({"phase": "Failed", "progress": "1/2", "message": "Job demo-2 failed"}),
        );
        let Some(Err(Failure::Step(text))) = outcome(&failed, now) else {
            panic!("a Failed run is a step failure (exit 1)")
        };
        assert!(text.contains("Job demo-2 failed"), "{text}");
    }
}
