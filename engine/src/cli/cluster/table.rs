//! `list` and `get`: tables rendered from Workflow resources (the rendering is pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use roiergasias_crd::{LastRetry, SplitPhase, SplitRecord, Workflow};

use super::Output;
use super::connect::Target;
use super::retry::operators_reason;
use crate::cli::Failure;

pub(crate) async fn list(target: &Target, all_namespaces: bool) -> Result<(), Failure> {
    let api: Api<Workflow> = if all_namespaces {
        Api::all(target.client.clone())
    } else {
        target.workflows()
    };
    let listed = api
        .list(&ListParams::default())
        .await
        .map_err(|e| target.explain("listing workflows", &e))?;
    if listed.items.is_empty() {
        let place = if all_namespaces {
            "any namespace".to_owned()
        } else {
            format!("namespace {}", target.namespace)
        };
        eprintln!("No workflows in {place}.");
        return Ok(());
    }
    print!(
        "{}",
        list_table(&listed.items, all_namespaces, Timestamp::now())
    );
    Ok(())
}

pub(crate) async fn get(
    target: &Target,
    name: &str,
    output: Option<Output>,
) -> Result<(), Failure> {
    let workflow = target
        .workflows()
        .get(name)
        .await
        .map_err(|e| target.explain(&format!("getting workflow {name}"), &e))?;
    let text = match output {
        Some(Output::Json) => serde_json::to_string_pretty(&workflow)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string()),
        Some(Output::Yaml) => serde_saphyr::to_string(&workflow).map_err(|e| e.to_string()),
        Some(Output::Wide) => Ok(describe(&workflow, true, Timestamp::now())),
        None => Ok(describe(&workflow, false, Timestamp::now())),
    };
    let text = text.map_err(|e| Failure::Step(format!("cannot print workflow {name}: {e}")))?;
    print!("{text}");
    Ok(())
}

/// NAME PHASE PROGRESS NODE AGE (NAMESPACE first with `-A`), as `kubectl get workflows` shows.
pub(crate) fn list_table(items: &[Workflow], namespaces: bool, now: Timestamp) -> String {
    let mut rows = vec![];
    let mut header = vec!["NAME", "PHASE", "PROGRESS", "NODE", "AGE"];
    if namespaces {
        header.insert(0, "NAMESPACE");
    }
    rows.push(header.into_iter().map(str::to_owned).collect::<Vec<_>>());
    for wf in items {
        let status = wf.status_or_default();
        let mut row = vec![
            wf.name_any(),
            phase_text(&wf.status_or_default()),
            status.progress.clone().unwrap_or_else(|| "-".into()),
            status.current_node.clone().unwrap_or_else(|| "-".into()),
            wf.metadata
                .creation_timestamp
                .as_ref()
                .map_or("-".into(), |t| age(now.duration_since(t.0))),
        ];
        if namespaces {
            row.insert(0, wf.namespace().unwrap_or_default());
        }
        rows.push(row);
    }
    columns(&rows)
}

fn phase_text(status: &roiergasias_crd::WorkflowStatus) -> String {
    status
        .phase
        .map_or_else(|| "Pending".into(), |p| format!("{p:?}"))
}

