//! Helpers for the operator's cluster tests: the operator binary as a real subprocess (so it can
//! be killed and restarted), Workflow manifests, and waits on Workflow status.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use roiergasias_crd::{Phase, Workflow, WorkflowStatus};
use roiergasias_engine::{EnvVar, parse, split};
use serde_json::{Value, json};

use crate::common::{self, TestNamespace};

/// The runner image on the real nodes, by the name the chart and the examples use.
pub const RUNNER_IMAGE: &str = concat!("roiergasias:", env!("CARGO_PKG_VERSION"));

/// The operator, run from this build's binary against the test cluster, watching one namespace.
pub struct Operator {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Operator {
    pub fn start(namespace: &str) -> Self {
        Self::start_with(namespace, &[])
    }

    /// `env` adds variables, e.g. the test-only crash point `ROIERGASIAS_TEST_CRASH_AFTER`.
    pub fn start_with(namespace: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(namespace, &[], env)
    }

    /// `args` adds flags, e.g. a policy such as `--job-templates=refuse`.
    pub fn start_with_args(namespace: &str, args: &[&str]) -> Self {
        Self::spawn(namespace, args, &[])
    }

    /// For real pods: the runner image `cargo xtask cluster up` imports into the real nodes, as the
    /// chart names it (`roiergasias:0.2.0`, which containerd reads as docker.io/library/…).
    pub fn start_real(namespace: &str, args: &[&str]) -> Self {
        Self::spawn_with_runner(namespace, RUNNER_IMAGE, args, &[])
    }

    fn spawn(namespace: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_with_runner(
            namespace,
            "registry.invalid/roiergasias/runner:test",
            args,
            env,
        )
    }

    fn spawn_with_runner(
        namespace: &str,
        runner: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_roiergasias-operator"))
            .args([
                "--namespace",
                namespace,
                "--leader-election=false",
                "--metrics-addr",
                "127.0.0.1:0",
                "--runner-image",
                runner,
                "--log-level",
                "info,roiergasias_controller=debug",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("starting roiergasias-operator");
        Operator { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no graceful anything, like a node dying.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself (a crash point) and returns its exit code.
    pub async fn exited(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait().expect("polling the operator") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the operator did not exit within {within:?}; its log:\n{}",
            self.log()
        );
    }

    /// Waits until the log holds `text`.
    pub async fn logged(&self, text: &str, within: Duration) {
        let start = Instant::now();
        while !self.log().contains(text) {
            assert!(
                start.elapsed() < within,
                "the operator did not log {text:?} within {within:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.log.path()).and_then(|mut f| f.read_to_string(&mut text));
        text
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- roiergasias-operator log ----\n{}", self.log());
        }
    }
}

/// A cluster client with the Workflow CRD installed.
pub async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = common::client().await;
    let crds = common::ensure_crds(&client).await;
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
    common::wait_for_within(api, name, &what, within, cond).await
}

/// Waits until the workflow's status satisfies `test`.
pub async fn wait_status(
    api: &Api<Workflow>,
    name: &str,
    what: &str,
    test: impl Fn(&WorkflowStatus) -> bool + Send + 'static,
) -> Workflow {
    let cond = move |wf: Option<&Workflow>| wf.and_then(|w| w.status.as_ref()).is_some_and(&test);
    common::wait_for(api, name, what, cond).await
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

/// Reasons of the Events regarding Workflow `name`, oldest first.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    use k8s_openapi::api::events::v1::Event;
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

/// Polls until the Workflow has an Event with `reason` (Events are published asynchronously);
/// returns its note.
pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let events = event_reasons(client, ns, name).await;
        if let Some((_, note)) = events.iter().find(|(r, _)| r == reason) {
            return note.clone();
        }
        if start.elapsed() > Duration::from_secs(20) {
            panic!("Workflow {name}: no {reason} Event; got {events:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
