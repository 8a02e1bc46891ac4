//! `retry`: asks the operator to run a Failed workflow again, and prints its answer.
//!
//! The operator decides whether a retry is allowed; this side only raises `spec.retry.request`
//! past every request seen, guarded by the resourceVersion it read, and waits for
//! `status.lastRetry` to answer it.

use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
use roiergasias_crd::{LastRetry, Workflow};
use serde_json::{Value, json};

use super::connect::{Target, chain};
use super::watch;
use crate::cli::Failure;

/// Reads of the Workflow after a conflicting write before giving up: each conflict means
/// another client's write got in between, and a few in a row mean something keeps writing.
const CONFLICT_RETRIES: usize = 4;

pub(crate) struct Options {
    pub from_split: Option<u32>,
    pub watch: bool,
    /// How long the operator has to answer.
    pub timeout: Duration,
}

pub(crate) async fn run(target: &Target, name: &str, options: Options) -> Result<(), Failure> {
    let request = ask(target, name, options.from_split).await?;
    let answered = answer_of(target, name, request, options.timeout).await?;
    println!("{}", answer(&answered, request)?);
    if options.watch {
        watch::run(target, name).await?;
    }
    Ok(())
}

/// The request number that asks for a new retry: one past any asked for or acted on.
pub(crate) fn next_request(wf: &Workflow) -> i64 {
    let asked = wf.spec.retry.as_ref().map_or(0, |r| r.request);
    let acted = wf
        .status
        .as_ref()
        .and_then(|s| s.last_retry.as_ref())
        .map_or(0, |r| r.request);
    asked.max(acted).saturating_add(1)
}

/// The merge patch asking for retry `request`; the resourceVersion makes the API server refuse
/// it (409) if the Workflow changed since `wf` was read, so two clients cannot both send the
/// same number. `fromSplit: null` clears an earlier request's.
pub(crate) fn retry_patch(wf: &Workflow, request: i64, from_split: Option<u32>) -> Value {
    json!({
        "metadata": {"resourceVersion": wf.metadata.resource_version},
        "spec": {"retry": {"request": request, "fromSplit": from_split}}
    })
}

/// Sends the request, reading again and recomputing on a conflict; returns the number sent.
async fn ask(target: &Target, name: &str, from_split: Option<u32>) -> Result<i64, Failure> {
    let api = target.workflows();
    let once = || async {
        let wf = api.get(name).await?;
        let request = next_request(&wf);
        let patch = retry_patch(&wf, request, from_split);
        let patched = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok::<_, kube::Error>((request, patched))
    };
    let (request, patched) = once
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_millis(100))
                .with_jitter()
                .with_max_times(CONFLICT_RETRIES),
        )
        .when(is_conflict)
        .await
        .map_err(|e| target.explain(&format!("asking for a retry of workflow {name}"), &e))?;
    // A CRD from before spec.retry prunes the field and the API server still says 200.
    if patched.spec.retry.as_ref().map(|r| r.request) != Some(request) {
        return Err(Failure::Step(format!(
            "asking for a retry of workflow {name}: the cluster's Workflow CRD has no \
             spec.retry (it dropped the field): update the CRD to this version's \
             (`kubectl apply -f helm/roiergasias-operator/crds/workflow.yaml`)"
        )));
    }
    Ok(request)
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Waits until the operator acted on `request` (or a later one), at most `timeout`; returns
/// the Workflow as it answered.
async fn answer_of(
    target: &Target,
    name: &str,
    request: i64,
    timeout: Duration,
) -> Result<Workflow, Failure> {
    let acted = move |wf: Option<&Workflow>| wf.is_none_or(|wf| acted_on(wf, request).is_some());
    let waited = tokio::time::timeout(timeout, await_condition(target.workflows(), name, acted));
    let found = match waited.await {
        Err(_) => return Err(not_acted(name, &target.namespace, request, timeout)),
        Ok(found) => found.map_err(|e| {
            Failure::Step(format!(
                "asked for retry {request} of workflow {name}, then watching it: {}",
                chain(&e)
            ))
        })?,
    };
    found.ok_or_else(|| {
        Failure::Step(format!(
            "asked for retry {request}, then workflow {name} was deleted"
        ))
    })
}

