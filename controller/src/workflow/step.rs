//! The machine's decisions, one function per state.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use roiergasias_engine::EnvVar;
use roiergasias_engine::outputs::parse_outputs;

use super::{
    Corrupt, Created, Decision, Effects, FinishedPod, Handoff, Input, JobOutcome, JobSeen, Need,
    Note, Object, POD_RECHECK, Presence, Step, WAIT_RECHECK, Wake, failure, foreign_owner,
    job_reference, names_of, normal, owned_by_split, past_pod_grace, warning,
};
use super::{FailReason, Failure};
use crate::bounds::{self, status_room};
use crate::build::{self, SplitInput};
use crate::names::SplitNames;
use crate::plan::Plan;
use crate::transition;

/// Pending: the spec is planned; a valid one starts at Split(1), unless its status could not
/// hold every split to the end.
pub(super) fn pending(input: &Input) -> Decision {
    if let Err(refused) = input.policy.check(&input.workflow.spec) {
        return fail(input, Failure::Refused(refused));
    }
    let Some(plan) = input.observed.plan_for(None) else {
        return Decision::Need(Need::Plan { build: None });
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(message) => return fail(input, Failure::Invalid(message.clone())),
    };
    let (wf, now) = (input.workflow, input.now);
    let names = |n: u32| names_of(wf, &Default::default(), Some(plan), n);
    let new = transition::started(
        input.status,
        &plan.nodes,
        &names,
        wf.metadata.generation,
        now,
    );
    let namespace = wf.namespace().unwrap_or_default();
    if let Err(message) = bounds::start_within(status_room(wf), &new, &namespace) {
        return fail(input, Failure::StatusTooLarge(message));
    }
    let on = match new.nodes.is_empty() {
        true => String::new(),
        false => format!(" on nodes {}", new.nodes.join(", ")),
    };
    let splits = plan.nodes.len();
    let note = normal(
        "Started",
        "Start",
        format!("valid workflow: {splits} split(s){on}"),
    );
    Decision::Defer(effects(Step::Start, new, vec![note], None))
}

/// Split(n): ConfigMap n, then Job n, are created (or found, after a restart), then WaitingJob(n)
/// is written. The operator's policy is checked at every split, so a stricter policy also stops a
/// Workflow that was running when the operator restarted with it.
pub(super) fn split(input: &Input, n: u32) -> Decision {
    if let Err(refused) = input.policy.check(&input.workflow.spec) {
        return fail(input, Failure::Refused(refused));
    }
    if let Some(decision) = super::lifecycle::suspend(input, n) {
        return decision;
    }
    if let Some(decision) = super::retry::backing_off(input, n) {
        return decision;
    }
    let Some(plan) = input.observed.plan_for(Some(n)) else {
        return Decision::Need(Need::Plan { build: Some(n) });
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(message) => return fail(input, Failure::Invalid(message.clone())),
    };
    // The engine's plan and split_at agree on the number of splits, and `n` was checked against
    // the plan (Machine::read): this guards the engine, it is not an observation.
    let Some(this) = &plan.split else {
        let total = plan.nodes.len();
        return fail(input, Failure::NoSuchSplit { split: n, total });
    };
    let names = names_of(input.workflow, input.status, Some(plan), n);
    let carried = transition::carried(Some(input.status));
    let objects = SplitInput {
        workflow: input.workflow,
        split: this,
        carried: &carried,
        names: &names,
        runner_image: input.runner_image,
    };
    let uid = input.workflow.uid().unwrap_or_default();
    let observed = input.observed;
    match created(
        input,
        &uid,
        "ConfigMap",
        &observed.config_map,
        &names.config_map,
    ) {
        Err(failure) => return failure,
        Ok(None) => return create(n, Object::ConfigMap(build::config_map(&objects))),
        Ok(Some(_)) => {}
    }
    let job = match created(input, &uid, "Job", &observed.created_job, &names.job) {
        Err(failure) => return failure,
        Ok(None) => return create(n, Object::Job(build::job(&objects))),
        Ok(Some(job)) => job,
    };
    job_created(input, n, this.node.as_deref(), &names, job)
}

/// What creating split n's `kind` gave: nothing yet, this Workflow's object, or a failure (its
/// name is taken by another owner, or the API server refused it).
fn created<'a>(
    input: &Input,
    uid: &str,
    kind: &'static str,
    outcome: &'a Option<Created>,
    name: &str,
) -> Result<Option<&'a ObjectMeta>, Decision> {
    let name = name.to_owned();
    let failure = match outcome {
        None => return Ok(None),
        Some(Created::Rejected(why)) => Failure::Rejected {
            kind,
            name,
            why: why.clone(),
        },
        Some(Created::Exists(meta)) => match foreign_owner(meta, uid) {
            None => return Ok(Some(meta)),
            Some(owner) => Failure::NameConflict { kind, name, owner },
        },
    };
    Err(fail(input, failure))
}

