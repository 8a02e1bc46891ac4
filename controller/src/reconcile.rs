//! The thin I/O layer: observe → decide (pure, [`crate::state`]) → act → write status.
//!
//! Status writes are guarded by the Workflow's resourceVersion, and a controller killed at any
//! instant resumes from status: objects it already created are found owned by this Workflow and
//! adopted as success. A reconcile chains the transitions it can act on at once and writes status
//! once per split (see `reconcile_inner`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use roiergasias_crd::{Workflow, WorkflowStatus};
use roiergasias_engine::{EnvVar, Split};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::bounds::{self, status_room};
use crate::build::{self, SplitInput};
use crate::context::key;
pub use crate::context::{Context, Error};
use crate::names::{SplitNames, split_names};
use crate::observe::observe;
use crate::plan::{Plan, plan_off_thread};
use crate::rederive::{Rederived, rederive};
use crate::state::{Action, FailReason, Machine, Planned, corruption, next_action};
use crate::telemetry::{ApiWrite, HandoffKey};
use crate::transition;
use crate::write::{create, job_named, publish, write_status};

/// A safety net only: Job changes wake the controller through its watch.
const WAIT_RECHECK: Duration = Duration::from_secs(300);
/// A Job without a pod yet is looked at again this soon: admission refusing its pod changes
/// nothing the watches see (only the Job controller's Events say so).
const POD_RECHECK: Duration = Duration::from_secs(3);

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
            for counts in [&ctx.failures, &ctx.conflicts] {
                counts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key(&workflow));
            }
        }
        result
    }
    .instrument(span)
    .await
}

/// Retries failed reconciles with an exponential back-off per Workflow (never a crash loop);
/// a write conflict retries soon, since a newer version is already on its way, but backs off
/// too (50 ms doubling to 5 s, jittered) should conflicts go on.
pub fn error_policy(workflow: Arc<Workflow>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.record_error(error.kind());
    let span = info_span!(
        "reconcile",
        namespace = workflow.namespace().unwrap_or_default(),
        workflow = workflow.name_any()
    );
    let _enter = span.enter();
    if matches!(error, Error::Conflict) {
        let attempt = count(&ctx.conflicts, &workflow);
        let delay = conflict_backoff(attempt);
        debug!(%error, attempt, retry_in = ?delay, "retrying");
        return Requeue::requeue(delay);
    }
    let attempt = count(&ctx.failures, &workflow);
    let delay = backoff(attempt);
    warn!(%error, attempt, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

/// One more consecutive failure of `workflow` in `counts`; the new count.
fn count(
    counts: &std::sync::Mutex<std::collections::HashMap<String, u32>>,
    workflow: &Workflow,
) -> u32 {
    let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    let n = counts.entry(key(workflow)).or_insert(0);
    *n = n.saturating_add(1);
    *n
}

/// Past this many attempts every schedule is at its cap (and `nth` stays cheap).
const CAPPED_AFTER: u32 = 32;

/// 500 ms doubling up to 5 minutes, from backon's schedule.
fn backoff(attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(300))
        .without_max_times()
        .build()
        .nth(attempt.clamp(1, CAPPED_AFTER) as usize - 1)
        .unwrap_or(Duration::from_secs(300))
}

/// 50 ms doubling up to 5 s, plus up to as much again of jitter so that operators racing on one
/// Workflow (a leader hand-over) fall apart.
fn conflict_backoff(attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.clamp(1, CAPPED_AFTER) as usize - 1)
        .unwrap_or(Duration::from_secs(5))
}

/// Chained transitions per reconcile at most: (a status re-derived →) WaitingJob(n) → Split(n+1)
/// → WaitingJob(n+1) is the longest run without waiting for a Job; the bound only guards
/// against a loop.
const MAX_STEPS: usize = 5;

/// How one step ended.
enum Step {
    /// No status write: done until something changes (or the requeue).
    Stop(Requeue),
    /// A transition was written: to WaitingJob (the Job's watch wakes us) or Done.
    Wrote,
    /// A transition to Split(n) was decided but not written: the step that acts on it (creating
    /// split n's objects) writes it together with its own, WaitingJob(n).
    Deferred(Box<WorkflowStatus>),
}