/// The operator's answer to `request` or to a later request that took it along.
fn acted_on(wf: &Workflow, request: i64) -> Option<&LastRetry> {
    let last = wf.status.as_ref()?.last_retry.as_ref()?;
    (last.request >= request).then_some(last)
}

pub(crate) fn not_acted(name: &str, namespace: &str, request: i64, timeout: Duration) -> Failure {
    Failure::Step(format!(
        "asked for retry {request} of workflow {name}; the operator has not acted on it within \
         {} s: is it running, and watching namespace {namespace}?",
        timeout.as_secs()
    ))
}

/// What to print for the operator's answer in `wf` to `request`: `retry R accepted: <its
/// message> (Job <the first Job that runs again>)`, or a failure (exit 1) `retry R refused: <why>`.
pub(crate) fn answer(wf: &Workflow, request: i64) -> Result<String, Failure> {
    let Some(last) = acted_on(wf, request) else {
        return Err(Failure::Step(format!(
            "the operator has not answered retry {request}"
        )));
    };
    // Another client's later request may have been acted on in the same pass as this one.
    let which = match last.request == request {
        true => format!("retry {request}"),
        false => format!("retry {request} (answered with request {})", last.request),
    };
    let why = operators_reason(&last.message, last.request);
    if !last.accepted {
        return Err(Failure::Step(format!("{which} refused: {why}")));
    }
    let job = last
        .from_split
        .and_then(|n| {
            wf.status_or_default()
                .splits
                .into_iter()
                .find(|s| s.index == n)
        })
        .and_then(|s| s.job)
        .map(|job| format!(" (Job {job})"))
        .unwrap_or_default();
    Ok(format!("{which} accepted: {why}{job}"))
}

