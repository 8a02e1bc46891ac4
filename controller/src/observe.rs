//! Reading what the state machine needs to decide: the current split's Job, its outcome and
//! its pod's termination message, from the watch caches, else from the API server.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use std::sync::Arc;

use crate::build::RUNNER_CONTAINER;
use crate::cache::JOB_UID_LABEL;
use crate::context::{Context, Error};
use crate::names::SplitNames;
use crate::state::{JobOutcome, Machine, Observed, Presence};

/// Reads what the current state needs. The caches hold at least the version of the Job whose
/// change woke this reconcile; a Job they lack (created a moment ago) is read from the API server,
/// so it is never missed.
pub(crate) async fn observe(
    ctx: &Context,
    namespace: &str,
    uid: &str,
    machine: Machine,
    names: Option<&SplitNames>,
) -> Result<Observed, Error> {
    let mut observed = Observed::default();
    let Some(names) = names else {
        return Ok(observed);
    };
    match machine {
        Machine::Pending | Machine::Done => {}
        // Nothing is read first: creating is the observation. An object that already exists
        // comes back as AlreadyExists and its controller decides (see `create`), which saves two
        // reads on every hand-off and handles the restart cases the same way.
        Machine::Split(_) => {}
        Machine::WaitingJob(_) => {
            let job = match ctx.cache().job(namespace, &names.job) {
                Some(job) => Some(job),
                None => {
                    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
                    jobs.get_opt(&names.job).await?.map(Arc::new)
                }
            };
            observed.job = presence(job.as_ref().map(|o| &o.metadata), uid);
            if let (Presence::Ours, Some(job)) = (&observed.job, &job) {
                let outcome = job_outcome(job);
                if outcome != JobOutcome::Running {
                    match pod_message(ctx, namespace, job, outcome == JobOutcome::Complete).await? {
                        Some(message) => observed.pod_message = message,
                        None => observed.pod_gone = true,
                    }
                } else if let Some(uid) = job.uid() {
                    let pods = ctx.cache().pods_of(namespace, &uid);
                    observed.unschedulable = pods.iter().find_map(|pod| unschedulable(pod));
                    if pods.is_empty() {
                        observed.no_pod_yet = true;
                        if created_a_while_ago(job) {
                            observed.pod_refused = pod_refused(ctx, namespace, job).await?;
                        }
                    }
                }
                observed.job_outcome = Some(outcome);
            }
        }
    }
    Ok(observed)
}

/// A Job gets its pod within moments; one without a pod after this long may have been refused.
const POD_GRACE: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_secs(2);

fn created_a_while_ago(job: &Job) -> bool {
    let Some(created) = job.metadata.creation_timestamp.as_ref() else {
        return true;
    };
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
    age >= POD_GRACE
}

/// The Job controller's latest FailedCreate Event for `job`, when it says admission refused the
/// pod for good. Refusals that clear by themselves (a quota, a ServiceAccount not created yet)
/// are not: the Job gets its pod once they clear.
async fn pod_refused(ctx: &Context, namespace: &str, job: &Job) -> Result<Option<String>, Error> {
    let events: Api<CoreEvent> = Api::namespaced(ctx.client.clone(), namespace);
    let fields = format!(
        "involvedObject.kind=Job,involvedObject.name={},reason=FailedCreate",
        job.name_any()
    );
    let list = events.list(&ListParams::default().fields(&fields)).await?;
    let uid = job.uid();
    let latest = list
        .items
        .into_iter()
        .filter(|e| e.involved_object.uid == uid)
        .max_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    Ok(latest
        .and_then(|e| e.message)
        .filter(|message| refused_for_good(message)))
}

/// Admission refusals that retrying the same pod cannot get past.
pub fn refused_for_good(message: &str) -> bool {
    let transient = ["exceeded quota", "error looking up service account"];
    let refused = [
        "violates PodSecurity",
        "denied the request",
        "is invalid",
        "is forbidden",
    ];
    refused.iter().any(|r| message.contains(r)) && !transient.iter().any(|t| message.contains(t))
}

pub(crate) fn presence(meta: Option<&ObjectMeta>, uid: &str) -> Presence {
    let Some(meta) = meta else {
        return Presence::Missing;
    };
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(owner) if owner.uid == uid => Presence::Ours,
        Some(owner) => Presence::Foreign(format!("controlled by {} {}", owner.kind, owner.name)),
        None => Presence::Foreign("it has no controlling owner".into()),
    }
}

/// The Job's terminal condition, if any.
pub fn job_outcome(job: &Job) -> JobOutcome {
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

/// The termination message of the Job's last pod that succeeded (or failed), read from the
/// runner container (`roiergasias`, else the first one); `None` when no such pod exists any more.
pub(crate) async fn pod_message(
    ctx: &Context,
    namespace: &str,
    job: &Job,
    succeeded: bool,
) -> Result<Option<Option<String>>, Error> {
    let Some(job_uid) = job.uid() else {
        return Ok(None);
    };
    let wanted = if succeeded { "Succeeded" } else { "Failed" };
    let finished = |pods: Vec<Arc<Pod>>| -> Vec<Arc<Pod>> {
        pods.into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(wanted))
            .collect()
    };
    // The pod's last status usually reaches the cache before the Job's; if not, ask.
    let mut candidates = finished(ctx.cache().pods_of(namespace, &job_uid));
    if candidates.is_empty() {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("{JOB_UID_LABEL}={job_uid}")))
            .await?;
        candidates = finished(list.items.into_iter().map(Arc::new).collect());
    }
    candidates.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(candidates.last().map(|pod| termination_message(pod)))
}

/// The scheduler's message for a pending pod that fits no node.
pub fn unschedulable(pod: &Pod) -> Option<String> {
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

pub fn termination_message(pod: &Pod) -> Option<String> {
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

/// The reference a split record keeps to its Job, from the Job's metadata.
pub(crate) fn job_reference(job: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.name.clone(),
        namespace: job.namespace.clone(),
        uid: job.uid.clone(),
        ..Default::default()
    }
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
