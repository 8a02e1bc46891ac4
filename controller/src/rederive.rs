//! A status this operator cannot have written (a hand edit such as `totalSplits: 4000000000`, or
//! `currentSplit` past the end) is never acted on or looped over: it is re-derived from the spec
//! (the plan) and the cluster (the Jobs this Workflow controls).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use roiergasias_crd::{Workflow, WorkflowStatus};

use crate::build::{MANAGED_BY, MANAGED_BY_LABEL, SPLIT_LABEL, WORKFLOW_LABEL};
use crate::context::{Context, Error};
use crate::names::{MAX_LABEL_VALUE, fit, split_names};
use crate::observe::{job_reference, presence};
use crate::plan::plan_off_thread;
use crate::state::Presence;
use crate::transition;

/// What re-deriving found.
pub(crate) enum Rederived {
    /// A consistent status: the latest split whose Job exists is the current one.
    Status(Box<WorkflowStatus>),
    /// The spec itself is invalid (the engine's message).
    Invalid(String),
}

/// Re-derives `old` (corrupt for the reason `why`) from the plan and this Workflow's Jobs.
pub(crate) async fn rederive(
    workflow: &Workflow,
    ctx: &Context,
    old: &WorkflowStatus,
    why: &str,
) -> Result<Rederived, Error> {
    let plan = match plan_off_thread(&ctx.planning, &workflow.spec, None).await {
        Ok(plan) => plan,
        Err(message) => return Ok(Rederived::Invalid(message)),
    };
    let jobs = owned_jobs(ctx, workflow, plan.nodes.len()).await?;
    let (name, file) = (workflow.name_any(), &workflow.spec.workflow_yaml.name);
    let nodes = &plan.nodes;
    let names = |n: u32| split_names(&name, file, n, nodes[n as usize - 1].as_deref());
    let now = Time(Timestamp::now());
    let generation = workflow.metadata.generation;
    let new = transition::rederived(old, nodes, &names, generation, &jobs, why, &now);
    Ok(Rederived::Status(Box::new(new)))
}

/// The Jobs this Workflow controls, by split, for splits 1..=`total`.
async fn owned_jobs(
    ctx: &Context,
    workflow: &Workflow,
    total: usize,
) -> Result<BTreeMap<u32, ObjectReference>, Error> {
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let uid = workflow.uid().ok_or(Error::Incomplete("uid"))?;
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let labels = format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY},{WORKFLOW_LABEL}={}",
        fit(&workflow.name_any(), MAX_LABEL_VALUE)
    );
    let list = api
        .list_metadata(&ListParams::default().labels(&labels))
        .await?;
    let jobs = list.items.into_iter().filter_map(|job| {
        if presence(Some(&job.metadata), &uid) != Presence::Ours {
            return None;
        }
        let split: u32 = job.labels().get(SPLIT_LABEL)?.parse().ok()?;
        let reference = job_reference(&job.metadata);
        (split >= 1 && split as usize <= total).then_some((split, reference))
    });
    Ok(jobs.collect())
}