/// The operator's message without its own `retry R: ` or `retry R refused: ` lead, which the
/// line printed says already.
pub(crate) fn operators_reason(message: &str, request: i64) -> &str {
    let lead = format!("retry {request}");
    message
        .strip_prefix(&lead)
        .and_then(|rest| {
            rest.strip_prefix(": ")
                .or_else(|| rest.strip_prefix(" refused: "))
        })
        .unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(spec_request: Option<i64>, acted: Option<i64>) -> Workflow {
        let mut manifest = json!({
            "apiVersion": "batch.ankursoni.github.io/v1", "kind": "Workflow",
            "metadata": {"name": "demo", "resourceVersion": "42"},
            "spec": {"workflowYAML": {"name": "demo", "yaml": "version: 0.1\n"}},
            "status": {"phase": "Failed"}
        });
        if let Some(r) = spec_request {
            manifest["spec"]["retry"] = json!({"request": r, "fromSplit": 2});
        }
        if let Some(r) = acted {
            manifest["status"]["lastRetry"] = json!({
                "request": r, "accepted": true, "message": "ran again",
                "time": "2026-12-01T12:00:00Z"
            });
        }
        serde_json::from_value(manifest).unwrap()
    }

    /// `wf(...)` answered: request `request`, accepted or not, with `message`; split 2 runs
    /// again as `demo-2-retry2`.
    fn answered(request: i64, accepted: bool, message: &str) -> Workflow {
        let mut w = wf(Some(request), None);
        let status = w.status.as_mut().unwrap();
        status.splits = serde_json::from_value(json!([
            {"index": 1, "job": "demo-1", "phase": "Succeeded"},
            {"index": 2, "job": "demo-2-retry2", "attempt": 2, "phase": "Pending"}
        ]))
        .unwrap();
        status.last_retry = Some(LastRetry {
            request,
            accepted,
            from_split: accepted.then_some(2),
            message: message.into(),
            time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-01T12:00:00Z".parse().unwrap(),
            ),
        });
        w
    }

    #[test]
    fn the_request_is_one_past_any_asked_for_or_acted_on() {
        assert_eq!(next_request(&wf(None, None)), 1);
        assert_eq!(next_request(&wf(Some(3), None)), 4);
        assert_eq!(next_request(&wf(Some(3), Some(3))), 4);
        // Asked for but not yet acted on (the operator was down): still a new number.
        assert_eq!(next_request(&wf(Some(5), Some(3))), 6);
        // The spec was edited down by hand below what was acted on.
        assert_eq!(next_request(&wf(Some(1), Some(7))), 8);
        assert_eq!(next_request(&wf(Some(i64::MAX), None)), i64::MAX);
    }

    #[test]
    fn the_patch_carries_the_version_read_and_clears_an_old_from_split() {
        let w = wf(Some(1), Some(1));
        assert_eq!(
            retry_patch(&w, 2, None),
            json!({"metadata": {"resourceVersion": "42"},
                   "spec": {"retry": {"request": 2, "fromSplit": null}}})
        );
        assert_eq!(retry_patch(&w, 2, Some(1))["spec"]["retry"]["fromSplit"], 1);
    }

    #[test]
    fn an_answer_to_this_or_a_later_request_counts_an_older_one_does_not() {
        assert!(acted_on(&wf(Some(2), Some(1)), 2).is_none());
        assert!(acted_on(&wf(Some(2), Some(2)), 2).is_some());
        assert!(acted_on(&wf(Some(3), Some(3)), 2).is_some());
        assert!(acted_on(&wf(Some(1), None), 1).is_none());
    }

    #[test]
    fn accepted_prints_the_operators_message_and_the_job_refused_is_exit_1() {
        let ok = answered(2, true, "retry 2: split 2/3 runs again as attempt 2");
        assert_eq!(
            answer(&ok, 2).ok().as_deref(),
            Some("retry 2 accepted: split 2/3 runs again as attempt 2 (Job demo-2-retry2)")
        );
        let no = answered(2, false, "retry 2 refused: the workflow succeeded");
        let Err(Failure::Step(text)) = answer(&no, 2) else {
            panic!("a refusal is a failure with exit 1")
        };
        assert_eq!(text, "retry 2 refused: the workflow succeeded");
        // A message in other words is printed whole.
        let other = answered(2, false, "not now");
        assert_eq!(
            answer(&other, 2).err().unwrap().text(),
            "retry 2 refused: not now"
        );
        let later = answered(3, true, "retry 3: split 2/3 runs again as attempt 2");
        assert_eq!(
            answer(&later, 2).ok().as_deref(),
            Some(
                "retry 2 (answered with request 3) accepted: split 2/3 runs again as attempt 2 \
                 (Job demo-2-retry2)"
            )
        );
        assert!(
            answer(&wf(Some(2), Some(1)), 2).is_err(),
            "not answered yet"
        );
    }

    #[test]
    fn only_a_conflict_is_read_again() {
        let api_error = |code: u16| {
            let status: kube::core::Status = serde_json::from_value(json!({
                "status": "Failure", "code": code, "reason": "x", "message": "x"
            }))
            .unwrap();
            kube::Error::Api(Box::new(status))
        };
        assert!(is_conflict(&api_error(409)));
        assert!(!is_conflict(&api_error(404)));
        assert!(!is_conflict(&api_error(422)));
    }

    #[test]
    fn no_answer_names_the_request_the_wait_and_the_namespace() {
        let Failure::Step(text) = not_acted("demo", "team", 4, Duration::from_secs(30)) else {
            panic!("exit 1")
        };
        assert_eq!(
            text,
            "asked for retry 4 of workflow demo; the operator has not acted on it within 30 s: \
             is it running, and watching namespace team?"
        );
    }
}