/// Runs steps while each transition leads to one that can be acted on at once (Split(n): create
/// its objects), so a hand-off needs no second reconcile and one status write.
///
/// Split(n) itself is not written on the way: WaitingJob(n−1) (or Pending) → create ConfigMap n
/// and Job n → write WaitingJob(n). Restart safety holds without it: a controller killed before
/// that write finds WaitingJob(n−1) with Job n−1 Complete, reads the same outputs from its pod,
/// builds the same objects, and adopts the ones it already created (same names, owned by this
/// Workflow). Should acting fail (an API error), the deferred Split(n), with the outputs it
/// carries, is written before the retry, so nothing is lost even if the pod goes away.
async fn reconcile_inner(workflow: &Workflow, ctx: &Context) -> Result<Requeue, Error> {
    if ctx.behind_own_write(workflow) {
        debug!("cached copy predates our last status write; waiting for the newer one");
        return Ok(Requeue::await_change());
    }
    // A transition decided but not yet written; every write is guarded by `workflow`'s version.
    let mut deferred: Option<Box<WorkflowStatus>> = None;
    for _ in 0..MAX_STEPS {
        let status = match &deferred {
            Some(status) => (**status).clone(),
            None => workflow.status_or_default(),
        };
        match step(workflow, status, ctx).await {
            Ok(Step::Deferred(status)) => deferred = Some(status),
            // Waiting for a Job (its watch wakes us), or Done.
            Ok(Step::Wrote) => return Ok(Requeue::await_change()),
            Ok(Step::Stop(requeue)) => {
                write_deferred(workflow, ctx, deferred.as_deref()).await?;
                return Ok(requeue);
            }
            Err(Error::StatusTooLarge(message)) => {
                let current = deferred
                    .map(|d| *d)
                    .unwrap_or_else(|| workflow.status_or_default());
                fail_too_large(workflow, ctx, &current, &message).await?;
                return Ok(Requeue::await_change());
            }
            Err(error) => {
                if !matches!(error, Error::Conflict) {
                    record_retry(workflow, ctx, deferred.as_deref(), &error).await;
                }
                return Err(error);
            }
        }
    }
    // Bound reached (a bug: chains are two steps long); the write's watch event brings the next
    // reconcile.
    write_deferred(workflow, ctx, deferred.as_deref()).await?;
    Ok(Requeue::await_change())
}

/// Before a retry: writes the deferred transition, if any, and says in status (and a Warning
/// Event, once per distinct error) what is being retried, so an error that persists (a quota, a
/// missing permission) is visible on the Workflow and not only in the operator's log.
async fn record_retry(
    base: &Workflow,
    ctx: &Context,
    deferred: Option<&WorkflowStatus>,
    error: &Error,
) {
    let current = deferred
        .cloned()
        .unwrap_or_else(|| base.status_or_default());
    let new = transition::retrying(&current, &error.to_string());
    if base.status.as_ref() == Some(&new) {
        return;
    }
    if let Err(also) = write_status(base, ctx, &new).await {
        warn!(error = %also, "could not record the error in status before retrying");
        return;
    }
    publish(
        ctx,
        base,
        EventType::Warning,
        "Retrying",
        "Retry",
        new.message.as_deref().unwrap_or_default(),
        None,
    )
    .await;
}

/// A status that would not fit under the object limit: the Workflow fails, its status cut down
/// to what fits (see [`bounds::shrink_to_fit`]).
async fn fail_too_large(
    workflow: &Workflow,
    ctx: &Context,
    current: &WorkflowStatus,
    message: &str,
) -> Result<(), Error> {
    let now = Time(Timestamp::now());
    let reason = FailReason::StatusTooLarge;
    let new = transition::failed(current, reason, message, &now);
    let new = bounds::shrink_to_fit(new, status_room(workflow));
    write_status(workflow, ctx, &new).await?;
    warn!(reason = reason.as_str(), %message, "workflow failed");
    let kind = EventType::Warning;
    publish(ctx, workflow, kind, reason.as_str(), "Fail", message, None).await;
    Ok(())
}

