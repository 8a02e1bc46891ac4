//! The walkthrough's operator as the chart runs it: the pod of its Deployment on a real node,
//! reaching the API server through the `kubernetes` Service (kube-proxy routes it on the test
//! cluster), Ready through its probes; and what `helm upgrade` and a lost leader do to it.

use std::time::{Duration, Instant};

use roiergasias_testkit::{http, wait};
use serde_json::Value;

use super::{PATIENCE, Walk};
use crate::support::*;

/// The chart's pods, Deployment and Lease (the chart's name label).
pub(super) const SELECTOR: &str = "app.kubernetes.io/name=roiergasias-operator";
/// The release name every README command uses; its Lease and Deployment have the same name.
pub(super) const RELEASE: &str = "roiergasias-operator";

impl Walk {
    /// The README command `line` as the walk runs it (see [`scoped`]).
    pub(super) fn command(&self, line: &str) -> String {
        scoped(line, self.in_cluster.then_some(self.namespace.as_str()))
    }

    pub(super) fn operator_pods(&self) -> Vec<Value> {
        let pods = self.get_json(&["pod", "-l", SELECTOR]);
        pods["items"].as_array().cloned().unwrap_or_default()
    }

    /// After `helm install --wait`: every replica is Ready on a real node, and has not restarted.
    pub(super) fn check_pods_ready(&self, took: Duration) {
        let deployment = self.get_json(&["deployment", RELEASE]);
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
        let pods = self.operator_pods();
        let ready: Vec<&Value> = pods.iter().filter(|p| is_ready(p)).collect();
        assert_eq!(
            ready.len(),
            replicas,
            "helm install --wait returned with {} of {replicas} operator pods Ready: {pods:#?}\n{}",
            ready.len(),
            self.operator_log()
        );
        for pod in ready {
            let node = str_at(pod, "/spec/nodeName");
            assert!(node.starts_with("real-"), "the operator pod runs on {node}");
        }
        self.check_pods_alive();
        eprintln!(
            "[{}] figure: helm install --wait to a Ready operator pod: {:.1} s",
            self.namespace,
            took.as_secs_f64()
        );
    }

    /// No operator container has restarted (a crash loop would hide behind a Ready pod).
    pub(super) fn check_pods_alive(&self) {
        for pod in self.operator_pods() {
            let statuses = pod["status"]["containerStatuses"].as_array().cloned();
            for status in statuses.unwrap_or_default() {
                assert_eq!(
                    status["restartCount"],
                    0,
                    "{} restarted: {status:#}\n{}",
                    str_at(&pod, "/metadata/name"),
                    self.operator_log()
                );
            }
        }
    }

    /// The last lines each operator pod logged.
    pub(super) fn pod_logs(&self) -> String {
        let out = self
            .kubectl()
            .args(["logs", "-l", SELECTOR, "--prefix", "--tail=40"])
            .output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        format!(
            "--- operator pods' logs (last 40 lines each) ---\n{}",
            text.unwrap_or_default()
        )
    }

    /// The operator's /metrics, read from this host at the metrics Service's cluster IP, so
    /// through kube-proxy's routing as a Prometheus in the cluster would read it.
    pub(super) fn scrape_through_the_service(&self) -> String {
        let services = self.get_json(&["service", "-l", SELECTOR]);
        let service = &services["items"][0];
        let ip = str_at(service, "/spec/clusterIP").to_string();
        let port = service["spec"]["ports"][0]["port"]
            .as_u64()
            .expect("a port") as u16;
        let what = format!("GET http://{ip}:{port}/metrics to answer 200");
        let body = self.runtime.block_on(wait::try_until(&what, PATIENCE, || {
            let ip = ip.clone();
            async move {
                match http::get_at(&ip, port, "/metrics").await {
                    Ok((200, body)) => Ok(body),
                    other => Err(format!("{other:?}")),
                }
            }
        }));
        body.unwrap_or_else(|timeout| panic!("{timeout}\n{}", self.operator_log()))
    }

    /// After `helm uninstall`: the operator's pods are gone too (they stop on SIGTERM).
    pub(super) fn check_pods_gone(&self) {
        let what = "the operator's pods to be gone after helm uninstall";
        self.runtime.block_on(wait::until(what, PATIENCE, || {
            let left: Vec<String> = self
                .operator_pods()
                .iter()
                .map(|p| str_at(p, "/metadata/name").to_string())
                .collect();
            std::future::ready(if left.is_empty() { Ok(()) } else { Err(left) })
        }));
    }

    /// The commands NOTES.txt gives for checking the release (its `kubectl` lines but those of the
    /// hello-world example, which the README's blocks run): each must work as printed.
    pub(super) fn run_notes_checks(&self) {
        let out = self.shell(&format!("helm get notes {RELEASE}"));
        let notes = String::from_utf8_lossy(&out.stdout).into_owned();
        let checks: Vec<&str> = notes
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("kubectl ") && !l.contains("examples/"))
            .filter(|l| !l.contains("roiergasias-demo"))
            .collect();
        assert!(checks.len() >= 3, "NOTES.txt gives its checks:\n{notes}");
        for line in checks {
            let run = self.shell(line);
            assert!(
                run.status.success(),
                "NOTES.txt's {line:?} failed: {}",
                String::from_utf8_lossy(&run.stderr)
            );
        }
    }

    /// Follows `helm install` and times it to a Ready operator.
    pub(super) fn install(&mut self) {
        let started = Instant::now();
        self.follow("install");
        if self.in_cluster {
            self.check_pods_ready(started.elapsed());
        }
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }) && pod["metadata"]["deletionTimestamp"].is_null()
}

/// The walkthrough's one change to a README command: with the operator in the cluster, the chart
/// watches only the walk's `namespace`, since other tests share the cluster (watching every
/// namespace, a second release's ClusterRole would clash with the first, and each would run the
/// other's Workflows).
fn scoped(line: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if line.starts_with("helm install") => {
            format!("{line} --set 'watchNamespaces={{{ns}}}'")
        }
        _ => line.to_string(),
    }
}

#[test]
fn only_helm_install_is_scoped_and_only_in_the_cluster() {
    assert_eq!(
        scoped("helm install r ./chart --wait", Some("walk-a")),
        "helm install r ./chart --wait --set 'watchNamespaces={walk-a}'"
    );
    assert_eq!(
        scoped("helm uninstall r", Some("walk-a")),
        "helm uninstall r"
    );
    assert_eq!(scoped("helm install r ./c", None), "helm install r ./c");
}
