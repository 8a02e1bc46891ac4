//! The fake nodes kwok keeps alive: two labelled `node.roiergasias=<label>`, one unlabelled.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, NodeSystemInfo, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// (node name, value of the `node.roiergasias` label).
pub const NODES: &[(&str, Option<&str>)] = &[
    ("kwok-node1", Some("node1")),
    ("kwok-node2", Some("node2")),
    ("kwok-plain", None),
];

/// Marks our fake nodes so `kubectl wait` can select them all.
pub const FAKE_NODE_LABEL: &str = "type=kwok";

/// Taints the fake nodes while real nodes run, so a pod lands on a fake node only on purpose: in a
/// namespace that tolerates it (see the README's testing section).
pub const FAKE_NODE_TAINT: &str = "kwok.x-k8s.io/node";

fn strings<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Node kwok adopts (annotation `kwok.x-k8s.io/node: fake`); tainted when `tainted`.
pub fn manifest(name: &str, label: Option<&str>, tainted: bool) -> Node {
    let mut labels = strings([
        ("type", "kwok"),
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
    ]);
    if let Some(l) = label {
        labels.insert("node.roiergasias".into(), l.into());
    }
    let taints = tainted.then(|| Taint {
        key: FAKE_NODE_TAINT.into(),
        value: Some("fake".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    });
    let resources: BTreeMap<String, Quantity> =
        [("cpu", "16"), ("memory", "64Gi"), ("pods", "110")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(strings([
                ("kwok.x-k8s.io/node", "fake"),
                ("node.alpha.kubernetes.io/ttl", "0"),
            ])),
            labels: Some(labels),
            ..Default::default()
        },
        // An empty list, not none: `kubectl apply` then removes a taint an earlier `up` set.
        spec: Some(NodeSpec {
            taints: Some(taints.into_iter().collect()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                kubelet_version: "fake".into(),
                kube_proxy_version: "fake".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Every node, as one multi-document YAML manifest for `kubectl apply`.
pub fn all(tainted: bool) -> String {
    let nodes: Vec<Node> = NODES
        .iter()
        .map(|(name, label)| manifest(name, *label, tainted))
        .collect();
    super::yaml(&nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_labelled_nodes_and_one_plain() {
        let text = all(false);
        assert_eq!(text.matches("kind: Node\n").count(), 3);
        assert!(text.contains("node.roiergasias: node1\n"));
        assert!(text.contains("node.roiergasias: node2\n"));
        assert_eq!(text.matches("node.roiergasias:").count(), 2);
        assert_eq!(text.matches("kwok.x-k8s.io/node: fake").count(), 3);
        assert!(
            !text.contains("NoSchedule"),
            "without real nodes, pods must schedule without tolerations"
        );
        let tainted = all(true);
        assert_eq!(tainted.matches("effect: NoSchedule").count(), 3);
    }

    #[test]
    fn the_manifest_parses_back_to_the_nodes_kwok_adopts() {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&all(true)).expect("the manifest is valid YAML");
        assert_eq!(docs.len(), 3);
        let first = &docs[0];
        let expected = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "kwok-node1",
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": "kwok-node1",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.roiergasias": "node1",
                },
            },
            "spec": {"taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]},
        });
        for key in ["apiVersion", "kind", "metadata", "spec"] {
            assert_eq!(first[key], expected[key], "{key}");
        }
        let status = &first["status"];
        for resources in ["allocatable", "capacity"] {
            let want = serde_json::json!({"cpu": "16", "memory": "64Gi", "pods": "110"});
            assert_eq!(
                status[resources], want,
                "{resources}: quantities stay strings"
            );
        }
        assert_eq!(status["nodeInfo"]["kubeletVersion"], "fake");
        assert_eq!(status["nodeInfo"]["operatingSystem"], "linux");
        // The typed Node reads back too, the way the API server will see it.
        let node: Node = serde_saphyr::from_multiple(&all(false)).unwrap().remove(2);
        assert_eq!(node.metadata.name.as_deref(), Some("kwok-plain"));
        assert!(
            !node
                .metadata
                .labels
                .unwrap()
                .contains_key("node.roiergasias")
        );
        assert_eq!(node.spec.unwrap().taints, Some(vec![]));
    }
}