async fn write_deferred(
    base: &Workflow,
    ctx: &Context,
    deferred: Option<&WorkflowStatus>,
) -> Result<(), Error> {
    if let Some(status) = deferred {
        write_status(base, ctx, status).await?;
    }
    Ok(())
}

/// One transition: observe → decide → act → persist (or defer, see [`reconcile_inner`]).
/// `workflow` is the object as last written, the base of any write; `status` its status, or the
/// deferred one.
async fn step(workflow: &Workflow, status: WorkflowStatus, ctx: &Context) -> Result<Step, Error> {
    if workflow.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove ConfigMaps and Jobs.
        return Ok(Step::Stop(Requeue::await_change()));
    }
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let uid = workflow.uid().ok_or(Error::Incomplete("uid"))?;
    if let Some(why) = corruption(&status, None) {
        return rederive_step(workflow, ctx, &status, &why).await;
    }
    let machine = Machine::of(Some(&status));
    // The operator's policy, before anything is built from the spec (at every split, so a stricter
    // policy also stops a Workflow that was running when the operator restarted with it).
    if matches!(machine, Machine::Pending | Machine::Split(_))
        && let Err(message) = ctx.policy.check(&workflow.spec)
    {
        let now = Time(Timestamp::now());
        return fail(workflow, ctx, &status, FailReason::Refused, &message, &now).await;
    }

    // The engine's verdict: needed to start (Pending) and to build split n's objects (Split(n)).
    let plan = match machine {
        Machine::Pending => Some(plan_off_thread(&ctx.planning, &workflow.spec, None).await),
        Machine::Split(n) => Some(plan_off_thread(&ctx.planning, &workflow.spec, Some(n)).await),
        _ => None,
    };
    if let Some(Ok(plan)) = &plan
        && let Some(why) = corruption(&status, Some(plan.nodes.len()))
    {
        return rederive_step(workflow, ctx, &status, &why).await;
    }
    let planned = match (&machine, &plan) {
        (Machine::Pending, Some(result)) => Some(
            result
                .as_ref()
                .map(|plan| Planned {
                    nodes: plan.nodes.clone(),
                })
                .map_err(Clone::clone),
        ),
        _ => None,
    };
    let names = |n: u32| names_of(workflow, &status, plan.as_ref(), n);

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
        Action::Nothing => Ok(Step::Stop(Requeue::await_change())),
        Action::Wait {
            split,
            unschedulable,
        } => {
            let recheck = if observed.no_pod_yet {
                POD_RECHECK
            } else {
                WAIT_RECHECK
            };
            let job = names(split).job;
            wait(workflow, ctx, &status, split, unschedulable, &job, &now).await?;
            Ok(Step::Stop(Requeue::requeue(recheck)))
        }
        Action::Start { nodes } => start(workflow, ctx, &status, &nodes, &names, &now).await,
        Action::Fail { reason, message } => {
            fail(workflow, ctx, &status, reason, &message, &now).await
        }
        Action::CreateSplit {
            split,
            config_map,
            job,
        } => {
            // A split that can't be built fails the workflow: the text is invalid (status is
            // checked against the plan above).
            let this = match &plan {
                Some(Ok(plan)) => plan.split.as_ref().ok_or_else(|| {
                    format!(
                        "status points at split {split} but the workflow has {} split(s)",
                        plan.nodes.len()
                    )
                }),
                Some(Err(message)) => Err(format!("invalid workflow:\n{message}")),
                None => return Err(Error::Incomplete("plan")),
            };
            let this = match this {
                Ok(this) => this,
                Err(message) => {
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
            };
            let objects = Create {
                config_map,
                job,
                names: &names(split),
            };
            create_split(workflow, ctx, &status, this, objects, &now).await
        }
        Action::Advance {
            split,
            outputs,
            ignored_message,
        } => {
            let done = Done {
                split,
                outputs: &outputs,
                ignored_message,
                names: &names(split),
            };
            advance(workflow, ctx, &status, done, &now).await
        }
    }
}