/// The workflow's summary and last retry, its splits (with `wide`, their ConfigMaps and end
/// times), the attempts retries replaced, each split's outputs, and the environment carried.
pub(crate) fn describe(wf: &Workflow, wide: bool, now: Timestamp) -> String {
    let status = wf.status_or_default();
    let mut out = format!(
        "Name:        {}\nNamespace:   {}\nPhase:       {}\nProgress:    {}\n",
        wf.name_any(),
        wf.namespace().unwrap_or_default(),
        phase_text(&status),
        status.progress.as_deref().unwrap_or("-"),
    );
    if let Some(message) = &status.message {
        out.push_str(&format!("Message:     {}\n", one_line(message)));
    }
    if let (Some(start), Some(end)) = (&status.start_time, &status.completion_time) {
        out.push_str(&format!("Duration:    {}\n", span(start, Some(end), now)));
    }
    if let Some(retry) = &status.last_retry {
        out.push_str(&format!("Last retry:  {}\n", retry_text(retry)));
    }
    out.push_str("\nSplits:\n");
    if status.splits.is_empty() {
        out.push_str("  (none started yet)\n");
    } else {
        out.push_str(&indent(&splits_table(&status.splits, wide, now)));
    }
    if status.splits.iter().any(|s| !s.attempts.is_empty()) {
        out.push_str("\nEarlier attempts:\n");
        out.push_str(&indent(&attempts_table(&status.splits, wide, now)));
    }
    if status.splits.iter().any(|s| !s.outputs.is_empty()) {
        out.push_str("\nOutputs:\n");
        out.push_str(&indent(&outputs_table(&status.splits)));
    }
    out.push_str("\nCarried environment:\n");
    if status.environment.is_empty() {
        out.push_str("  (none)\n");
    }
    for var in &status.environment {
        out.push_str(&format!("  {}={}\n", var.name, one_line(&var.value)));
    }
    out
}

