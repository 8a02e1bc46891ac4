//! The fake nodes kwok keeps alive: two labelled `node.roiergasias=<label>`, one unlabelled.

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

/// A Node manifest kwok adopts (annotation `kwok.x-k8s.io/node: fake`); tainted when `tainted`.
pub fn manifest(name: &str, label: Option<&str>, tainted: bool) -> String {
    let extra_label = label
        .map(|l| format!("    node.roiergasias: {l}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    type: kwok
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
{extra_label}{taints}status:
  allocatable:
    cpu: \"16\"
    memory: 64Gi
    pods: \"110\"
  capacity:
    cpu: \"16\"
    memory: 64Gi
    pods: \"110\"
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
    kubeProxyVersion: fake
",
        taints = if tainted {
            format!(
                "spec:\n  taints:\n  - {{key: {FAKE_NODE_TAINT}, value: fake, effect: NoSchedule}}\n"
            )
        } else {
            "spec:\n  taints: []\n".to_string()
        },
    )
}

/// Every node, as one multi-document manifest for `kubectl apply`.
pub fn all(tainted: bool) -> String {
    NODES
        .iter()
        .map(|(name, label)| manifest(name, *label, tainted))
        .collect::<Vec<_>>()
        .join("---\n")
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
}
