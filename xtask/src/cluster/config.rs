//! The kwokctl configuration for a test cluster: pure text rendering, no I/O.

use std::path::Path;

/// Our extra kwok stages (documented in the README's testing section).
pub const ROIERGASIAS_STAGES: &str = include_str!("../../kwok/roiergasias-stages.yaml");

/// Renders the kwokctl config: every binary from `bin`, loopback only, kwok's default stages plus ours.
///
/// JSON strings are valid YAML scalars, so paths are quoted with serde_json whatever they contain.
pub fn render(bin: &Path, apiserver_port: Option<u16>, default_stages: &str) -> String {
    let path = |name: &str| {
        serde_json::to_string(&bin.join(name).display().to_string()).expect("a string")
    };
    let port = apiserver_port
        .map(|p| format!("  kubeApiserverPort: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  disableQPSLimits: true
  kubeApiserverBinary: {apiserver}
  kubeControllerManagerBinary: {kcm}
  kubeSchedulerBinary: {scheduler}
  kubectlBinary: {kubectl}
  etcdBinary: {etcd}
  kwokControllerBinary: {kwok}
{port}---
{default_stages}
---
{ROIERGASIAS_STAGES}",
        apiserver = path("kube-apiserver"),
        kcm = path("kube-controller-manager"),
        scheduler = path("kube-scheduler"),
        kubectl = path("kubectl"),
        etcd = path("etcd"),
        kwok = path("kwok"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_comes_from_the_tools_dir_and_binds_loopback() {
        let text = render(Path::new("/cache/bin"), None, "kind: Stage\n");
        for (key, name) in [
            ("kubeApiserverBinary", "kube-apiserver"),
            ("kubeControllerManagerBinary", "kube-controller-manager"),
            ("kubeSchedulerBinary", "kube-scheduler"),
            ("kubectlBinary", "kubectl"),
            ("etcdBinary", "etcd"),
            ("kwokControllerBinary", "kwok"),
        ] {
            assert!(
                text.contains(&format!("  {key}: \"/cache/bin/{name}\"\n")),
                "{key} missing in\n{text}"
            );
        }
        assert!(text.contains("  bindAddress: 127.0.0.1\n"));
        assert!(!text.contains("kubeApiserverPort"));
        assert!(!text.contains("https://"), "nothing may be downloaded");
    }

    #[test]
    fn a_fixed_port_is_passed_on() {
        let text = render(Path::new("/b"), Some(34567), "");
        assert!(text.contains("\n  kubeApiserverPort: 34567\n"), "{text}");
    }

    #[test]
    fn defaults_and_our_stages_are_both_present() {
        let text = render(Path::new("/b"), None, "name: pod-complete\n");
        assert!(text.contains("name: pod-complete"));
        assert!(text.contains("name: roiergasias-pod-fail"));
        assert!(text.contains("name: roiergasias-pod-termination-message"));
    }

    #[test]
    fn our_stages_outweigh_the_unweighted_defaults() {
        assert_eq!(ROIERGASIAS_STAGES.matches("\n  weight: 1\n").count(), 2);
    }
}
