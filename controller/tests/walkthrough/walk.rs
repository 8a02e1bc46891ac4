//! The README's walkthroughs, followed command by command on the test cluster.

mod in_cluster;
mod upgrade;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use roiergasias_testkit::wait::watch_from_now;
use roiergasias_testkit::workflow::job_complete;
use roiergasias_testkit::{http, wait};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::examples::{AWS_CHART, split_nodes};
use crate::readme::{Listing, check_listing, readme_block};
use crate::support::*;

/// How long a person would wait for a listing or a probe to show what the README promises.
const PATIENCE: Duration = Duration::from_secs(60);
/// Deleting a workflow's objects goes through the garbage collector.
const CLEANUP: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// The walkthrough on the test cluster

fn admin_kubeconfig() -> PathBuf {
    match std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "KUBECONFIG is not set: the walkthrough runs on the test cluster; \
             run it with `cargo xtask test`"
        ),
    }
}

/// One walkthrough: its own namespace, kubeconfigs, helm homes and operator process.
struct Walk {
    namespace: String,
    dir: tempfile::TempDir,
    /// The admin's, with the walkthrough's namespace as the current one.
    kubeconfig: PathBuf,
    /// Behind a lock so the waits, which borrow the walk, can check it is alive.
    operator: Mutex<Option<std::process::Child>>,
    /// The manifest of the last `kubectl apply -f`.
    applied: Option<String>,
    /// The operator runs as the chart's pod on a real node (else as a local process, see
    /// [`Walk::start_operator`]).
    in_cluster: bool,
    /// Runs the waits (and the probes' HTTP client) of this synchronous walk, and on its worker
    /// thread the watches that record what happens meanwhile.
    runtime: tokio::runtime::Runtime,
}