/// A corrupt status (why: `why`) → one re-derived from the spec and the cluster, deferred so the
/// next step acts on it at once.
async fn rederive_step(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    why: &str,
) -> Result<Step, Error> {
    warn!(%why, "status is inconsistent; re-deriving it from the spec and the cluster");
    let now = Time(Timestamp::now());
    match rederive(workflow, ctx, status, why).await? {
        Rederived::Invalid(message) => {
            let message = format!("invalid workflow:\n{message}");
            fail(
                workflow,
                ctx,
                status,
                FailReason::InvalidWorkflow,
                &message,
                &now,
            )
            .await
        }
        Rederived::Status(new) => {
            let message = new.message.clone().unwrap_or_default();
            let kind = EventType::Warning;
            publish(
                ctx,
                workflow,
                kind,
                "StatusRederived",
                "Rederive",
                &message,
                None,
            )
            .await;
            Ok(Step::Deferred(new))
        }
    }
}

/// WaitingJob(n), Job running: status says whether its pod cannot be scheduled.
async fn wait(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    split: u32,
    unschedulable: Option<String>,
    job: &str,
    now: &Time,
) -> Result<(), Error> {
    let new = transition::waiting(status, split, unschedulable.as_deref(), now);
    if new == *status {
        return Ok(());
    }
    write_status(workflow, ctx, &new).await?;
    if unschedulable.is_some() {
        let message = new.message.clone().unwrap_or_default();
        warn!(split, %message, "split cannot be scheduled");
        publish(
            ctx,
            workflow,
            EventType::Warning,
            transition::UNSCHEDULABLE,
            "Wait",
            &message,
            Some(job_named(workflow, job)),
        )
        .await;
    }
    Ok(())
}

/// Pending → Split(1), unless the run's status could not hold every split to the end.
async fn start(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    nodes: &[Option<String>],
    names: &(dyn Fn(u32) -> SplitNames + Sync),
    now: &Time,
) -> Result<Step, Error> {
    let new = transition::started(status, nodes, names, generation(workflow), now);
    let namespace = workflow.namespace().unwrap_or_default();
    if let Err(message) = bounds::start_within(status_room(workflow), &new, &namespace) {
        return fail(
            workflow,
            ctx,
            status,
            FailReason::StatusTooLarge,
            &message,
            now,
        )
        .await;
    }
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
    Ok(Step::Deferred(Box::new(new)))
}

/// What Job n left: its outputs, and why any were not carried.
struct Done<'a> {
    split: u32,
    outputs: &'a [EnvVar],
    ignored_message: Option<String>,
    names: &'a SplitNames,
}

/// WaitingJob(n) → Split(n+1) (deferred: written with WaitingJob(n+1)) or Done(Succeeded).
async fn advance(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    done: Done<'_>,
    now: &Time,
) -> Result<Step, Error> {
    let Done { split, names, .. } = done;
    let uid = workflow.uid().unwrap_or_default();
    let total = status.total_splits.unwrap_or(1);
    let handoff = HandoffKey {
        workflow_uid: uid,
        split: split as usize,
    };
    if split < total {
        ctx.metrics.handoff_started(handoff.clone());
    }
    let namespace = workflow.namespace().unwrap_or_default();
    let room = status_room(workflow);
    let new = match bounds::advanced_within(room, status, split, done.outputs, now, &namespace) {
        Ok(new) => new,
        Err((reason, message)) => {
            ctx.metrics.handoff_cancelled(&handoff);
            return fail(workflow, ctx, status, reason, &message, now).await;
        }
    };
    ctx.crash.at("advance", split);
    let job = Some(job_named(workflow, &names.job));
    if let Some(message) = done.ignored_message {
        let (kind, reason) = (EventType::Warning, "OutputsIgnored");
        publish(
            ctx,
            workflow,
            kind,
            reason,
            "CollectOutputs",
            &message,
            job.clone(),
        )
        .await;
    }
    if split >= total {
        write_status(workflow, ctx, &new).await?;
        info!("all splits succeeded");
        let message = format!(
            "Job {} completed; all {total} split(s) succeeded",
            names.job
        );
        let kind = EventType::Normal;
        publish(ctx, workflow, kind, "Succeeded", "Complete", &message, job).await;
        return Ok(Step::Wrote);
    }
    info!(split, outputs = done.outputs.len(), "split succeeded");
    let carrying = match done.outputs.len() {
        0 => String::new(),
        n => format!(", carrying {n} output(s)"),
    };
    let message = format!(
        "split {split}/{total}: Job {} completed{carrying}; starting split {}",
        names.job,
        split + 1
    );
    let kind = EventType::Normal;
    publish(
        ctx,
        workflow,
        kind,
        "SplitSucceeded",
        "Advance",
        &message,
        job,
    )
    .await;
    Ok(Step::Deferred(Box::new(new)))
}

