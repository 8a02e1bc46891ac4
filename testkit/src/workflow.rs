//! Workflows on the test cluster: manifests, waits on their status, and what the operator made
//! for them (ConfigMaps, Jobs, pods, Events).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use roiergasias_crd::{Phase, Workflow, WorkflowStatus};
use roiergasias_engine::{EnvVar, parse, split};
use serde_json::{Value, json};

use crate::cluster::{self, TestNamespace};
use crate::wait;

/// Events are published asynchronously, after the status write that caused them.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A cluster client with the Workflow CRD installed, and a namespace of the test's own.
pub async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = cluster::client().await;
    let crds = cluster::ensure_crds(&client).await;
    assert!(
        crds.contains(&"workflows.batch.ankursoni.github.io".to_owned()),
        "the chart's crds/ folder must hold the Workflow CRD: {crds:?}"
    );
    let ns = TestNamespace::create(&client, prefix).await;
    (client, ns)
}

pub const SINGLE: &str = r#"version: 0.1
environment:
  - GREETING: "hello"
task:
  - sequential:
      - print:
          - "{{env:GREETING}} world"
"#;

/// Three tasks on node1, node2, node2; the first sets FIRST for the others.
pub const THREE: &str = r#"version: 0.1
environment:
  - GREETING: "hello"
task:
  - node: node1
    sequential:
      - print:
          - "one"
      - environment:
          - FIRST: "1"
  - node: node2
    sequential:
      - print:
          - "two {{env:FIRST}}"
  - node: node2
    sequential:
      - execute:
          - "echo three"
"#;

/// A Workflow named `name` running `yaml` (workflowYAML name `hello-world`).
pub fn workflow(name: &str, yaml: &str, job_template: Option<Value>) -> Workflow {
    let mut manifest = json!({
        "apiVersion": "batch.ankursoni.github.io/v1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"workflowYAML": {"name": "hello-world", "yaml": yaml}}
    });
    if let Some(template) = job_template {
        manifest["spec"]["jobTemplate"] = template;
    }
    serde_json::from_value(manifest).expect("a Workflow")
}

/// A job template whose pods carry `annotations` (kwok test stages act on them).
pub fn pod_annotations(annotations: Value) -> Value {
    json!({"spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": annotations}}}})
}

/// What `roiergasias split` prints for split `index` (from 1), plus `carried` outputs.
pub fn expected_split(yaml: &str, index: usize, carried: &[EnvVar]) -> String {
    let splits = split(&parse(yaml).expect("a valid test workflow"));
    splits[index - 1]
        .workflow
        .with_environment_appended(carried)
        .to_yaml()
}

pub fn phase(wf: &Workflow) -> Option<Phase> {
    wf.status.as_ref().and_then(|s| s.phase)
}

/// Waits until the workflow reaches `phase`, failing early (with its status) if it ends in
/// another final phase.
pub async fn wait_phase(
    api: &Api<Workflow>,
    name: &str,
    want: Phase,
    within: Duration,
) -> Workflow {
    let what = format!("Workflow {name} to reach {want:?}");
    let cond = move |wf: Option<&Workflow>| {
        let Some(got) = wf.and_then(phase) else {
            return false;
        };
        if matches!(got, Phase::Succeeded | Phase::Failed) && got != want {
            panic!(
                "Workflow {name} ended {got:?} instead of {want:?}: {:#?}",
                wf.and_then(|w| w.status.clone())
            );
        }
        got == want
    };
    wait::wait_for_within(api, name, &what, within, cond).await
}

/// Waits until the workflow's status satisfies `test`.
pub async fn wait_status(
    api: &Api<Workflow>,
    name: &str,
    what: &str,
    test: impl Fn(&WorkflowStatus) -> bool + Send + 'static,
) -> Workflow {
    let cond = move |wf: Option<&Workflow>| wf.and_then(|w| w.status.as_ref()).is_some_and(&test);
    wait::wait_for(api, name, what, cond).await
}

/// ConfigMaps and Jobs the operator made for workflow `name`, by name, sorted.
pub async fn owned_names(client: &Client, ns: &str, workflow: &str) -> (Vec<String>, Vec<String>) {
    let selector = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by=roiergasias-operator,batch.ankursoni.github.io/workflow={workflow}"
    ));
    let mut cms: Vec<String> = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&selector)
        .await
        .expect("listing ConfigMaps")
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    let mut jobs: Vec<String> = Api::<Job>::namespaced(client.clone(), ns)
        .list(&selector)
        .await
        .expect("listing Jobs")
        .items
        .iter()
        .map(|j| j.name_any())
        .collect();
    cms.sort();
    jobs.sort();
    (cms, jobs)
}

/// The data of ConfigMap `name` under `hello-world.yaml`.
pub async fn config_map_text(client: &Client, ns: &str, name: &str) -> String {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("ConfigMap {name}: {e}"));
    let data = cm.data.unwrap_or_default();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["hello-world.yaml"],
        "ConfigMap {name} keys"
    );
    data["hello-world.yaml"].clone()
}

/// The kwok node carrying `node.roiergasias=<label>`.
pub async fn node_labelled(client: &Client, label: &str) -> String {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&format!("node.roiergasias={label},type=kwok")))
        .await
        .expect("listing nodes");
    assert_eq!(nodes.items.len(), 1, "one fake node labelled {label}");
    nodes.items[0].name_any()
}

/// Nodes the pods of Job `job` ran on.
pub async fn pod_nodes(client: &Client, ns: &str, job: &str) -> Vec<String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .expect("listing pods")
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect()
}

pub fn job_complete(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// (reason, note) of the Events regarding Workflow `name`, oldest first.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Workflow")
        })
        .collect();
    events.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
    events
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Waits until the Workflow has an Event with `reason`; returns its note.
pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> String {
    let events = wait_events(client, ns, name, &[reason]).await;
    let (_, note) = events
        .into_iter()
        .find(|(r, _)| r == reason)
        .expect("found");
    note
}

/// Waits until the Workflow's Events include every reason in `reasons`; returns all of them.
pub async fn wait_events(
    client: &Client,
    ns: &str,
    name: &str,
    reasons: &[&str],
) -> Vec<(String, String)> {
    let what = format!("Workflow {name}'s Events {reasons:?}");
    wait::until(&what, EVENT_TIMEOUT, || async {
        let events = event_reasons(client, ns, name).await;
        let all = reasons
            .iter()
            .all(|r| events.iter().any(|(got, _)| got == r));
        if all { Ok(events) } else { Err(events) }
    })
    .await
}

/// Changes the Workflow's spec as `kubectl patch --type=merge -p '{"spec": ...}'` would.
pub async fn patch_spec(api: &Api<Workflow>, name: &str, spec: Value) {
    let patch = json!({ "spec": spec });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patching {name}'s spec with {patch}: {e}"));
}

/// How often an Event with `reason` regarding Workflow `name` occurred: an Event object counts
/// as its series' count, so a repeat the recorder folded into one object is still counted.
pub async fn event_count(client: &Client, ns: &str, name: &str, reason: &str) -> i32 {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .iter()
        .filter(|e| {
            let regarding = e.regarding.as_ref();
            regarding.and_then(|r| r.name.as_deref()) == Some(name)
                && regarding.and_then(|r| r.kind.as_deref()) == Some("Workflow")
                && e.reason.as_deref() == Some(reason)
        })
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}
