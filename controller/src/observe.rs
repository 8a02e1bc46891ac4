//! Finding out what the machine asks for (a [`Need`]): the current split's Job, its outcome and
//! its pod's termination message, from the watch caches, else from the API server; and the pure
//! readers of those objects.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use kube::ResourceExt;
use roiergasias_crd::Workflow;

use crate::api::Cluster;
use crate::build::{MANAGED_BY, MANAGED_BY_LABEL, RUNNER_CONTAINER, WORKFLOW_LABEL};
use crate::context::Context;
use crate::error::Error;
use crate::names::{MAX_LABEL_VALUE, fit};
use crate::plan::plan_off_thread;
use crate::workflow::{FinishedPod, JobOutcome, JobSeen, Need, Observed, presence};

/// Finds out `need` for `workflow` into `observed`.
pub(crate) async fn satisfy<C: Cluster>(
    need: Need,
    workflow: &Workflow,
    ctx: &Context<C>,
    observed: &mut Observed,
) -> Result<(), Error> {
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let cluster = &ctx.cluster;
    match need {
        Need::Plan { build } => {
            let plan = plan_off_thread(&ctx.planning, &workflow.spec, build).await;
            observed.plan = Some((build, plan));
        }
        Need::Job { name } => {
            let uid = workflow.uid().ok_or(Error::Incomplete("uid"))?;
            let job = cluster.job(&namespace, &name).await?;
            observed.job = Some(match job {
                Some(job) => job_seen(cluster, &namespace, &uid, &job).await?,
                None => JobSeen::missing(),
            });
        }
        Need::Refusal { name } => {
            let events = cluster.failed_creates(&namespace, &name).await?;
            let job_uid = observed.job.as_ref().and_then(|j| j.uid.clone());
            observed.refusal = Some(refusal(events, job_uid.as_deref()));
        }
        Need::OwnedJobs => {
            let labels = format!(
                "{MANAGED_BY_LABEL}={MANAGED_BY},{WORKFLOW_LABEL}={}",
                fit(&workflow.name_any(), MAX_LABEL_VALUE)
            );
            observed.owned_jobs = Some(cluster.jobs_labelled(&namespace, &labels).await?);
        }
    }
    Ok(())
}

/// What the machine needs to know of `job`, controlled by the Workflow with `uid` or not.
async fn job_seen<C: Cluster>(
    cluster: &C,
    namespace: &str,
    uid: &str,
    job: &Job,
) -> Result<JobSeen, Error> {
    let mut seen = JobSeen::missing();
    seen.presence = presence(Some(&job.metadata), uid);
    seen.outcome = job_outcome(job);
    seen.created = job.metadata.creation_timestamp.clone();
    seen.uid = job.uid();
    let Some(job_uid) = job.uid() else {
        return Ok(seen);
    };
    match &seen.outcome {
        JobOutcome::Running => {
            let pods = cluster.cached_pods(namespace, &job_uid);
            seen.unschedulable = pods.iter().find_map(|pod| unschedulable(pod));
            seen.no_pod_yet = pods.is_empty();
            if running_not_ready(job, &pods) {
                seen.lost_node = lost_node(cluster, namespace, &job_uid).await?;
            }
        }
        outcome => {
            let succeeded = *outcome == JobOutcome::Complete;
            seen.pod = Some(finished_pod(cluster, namespace, &job_uid, succeeded).await?);
        }
    }
    Ok(seen)
}

/// The Job has an active pod that runs but is not Ready: as the node controller marks the pods of
/// a node it lost. Read from the Job's status and the pod cache, so a healthy run costs no call.
fn running_not_ready(job: &Job, pods: &[Arc<Pod>]) -> bool {
    let status = job.status.as_ref();
    let active = status.and_then(|s| s.active).unwrap_or(0);
    let ready = status.and_then(|s| s.ready).unwrap_or(0);
    let running =
        |p: &Arc<Pod>| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    active > 0 && ready == 0 && pods.iter().any(running)
}

/// Whether a pod of the Job with `job_uid` runs, not Ready, on a node that is lost: what is known,
/// naming the pod and the node. A node that cannot be read (an error, RBAC without nodes) is not
/// judged lost; the next check may read it.
async fn lost_node<C: Cluster>(
    cluster: &C,
    namespace: &str,
    job_uid: &str,
) -> Result<Option<String>, Error> {
    let pods = cluster.list_pods(namespace, job_uid).await?;
    for pod in pods.iter().filter(|p| pod_running_not_ready(p)) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        match cluster.node(node).await {
            Ok(found) => {
                if let Some(why) = node_lost(node, found.as_ref()) {
                    return Ok(Some(format!("pod {} {why}", pod.name_any())));
                }
            }
            Err(error) => {
                tracing::warn!(%error, node, "cannot read the node of a pod that is not Ready")
            }
        }
    }
    Ok(None)
}

fn pod_running_not_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    status.phase.as_deref() == Some("Running") && ready.is_none_or(|c| c.status != "True")
}

