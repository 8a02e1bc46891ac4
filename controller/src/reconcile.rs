//! The thin I/O layer: observe → decide (pure, [`crate::state`]) → act → persist one transition.
//!
//! Each reconcile makes at most one transition of the state machine and writes it to status
//! before anything acts on it, guarded by the Workflow's resourceVersion, so a controller killed
//! at any instant resumes from status: objects it already created are found owned by this
//! Workflow and adopted as success.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use roiergasias_crd::{Workflow, WorkflowStatus};
use roiergasias_engine::Split;
use serde_json::{Value, json};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::build::{self, RUNNER_CONTAINER, SplitInput};
use crate::names::{SplitNames, split_names};
use crate::plan::plan;
use crate::state::{
    Action, FailReason, JobOutcome, Machine, Observed, Planned, Presence, next_action,
};
use crate::telemetry::{ApiWrite, HandoffKey, Metrics};
use crate::transition;

/// A safety net only: Job changes wake the controller through its watch.
const WAIT_RECHECK: Duration = Duration::from_secs(300);

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub runner_image: String,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Test-only crash points (see [`CrashPoints`]).
    pub crash: CrashPoints,
    /// Consecutive failures per Workflow, for the error back-off.
    failures: Mutex<HashMap<String, u32>>,
    /// Per Workflow, the resourceVersion our last status write replaced: a reconcile handed that
    /// version (the cache has not yet seen our write) is skipped, since the write's own watch
    /// event brings the current one. Saves a doomed conflict, and its delay, per transition.
    superseded: Mutex<HashMap<String, String>>,
}

impl Context {
    /// True when `workflow` is the version our last status write replaced; otherwise forgets
    /// that write (the cache has caught up).
    fn behind_own_write(&self, workflow: &Workflow) -> bool {
        let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        let key = key(workflow);
        match (superseded.get(&key), workflow.resource_version()) {
            (Some(old), Some(current)) if *old == current => true,
            (Some(_), _) => {
                superseded.remove(&key);
                false
            }
            (None, _) => false,
        }
    }

    pub fn new(
        client: kube::Client,
        runner_image: String,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        crash: CrashPoints,
    ) -> Self {
        Context {
            client,
            runner_image,
            recorder,
            metrics,
            crash,
            failures: Mutex::new(HashMap::new()),
            superseded: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Workflow changed since it was read; reconciling the newer version")]
    Conflict,
    #[error("cannot encode the status: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the Workflow has no {0}")]
    Incomplete(&'static str),
}

impl Error {
    /// A short, bounded word for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Conflict => "conflict",
            Error::Encode(_) => "encode",
            Error::Incomplete(_) => "incomplete",
        }
    }
}

/// Reconciles one Workflow; every log line inside carries its namespace and name.
pub async fn reconcile(workflow: Arc<Workflow>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let span = info_span!(
        "reconcile",
        namespace = workflow.namespace().unwrap_or_default(),
        workflow = workflow.name_any()
    );
    async move {
        let _timer = ctx.metrics.reconcile_timer();
        let result = reconcile_inner(&workflow, &ctx).await;
        if result.is_ok() {
            ctx.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key(&workflow));
        }
        result
    }
    .instrument(span)
    .await
}

/// Retries failed reconciles with an exponential back-off per Workflow (never a crash loop);
/// a write conflict retries at once since a newer version is already on its way.
pub fn error_policy(workflow: Arc<Workflow>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.record_error(error.kind());
    let span = info_span!(
        "reconcile",
        namespace = workflow.namespace().unwrap_or_default(),
        workflow = workflow.name_any()
    );
    let _enter = span.enter();
    if matches!(error, Error::Conflict) {
        debug!(%error, "retrying");
        return Requeue::requeue(Duration::from_millis(50));
    }
    let attempt = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key(&workflow)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(attempt);
    warn!(%error, attempt, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

/// 500 ms doubling up to 5 minutes, from backon's schedule.
fn backoff(attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(300))
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(300))
}

fn key(workflow: &Workflow) -> String {
    format!(
        "{}/{}",
        workflow.namespace().unwrap_or_default(),
        workflow.name_any()
    )
}

