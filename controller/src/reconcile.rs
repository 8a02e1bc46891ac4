//! The thin I/O layer: decide (pure, [`crate::workflow`]) → carry out → decide again, until the
//! machine waits. Status writes are guarded by the Workflow's resourceVersion, and a controller
//! killed at any instant resumes from status (see the `workflow` module).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use roiergasias_crd::{Workflow, WorkflowStatus};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::Cluster;
use crate::bounds;
use crate::context::Context;
use crate::error::Error;
use crate::memory::key;
use crate::observe::satisfy;
use crate::telemetry::HandoffKey;
use crate::transition;
use crate::workflow::{
    self, Decision, Effects, Handoff, Input, Note, Object, Observed, Step, Wake, decide,
};

/// Decisions per reconcile at most: a hand-off is six (the Job, the advance, the plan, the
/// ConfigMap, the Job, the write), a re-derived status adds three; the bound only guards against
/// a loop.
const MAX_DECISIONS: usize = 16;

/// A reconcile takes milliseconds; one that takes this long waits on an API server that does not
/// answer (kube's client would wait up to its read timeout, about 295 s). It is given up and
/// retried: every step is safe to stop at, as a crash is (see the `workflow` module).
const RECONCILE_LIMIT: Duration = Duration::from_secs(20);

/// Reconciles one Workflow; every log line inside carries its namespace and name.
pub async fn reconcile<C: Cluster>(
    workflow: Arc<Workflow>,
    ctx: Arc<Context<C>>,
) -> Result<Requeue, Error> {
    let span = info_span!(
        "reconcile",
        namespace = workflow.namespace().unwrap_or_default(),
        workflow = workflow.name_any()
    );
    async move {
        let _timer = ctx.metrics.reconcile_timer();
        let run = Run::new(&workflow, &ctx).go();
        let wake = tokio::time::timeout(RECONCILE_LIMIT, run)
            .await
            .map_err(|_| Error::TimedOut(RECONCILE_LIMIT))??;
        ctx.memory.succeeded(&key(&workflow));
        Ok(match wake {
            Wake::OnChange => Requeue::await_change(),
            Wake::After(delay) => Requeue::requeue(delay),
        })
    }
    .instrument(span)
    .await
}

