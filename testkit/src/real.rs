//! What tests of real pods look at on this host: the real nodes are its processes, and a hostPath
//! directory of it is seen by the pods on both nodes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::operator::RUNNER_IMAGE;
use crate::wait;

/// Real pods start in seconds, not at once as on kwok.
pub const REAL: Duration = Duration::from_secs(180);
/// Where a test's host directory ([`host_dir`]) is mounted in the pods of [`GATED`].
pub const GATE: &str = "/gate";

/// Split 1 on node1 says it runs, waits for the gate, and reports its pod's host name (the pod's
/// name) as `token`; split 2 on node2 prints what it received.
pub const GATED: &str = r#"version: 0.1
task:
  - node: node1
    sequential:
      - execute:
          - "touch /gate/started"
          - "sh -c 'until [ -e /gate/go ]; do sleep 0.1; done'"
          - "sh -c 'echo \"token=$(uname -n)\" >> \"$ROIERGASIAS_ENV\"'"
      - print: ["split 1 passed the gate"]
  - node: node2
    sequential:
      - print: ["split 2 got {{env:token}}"]
"#;

/// A client and a fresh namespace whose pods run on the real nodes, the CRDs installed.
pub async fn real_setup(prefix: &str) -> (Client, crate::TestNamespace) {
    let client = crate::client().await;
    crate::ensure_crds(&client).await;
    let ns = crate::TestNamespace::on_real_nodes(&client, prefix).await;
    (client, ns)
}

/// A directory under /tmp every pod's user may write to (the runner runs as uid 65532), removed
/// when dropped: pods mount it with [`host_dir_template`].
pub fn host_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in("/tmp").expect("a directory under /tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("opening the directory to the pods' user");
    dir
}

/// A jobTemplate running the runner image on workflow `hello-world`, with `dir` of this host
/// mounted at `mount`, and no retries of a failed pod (so a failure fails its Job at once).
pub fn host_dir_template(dir: &Path, mount: &str) -> Value {
    json!({"spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{
            "name": "roiergasias",
            "image": RUNNER_IMAGE,
            "command": ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"],
            "volumeMounts": [
                {"name": "yaml", "mountPath": "/root/hello-world"},
                {"name": "host", "mountPath": mount},
            ],
        }],
        "volumes": [{"name": "host", "hostPath": {"path": dir, "type": "Directory"}}],
    }}}})
}

/// Waits until `path` exists.
pub async fn wait_file(path: &Path, within: Duration) {
    let what = format!("{} to appear", path.display());
    wait::until(&what, within, || {
        std::future::ready(if path.exists() { Ok(()) } else { Err("absent") })
    })
    .await;
}

/// Whether a `sleep <marker>` runs anywhere on this host (the real nodes' containers are its
/// processes).
pub fn sleeping(marker: &str) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0).collect::<Vec<_>>()
                == [b"sleep".as_slice(), marker.as_bytes(), b""]
        })
    })
}

/// A pod of a Job on a real node: its name, its node and its log.
#[derive(Debug)]
pub struct RanPod {
    pub name: String,
    pub node: String,
    pub logs: String,
}

/// The pods of Job `job`, with their node and logs.
pub async fn pods_of(client: &Client, ns: &str, job: &str) -> Vec<RanPod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap_or_else(|e| panic!("listing the pods of Job {job}: {e}"));
    let mut out = Vec::new();
    for pod in list.items {
        let name = pod.name_any();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let logs = pods
            .logs(&name, &LogParams::default())
            .await
            .unwrap_or_else(|e| panic!("logs of {name}: {e}"));
        out.push(RanPod { name, node, logs });
    }
    out
}

/// The one pod Job `job` ran, which must have run on real node `node`.
pub async fn one_pod_of(client: &Client, ns: &str, job: &str, node: &str) -> RanPod {
    let mut pods = pods_of(client, ns, job).await;
    assert_eq!(pods.len(), 1, "Job {job} ran one pod: {pods:#?}");
    let pod = pods.remove(0);
    assert_eq!(pod.node, node, "Job {job} ran on the node its label names");
    pod
}

/// Names of the pods in namespace `ns`.
pub async fn pod_names(client: &Client, ns: &str) -> Vec<String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("listing pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect()
}

/// Gives image `from` the name `to` in both real nodes' containerd, as loading a newly built
/// image would (`kind load docker-image`): the stand-in for building one.
pub fn tag_image(from: &str, to: &str) {
    for label in ["node1", "node2"] {
        let socket = format!("/run/roiergasias/{label}/containerd.sock");
        let out = std::process::Command::new(crate::cluster::tools_dir().join("ctr"))
            .args(["--address", &socket, "--namespace", "k8s.io"])
            .args(["images", "tag", "--force", from, to])
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr images tag {from} {to} on {label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
