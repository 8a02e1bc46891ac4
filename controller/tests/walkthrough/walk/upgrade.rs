//! The README's upgrade and standby blocks, each while a multi-node workflow runs: split 1 waits
//! on a gate (a host directory the pods mount) so the operator changes while it runs, and the
//! workflow must still finish with one Job per split.

use std::time::Instant;

use roiergasias_testkit::real::{GATE, REAL, host_dir, host_dir_template, tag_image, wait_file};
use roiergasias_testkit::wait;
use roiergasias_testkit::workflow::workflow;
use serde_json::Value;

use super::in_cluster::RELEASE;
use super::{PATIENCE, Walk};
use crate::support::*;

const GATED_NAME: &str = "gated";
/// Split 1 on node1 waits for the gate, then hands a value to splits 2 and 3 on node2.
const GATED: &str = r#"version: 0.1
task:
  - node: node1
    sequential:
      - execute:
          - "touch /gate/started"
          - "sh -c 'until [ -e /gate/go ]; do sleep 0.1; done'"
          - "sh -c 'echo \"token=passed\" >> \"$ROIERGASIAS_ENV\"'"
  - node: node2
    sequential:
      - print: ["split 2 got {{env:token}}"]
  - node: node2
    sequential:
      - print: ["split 3 got {{env:token}}"]
"#;
const GATED_JOBS: [&str; 3] = ["gated-1-node1", "gated-2-node2", "gated-3-node2"];
/// The image the chart runs by default, and the tag the README's upgrade moves to.
const OPERATOR_IMAGE: &str = concat!(
    "docker.io/library/roiergasias-operator:",
    env!("CARGO_PKG_VERSION")
);
const UPGRADED_IMAGE: &str = "docker.io/library/roiergasias-operator:next";

impl Walk {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Applies the gated workflow and waits until split 1 runs; open `gate/go` to let it pass.
    fn start_gated(&self, gate: &std::path::Path) {
        let template = host_dir_template(gate, GATE);
        let manifest = self.dir.path().join("gated.json");
        let wf = workflow(GATED_NAME, GATED, Some(template));
        std::fs::write(&manifest, serde_json::to_string(&wf).unwrap()).unwrap();
        run_ok(self.kubectl().arg("apply").arg("-f").arg(&manifest));
        self.block_on(wait_file(&gate.join("started"), REAL));
    }

    /// Opens the gate; the workflow ends Succeeded with exactly one Job per split.
    fn finish_gated(&self, gate: &std::path::Path) {
        std::fs::write(gate.join("go"), "").unwrap();
        let waited = self
            .kubectl()
            .args(["wait", &format!("workflow/{GATED_NAME}")])
            .args(["--for=jsonpath={.status.phase}=Succeeded", "--timeout=180s"])
            .status();
        if !waited.is_ok_and(|s| s.success()) {
            panic!(
                "the gated workflow did not succeed: {:#}\n{}",
                self.get_json(&["workflow", GATED_NAME])["status"],
                self.operator_log()
            );
        }
        let jobs = self.get_json(&["job", "--sort-by=.metadata.creationTimestamp"]);
        let names: Vec<&str> = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| str_at(j, "/metadata/name"))
            .collect();
        assert_eq!(names, GATED_JOBS, "one Job per split, no second one");
        let last = run_ok(self.kubectl().args(["logs", "job/gated-3-node2"]));
        assert!(last.contains("split 3 got passed"), "{last}");
    }

    fn pod_names(&self) -> Vec<String> {
        let pods = self.operator_pods();
        pods.iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| str_at(p, "/metadata/name").to_string())
            .collect()
    }

    fn lease_holder(&self) -> Option<String> {
        let lease = self.get_json(&["lease", RELEASE]);
        lease["spec"]["holderIdentity"].as_str().map(String::from)
    }
}

#[test]
#[ignore = "needs a cluster: cargo xtask test"]
fn readme_upgrade_rolls_the_operator_while_a_workflow_runs() {
    let mut walk = Walk::in_cluster("upgrade");
    walk.install();
    let before = walk.pod_names();
    let gate = host_dir();
    walk.start_gated(gate.path());
    tag_image(OPERATOR_IMAGE, UPGRADED_IMAGE);
    let started = Instant::now();
    walk.follow("upgrade");
    let took = started.elapsed();
    let pods = walk.operator_pods();
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(live.len(), 1, "one replica after the upgrade: {pods:#?}");
    let image = str_at(live[0], "/spec/containers/0/image");
    assert!(image.ends_with(":next"), "the new pod runs {image}");
    assert!(
        !before.contains(&str_at(live[0], "/metadata/name").to_string()),
        "the Deployment rolled to a new pod"
    );
    eprintln!(
        "[{}] figure: helm upgrade --wait (rolling update): {:.1} s",
        walk.namespace,
        took.as_secs_f64()
    );
    walk.finish_gated(gate.path());
    walk.follow("uninstall");
}

#[test]
#[ignore = "needs a cluster: cargo xtask test"]
fn readme_standby_takes_over_when_the_leader_pod_is_deleted() {
    let mut walk = Walk::in_cluster("standby");
    walk.install();
    let gate = host_dir();
    walk.start_gated(gate.path());
    walk.follow("standby");
    assert_eq!(walk.pod_names().len(), 2, "two replicas, both Ready");
    let leader = walk.lease_holder().expect("one replica leads");
    let started = Instant::now();
    walk.follow("failover");
    let what = format!("another operator pod to hold the Lease once {leader} is deleted");
    let holder = walk.block_on(wait::until(&what, PATIENCE, || {
        let holder = walk.lease_holder().filter(|h| *h != leader);
        let live = walk.pod_names();
        std::future::ready(match holder {
            Some(h) if live.contains(&h) => Ok(h),
            other => Err(format!("holder {other:?}, pods {live:?}")),
        })
    }));
    eprintln!(
        "[{}] figure: leader pod deleted to a new leader: {:.1} s ({holder})",
        walk.namespace,
        started.elapsed().as_secs_f64()
    );
    walk.finish_gated(gate.path());
    walk.follow("uninstall");
}