async fn reconcile_inner(workflow: &Workflow, ctx: &Context) -> Result<Requeue, Error> {
    if workflow.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove ConfigMaps and Jobs.
        return Ok(Requeue::await_change());
    }
    if ctx.behind_own_write(workflow) {
        debug!("cached copy predates our last status write; waiting for the newer one");
        return Ok(Requeue::await_change());
    }
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let uid = workflow.uid().ok_or(Error::Incomplete("uid"))?;
    let machine = Machine::of(workflow.status.as_ref());
    let status = workflow.status_or_default();

    // The engine's verdict: needed to start (Pending) and to build a split's objects (Split).
    let splits = match machine {
        Machine::Pending | Machine::Split(_) => Some(plan(&workflow.spec)),
        _ => None,
    };
    let planned = match (&machine, &splits) {
        (Machine::Pending, Some(result)) => Some(match result {
            Ok(splits) => Ok(Planned {
                nodes: splits.iter().map(|s| s.node.clone()).collect(),
            }),
            Err(message) => Err(message.clone()),
        }),
        _ => None,
    };
    let names = |n: u32| names_of(workflow, &status, splits.as_ref(), n);

    let current = match machine {
        Machine::Split(n) | Machine::WaitingJob(n) => Some(names(n)),
        Machine::Pending | Machine::Done => None,
    };
    let observed = observe(ctx, &namespace, &uid, machine, current.as_ref()).await?;
    let action = next_action(machine, planned.as_ref(), &observed, |n| {
        let n = names(n);
        (n.config_map, n.job)
    });
    debug!(?machine, ?action, "decided");
    let now = Time(Timestamp::now());

    match action {
        Action::Nothing => Ok(Requeue::await_change()),
        Action::Wait => Ok(Requeue::requeue(WAIT_RECHECK)),
        Action::Start { nodes } => {
            let new = transition::started(&status, &nodes, &names, generation(workflow), &now);
            write_status(workflow, ctx, &new).await?;
            let on = if new.nodes.is_empty() {
                String::new()
            } else {
                format!(" on nodes {}", new.nodes.join(", "))
            };
            info!(splits = nodes.len(), "workflow is valid; starting");
            publish(
                ctx,
                workflow,
                EventType::Normal,
                "Started",
                "Start",
                &format!("valid workflow: {} split(s){on}", nodes.len()),
                None,
            )
            .await;
            Ok(Requeue::await_change())
        }
        Action::Fail { reason, message } => {
            fail(workflow, ctx, &status, reason, &message, &now).await
        }
        Action::CreateSplit {
            split,
            config_map,
            job,
        } => {
            let splits = match &splits {
                Some(Ok(splits)) => splits,
                Some(Err(message)) => {
                    let message = format!("invalid workflow:\n{message}");
                    return fail(
                        workflow,
                        ctx,
                        &status,
                        FailReason::InvalidWorkflow,
                        &message,
                        &now,
                    )
                    .await;
                }
                None => return Err(Error::Incomplete("plan")),
            };
            let Some(this) = splits.get(split as usize - 1) else {
                let message = format!(
                    "status points at split {split} but the workflow has {} split(s)",
                    splits.len()
                );
                return fail(
                    workflow,
                    ctx,
                    &status,
                    FailReason::InvalidWorkflow,
                    &message,
                    &now,
                )
                .await;
            };
            create_split(
                workflow,
                ctx,
                &status,
                this,
                &names(split),
                config_map,
                job,
                &now,
            )
            .await
        }
        Action::Advance {
            split,
            outputs,
            ignored_message,
        } => {
            let total = status.total_splits.unwrap_or(1);
            let handoff = HandoffKey {
                workflow_uid: uid.clone(),
                split: split as usize,
            };
            if split < total {
                ctx.metrics.handoff_started(handoff.clone());
            }
            let new = match transition::advanced(&status, split, &outputs, &now) {
                Ok(new) => new,
                Err(message) => {
                    ctx.metrics.handoff_cancelled(&handoff);
                    return fail(
                        workflow,
                        ctx,
                        &status,
                        FailReason::OutputsTooLarge,
                        &message,
                        &now,
                    )
                    .await;
                }
            };
            write_status(workflow, ctx, &new).await?;
            ctx.crash.at("advance", split);
            if let Some(message) = ignored_message {
                publish(
                    ctx,
                    workflow,
                    EventType::Warning,
                    "OutputsIgnored",
                    "CollectOutputs",
                    &message,
                    Some(job_named(workflow, &names(split).job)),
                )
                .await;
            }
            let names = names(split);
            if split >= total {
                info!("all splits succeeded");
                publish(
                    ctx,
                    workflow,
                    EventType::Normal,
                    "Succeeded",
                    "Complete",
                    &format!(
                        "Job {} completed; all {total} split(s) succeeded",
                        names.job
                    ),
                    Some(job_named(workflow, &names.job)),
                )
                .await;
            } else {
                info!(split, outputs = outputs.len(), "split succeeded");
                publish(
                    ctx,
                    workflow,
                    EventType::Normal,
                    "SplitSucceeded",
                    "Advance",
                    &format!(
                        "split {split}/{total}: Job {} completed{}; starting split {}",
                        names.job,
                        if outputs.is_empty() {
                            String::new()
                        } else {
                            format!(", carrying {} output(s)", outputs.len())
                        },
                        split + 1
                    ),
                    Some(job_named(workflow, &names.job)),
                )
                .await;
            }
            Ok(Requeue::await_change())
        }
    }
}