/// SPLIT ATTEMPT NODE JOB PHASE START DURATION (and END, CONFIGMAP with `wide`): each split's
/// current attempt.
pub(crate) fn splits_table(splits: &[SplitRecord], wide: bool, now: Timestamp) -> String {
    let mut header = vec![
        "SPLIT", "ATTEMPT", "NODE", "JOB", "PHASE", "START", "DURATION",
    ];
    if wide {
        header.extend(["END", "CONFIGMAP"]);
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for s in splits {
        let mut row = vec![
            s.index.to_string(),
            s.attempt.unwrap_or(1).to_string(),
            dash(s.node.as_deref()),
            dash(s.job.as_deref()),
            phase_cell(s.phase),
            s.start_time.as_ref().map_or("-".into(), clock),
            s.start_time
                .as_ref()
                .map_or("-".into(), |t| span(t, s.completion_time.as_ref(), now)),
        ];
        if wide {
            row.push(s.completion_time.as_ref().map_or("-".into(), clock));
            row.push(dash(s.config_map.as_deref()));
        }
        rows.push(row);
    }
    columns(&rows)
}

/// SPLIT ATTEMPT JOB PHASE START DURATION (END, CONFIGMAP with `wide`) MESSAGE: the attempts a
/// retry replaced, oldest first.
pub(crate) fn attempts_table(splits: &[SplitRecord], wide: bool, now: Timestamp) -> String {
    let mut header = vec!["SPLIT", "ATTEMPT", "JOB", "PHASE", "START", "DURATION"];
    if wide {
        header.extend(["END", "CONFIGMAP"]);
    }
    header.push("MESSAGE");
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for s in splits {
        for a in &s.attempts {
            let mut row = vec![
                s.index.to_string(),
                a.attempt.to_string(),
                dash(a.job.as_deref()),
                phase_cell(a.phase),
                a.start_time.as_ref().map_or("-".into(), clock),
                a.start_time
                    .as_ref()
                    .map_or("-".into(), |t| span(t, a.completion_time.as_ref(), now)),
            ];
            if wide {
                row.push(a.completion_time.as_ref().map_or("-".into(), clock));
                row.push(dash(a.config_map.as_deref()));
            }
            row.push(a.message.as_deref().map_or("-".into(), one_line));
            rows.push(row);
        }
    }
    columns(&rows)
}

/// SPLIT NAME VALUE: the outputs each split's pod reported.
pub(crate) fn outputs_table(splits: &[SplitRecord]) -> String {
    let mut rows = vec![vec!["SPLIT".to_owned(), "NAME".into(), "VALUE".into()]];
    for s in splits {
        for var in &s.outputs {
            rows.push(vec![
                s.index.to_string(),
                var.name.clone(),
                one_line(&var.value),
            ]);
        }
    }
    columns(&rows)
}

/// `retry 2 accepted (from split 2) at <time>: <message>` or `retry 3 refused at <time>: <why>`.
fn retry_text(retry: &LastRetry) -> String {
    let answer = match (retry.accepted, retry.from_split) {
        (true, Some(n)) => format!("accepted (from split {n})"),
        (true, None) => "accepted".to_owned(),
        (false, _) => "refused".to_owned(),
    };
    format!(
        "retry {} {answer} at {}: {}",
        retry.request,
        clock(&retry.time),
        one_line(operators_reason(&retry.message, retry.request))
    )
}

fn phase_cell(phase: Option<SplitPhase>) -> String {
    phase.map_or("-".into(), |p| format!("{p:?}"))
}

/// A table cell or a `Key:` line stays one line: a termination message may span several.
fn one_line(text: &str) -> String {
    text.trim_end()
        .replace('\r', "")
        .replace('\n', " ⏎ ")
        .replace('\t', " ")
}

fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn clock(time: &Time) -> String {
    time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// From `start` to `end`, or to `now` while running.
pub(crate) fn span(start: &Time, end: Option<&Time>, now: Timestamp) -> String {
    let end = end.map_or(now, |t| t.0);
    let d = end.duration_since(start.0);
    if d.as_secs() < 60 {
        format!("{}s", d.as_secs().max(0))
    } else {
        age(d)
    }
}

/// kubectl's style: 45s, 12m, 3h, 5d.
pub(crate) fn age(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Left-aligned columns three spaces apart, as kubectl prints them.
fn columns(rows: &[Vec<String>]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A three-split workflow: split 1 done, split 2 running, split 3 not started.
    fn fixture() -> Workflow {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch.ankursoni.github.io/v1",
            "kind": "Workflow",
            "metadata": {"name": "demo", "namespace": "ns", "creationTimestamp": "2026-12-01T12:00:00Z"},
            "spec": {"workflowYAML": {"name": "demo", "yaml": "version: 0.1\n"}},
            "status": {
                "phase": "Running", "progress": "1/3", "currentNode": "node-2", "currentSplit": 2,
                "environment": [{"name": "GREETING", "value": "hello"}],
                "splits": [
                    {"index": 1, "node": "node-1", "job": "demo-demo-1", "configMap": "demo-demo-1",
                     "phase": "Succeeded", "startTime": "2026-12-01T12:00:01Z",
                     "completionTime": "2026-12-01T12:00:05Z"},
                    {"index": 2, "node": "node-2", "job": "demo-demo-2", "phase": "Running",
                     "startTime": "2026-12-01T12:00:06Z"},
                    {"index": 3, "node": "node-3", "phase": "Pending"}
                ]
            }
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-01T12:03:06Z".parse().unwrap()
    }

    #[test]
    fn list_shows_name_phase_progress_node_age() {
        let mut pending = fixture();
        pending.metadata.name = Some("fresh".into());
        pending.status = None;
        let table = list_table(&[fixture(), pending], false, now());
        assert_eq!(
            table,
            "NAME    PHASE     PROGRESS   NODE     AGE\n\
             demo    Running   1/3        node-2   3m\n\
             fresh   Pending   -          -        3m\n"
        );
        let all = list_table(&[fixture()], true, now());
        assert!(all.starts_with("NAMESPACE   NAME"), "{all}");
        assert!(all.contains("\nns          demo"), "{all}");
    }

    #[test]
    fn get_lists_every_split_and_the_carried_environment() {
        let text = describe(&fixture(), false, now());
        let expected_splits = "\
  SPLIT   ATTEMPT   NODE     JOB           PHASE       START                  DURATION
  1       1         node-1   demo-demo-1   Succeeded   2026-12-01T12:00:01Z   4s
  2       1         node-2   demo-demo-2   Running     2026-12-01T12:00:06Z   3m
  3       1         node-3   -             Pending     -                      -
";
        assert!(text.contains(expected_splits), "{text}");
        assert!(text.contains("Phase:       Running\n"), "{text}");
        assert!(
            text.contains("Carried environment:\n  GREETING=hello\n"),
            "{text}"
        );
        assert!(!text.contains("Earlier attempts:"), "{text}");
        assert!(!text.contains("Last retry:"), "{text}");
        let wide = describe(&fixture(), true, now());
        assert!(wide.contains("END                    CONFIGMAP"), "{wide}");
        assert!(
            wide.contains("2026-12-01T12:00:05Z   demo-demo-1"),
            "{wide}"
        );
    }

    /// Split 2 failed (its pod said why over two lines), then retry 1 ran it again as attempt 2.
    fn retried() -> Workflow {
        let mut wf = fixture();
        let mut status: serde_json::Value = serde_json::to_value(wf.status.take()).unwrap();
        status["lastRetry"] = serde_json::json!({
            "request": 1, "accepted": true, "fromSplit": 2, "time": "2026-12-01T12:01:00Z",
            "message": "retry 1: split 2/3 runs again as attempt 2"
        });
        status["splits"][0]["outputs"] = serde_json::json!([{"name": "MODEL", "value": "m.pkl"}]);
        let split = &mut status["splits"][1];
        split["attempt"] = 2.into();
        split["job"] = "demo-demo-2-retry2".into();
        split["configMap"] = "demo-demo-2-retry2".into();
        split["startTime"] = "2026-12-01T12:01:01Z".into();
        split["attempts"] = serde_json::json!([{
            "attempt": 1, "job": "demo-demo-2", "configMap": "demo-demo-2", "phase": "Failed",
            "startTime": "2026-12-01T12:00:06Z", "completionTime": "2026-12-01T12:00:09Z",
            "message": "Job demo-demo-2 failed:\nexit status 3\n"
        }]);
        wf.status = Some(serde_json::from_value(status).unwrap());
        wf
    }

    #[test]
    fn get_shows_each_splits_attempts_and_outputs_and_the_last_retry() {
        let text = describe(&retried(), false, now());
        assert!(
            text.contains(
                "Last retry:  retry 1 accepted (from split 2) at 2026-12-01T12:01:00Z: \
                 split 2/3 runs again as attempt 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n  2       2         node-2   demo-demo-2-retry2   Running "),
            "{text}"
        );
        let attempts = "
Earlier attempts:
  SPLIT   ATTEMPT   JOB           PHASE    START                  DURATION   MESSAGE
  2       1         demo-demo-2   Failed   2026-12-01T12:00:06Z   3s         Job demo-demo-2 failed: ⏎ exit status 3
";
        assert!(text.contains(attempts), "{text}");
        let outputs = "\nOutputs:\n  SPLIT   NAME    VALUE\n  1       MODEL   m.pkl\n";
        assert!(text.contains(outputs), "{text}");
        let wide = describe(&retried(), true, now());
        assert!(
            wide.contains(
                "DURATION   END                    CONFIGMAP     MESSAGE\n  \
                 2       1         demo-demo-2   Failed   2026-12-01T12:00:06Z   3s         \
                 2026-12-01T12:00:09Z   demo-demo-2   Job demo-demo-2 failed"
            ),
            "{wide}"
        );
    }

    #[test]
    fn a_refused_retry_reads_so() {
        let mut wf = fixture();
        let status = wf.status.as_mut().unwrap();
        status.last_retry = Some(LastRetry {
            request: 3,
            accepted: false,
            from_split: None,
            message: "retry 3 refused: the workflow is still running".into(),
            time: Time("2026-12-01T12:02:00Z".parse().unwrap()),
        });
        let text = describe(&wf, false, now());
        assert!(
            text.contains(
                "Last retry:  retry 3 refused at 2026-12-01T12:02:00Z: \
                 the workflow is still running\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        assert_eq!(age(SignedDuration::from_secs(45)), "45s");
        assert_eq!(age(SignedDuration::from_secs(600)), "10m");
        assert_eq!(age(SignedDuration::from_secs(3 * 3600)), "3h");
        assert_eq!(age(SignedDuration::from_secs(5 * 86_400)), "5d");
        assert_eq!(age(SignedDuration::from_secs(-5)), "0s");
    }
}