fn create(split: u32, object: Object) -> Decision {
    Decision::Create {
        split,
        object: Box::new(object),
    }
}

/// Split(n) → WaitingJob(n): both objects exist.
fn job_created(
    input: &Input,
    n: u32,
    node: Option<&str>,
    names: &SplitNames,
    job: &ObjectMeta,
) -> Decision {
    let new = transition::job_created(input.status, n, job_reference(job), input.now);
    let total = new.total_splits.unwrap_or(1);
    let on = node.map(|n| format!(" on node {n}")).unwrap_or_default();
    let note = Note {
        job: Some(names.job.clone()),
        ..normal(
            "JobCreated",
            "CreateSplit",
            format!(
                "split {n}/{total}: created ConfigMap {} and Job {}{on}",
                names.config_map, names.job
            ),
        )
    };
    let handoff = (n > 1).then_some(Handoff::Finished(n - 1));
    Decision::Write(
        effects(Step::Created(n), new, vec![note], handoff),
        Wake::OnChange,
    )
}

/// WaitingJob(n): Job n is watched until it ends.
pub(super) fn waiting(input: &Input, n: u32) -> Decision {
    let names = names_of(input.workflow, input.status, None, n);
    let Some(job) = &input.observed.job else {
        return Decision::Need(Need::Job {
            name: names.job.clone(),
        });
    };
    match &job.presence {
        Presence::Foreign(owner) => {
            let (name, owner) = (names.job.clone(), owner.clone());
            let kind = "Job";
            return fail(input, Failure::NameConflict { kind, name, owner });
        }
        Presence::Missing => {
            let job = names.job.clone();
            return fail(input, Failure::JobDeleted { split: n, job });
        }
        Presence::Ours => {}
    }
    match &job.outcome {
        JobOutcome::Running => running(input, n, &names, job),
        JobOutcome::Failed { reason, message } => {
            let pod = match &job.pod {
                Some(FinishedPod::Found(message)) => Some(message.as_deref().unwrap_or("")),
                _ => None,
            };
            let failure = failure::job_failed(n, &names.job, reason, message, pod);
            super::retry::automatic(input, n, &failure).unwrap_or_else(|| fail(input, failure))
        }
        JobOutcome::Complete => complete(input, n, &names, job.pod.as_ref()),
    }
}

/// WaitingJob(n), Job running: status says whether its pod cannot be scheduled; a pod that
/// admission refused for good fails the workflow (the Job itself retries forever).
fn running(input: &Input, n: u32, names: &SplitNames, job: &JobSeen) -> Decision {
    if let Some(why) = &job.lost_node {
        return node_lost(input, n, names, why);
    }
    if job.no_pod_yet && past_pod_grace(job.created.as_ref(), input.now) {
        let Some(refusal) = &input.observed.refusal else {
            return Decision::Need(Need::Refusal {
                name: names.job.clone(),
            });
        };
        if let Some(why) = refusal {
            let (job, why) = (names.job.clone(), why.clone());
            return fail(input, Failure::PodRefused { split: n, job, why });
        }
    }
    let unschedulable = job.unschedulable.as_deref();
    let new = transition::waiting(input.status, n, unschedulable, input.now);
    let wake = Wake::After(match job.no_pod_yet {
        true => POD_RECHECK,
        false => WAIT_RECHECK,
    });
    if new == *input.status {
        return Decision::Write(none(Step::Wait(n)), wake);
    }
    let events = match unschedulable {
        Some(_) => vec![Note {
            job: Some(names.job.clone()),
            ..warning(
                transition::UNSCHEDULABLE,
                "Wait",
                new.message.clone().unwrap_or_default(),
            )
        }],
        None => Vec::new(),
    };
    Decision::Write(effects(Step::Wait(n), new, events, None), wake)
}

/// WaitingJob(n), Job running on a lost node: the Job is suspended first (so it makes no new
/// pod once the lost one is evicted: the split would run twice), then the split fails, or runs
/// again when spec.retryStrategy asks.
fn node_lost(input: &Input, n: u32, names: &SplitNames, why: &str) -> Decision {
    if !input.observed.job_stopped {
        return Decision::StopJob {
            name: names.job.clone(),
        };
    }
    let (job, why) = (names.job.clone(), why.to_owned());
    let failure = Failure::NodeLost { split: n, job, why };
    super::retry::automatic(input, n, &failure).unwrap_or_else(|| fail(input, failure))
}