fn generation(workflow: &Workflow) -> Option<i64> {
    workflow.metadata.generation
}

/// Names of split n: as recorded in status when it was planned (so an upgrade never renames
/// objects mid-workflow), else computed.
fn names_of(
    workflow: &Workflow,
    status: &WorkflowStatus,
    splits: Option<&Result<Vec<Split>, String>>,
    n: u32,
) -> SplitNames {
    if let Some(record) = status.splits.iter().find(|r| r.index == n)
        && let (Some(config_map), Some(job)) = (&record.config_map, &record.job)
    {
        return SplitNames {
            config_map: config_map.clone(),
            job: job.clone(),
        };
    }
    let node = match splits {
        Some(Ok(splits)) => splits.get(n as usize - 1).and_then(|s| s.node.clone()),
        _ => status
            .splits
            .iter()
            .find(|r| r.index == n)
            .and_then(|r| r.node.clone()),
    };
    split_names(
        &workflow.name_any(),
        &workflow.spec.workflow_yaml.name,
        n,
        node.as_deref(),
    )
}

/// Reads what the current state needs, straight from the API server (not a cache, so a
/// just-created object is never missed).
async fn observe(
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
            let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
            let job = jobs.get_opt(&names.job).await?;
            observed.job = presence(job.as_ref().map(|o| &o.metadata), uid);
            if let (Presence::Ours, Some(job)) = (&observed.job, &job) {
                let outcome = job_outcome(job);
                if outcome != JobOutcome::Running {
                    observed.pod_message =
                        pod_message(ctx, namespace, job, outcome == JobOutcome::Complete).await?;
                }
                observed.job_outcome = Some(outcome);
            }
        }
    }
    Ok(observed)
}

