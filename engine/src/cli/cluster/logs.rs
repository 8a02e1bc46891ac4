//! `logs`: each split's pod logs in order, followed across splits as they start.

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use roiergasias_crd::{Phase, SplitPhase, SplitRecord, Workflow};

use super::connect::Target;
use crate::cli::Failure;

/// The label Kubernetes puts on a Job's pods.
const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The runner's container, read when a pod has several.
const RUNNER_CONTAINER: &str = "roiergasias";

#[derive(Clone, Copy)]
pub(crate) struct Options {
    pub split: Option<u32>,
    pub follow: bool,
    pub prefix: bool,
}

pub(crate) async fn run(target: &Target, name: &str, options: Options) -> Result<(), Failure> {
    let mut wf = get(target, name).await?;
    let total = wf.status_or_default().total_splits;
    if let (Some(n), Some(total)) = (options.split, total)
        && (n == 0 || n > total)
    {
        return Err(Failure::Step(format!(
            "workflow {name} has no split {n}: it has {total} (numbered from 1)"
        )));
    }
    let mut index = options.split.unwrap_or(1);
    loop {
        let status = wf.status_or_default();
        let record = status
            .splits
            .iter()
            .find(|s| s.index == index && started(s));
        match record {
            Some(record) => split_logs(target, record, options).await?,
            None if options.follow && !finished(&wf) => {
                wf = next_split(target, name, index).await?;
                continue;
            }
            None => {
                if !finished(&wf) || options.split.is_some() {
                    eprintln!("{}has not started yet", prefix_of(index, None));
                }
                return Ok(());
            }
        }
        let total = status.total_splits.unwrap_or(status.splits.len() as u32);
        if options.split.is_some() || index >= total {
            return Ok(());
        }
        index += 1;
        wf = get(target, name).await?;
    }
}

async fn get(target: &Target, name: &str) -> Result<Workflow, Failure> {
    target
        .workflows()
        .get(name)
        .await
        .map_err(|e| target.explain(&format!("getting workflow {name}"), &e))
}

fn finished(wf: &Workflow) -> bool {
    matches!(
        wf.status_or_default().phase,
        Some(Phase::Succeeded | Phase::Failed)
    )
}

/// Whether split record `s` has its Job: every record names its Job from the start, so only its
/// phase says whether the Job was created.
fn started(s: &SplitRecord) -> bool {
    s.job.is_some() && !matches!(s.phase, None | Some(SplitPhase::Pending))
}

/// Waits until split `index` has its Job or the run ended.
async fn next_split(target: &Target, name: &str, index: u32) -> Result<Workflow, Failure> {
    let ready = move |wf: Option<&Workflow>| {
        wf.is_none_or(|wf| {
            finished(wf)
                || wf
                    .status_or_default()
                    .splits
                    .iter()
                    .any(|s| s.index == index && started(s))
        })
    };
    let found = await_condition(target.workflows(), name, ready)
        .await
        .map_err(|e| Failure::Step(format!("watching workflow {name}: {e}")))?;
    found.ok_or_else(|| Failure::Step(format!("workflow {name} was deleted")))
}

/// `[split n · node] ` (or `[split n] `).
pub(crate) fn prefix_of(index: u32, node: Option<&str>) -> String {
    match node {
        Some(node) => format!("[split {index} · {node}] "),
        None => format!("[split {index}] "),
    }
}

/// Every pod of the split's Job, oldest first (a template may let a Job retry).
async fn split_logs(target: &Target, s: &SplitRecord, options: Options) -> Result<(), Failure> {
    let prefix = prefix_of(s.index, s.node.as_deref());
    let job_name = s.job.as_deref().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(target.client.clone(), &target.namespace);
    let job = match jobs.get_opt(job_name).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            eprintln!("{prefix}Job {job_name} is gone, and with it its pod and logs");
            return Ok(());
        }
        Err(e) => return Err(target.explain(&format!("getting Job {job_name}"), &e)),
    };
    let selector = format!("{JOB_UID_LABEL}={}", job.uid().unwrap_or_default());
    let mut pods = list_pods(target, &selector).await?;
    if pods.is_empty() && options.follow && job_active(&job) {
        pods = vec![first_pod(target, &selector).await?];
    }
    if pods.is_empty() {
        eprintln!("{prefix}the pod of Job {job_name} is gone, and with it its logs");
    }
    for pod in pods {
        pod_logs(target, &pod, &prefix, options).await?;
    }
    Ok(())
}