/// Whether node `name` is lost, as the node controller marks it once the kubelet stopped
/// reporting for its grace period: Ready Unknown, or the unreachable taint; or gone. A node
/// whose kubelet reports it not Ready (Ready False) is alive and may recover: not lost.
pub(crate) fn node_lost(name: &str, node: Option<&Node>) -> Option<String> {
    let Some(node) = node else {
        return Some(format!("is on node {name}, which no longer exists"));
    };
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let ready = conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    if let Some(ready) = ready.filter(|c| c.status == "Unknown") {
        let since = ready.last_transition_time.as_ref().map(|t| t.0.to_string());
        let said = [ready.reason.as_deref(), ready.message.as_deref()];
        let said: Vec<&str> = said
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        return Some(format!(
            "is on node {name}, which is lost: its Ready condition is Unknown{}{}",
            since.map(|t| format!(" since {t}")).unwrap_or_default(),
            match said.is_empty() {
                true => String::new(),
                false => format!(" ({})", said.join(": ")),
            }
        ));
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    let unreachable = taints
        .into_iter()
        .flatten()
        .any(|t| t.key == "node.kubernetes.io/unreachable");
    unreachable.then(|| {
        format!("is on node {name}, which is unreachable (taint node.kubernetes.io/unreachable)")
    })
}

/// The Job's last pod that succeeded (or failed) and its termination message. The pod's last
/// status usually reaches the cache before the Job's; if not, the API server is asked.
async fn finished_pod<C: Cluster>(
    cluster: &C,
    namespace: &str,
    job_uid: &str,
    succeeded: bool,
) -> Result<FinishedPod, Error> {
    let wanted = if succeeded { "Succeeded" } else { "Failed" };
    let finished = |pods: Vec<Arc<Pod>>| -> Vec<Arc<Pod>> {
        pods.into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(wanted))
            .collect()
    };
    let mut candidates = finished(cluster.cached_pods(namespace, job_uid));
    if candidates.is_empty() {
        let listed = cluster.list_pods(namespace, job_uid).await?;
        candidates = finished(listed.into_iter().map(Arc::new).collect());
    }
    candidates.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(match candidates.last() {
        Some(pod) => FinishedPod::Found(termination_message(pod)),
        None => FinishedPod::Gone,
    })
}

/// The latest FailedCreate Event's message (of the Job with `job_uid`, when known), when it says
/// admission refused the pod for good. Refusals that clear by themselves (a quota, a
/// ServiceAccount not created yet) are not: the Job gets its pod once they clear.
pub(crate) fn refusal(events: Vec<CoreEvent>, job_uid: Option<&str>) -> Option<String> {
    events
        .into_iter()
        .filter(|e| job_uid.is_none() || e.involved_object.uid.as_deref() == job_uid)
        .max_by_key(|e| e.last_timestamp.clone().map(|t| t.0))
        .and_then(|e| e.message)
        .filter(|message| refused_for_good(message))
}

/// Admission refusals that retrying the same pod cannot get past.
pub(crate) fn refused_for_good(message: &str) -> bool {
    let transient = ["exceeded quota", "error looking up service account"];
    let refused = [
        "violates PodSecurity",
        "denied the request",
        "is invalid",
        "is forbidden",
    ];
    refused.iter().any(|r| message.contains(r)) && !transient.iter().any(|t| message.contains(t))
}

/// The Job's terminal condition, if any.
pub(crate) fn job_outcome(job: &Job) -> JobOutcome {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    for c in &conditions {
        if c.status == "True" && c.type_ == "Complete" {
            return JobOutcome::Complete;
        }
        if c.status == "True" && c.type_ == "Failed" {
            return JobOutcome::Failed {
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            };
        }
    }
    JobOutcome::Running
}

/// The scheduler's message for a pending pod that fits no node.
pub(crate) fn unschedulable(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Pending") {
        return None;
    }
    let scheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")?;
    (scheduled.status == "False" && scheduled.reason.as_deref() == Some("Unschedulable")).then(
        || {
            scheduled
                .message
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| "no node can take it".into())
        },
    )
}

