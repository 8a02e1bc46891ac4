//! On real nodes (`bench operator --real`): the gap a user sees between splits, from pod n's
//! container exiting to pod n+1's container starting. Container states carry second-resolution
//! times, so, as for Jobs, the bench watches the pods and stamps each change on arrival: the
//! first event showing pod n's container terminated, and the first showing pod n+1's running
//! (or already terminated, for a container that ran faster than the kubelet reported). Both come
//! from the same kubelet status path, so its delay cancels out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use roiergasias_crd::runner::RUNNER_CONTAINER;

/// The operator's labels on a split's pod: its Workflow and split.
const WORKFLOW_LABEL: &str = "batch.ankursoni.github.io/workflow";
const SPLIT_LABEL: &str = "batch.ankursoni.github.io/split";

/// What the bench saw of the pod of one split, stamped on arrival.
#[derive(Debug, Default, Clone)]
pub(super) struct PodSeen {
    pub started_seen: Option<Instant>,
    pub exited_seen: Option<Instant>,
    /// The container's own startedAt and finishedAt, in seconds.
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub(super) type Seen = Arc<Mutex<HashMap<(String, usize), PodSeen>>>;

/// The chain (Workflow or floor chain) and split of a bench pod.
fn split_of(pod: &Pod) -> Option<(String, usize)> {
    let labels = pod.metadata.labels.as_ref()?;
    let operator = labels.get(WORKFLOW_LABEL).zip(labels.get(SPLIT_LABEL));
    let floor = || {
        labels
            .get(super::floor::CHAIN_LABEL)
            .zip(labels.get(super::floor::SPLIT_LABEL))
    };
    let (chain, split) = operator.or_else(floor)?;
    Some((chain.clone(), split.parse().ok()?))
}

/// Records what `pod` shows, arrived `now`.
fn observe(seen: &mut PodSeen, pod: &Pod, now: Instant) {
    let Some(state) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == RUNNER_CONTAINER))
        .and_then(|c| c.state.as_ref())
    else {
        return;
    };
    if let Some(running) = &state.running {
        seen.started_seen.get_or_insert(now);
        seen.started_at = seen
            .started_at
            .or(running.started_at.as_ref().map(|t| t.0.as_second()));
    }
    if let Some(terminated) = &state.terminated {
        seen.started_seen.get_or_insert(now);
        seen.exited_seen.get_or_insert(now);
        seen.started_at = seen
            .started_at
            .or(terminated.started_at.as_ref().map(|t| t.0.as_second()));
        seen.finished_at = seen
            .finished_at
            .or(terminated.finished_at.as_ref().map(|t| t.0.as_second()));
    }
}

pub(super) async fn watch(api: Api<Pod>, seen: Seen) {
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(_) => continue,
            Err(error) => {
                eprintln!("pod watch: {error} (retrying)");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if let Some(key) = split_of(&pod) {
            observe(seen.lock().unwrap().entry(key).or_default(), &pod, now);
        }
    }
}

/// Per hand-off: pod n+1's start after pod n's exit, as seen (sorted), and from the containers'
/// second-resolution times. A pod n+1 that started before pod n exited is an error.
pub(super) fn gaps(
    seen: &HashMap<(String, usize), PodSeen>,
) -> anyhow::Result<(Vec<Duration>, Vec<i64>)> {
    let mut precise = Vec::new();
    let mut coarse = Vec::new();
    for ((chain, split), pod) in seen {
        let Some(next) = seen.get(&(chain.clone(), split + 1)) else {
            continue;
        };
        let (Some(exited), Some(started)) = (pod.exited_seen, next.started_seen) else {
            anyhow::bail!(
                "{chain}: the pod of split {split} or {} was not seen run",
                split + 1
            );
        };
        let gap = started.checked_duration_since(exited).ok_or_else(|| {
            anyhow::anyhow!(
                "{chain}: the pod of split {} started before split {split}'s exited",
                split + 1
            )
        })?;
        precise.push(gap);
        if let (Some(finished), Some(started)) = (pod.finished_at, next.started_at) {
            coarse.push(started - finished);
        }
    }
    precise.sort();
    coarse.sort();
    Ok((precise, coarse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn pod(labels: &[(&str, &str)], state: ContainerState) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod.status = Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: RUNNER_CONTAINER.into(),
                state: Some(state),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn operator_and_floor_pods_are_keyed_by_chain_and_split() {
        let running = ContainerState::default();
        let ours = pod(
            &[(WORKFLOW_LABEL, "w"), (SPLIT_LABEL, "2")],
            running.clone(),
        );
        assert_eq!(split_of(&ours), Some(("w".into(), 2)));
        let floor = pod(
            &[
                (super::super::floor::CHAIN_LABEL, "floor-0001"),
                (super::super::floor::SPLIT_LABEL, "3"),
            ],
            running.clone(),
        );
        assert_eq!(split_of(&floor), Some(("floor-0001".into(), 3)));
        assert_eq!(split_of(&pod(&[("other", "x")], running)), None);
    }

    #[test]
    fn the_gap_runs_from_one_pod_s_exit_to_the_next_one_s_start() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let running = ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        };
        let exited = ContainerState {
            terminated: Some(ContainerStateTerminated::default()),
            ..Default::default()
        };
        let labels = |split: &'static str| [(WORKFLOW_LABEL, "w"), (SPLIT_LABEL, split)];
        let mut one = PodSeen::default();
        observe(&mut one, &pod(&labels("1"), running.clone()), at(0));
        observe(&mut one, &pod(&labels("1"), exited.clone()), at(100));
        observe(&mut one, &pod(&labels("1"), exited.clone()), at(150));
        // Split 2 ran faster than the kubelet reported it running: its exit is its start.
        let mut two = PodSeen::default();
        observe(&mut two, &pod(&labels("2"), exited.clone()), at(1300));
        let seen = HashMap::from([(("w".into(), 1), one.clone()), (("w".into(), 2), two)]);
        let (precise, _) = gaps(&seen).unwrap();
        assert_eq!(precise, vec![Duration::from_millis(1200)]);

        let mut early = PodSeen::default();
        observe(&mut early, &pod(&labels("2"), running), at(50));
        let seen = HashMap::from([(("w".into(), 1), one), (("w".into(), 2), early)]);
        let err = gaps(&seen).unwrap_err().to_string();
        assert!(err.contains("started before split 1's exited"), "{err}");
    }
}