fn job_active(job: &Job) -> bool {
    job.status.as_ref().is_none_or(|s| {
        s.completion_time.is_none()
            && !s
                .conditions
                .iter()
                .flatten()
                .any(|c| (c.type_ == "Failed" || c.type_ == "Complete") && c.status == "True")
    })
}

async fn list_pods(target: &Target, selector: &str) -> Result<Vec<Pod>, Failure> {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let mut list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| target.explain("listing pods", &e))?
        .items;
    list.sort_by_key(|p| p.creation_timestamp().map(|t| t.0));
    Ok(list)
}

/// The first pod matching `selector`, once it exists.
async fn first_pod(target: &Target, selector: &str) -> Result<Pod, Failure> {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let stream = watcher(pods, watcher::Config::default().labels(selector))
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    match stream.try_next().await {
        Ok(Some(pod)) => Ok(pod),
        Ok(None) => Err(Failure::Step("the watch of pods ended".into())),
        Err(e) => Err(Failure::Step(format!("watching pods: {e}"))),
    }
}

/// Waits (when following) until the pod's container started, then copies its log.
async fn pod_logs(
    target: &Target,
    pod: &Pod,
    prefix: &str,
    options: Options,
) -> Result<(), Failure> {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let name = pod.name_any();
    let pod = if options.follow && not_started(pod) {
        match await_condition(pods.clone(), &name, |p: Option<&Pod>| {
            p.is_none_or(|p| !not_started(p))
        })
        .await
        {
            Ok(Some(p)) => p,
            Ok(None) => {
                eprintln!("{prefix}pod {name} is gone, and with it its logs");
                return Ok(());
            }
            Err(e) => return Err(Failure::Step(format!("watching pod {name}: {e}"))),
        }
    } else {
        pod.clone()
    };
    if not_started(&pod) {
        eprintln!("{prefix}pod {name} has not started yet (use -f to wait for it)");
        return Ok(());
    }
    let params = LogParams {
        follow: options.follow,
        container: container(&pod),
        ..Default::default()
    };
    let reader = match pods.log_stream(&name, &params).await {
        Ok(r) => r,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            eprintln!("{prefix}pod {name} is gone, and with it its logs");
            return Ok(());
        }
        // The node keeps no log for it (kwok's fake nodes, or a container that never started).
        Err(kube::Error::Api(s)) if s.code == 400 => {
            eprintln!("{prefix}pod {name} has no log to read: {}", s.message);
            return Ok(());
        }
        Err(e) => return Err(target.explain(&format!("reading the log of pod {name}"), &e)),
    };
    let shown = if options.prefix { prefix } else { "" };
    let mut lines = std::pin::pin!(reader.lines());
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => println!("{shown}{line}"),
            Err(e) => return Err(Failure::Step(format!("reading the log of pod {name}: {e}"))),
        }
    }
    Ok(())
}

/// Pending and no container running or finished yet: the log cannot be read.
fn not_started(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return true;
    };
    status.phase.as_deref().is_none_or(|p| p == "Pending")
        && status.container_statuses.iter().flatten().all(|c| {
            c.state
                .as_ref()
                .is_none_or(|s| s.running.is_none() && s.terminated.is_none())
        })
}

/// The runner's container when the pod has several, else the only one (None lets the API pick).
fn container(pod: &Pod) -> Option<String> {
    let containers = &pod.spec.as_ref()?.containers;
    if containers.len() <= 1 {
        return None;
    }
    containers
        .iter()
        .find(|c| c.name == RUNNER_CONTAINER)
        .or(containers.first())
        .map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_the_split_and_its_node() {
        assert_eq!(prefix_of(2, Some("node-2")), "[split 2 · node-2] ");
        assert_eq!(prefix_of(1, None), "[split 1] ");
    }

    #[test]
    fn a_split_has_started_once_its_job_was_created_not_when_it_is_named() {
        let record = |phase| SplitRecord {
            index: 2,
            job: Some("wf-2-node2".into()),
            phase,
            ..Default::default()
        };
        // Status names every split's Job when the run starts.
        assert!(!started(&record(Some(SplitPhase::Pending))));
        assert!(started(&record(Some(SplitPhase::Running))));
        assert!(started(&record(Some(SplitPhase::Succeeded))));
    }

    #[test]
    fn a_pending_pod_has_no_log_yet() {
        let pending: Pod =
            serde_json::from_value(serde_json::json!({"status": {"phase": "Pending"}})).unwrap();
        assert!(not_started(&pending));
        let running: Pod =
            serde_json::from_value(serde_json::json!({"status": {"phase": "Running"}})).unwrap();
        assert!(!not_started(&running));
    }
}