/// WaitingJob(n), Job complete: its pod's outputs are carried to Split(n+1) (deferred: written
/// with WaitingJob(n+1)), or the workflow succeeded.
fn complete(input: &Input, n: u32, names: &SplitNames, pod: Option<&FinishedPod>) -> Decision {
    let (outputs, ignored) = outputs(&names.job, pod);
    let wf = input.workflow;
    let namespace = wf.namespace().unwrap_or_default();
    let room = status_room(wf);
    let new = match bounds::advanced_within(room, input.status, n, &outputs, input.now, &namespace)
    {
        Ok(new) => new,
        Err((FailReason::OutputsTooLarge, message)) => {
            return fail(input, Failure::OutputsTooLarge(message));
        }
        Err((_, message)) => return fail(input, Failure::StatusTooLarge(message)),
    };
    let job = Some(names.job.clone());
    let mut events: Vec<Note> = ignored
        .map(|message| Note {
            job: job.clone(),
            ..warning("OutputsIgnored", "CollectOutputs", message)
        })
        .into_iter()
        .collect();
    let total = input.status.total_splits.unwrap_or(1);
    if n >= total {
        let message = format!(
            "Job {} completed; all {total} split(s) succeeded",
            names.job
        );
        events.push(Note {
            job,
            ..normal("Succeeded", "Complete", message)
        });
        return Decision::Write(effects(Step::Advance(n), new, events, None), Wake::OnChange);
    }
    let carrying = match outputs.len() {
        0 => String::new(),
        k => format!(", carrying {k} output(s)"),
    };
    let message = format!(
        "split {n}/{total}: Job {} completed{carrying}; starting split {}",
        names.job,
        n + 1
    );
    events.push(Note {
        job,
        ..normal("SplitSucceeded", "Advance", message)
    });
    let handoff = Some(Handoff::Started(n));
    Decision::Defer(effects(Step::Advance(n), new, events, handoff))
}

/// The outputs Job `job`'s pod reported, and why any could not be carried.
fn outputs(job: &str, pod: Option<&FinishedPod>) -> (Vec<EnvVar>, Option<String>) {
    let text = match pod {
        None | Some(FinishedPod::Gone) => {
            let why = format!(
                "Job {job} completed but its pod is gone, so any outputs it reported could not \
                 be carried forward"
            );
            return (Vec::new(), Some(why));
        }
        Some(FinishedPod::Found(message)) => message.as_deref().unwrap_or("").trim(),
    };
    if text.is_empty() {
        return (Vec::new(), None);
    }
    match parse_outputs(text) {
        Ok(outputs) => (outputs, None),
        Err(e) => (
            Vec::new(),
            Some(format!(
                "the termination message of Job {job}'s pod is not outputs JSON and was not \
                 carried forward: {e}"
            )),
        ),
    }
}

/// A corrupt status → one re-derived from the spec and this Workflow's Jobs, deferred so the next
/// decision acts on it at once.
pub(super) fn rederive(input: &Input, corrupt: &Corrupt) -> Decision {
    let Some((_, plan)) = &input.observed.plan else {
        return Decision::Need(Need::Plan { build: None });
    };
    let plan: &Plan = match plan {
        Ok(plan) => plan,
        Err(message) => return fail(input, Failure::Invalid(message.clone())),
    };
    let Some(jobs) = &input.observed.owned_jobs else {
        return Decision::Need(Need::OwnedJobs);
    };
    let wf = input.workflow;
    let uid = wf.uid().unwrap_or_default();
    let jobs = owned_by_split(jobs, &uid, plan.nodes.len());
    let names = |n: u32| names_of(wf, &Default::default(), Some(plan), n);
    let generation = wf.metadata.generation;
    let why = &corrupt.0;
    let new = transition::rederived(
        input.status,
        &plan.nodes,
        &names,
        generation,
        &jobs,
        why,
        input.now,
    );
    let note = warning(
        "StatusRederived",
        "Rederive",
        new.message.clone().unwrap_or_default(),
    );
    Decision::Defer(effects(Step::Rederive, new, vec![note], None))
}

/// Any state → Done(Failed); no requeue, so an invalid workflow never causes a retry storm.
pub(super) fn fail(input: &Input, failure: Failure) -> Decision {
    let reason = failure.reason();
    let message = failure.to_string();
    let new = transition::failed(input.status, reason, &message, input.now);
    let note = Note {
        job: input.status.current_job.clone(),
        ..warning(reason.as_str(), "Fail", message)
    };
    // Bounded by the records, not by totalSplits, which a hand edit can make anything.
    let handoff = Some(Handoff::CancelAll {
        records: input.status.splits.len(),
    });
    Decision::Write(
        effects(Step::Fail(reason), new, vec![note], handoff),
        Wake::OnChange,
    )
}

pub(super) fn effects(
    step: Step,
    status: roiergasias_crd::WorkflowStatus,
    events: Vec<Note>,
    handoff: Option<Handoff>,
) -> Effects {
    Effects {
        step,
        status: Some(Box::new(status)),
        events,
        handoff,
    }
}

pub(super) fn none(step: Step) -> Effects {
    Effects {
        step,
        status: None,
        events: Vec::new(),
        handoff: None,
    }
}
