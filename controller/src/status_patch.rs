//! Status writes as JSON Patch: what changed, not every split record. A hand-off changes a few
//! fields of two split records, so the patch stays small however many splits there are (a merge
//! patch would re-send every record: lists are replaced whole). The resourceVersion precondition
//! makes a reconcile working from a stale copy get a conflict instead of undoing a newer
//! transition.

use roiergasias_crd::WorkflowStatus;
use serde_json::{Value, json};

use crate::error::Error;

/// The JSON Patch from `old` to `new`: the resourceVersion precondition, then what changed.
pub(crate) fn status_patch(
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
pub(crate) fn merge_patch(
    old: Option<&WorkflowStatus>,
    new: &WorkflowStatus,
) -> Result<Value, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

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