pub(crate) fn termination_message(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let first = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone());
    let status = statuses
        .iter()
        .find(|s| s.name == RUNNER_CONTAINER)
        .or_else(|| statuses.iter().find(|s| Some(&s.name) == first.as_ref()))
        .or_else(|| statuses.first())?;
    let terminated = status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| {
            status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
        })?;
    terminated.message.clone().filter(|m| !m.trim().is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn only_refusals_that_cannot_clear_count() {
        for message in [
            "Error creating: pods \"j-x\" is forbidden: violates PodSecurity \"restricted:latest\": \
             privileged (container \"c\" must not set securityContext.privileged=true)",
            "Error creating: admission webhook \"policy.example\" denied the request: no",
            "Error creating: Pod \"j-x\" is invalid: spec.containers[0].image: Required value",
        ] {
            assert!(refused_for_good(message), "{message}");
        }
        for message in [
            "Error creating: pods \"j-x\" is forbidden: exceeded quota: q, requested: pods=1",
            "Error creating: pods \"j-x\" is forbidden: error looking up service account ns/sa: \
             serviceaccount \"sa\" not found",
            "Error creating: etcdserver: request timed out",
        ] {
            assert!(!refused_for_good(message), "{message}");
        }
    }

    fn node(ready: Option<(&str, &str)>, taint: Option<&str>) -> Node {
        use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
        Node {
            spec: Some(NodeSpec {
                taints: taint.map(|key| {
                    vec![Taint {
                        key: key.into(),
                        effect: "NoExecute".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|(status, reason)| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        reason: Some(reason.into()),
                        message: Some("Kubelet stopped posting node status.".into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_is_lost_once_the_node_controller_says_so_or_it_is_gone() {
        let unknown = node(Some(("Unknown", "NodeStatusUnknown")), None);
        assert_eq!(
            node_lost("real-node1", Some(&unknown)).as_deref(),
            Some(
                "is on node real-node1, which is lost: its Ready condition is Unknown \
                 (NodeStatusUnknown: Kubelet stopped posting node status.)"
            )
        );
        let tainted = node(
            Some(("True", "KubeletReady")),
            Some("node.kubernetes.io/unreachable"),
        );
        let said = node_lost("n", Some(&tainted)).expect("unreachable");
        assert!(said.contains("node n, which is unreachable"), "{said}");
        assert_eq!(
            node_lost("gone", None).as_deref(),
            Some("is on node gone, which no longer exists")
        );
        // A kubelet saying its node is not ready is alive (a restart, a runtime starting up).
        let not_ready = node(Some(("False", "KubeletNotReady")), None);
        assert_eq!(node_lost("n", Some(&not_ready)), None);
        let other_taint = node(
            Some(("True", "KubeletReady")),
            Some("node.kubernetes.io/not-ready"),
        );
        assert_eq!(node_lost("n", Some(&other_taint)), None);
        assert_eq!(node_lost("n", Some(&node(None, None))), None);
    }

    #[test]
    fn only_a_running_pod_that_is_not_ready_makes_the_node_worth_reading() {
        use k8s_openapi::api::batch::v1::JobStatus;
        use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
        let pod = |phase: &str, ready: Option<&str>| Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready.map(|status| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(pod_running_not_ready(&pod("Running", Some("False"))));
        assert!(pod_running_not_ready(&pod("Running", None)));
        assert!(!pod_running_not_ready(&pod("Running", Some("True"))));
        assert!(!pod_running_not_ready(&pod("Pending", Some("False"))));
        let job = |active, ready| Job {
            status: Some(JobStatus {
                active: Some(active),
                ready: Some(ready),
                ..Default::default()
            }),
            ..Default::default()
        };
        let running = [Arc::new(pod("Running", None))];
        assert!(running_not_ready(&job(1, 0), &running));
        assert!(!running_not_ready(&job(1, 1), &running), "Ready: no call");
        assert!(!running_not_ready(&job(0, 0), &running));
        let pending = [Arc::new(pod("Pending", None))];
        assert!(!running_not_ready(&job(1, 0), &pending));
    }

    #[test]
    fn job_outcome_reads_terminal_conditions_only() {
        use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
        let with = |type_: &str, reason: Option<&str>| Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: type_.into(),
                    status: "True".into(),
                    reason: reason.map(Into::into),
                    message: Some("m".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(job_outcome(&Job::default()), JobOutcome::Running);
        assert_eq!(
            job_outcome(&with("SuccessCriteriaMet", None)),
            JobOutcome::Running
        );
        assert_eq!(job_outcome(&with("Complete", None)), JobOutcome::Complete);
        assert_eq!(
            job_outcome(&with("Failed", Some("BackoffLimitExceeded"))),
            JobOutcome::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "m".into()
            }
        );
    }

    #[test]
    fn unschedulable_reads_a_pending_pods_scheduling_condition() {
        use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
        let pod = |phase: &str, status: &str, reason: &str| Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some("0/3 nodes are available".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            unschedulable(&pod("Pending", "False", "Unschedulable")).as_deref(),
            Some("0/3 nodes are available")
        );
        assert_eq!(unschedulable(&pod("Pending", "True", "")), None);
        assert_eq!(
            unschedulable(&pod("Pending", "False", "SchedulerError")),
            None
        );
        assert_eq!(
            unschedulable(&pod("Running", "False", "Unschedulable")),
            None
        );
        assert_eq!(unschedulable(&Pod::default()), None);
    }

    /// Container `name` ended with termination message `message`.
    pub(crate) fn terminated(
        name: &str,
        message: &str,
    ) -> k8s_openapi::api::core::v1::ContainerStatus {
        use k8s_openapi::api::core::v1::{
            ContainerState, ContainerStateTerminated, ContainerStatus,
        };
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    message: Some(message.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn termination_message_prefers_the_runner_container() {
        use k8s_openapi::api::core::v1::PodStatus;
        let status = terminated;
        let pod = Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![
                    status("sidecar", "no"),
                    status("roiergasias", "{\"A\":\"1\"}"),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(termination_message(&pod).as_deref(), Some("{\"A\":\"1\"}"));
        let blank = Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![status("x", "  ")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(termination_message(&blank), None);
    }
}