/// Retries failed reconciles with an exponential back-off per Workflow (never a crash loop);
/// a write conflict retries soon, since a newer version is already on its way, but backs off
/// too (50 ms doubling to 5 s, jittered) should conflicts go on.
pub fn error_policy<C: Cluster>(
    workflow: Arc<Workflow>,
    error: &Error,
    ctx: Arc<Context<C>>,
) -> Requeue {
    ctx.metrics.record_error(error.kind());
    let span = info_span!(
        "reconcile",
        namespace = workflow.namespace().unwrap_or_default(),
        workflow = workflow.name_any()
    );
    let _enter = span.enter();
    let key = key(&workflow);
    if matches!(error, Error::Conflict) {
        let attempt = ctx.memory.conflicted(&key);
        let delay = conflict_backoff(attempt);
        debug!(%error, attempt, retry_in = ?delay, "retrying");
        return Requeue::requeue(delay);
    }
    let attempt = ctx.memory.failed(&key);
    let delay = backoff(attempt);
    warn!(%error, attempt, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

/// Past this many attempts every schedule is at its cap (and `nth` stays cheap).
const CAPPED_AFTER: u32 = 32;

/// 500 ms doubling up to 5 minutes, from backon's schedule.
pub(crate) fn backoff(attempt: u32) -> Duration {
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
pub(crate) fn conflict_backoff(attempt: u32) -> Duration {
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

/// One reconcile of one Workflow.
struct Run<'a, C> {
    /// As read: the base of every write.
    workflow: &'a Workflow,
    ctx: &'a Context<C>,
    /// Its status, or the transition decided but not yet written.
    status: WorkflowStatus,
    deferred: bool,
    /// The Events of the deferred transitions, published once their status is written: a
    /// controller stopped before that decides them again, so each is published once.
    deferred_events: Vec<Note>,
    observed: Observed,
}

impl<'a, C: Cluster> Run<'a, C> {
    fn new(workflow: &'a Workflow, ctx: &'a Context<C>) -> Self {
        Run {
            workflow,
            ctx,
            status: workflow.status_or_default(),
            deferred: false,
            deferred_events: Vec::new(),
            observed: Observed::default(),
        }
    }

    async fn go(mut self) -> Result<Wake, Error> {
        if self.ctx.memory.behind_own_write(self.workflow) {
            debug!("cached copy predates our last status write; waiting for the newer one");
            return Ok(Wake::OnChange);
        }
        for _ in 0..MAX_DECISIONS {
            let now = Time(Timestamp::now());
            let decision = decide(&self.input(&now));
            match self.carry_out(decision).await {
                Ok(Some(wake)) => return Ok(wake),
                Ok(None) => {}
                Err(Error::StatusTooLarge(message)) => {
                    let too_large = workflow::too_large(&self.input(&now), &message);
                    return Ok(self.carry_out(too_large).await?.unwrap_or(Wake::OnChange));
                }
                Err(error) => {
                    if !matches!(error, Error::Conflict) {
                        self.record_retry(&error, &now).await;
                    }
                    return Err(error);
                }
            }
        }
        warn!("too many decisions in one reconcile; going on at the next");
        self.write_deferred().await?;
        Ok(Wake::OnChange)
    }

    fn input<'b>(&'b self, now: &'b Time) -> Input<'b> {
        Input {
            workflow: self.workflow,
            status: &self.status,
            observed: &self.observed,
            policy: &self.ctx.policy,
            runner_image: &self.ctx.runner_image,
            now,
        }
    }

    /// `Some` when the machine waits.
    async fn carry_out(&mut self, decision: Decision) -> Result<Option<Wake>, Error> {
        match decision {
            Decision::Need(need) => {
                debug!(?need, "finding out");
                satisfy(need, self.workflow, self.ctx, &mut self.observed).await?;
                Ok(None)
            }
            Decision::Create { split, object } => {
                self.create(split, &object).await?;
                Ok(None)
            }
            Decision::Defer(effects) => {
                self.before(&effects);
                self.deferred_events.extend(effects.events);
                if let Some(status) = effects.status {
                    self.status = *status;
                    self.deferred = true;
                }
                let plan = self.observed.plan.take();
                self.observed = Observed {
                    plan,
                    ..Observed::default()
                };
                Ok(None)
            }
            Decision::StopJob { name } => {
                let namespace = self.workflow.namespace().unwrap_or_default();
                self.ctx.cluster.suspend_job(&namespace, &name).await?;
                self.observed.job_stopped = true;
                Ok(None)
            }
            Decision::Delete(note) => {
                info!(message = %note.message, "ttlSecondsAfterFinished passed; deleting");
                self.ctx.cluster.publish(self.workflow, &note);
                self.ctx.cluster.delete_workflow(self.workflow).await?;
                Ok(Some(Wake::OnChange))
            }
            Decision::Write(effects, wake) => {
                self.before(&effects);
                match &effects.status {
                    Some(status) => self.write(status).await?,
                    None => self.write_deferred().await?,
                }
                self.publish_deferred();
                self.publish(&effects);
                Ok(Some(wake))
            }
        }
    }

    async fn create(&mut self, split: u32, object: &Object) -> Result<(), Error> {
        let namespace = self.workflow.namespace().unwrap_or_default();
        let created = self.ctx.cluster.create(&namespace, object).await?;
        match object {
            Object::ConfigMap(_) => {
                self.observed.config_map = Some(created);
                self.ctx.crash.at("configmap", split);
            }
            Object::Job(_) => {
                self.observed.created_job = Some(created);
                self.ctx.crash.at("job", split);
            }
        }
        Ok(())
    }

    /// What comes before a transition is carried out: its log line, the test-only crash point
    /// (after seeing Job n Complete, before acting on it), and the hand-off timer.
    fn before(&self, effects: &Effects) {
        log(effects);
        match effects.step {
            Step::Advance(n) => self.ctx.crash.at("advance", n),
            Step::Rerun(n) => self.ctx.crash.at("retry", n),
            _ => {}
        }
        let uid = self.workflow.uid().unwrap_or_default();
        let timer = |split: u32| HandoffKey {
            workflow_uid: uid.clone(),
            split: split as usize,
        };
        let metrics = &self.ctx.metrics;
        match effects.handoff {
            Some(Handoff::Started(n)) => metrics.handoff_started(timer(n)),
            Some(Handoff::Finished(n)) => {
                metrics.handoff_finished(&timer(n));
            }
            Some(Handoff::CancelAll { records }) => {
                for split in 0..=records {
                    metrics.handoff_cancelled(&timer(split as u32));
                }
            }
            None => {}
        }
    }

    fn publish(&self, effects: &Effects) {
        for note in &effects.events {
            self.ctx.cluster.publish(self.workflow, note);
        }
    }

    /// Writes `new` over the Workflow as read, once it is known to fit under the object limit.
    async fn write(&self, new: &WorkflowStatus) -> Result<(), Error> {
        let new = transition::observed(new.clone(), self.workflow.metadata.generation);
        let hint = "the Workflow fails rather than retry a write that cannot succeed";
        bounds::check(bounds::status_room(self.workflow), &new, hint)
            .map_err(Error::StatusTooLarge)?;
        self.ctx.cluster.write_status(self.workflow, &new).await?;
        if let Some(old) = self.workflow.resource_version() {
            self.ctx.memory.wrote(&key(self.workflow), old);
        }
        Ok(())
    }

    async fn write_deferred(&mut self) -> Result<(), Error> {
        if self.deferred {
            self.write(&self.status).await?;
        }
        self.publish_deferred();
        Ok(())
    }

    fn publish_deferred(&mut self) {
        for note in std::mem::take(&mut self.deferred_events) {
            self.ctx.cluster.publish(self.workflow, &note);
        }
    }

    /// Before a retry: the deferred transition, if any, is written with a message saying what is
    /// retried, so nothing decided is lost even if the pod it came from goes away.
    async fn record_retry(&mut self, error: &Error, now: &Time) {
        let Some(Decision::Write(effects, _)) =
            workflow::retrying(&self.input(now), &error.to_string())
        else {
            return;
        };
        let Some(status) = &effects.status else {
            return;
        };
        if let Err(also) = self.write(status).await {
            warn!(error = %also, "could not record the error in status before retrying");
            return;
        }
        self.publish_deferred();
        self.publish(&effects);
    }
}

fn log(effects: &Effects) {
    let message = effects
        .status
        .as_ref()
        .and_then(|s| s.message.as_deref())
        .unwrap_or_default();
    match effects.step {
        Step::Start => info!(%message, "workflow is valid; starting"),
        Step::Created(split) => info!(split, "split started"),
        Step::Advance(split) => info!(split, %message, "split succeeded"),
        Step::Fail(reason) => warn!(reason = reason.as_str(), %message, "workflow failed"),
        Step::Rederive => warn!(%message, "status was inconsistent; re-derived it"),
        Step::Suspend(split) => info!(split, "suspended before this split"),
        Step::Resume(split) => info!(split, "resumed"),
        Step::Rerun(split) => info!(split, %message, "retrying the failed workflow"),
        Step::RetryRefused => warn!("retry request refused"),
        Step::AutoRetry(split) => warn!(split, %message, "split failed; retrying it"),
        Step::Wait(_) | Step::Retry | Step::Idle => {}
    }
}

#[cfg(test)]
mod tests;
