//! The kwokctl configuration for a test cluster: pure text rendering, no I/O.

use std::path::Path;

/// Our extra kwok stages (documented in the README's testing section).
pub const ROIERGASIAS_STAGES: &str = include_str!("../../kwok/roiergasias-stages.yaml");

/// Renders the kwokctl config: every binary from `bin`, loopback only, kwok's default stages plus ours.
///
/// JSON strings are valid YAML scalars, so paths are quoted with serde_json whatever they contain.
///
/// The components patches serve the real nodes (and are harmless without them): kwok-controller
/// fakes only the nodes annotated as fake (kwokctl's binary runtime says `--manage-all-nodes=true`);
/// the API server reaches kubelets with client credentials for `kubectl logs` and `exec`, by
/// InternalIP first; and PodNodeSelector with PodTolerationRestriction let a namespace pin its pods
/// to fake or real nodes.
pub fn render(bin: &Path, pki: &Path, apiserver_port: Option<u16>, default_stages: &str) -> String {
    let path = |name: &str| {
        serde_json::to_string(&bin.join(name).display().to_string()).expect("a string")
    };
    let pki_file = |name: &str| {
        serde_json::to_string(&pki.join(name).display().to_string()).expect("a string")
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
{port}componentsPatches:
- name: kwok-controller
  extraArgs:
  - {{key: manage-all-nodes, value: \"false\", override: true}}
  - {{key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}}
- name: kube-apiserver
  extraArgs:
  - {{key: kubelet-client-certificate, value: {admin_crt}}}
  - {{key: kubelet-client-key, value: {admin_key}}}
  - {{key: kubelet-preferred-address-types, value: \"InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP\"}}
  - {{key: enable-admission-plugins, value: \"PodNodeSelector,PodTolerationRestriction\"}}
---
{default_stages}
---
{ROIERGASIAS_STAGES}",
        apiserver = path("kube-apiserver"),
        kcm = path("kube-controller-manager"),
        scheduler = path("kube-scheduler"),
        kubectl = path("kubectl"),
        etcd = path("etcd"),
        kwok = path("kwok"),
        admin_crt = pki_file("admin.crt"),
        admin_key = pki_file("admin.key"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_comes_from_the_tools_dir_and_binds_loopback() {
        let text = render(
            Path::new("/cache/bin"),
            Path::new("/pki"),
            None,
            "kind: Stage\n",
        );
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
    fn kwok_fakes_only_fake_nodes_and_the_api_server_can_reach_kubelets() {
        let text = render(Path::new("/b"), Path::new("/pki"), None, "");
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).expect("the config is valid YAML");
        let patches = docs[0]["componentsPatches"].as_array().unwrap();
        let args = |name: &str| -> Vec<(String, String)> {
            let patch = patches.iter().find(|p| p["name"] == name).unwrap();
            patch["extraArgs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["key"].as_str().unwrap().into(),
                        a["value"].as_str().unwrap().into(),
                    )
                })
                .collect()
        };
        let kwok = args("kwok-controller");
        assert!(kwok.contains(&("manage-all-nodes".into(), "false".into())));
        let apiserver = args("kube-apiserver");
        assert!(
            apiserver.contains(&("kubelet-client-certificate".into(), "/pki/admin.crt".into()))
        );
        assert!(
            apiserver
                .iter()
                .any(|(k, v)| k == "enable-admission-plugins" && v.contains("PodNodeSelector"))
        );
    }

    #[test]
    fn a_fixed_port_is_passed_on() {
        let text = render(Path::new("/b"), Path::new("/pki"), Some(34567), "");
        assert!(text.contains("\n  kubeApiserverPort: 34567\n"), "{text}");
    }

    #[test]
    fn defaults_and_our_stages_are_both_present() {
        let text = render(
            Path::new("/b"),
            Path::new("/pki"),
            None,
            "name: pod-complete\n",
        );
        assert!(text.contains("name: pod-complete"));
        assert!(text.contains("name: roiergasias-pod-fail"));
        assert!(text.contains("name: roiergasias-pod-termination-message"));
    }

    #[test]
    fn our_stages_outweigh_the_unweighted_defaults() {
        assert_eq!(ROIERGASIAS_STAGES.matches("\n  weight: 1\n").count(), 2);
    }
}