fn presence(meta: Option<&ObjectMeta>, uid: &str) -> Presence {
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
/// runner container (`roiergasias`, else the first one).
async fn pod_message(
    ctx: &Context,
    namespace: &str,
    job: &Job,
    succeeded: bool,
) -> Result<Option<String>, Error> {
    let Some(job_uid) = job.uid() else {
        return Ok(None);
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = pods
        .list(
            &ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={job_uid}")),
        )
        .await?;
    let wanted = if succeeded { "Succeeded" } else { "Failed" };
    let mut candidates: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(wanted))
        .collect();
    candidates.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(candidates.last().and_then(|pod| termination_message(pod)))
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

/// Split(n) → WaitingJob(n): ConfigMap n, then Job n, then the status.
#[allow(clippy::too_many_arguments)]
async fn create_split(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    split: &Split,
    names: &SplitNames,
    create_config_map: bool,
    create_job: bool,
    now: &Time,
) -> Result<Requeue, Error> {
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let uid = workflow.uid().ok_or(Error::Incomplete("uid"))?;
    let n = split.index as u32;
    let carried = transition::carried(Some(status));
    let input = SplitInput {
        workflow,
        split,
        carried: &carried,
        names,
        runner_image: &ctx.runner_image,
    };

    if create_config_map {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
        match create(&api, &build::config_map(&input), &uid).await? {
            Created::Done(_) => ctx.metrics.count_write(ApiWrite::ConfigMap),
            Created::Foreign(owner) => {
                let message = conflict_message("ConfigMap", &names.config_map, &owner);
                return fail(
                    workflow,
                    ctx,
                    status,
                    FailReason::NameConflict,
                    &message,
                    now,
                )
                .await;
            }
            Created::Rejected(why) => {
                let message = format!(
                    "the API server rejected ConfigMap {}: {why}",
                    names.config_map
                );
                return fail(workflow, ctx, status, FailReason::Rejected, &message, now).await;
            }
        }
        ctx.crash.at("configmap", n);
    }

    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let job = if create_job {
        match create(&jobs, &build::job(&input), &uid).await? {
            Created::Done(job) => {
                ctx.metrics.count_write(ApiWrite::Job);
                job
            }
            Created::Foreign(owner) => {
                let message = conflict_message("Job", &names.job, &owner);
                return fail(
                    workflow,
                    ctx,
                    status,
                    FailReason::NameConflict,
                    &message,
                    now,
                )
                .await;
            }
            Created::Rejected(why) => {
                let message = format!("the API server rejected Job {}: {why}", names.job);
                return fail(workflow, ctx, status, FailReason::Rejected, &message, now).await;
            }
        }
    } else {
        jobs.get(&names.job).await?
    };
    if n > 1 {
        ctx.metrics.handoff_finished(&HandoffKey {
            workflow_uid: uid.clone(),
            split: n as usize - 1,
        });
    }
    ctx.crash.at("job", n);

    let job_ref = ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..Default::default()
    };
    let new = transition::job_created(status, n, job_ref, now);
    write_status(workflow, ctx, &new).await?;
    let total = new.total_splits.unwrap_or(1);
    let on = split
        .node
        .as_deref()
        .map(|n| format!(" on node {n}"))
        .unwrap_or_default();
    info!(split = n, job = %names.job, "split started");
    publish(
        ctx,
        workflow,
        EventType::Normal,
        "JobCreated",
        "CreateSplit",
        &format!(
            "split {n}/{total}: created ConfigMap {} and Job {}{on}",
            names.config_map, names.job
        ),
        Some(job_named(workflow, &names.job)),
    )
    .await;
    Ok(Requeue::await_change())
}

enum Created<K> {
    Done(K),
    Foreign(String),
    Rejected(String),
}

/// Creates `object`; one that already exists counts as created when this Workflow controls it
/// (the controller was restarted between creating it and recording that in status).
async fn create<K>(api: &Api<K>, object: &K, uid: &str) -> Result<Created<K>, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(created) => Ok(Created::Done(created)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api
                .get(&object.meta().name.clone().unwrap_or_default())
                .await?;
            match presence(Some(existing.meta()), uid) {
                Presence::Ours => Ok(Created::Done(existing)),
                Presence::Foreign(owner) => Ok(Created::Foreign(owner)),
                // presence() of an existing object is never Missing.
                Presence::Missing => Ok(Created::Foreign("unknown owner".into())),
            }
        }
        // Invalid (422) or too large (413): retrying cannot help.
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 413 => {
            Ok(Created::Rejected(status.message))
        }
        Err(e) => Err(e.into()),
    }
}

fn conflict_message(kind: &str, name: &str, owner: &str) -> String {
    format!(
        "{kind} {name} already exists and is not owned by this Workflow ({owner}); \
         delete or rename it, then re-create the Workflow"
    )
}

async fn fail(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    reason: FailReason,
    message: &str,
    now: &Time,
) -> Result<Requeue, Error> {
    let new = transition::failed(status, reason, message, now);
    write_status(workflow, ctx, &new).await?;
    if let Some(uid) = workflow.uid() {
        for split in 0..=status.total_splits.unwrap_or(0) as usize {
            ctx.metrics.handoff_cancelled(&HandoffKey {
                workflow_uid: uid.clone(),
                split,
            });
        }
    }
    warn!(reason = reason.as_str(), %message, "workflow failed");
    publish(
        ctx,
        workflow,
        EventType::Warning,
        reason.as_str(),
        "Fail",
        message,
        status
            .current_job
            .as_deref()
            .map(|job| job_named(workflow, job)),
    )
    .await;
    // Done: no requeue, so an invalid workflow never causes a retry storm.
    Ok(Requeue::await_change())
}

