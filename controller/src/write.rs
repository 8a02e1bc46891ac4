//! The operator's writes: create-or-adopt of a split's objects, the status patch, Events.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use roiergasias_crd::{Workflow, WorkflowStatus};
use serde_json::{Value, json};
use tracing::{Instrument, warn};

use crate::context::{Context, Error, key};
use crate::observe::presence;
use crate::state::{FailReason, Presence};
use crate::telemetry::ApiWrite;
use crate::transition;

pub(crate) enum Created<K> {
    Done(K),
    Foreign(String),
    Rejected(String),
}

impl<K> Created<K> {
    /// The object, or why the workflow fails: its name is taken by another owner, or the API
    /// server refused the object.
    pub(crate) fn or_failure(self, kind: &str, name: &str) -> Result<K, (FailReason, String)> {
        match self {
            Created::Done(object) => Ok(object),
            Created::Foreign(owner) => Err((
                FailReason::NameConflict,
                conflict_message(kind, name, &owner),
            )),
            Created::Rejected(why) => Err((
                FailReason::Rejected,
                format!("the API server rejected {kind} {name}: {why}"),
            )),
        }
    }
}

/// Creates `object`; one that already exists counts as created when this Workflow controls it
/// (the controller was restarted between creating it and recording that in status).
pub(crate) async fn create<K>(api: &Api<K>, object: &K, uid: &str) -> Result<Created<K>, Error>
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

pub(crate) fn conflict_message(kind: &str, name: &str, owner: &str) -> String {
    format!(
        "{kind} {name} already exists and is not owned by this Workflow ({owner}); \
         delete or rename it, then re-create the Workflow"
    )
}

/// Writes the whole status as one merge patch, conditional on the resourceVersion read: a
/// reconcile working from a stale copy gets a conflict instead of undoing a newer transition.
pub(crate) async fn write_status(
    workflow: &Workflow,
    ctx: &Context,
    new: &WorkflowStatus,
) -> Result<(), Error> {
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &namespace);
    let new = transition::observed(new.clone(), workflow.metadata.generation);
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
                    .entry(key(workflow))
                    .or_default()
                    .push(old);
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
pub(crate) async fn publish(
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
pub(crate) fn job_named(workflow: &Workflow, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name.to_owned()),
        namespace: workflow.namespace(),
        ..Default::default()
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
}
