//! The operator's writes: create-or-adopt of a split's objects, the status patch, Events.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use roiergasias_crd::{Workflow, WorkflowStatus};
use serde_json::{Value, json};
use tracing::{Instrument, warn};

use crate::bounds;
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

/// Writes what changed in the status as one JSON Patch (RFC 6902), conditional on the
/// resourceVersion read: a reconcile working from a stale copy gets a conflict instead of undoing
/// a newer transition. A hand-off changes a few fields of two split records, so the patch stays
/// small however many splits there are (a merge patch would re-send every record: lists are
/// replaced whole). A status that would not fit under the object limit is not sent:
/// [`Error::StatusTooLarge`].
pub(crate) async fn write_status(
    workflow: &Workflow,
    ctx: &Context,
    new: &WorkflowStatus,
) -> Result<(), Error> {
    let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
    let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &namespace);
    let new = transition::observed(new.clone(), workflow.metadata.generation);
    bounds::check(bounds::status_room(workflow), &new, WRITE_HINT)
        .map_err(Error::StatusTooLarge)?;
    let rv = workflow.resource_version();
    let patch = status_patch(workflow.status.as_ref(), &new, rv.as_deref())?;
    let mut bytes = serde_json::to_vec(&patch)?.len();
    let name = workflow.name_any();
    let params = PatchParams::default();
    let mut result = api
        .patch_status(&name, &params, &Patch::Json::<()>(patch))
        .await;
    if let Err(kube::Error::Api(status)) = &result
        && status.code == 422
    {
        // The patch did not apply: either the object moved on (a conflict in disguise), or its
        // stored status differs from what we read (a hand edit); then send it whole.
        if api.get(&name).await?.resource_version() != rv {
            return Err(Error::Conflict);
        }
        let whole = json!({
            "metadata": { "resourceVersion": rv },
            "status": merge_patch(workflow.status.as_ref(), &new)?,
        });
        bytes = serde_json::to_vec(&whole)?.len();
        result = api
            .patch_status(&name, &params, &Patch::Merge(&whole))
            .await;
    }
    match result {
        Ok(_) => {
            ctx.metrics.count_write(ApiWrite::Status);
            ctx.metrics.count_status_patch(bytes);
            if let Some(old) = rv {
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

const WRITE_HINT: &str = "the Workflow fails rather than retry a write that cannot succeed";

/// The JSON Patch from `old` to `new`: the resourceVersion precondition, then what changed.
pub fn status_patch(
    old: Option<&WorkflowStatus>,
    new: &WorkflowStatus,
    resource_version: Option<&str>,
) -> Result<json_patch::Patch, Error> {
    let before = match old {
        Some(old) => json!({ "status": old }),
        None => json!({}),
    };
    let after = json!({ "status": new });
    let mut ops = match resource_version {
        Some(rv) => {
            serde_json::from_value::<json_patch::Patch>(json!([
                { "op": "replace", "path": "/metadata/resourceVersion", "value": rv }
            ]))?
            .0
        }
        None => Vec::new(),
    };
    ops.extend(json_patch::diff(&before, &after).0);
    Ok(json_patch::Patch(ops))
}

/// The new status as a merge patch over the old one: fields that disappeared become null.
pub fn merge_patch(old: Option<&WorkflowStatus>, new: &WorkflowStatus) -> Result<Value, Error> {
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
    fn a_hand_off_patches_only_what_changed_however_many_splits() {
        use crate::names::split_names;
        use crate::transition::{advanced, job_created, started};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use k8s_openapi::jiff::Timestamp;
        let now = Time(Timestamp::from_second(1_800_000_000).unwrap());
        let nodes: Vec<Option<String>> = (0..1000).map(|i| Some(format!("node{i}"))).collect();
        let names = |n: u32| split_names("wf", "w", n, nodes[n as usize - 1].as_deref());
        let job = |n: u32| ObjectReference {
            name: Some(names(n).job),
            uid: Some(format!("uid-{n}")),
            ..Default::default()
        };
        let mut status = started(&WorkflowStatus::default(), &nodes, &names, Some(1), &now);
        status = job_created(&status, 1, job(1), &now);
        for n in 1..500 {
            status = advanced(&status, n, &[], &now).unwrap();
            status = job_created(&status, n + 1, job(n + 1), &now);
        }
        let before = status.clone();
        let after = advanced(&before, 500, &[], &now).unwrap();
        let after = job_created(&after, 501, job(501), &now);
        let patch = status_patch(Some(&before), &after, Some("42")).unwrap();
        let bytes = serde_json::to_vec(&patch).unwrap().len();
        let whole = serde_json::to_vec(&merge_patch(Some(&before), &after).unwrap())
            .unwrap()
            .len();
        assert!(
            bytes < 2048,
            "{bytes} bytes: {}",
            serde_json::to_string(&patch).unwrap()
        );
        assert!(
            whole > 100 * bytes,
            "a merge patch re-sends every record: {whole} bytes"
        );
        // Applied to what was read, it gives exactly the new status, behind the precondition.
        let mut doc = json!({ "metadata": { "resourceVersion": "41" }, "status": before });
        json_patch::patch(&mut doc, &patch).unwrap();
        assert_eq!(doc["metadata"]["resourceVersion"], "42");
        let patched: WorkflowStatus = serde_json::from_value(doc["status"].clone()).unwrap();
        assert_eq!(patched, after);
    }

    #[test]
    fn the_first_write_adds_the_whole_status() {
        let new = WorkflowStatus {
            message: Some("new".into()),
            ..Default::default()
        };
        let patch = status_patch(None, &new, None).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{ "op": "add", "path": "/status", "value": { "message": "new" } }])
        );
    }

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
        let patch = merge_patch(Some(&old), &new).unwrap();
        assert_eq!(patch, json!({"message": "new", "currentNode": null}));
        assert_eq!(merge_patch(None, &new).unwrap(), json!({"message": "new"}));
    }
}