impl Walk {
    fn new(name: &str) -> Walk {
        let admin = admin_kubeconfig();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let namespace = format!("walk-{name}-{:x}", nanos ^ std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let config = Self::kubeconfig_json(&admin, &namespace, None);
        std::fs::write(&kubeconfig, config.to_string()).unwrap();
        let walk = Walk {
            namespace,
            dir,
            kubeconfig,
            operator: Mutex::new(None),
            applied: None,
            in_cluster: false,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the walk's waits"),
        };
        run_ok(
            walk.kubectl()
                .args(["create", "namespace", &walk.namespace]),
        );
        walk
    }

    /// A walk whose pods, the operator's too, really run on the real nodes.
    fn in_cluster(name: &str) -> Walk {
        let mut walk = Walk::new(name);
        run_ok(walk.kubectl().args([
            "annotate",
            "namespace",
            &walk.namespace,
            "scheduler.alpha.kubernetes.io/node-selector=type=real",
        ]));
        walk.in_cluster = true;
        walk
    }

    /// Pods of this walk's namespace go to kwok's fake nodes (see `common::ON_FAKE_NODES`).
    fn pin_to_fake_nodes(&self) {
        run_ok(self.kubectl().args([
            "annotate",
            "namespace",
            &self.namespace,
            "scheduler.alpha.kubernetes.io/node-selector=type=kwok",
            r#"scheduler.alpha.kubernetes.io/defaultTolerations=[{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]"#,
        ]));
    }

    /// The admin kubeconfig, flattened, with `namespace` current and, if given,
    /// impersonating `user`.
    fn kubeconfig_json(admin: &Path, namespace: &str, user: Option<&str>) -> Value {
        let out = run_ok(
            Command::new(tools_dir().join("kubectl"))
                .args([
                    "config",
                    "view",
                    "--raw",
                    "--minify",
                    "--flatten",
                    "-o",
                    "json",
                ])
                .env("KUBECONFIG", admin),
        );
        let mut config: Value = serde_json::from_str(&out).unwrap();
        for context in config["contexts"].as_array_mut().expect("contexts") {
            context["context"]["namespace"] = json!(namespace);
        }
        if let Some(user) = user {
            for entry in config["users"].as_array_mut().expect("users") {
                entry["user"]["as"] = json!(user);
            }
        }
        config
    }

    fn kubectl(&self) -> Command {
        let mut command = Command::new(tools_dir().join("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    fn get_json(&self, args: &[&str]) -> Value {
        let out = run_ok(self.kubectl().arg("get").args(args).args(["-o", "json"]));
        serde_json::from_str(&out).unwrap()
    }

    /// A README command as a person types it, in a shell at the repository root.
    fn shell(&self, line: &str) -> std::process::Output {
        let path = format!(
            "{}:{}",
            tools_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let helm_home = self.dir.path().join("helm");
        Command::new("sh")
            .args(["-c", line])
            .current_dir(repo())
            .env("PATH", path)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_DATA_HOME", helm_home.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {line:?}: {e}"))
    }

    fn follow(&mut self, block: &str) {
        for step in readme_block(block) {
            let line = step.line.as_str();
            if line.starts_with("kubectl delete -f") {
                self.check_run(line.trim_start_matches("kubectl delete -f").trim());
            }
            if line.starts_with("helm uninstall") {
                self.check_operator_alive();
            }
            let line = &self.command(line);
            eprintln!("[{}] $ {line}", self.namespace);
            match &step.listing {
                None => {
                    let out = self.shell(line);
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success(),
                        "README command {line:?} failed ({}):\n{stdout}\n{}\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr),
                        self.operator_log()
                    );
                    for text in &step.prints {
                        assert!(
                            stdout.contains(text.as_str()),
                            "README promise after {line:?} not kept: it prints no {text:?}:\n{stdout}"
                        );
                    }
                }
                Some(listing) => self.wait_for_listing(line, listing),
            }
            if line.starts_with("helm install") && !self.in_cluster {
                self.start_operator();
            }
            if let Some(manifest) = line.strip_prefix("kubectl apply -f") {
                self.applied = Some(manifest.trim().to_string());
            }
            if let Some(manifest) = line.strip_prefix("kubectl delete -f") {
                self.check_cleaned_up(manifest.trim());
            }
            if line.starts_with("helm uninstall") {
                self.check_uninstalled();
                self.stop_operator();
            }
        }
    }

    fn wait_for_listing(&self, line: &str, listing: &Listing) {
        let what = format!("README promise after {line:?}");
        let waited = self.runtime.block_on(wait::try_until(&what, PATIENCE, || {
            let out = self.shell(line);
            let table = String::from_utf8_lossy(&out.stdout).into_owned();
            let verdict = if out.status.success() {
                check_listing(listing, &table).map_err(|why| format!("{why}\n{table}"))
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            };
            std::future::ready(verdict)
        }));
        if let Err(timeout) = waited {
            panic!("{timeout}\n{}", self.operator_log());
        }
    }

    /// The operator, as the chart's Deployment would run it: its arguments and
    /// ServiceAccount, here as a local process that impersonates that account.
    fn start_operator(&mut self) {
        let deployments = self.get_json(&[
            "deployment",
            "-l",
            "app.kubernetes.io/name=roiergasias-operator",
        ]);
        let items = deployments["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "helm install made one Deployment");
        let pod = &items[0]["spec"]["template"]["spec"];
        let account = str_at(pod, "/serviceAccountName");
        let c = &pod["containers"][0];
        let port = http::free_port();
        let mut args: Vec<String> = strings(&c["args"])
            .into_iter()
            .map(|a| {
                if a.starts_with("--metrics-addr=") {
                    format!("--metrics-addr=127.0.0.1:{port}")
                } else {
                    a
                }
            })
            .collect();
        // The chart watches every namespace; other tests share this cluster.
        if !args.iter().any(|a| a.starts_with("--namespace")) {
            args.push(format!("--namespace={}", self.namespace));
        }
        let user = format!("system:serviceaccount:{}:{account}", self.namespace);
        let config = Self::kubeconfig_json(&admin_kubeconfig(), &self.namespace, Some(&user));
        let kubeconfig = self.dir.path().join("operator-kubeconfig");
        std::fs::write(&kubeconfig, config.to_string()).unwrap();
        let log = std::fs::File::create(self.dir.path().join("operator.log")).unwrap();
        eprintln!("[{}] operator as {user}: {args:?}", self.namespace);
        let child = Command::new(env!("CARGO_BIN_EXE_roiergasias-operator"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", &self.namespace)
            .env("POD_NAME", format!("{}-walkthrough", self.namespace))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start roiergasias-operator");
        *self.operated() = Some(child);

        // The Deployment's probes answer.
        let probes = [
            str_at(c, "/readinessProbe/httpGet/path").to_string(),
            str_at(c, "/livenessProbe/httpGet/path").to_string(),
        ];
        for path in probes {
            let what = format!("the operator's {path} to answer 200");
            let answered = self.runtime.block_on(wait::try_until(&what, PATIENCE, || {
                self.check_operator_alive();
                let path = path.clone();
                async move {
                    match http::get(port, &path).await {
                        Ok((200, _)) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
            }));
            if let Err(timeout) = answered {
                panic!("{timeout}\n{}", self.operator_log());
            }
        }
    }

    /// Watches the namespace's Jobs from now on: (name, complete) in the order the API server
    /// reports them.
    fn watch_jobs(&self) -> (JoinHandle<()>, UnboundedReceiver<(String, bool)>) {
        self.runtime.block_on(async {
            let client = kube::Client::try_default()
                .await
                .expect("a client from KUBECONFIG");
            let jobs: kube::Api<Job> = kube::Api::namespaced(client, &self.namespace);
            watch_from_now(jobs, |job| (job.name_any(), job_complete(&job))).await
        })
    }

    fn operator_log(&self) -> String {
        if self.in_cluster {
            return self.pod_logs();
        }
        let log = std::fs::read_to_string(self.dir.path().join("operator.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- operator log (last 40 lines) ---\n{}", tail.join("\n"))
    }

    /// The operator process, also after a test panicked while holding it.
    fn operated(&self) -> std::sync::MutexGuard<'_, Option<std::process::Child>> {
        self.operator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_operator_alive(&self) {
        if self.in_cluster {
            return self.check_pods_alive();
        }
        let exited = self
            .operated()
            .as_mut()
            .expect("the operator was started")
            .try_wait()
            .unwrap();
        if let Some(status) = exited {
            panic!("the operator exited ({status})\n{}", self.operator_log());
        }
    }

    fn stop_operator(&mut self) {
        if let Some(mut child) = self.operated().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Before the README deletes it: the workflow ran as promised. One Job per
    /// split, owned by the Workflow, complete, its pod on the node labelled for it.
    fn check_run(&self, manifest: &str) {
        self.check_workflow_ran(&yaml(&read(manifest)));
    }

    fn check_workflow_ran(&self, doc: &Value) {
        let name = str_at(doc, "/metadata/name");
        let workflow_yaml = str_at(doc, "/spec/workflowYAML/yaml");
        let nodes = split_nodes(workflow_yaml);
        let expected: Vec<(String, Option<String>)> = if nodes.is_empty() {
            vec![(name.to_string(), None)]
        } else {
            nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{name}-{}-{n}", i + 1), Some(n.clone())))
                .collect()
        };
        let workflow = self.get_json(&["workflow", name]);
        assert_eq!(
            workflow["status"]["phase"],
            json!("Succeeded"),
            "{workflow:#}"
        );
        let uid = str_at(&workflow, "/metadata/uid");
        let node_labels: BTreeMap<String, Option<String>> = self.get_json(&["nodes"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    str_at(n, "/metadata/name").to_string(),
                    n["metadata"]["labels"]["node.roiergasias"]
                        .as_str()
                        .map(String::from),
                )
            })
            .collect();
        for (job_name, node) in &expected {
            let job = self.get_json(&["job", job_name]);
            let owner = &job["metadata"]["ownerReferences"][0];
            assert_eq!(owner["uid"], json!(uid), "{job_name} is owned by {name}");
            assert_eq!(owner["controller"], json!(true));
            let complete = job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            });
            assert!(complete, "{job_name} is Complete: {:#}", job["status"]);
            let selector = &job["spec"]["template"]["spec"]["nodeSelector"]["node.roiergasias"];
            assert_eq!(
                selector.as_str(),
                node.as_deref(),
                "{job_name}'s nodeSelector"
            );
            let pods = self.get_json(&["pod", "-l", &format!("job-name={job_name}")]);
            let pods = pods["items"].as_array().unwrap();
            assert!(!pods.is_empty(), "{job_name} has a pod");
            for pod in pods {
                let on = str_at(pod, "/spec/nodeName");
                if node.is_some() {
                    assert_eq!(
                        node_labels.get(on).cloned().flatten(),
                        *node,
                        "{job_name}'s pod ran on {on}"
                    );
                }
            }
        }
    }

    fn check_cleaned_up(&self, manifest: &str) {
        let name = str_at(&yaml(&read(manifest)), "/metadata/name").to_string();
        let what = format!("kubectl delete to leave nothing of {name} behind");
        self.runtime.block_on(wait::until(&what, CLEANUP, || {
            let out =
                run_ok(
                    self.kubectl()
                        .args(["get", "workflow,configmap,job,pod", "-o", "name"]),
                );
            let left: Vec<String> = out
                .lines()
                .filter(|l| l.split('/').nth(1).is_some_and(|n| n.starts_with(&name)))
                .map(String::from)
                .collect();
            std::future::ready(if left.is_empty() { Ok(()) } else { Err(left) })
        }));
    }

    fn check_uninstalled(&self) {
        if self.in_cluster {
            self.check_pods_gone();
        }
        let left = run_ok(self.kubectl().args([
            "get",
            "deployment,serviceaccount,service,role,rolebinding,lease",
            "-l",
            "app.kubernetes.io/name=roiergasias-operator",
            "-o",
            "name",
        ]));
        assert!(left.trim().is_empty(), "helm uninstall left {left}");
        let cluster_wide = run_ok(self.kubectl().args([
            "get",
            "clusterrole,clusterrolebinding",
            "-l",
            "app.kubernetes.io/name=roiergasias-operator",
            "-o",
            "name",
        ]));
        assert!(
            !cluster_wide.contains(&self.namespace),
            "helm uninstall left {cluster_wide}"
        );
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.stop_operator();
        if std::thread::panicking() {
            let _ = self.shell("helm uninstall roiergasias-operator");
            eprintln!("{}", self.operator_log());
        }
        let _ = self
            .kubectl()
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
    }
}

#[test]
#[ignore = "needs a cluster: cargo xtask test"]
fn readme_hello_world_walkthrough_on_the_cluster() {
    let mut walk = Walk::in_cluster("hello");
    walk.install();
    walk.follow("hello-world");
    walk.follow("metrics");
    walk.run_notes_checks();
    let metrics = walk.scrape_through_the_service();
    assert!(
        metrics.contains("roiergasias_workflows{phase=\"Succeeded\"}"),
        "the operator's /metrics through its Service:\n{metrics}"
    );
    assert_eq!(
        walk.applied.as_deref(),
        Some("examples/hello-world/hello-world-kubernetes.yaml")
    );
    walk.follow("uninstall");
}

/// Job n+1 is first seen only after Job n was seen Complete.
fn check_one_after_another(events: &[(String, bool)], jobs: &[&str]) -> Result<(), String> {
    let first_seen = |job: &str| events.iter().position(|(n, _)| n == job);
    let completed = |job: &str| events.iter().position(|(n, c)| n == job && *c);
    for pair in jobs.windows(2) {
        let done = completed(pair[0]).ok_or(format!("{} never completed", pair[0]))?;
        let next = first_seen(pair[1]).ok_or(format!("{} never appeared", pair[1]))?;
        if next < done {
            return Err(format!("{} appeared before {} completed", pair[1], pair[0]));
        }
    }
    Ok(())
}

#[test]
fn job_order_check_catches_a_job_created_too_early() {
    let ok = [("a", false), ("a", true), ("b", false), ("b", true)];
    let ok: Vec<(String, bool)> = ok.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(check_one_after_another(&ok, &["a", "b"]), Ok(()));
    let early = [("a", false), ("b", false), ("a", true), ("b", true)];
    let early: Vec<(String, bool)> = early.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert!(check_one_after_another(&early, &["a", "b"]).is_err());
    assert!(check_one_after_another(&ok, &["a", "b", "c"]).is_err());
}

#[test]
#[ignore = "needs a cluster: cargo xtask test"]
fn readme_multi_node_walkthrough_on_the_cluster() {
    let mut walk = Walk::in_cluster("multi");
    let (watch, mut seen) = walk.watch_jobs();
    walk.install();
    walk.follow("multi-node");
    walk.follow("uninstall");
    let jobs = [
        "roiergasias-demo-1-node1",
        "roiergasias-demo-2-node2",
        "roiergasias-demo-3-node2",
    ];
    watch.abort();
    let mut events = Vec::new();
    while let Ok(event) = seen.try_recv() {
        events.push(event);
    }
    if let Err(why) = check_one_after_another(&events, &jobs) {
        panic!("{why}; Job events: {events:?}");
    }
}

/// The AWS example's Workflow, as its chart renders it in S3 mode, is accepted by the CRD and runs
/// as three Jobs on its two node groups: on kwok's fake nodes, since there is no S3 here (real pods
/// run the shared-volume mode: `real_pods.rs`).
#[test]
#[ignore = "needs a cluster: cargo xtask test"]
fn machine_learning_aws_workflow_runs_on_the_cluster() {
    let mut walk = Walk::new("ml-aws");
    walk.pin_to_fake_nodes();
    walk.follow("install");
    let rendered = run_ok(
        helm()
            .args([
                "template",
                "roiergasias-aws",
                AWS_CHART,
                "--namespace",
                &walk.namespace,
            ])
            .args(["--set", "storage.persistentVolumeClaim.enabled=false"])
            .args(["--set", "storage.s3URI=s3://bucket/machine-learning/"])
            .current_dir(repo()),
    );
    let manifest = walk.dir.path().join("machine-learning-aws.yaml");
    std::fs::write(&manifest, &rendered).unwrap();
    run_ok(walk.kubectl().arg("apply").arg("-f").arg(&manifest));
    run_ok(walk.kubectl().args([
        "wait",
        "workflow/roiergasias-aws",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=120s",
    ]));
    let workflow = one(&yaml_documents(&rendered), "Workflow").clone();
    walk.check_workflow_ran(&workflow);
    let job = walk.get_json(&["job", "roiergasias-aws-3-node2"]);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "S3_URI", "value": "s3://bucket/machine-learning/"}])
    );
    walk.check_operator_alive();
    run_ok(walk.kubectl().arg("delete").arg("-f").arg(&manifest));
    walk.follow("uninstall");
}