fn generation(workflow: &Workflow) -> Option<i64> {
    workflow.metadata.generation
}

/// Names of split n: as recorded in status when it was planned (so an upgrade never renames
/// objects mid-workflow), else computed.
fn names_of(
    workflow: &Workflow,
    status: &WorkflowStatus,
    plan: Option<&Result<Plan, String>>,
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
    let node = match plan {
        Some(Ok(plan)) => plan
            .nodes
            .get((n as usize).wrapping_sub(1))
            .cloned()
            .flatten(),
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

/// Which of split n's objects to create.
struct Create<'a> {
    config_map: bool,
    job: bool,
    names: &'a SplitNames,
}

/// Split(n) → WaitingJob(n): ConfigMap n, then Job n, then the status.
async fn create_split(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    split: &Split,
    objects: Create<'_>,
    now: &Time,
) -> Result<Step, Error> {
    let Create {
        config_map: create_config_map,
        job: create_job,
        names,
    } = objects;
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
        let created = create(&api, &build::config_map(&input), &uid).await?;
        if let Err((reason, message)) = created.or_failure("ConfigMap", &names.config_map) {
            return fail(workflow, ctx, status, reason, &message, now).await;
        }
        ctx.metrics.count_write(ApiWrite::ConfigMap);
        ctx.crash.at("configmap", n);
    }

    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let job = if create_job {
        let created = create(&jobs, &build::job(&input), &uid).await?;
        match created.or_failure("Job", &names.job) {
            Ok(job) => {
                ctx.metrics.count_write(ApiWrite::Job);
                job
            }
            Err((reason, message)) => {
                return fail(workflow, ctx, status, reason, &message, now).await;
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

    let job_ref = crate::observe::job_reference(&job.metadata);
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
    Ok(Step::Wrote)
}

async fn fail(
    workflow: &Workflow,
    ctx: &Context,
    status: &WorkflowStatus,
    reason: FailReason,
    message: &str,
    now: &Time,
) -> Result<Step, Error> {
    let new = transition::failed(status, reason, message, now);
    write_status(workflow, ctx, &new).await?;
    if let Some(uid) = workflow.uid() {
        // Bounded by the records, not by totalSplits, which a hand edit can make anything.
        for split in 0..=status.splits.len() {
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
    Ok(Step::Wrote)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            backoff(u32::MAX),
            Duration::from_secs(300),
            "no walk to 4e9"
        );
    }

    #[test]
    fn conflicts_back_off_from_50_ms_to_a_cap() {
        for _ in 0..20 {
            let first = conflict_backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let tenth = conflict_backoff(10);
            assert!(tenth >= Duration::from_secs(5) && tenth <= Duration::from_secs(10));
            assert!(conflict_backoff(u32::MAX) <= Duration::from_secs(10));
        }
        let growing: Vec<Duration> = (1..=5).map(conflict_backoff).collect();
        assert!(growing[4] >= Duration::from_millis(800), "{growing:?}");
    }
}