/// Writes the whole status as one merge patch, conditional on the resourceVersion read: a
/// reconcile working from a stale copy gets a conflict instead of undoing a newer transition.
async fn write_status(
    workflow: &Workflow,
    ctx: &Context,
    new: &WorkflowStatus,
) -> Result<(), Error> {
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &namespace);
    let new = transition::observed(new.clone(), generation(workflow));
    let patch = json!({
        "metadata": { "resourceVersion": workflow.resource_version() },
        "status": status_patch(workflow.status.as_ref(), &new)?,
    });
    match api
        .patch_status(
            &workflow.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            ctx.metrics.count_write(ApiWrite::Status);
            if let Some(old) = workflow.resource_version() {
                ctx.superseded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key(workflow), old);
            }
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// The new status as a merge patch over the old one: fields that disappeared become null.
pub fn status_patch(old: Option<&WorkflowStatus>, new: &WorkflowStatus) -> Result<Value, Error> {
    let mut patch = serde_json::to_value(new)?;
    if let (Some(old), Value::Object(fields)) = (old, &mut patch)
        && let Value::Object(old) = serde_json::to_value(old)?
    {
        for key in old.keys() {
            fields.entry(key.clone()).or_insert(Value::Null);
        }
    }
    Ok(patch)
}

/// Publishes an Event on the Workflow without holding up the reconcile: the next transition
/// need not wait for it. `related` (the split's Job) keeps each split's Events apart, since the
/// recorder folds Events with equal keys into one series.
async fn publish(
    ctx: &Context,
    workflow: &Workflow,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(transition::truncate(note, 1000)),
        action: action.into(),
        secondary: related,
    };
    let recorder = ctx.recorder.clone();
    let metrics = ctx.metrics.clone();
    let regarding = workflow.object_ref(&());
    let reason = reason.to_owned();
    tokio::spawn(
        async move {
            match recorder.publish(&event, &regarding).await {
                Ok(()) => metrics.count_write(ApiWrite::Event),
                // Events are for people; a lost one must not stop the workflow.
                Err(error) => warn!(%error, reason, "could not publish an Event"),
            }
        }
        .in_current_span(),
    );
}

/// A reference to Job `name` in the Workflow's namespace.
fn job_named(workflow: &Workflow, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name.to_owned()),
        namespace: workflow.namespace(),
        ..Default::default()
    }
}

/// Test-only: `ROIERGASIAS_TEST_CRASH_AFTER=configmap:2,advance:1` makes the process exit at
/// those points (after creating ConfigMap 2; after recording split 1's success), so the cluster
/// tests can kill the controller exactly between two writes. Unset in production.
#[derive(Clone, Debug, Default)]
pub struct CrashPoints(Vec<(String, u32)>);

impl CrashPoints {
    pub const ENV: &'static str = "ROIERGASIAS_TEST_CRASH_AFTER";

    pub fn from_env() -> Self {
        Self::parse(&std::env::var(Self::ENV).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Self {
        CrashPoints(
            text.split(',')
                .filter_map(|p| {
                    let (point, n) = p.trim().split_once(':')?;
                    Some((point.to_owned(), n.parse().ok()?))
                })
                .collect(),
        )
    }

    pub fn at(&self, point: &str, n: u32) {
        if self.0.iter().any(|(p, m)| p == point && *m == n) {
            eprintln!("{}: crash point {point}:{n} reached; exiting", Self::ENV);
            std::process::exit(86);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_patch_nulls_fields_that_disappeared() {
        let old = WorkflowStatus {
            message: Some("old".into()),
            current_node: Some("node1".into()),
            ..Default::default()
        };
        let new = WorkflowStatus {
            message: Some("new".into()),
            ..Default::default()
        };
        let patch = status_patch(Some(&old), &new).unwrap();
        assert_eq!(patch, json!({"message": "new", "currentNode": null}));
        assert_eq!(status_patch(None, &new).unwrap(), json!({"message": "new"}));
    }

    #[test]
    fn crash_points_parse_and_ignore_garbage() {
        let points = CrashPoints::parse("configmap:2, advance:1,bogus,job:x");
        assert_eq!(
            points.0,
            vec![("configmap".into(), 2), ("advance".into(), 1)]
        );
        assert!(CrashPoints::parse("").0.is_empty());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1);
        let later = backoff(5);
        assert!(
            first >= Duration::from_millis(500) && first < Duration::from_secs(2),
            "{first:?}"
        );
        assert!(later > first, "{later:?} vs {first:?}");
        assert!(backoff(100) <= Duration::from_secs(300));
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
    fn termination_message_prefers_the_runner_container() {
        use k8s_openapi::api::core::v1::{
            ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
        };
        let status = |name: &str, message: &str| ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    message: Some(message.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
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
