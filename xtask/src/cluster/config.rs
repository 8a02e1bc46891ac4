//! The kwokctl configuration for a test cluster: pure rendering, no I/O.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

/// Our extra kwok stages (documented in the README's testing section).
pub const ROIERGASIAS_STAGES: &str = include_str!("../../kwok/roiergasias-stages.yaml");

/// kwokctl's `KwokctlConfiguration` (config.kwok.x-k8s.io/v1alpha1), the fields we set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KwokctlConfiguration {
    api_version: &'static str,
    kind: &'static str,
    options: Options,
    components_patches: Vec<ComponentPatch>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    runtime: &'static str,
    bind_address: &'static str,
    #[serde(rename = "disableQPSLimits")]
    disable_qps_limits: bool,
    kube_apiserver_binary: String,
    kube_controller_manager_binary: String,
    kube_scheduler_binary: String,
    kubectl_binary: String,
    etcd_binary: String,
    kwok_controller_binary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kube_apiserver_port: Option<u16>,
    #[serde(rename = "kubeApiserverCertSANs")]
    kube_apiserver_cert_sans: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentPatch {
    name: &'static str,
    extra_args: Vec<ExtraArg>,
}

#[derive(Serialize)]
struct ExtraArg {
    key: &'static str,
    value: String,
    /// Replaces kwokctl's own value of the flag instead of adding a second one.
    #[serde(rename = "override", skip_serializing_if = "std::ops::Not::not")]
    replace: bool,
}

fn arg(key: &'static str, value: impl Into<String>) -> ExtraArg {
    ExtraArg {
        key,
        value: value.into(),
        replace: false,
    }
}

/// The Service range, set rather than left to the API server's default, so its first address (the
/// `kubernetes` Service, which in-cluster clients dial) can be in the serving certificate.
pub const SERVICE_RANGE: &str = "10.96.0.0/12";
/// The `kubernetes` Service's address: the first of [`SERVICE_RANGE`].
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Renders the kwokctl config: every binary from `bin`, loopback only, kwok's default stages plus ours.
///
/// With `pods_reach` (real nodes), the API server also listens beyond loopback and advertises that
/// address as the `kubernetes` Service's endpoint, so real pods (the operator's) reach it through
/// the Service; kubelets and every other client still use loopback.
///
/// The components patches serve the real nodes (and are harmless without them): kwok-controller
/// fakes only the nodes annotated as fake (kwokctl's binary runtime says `--manage-all-nodes=true`);
/// the API server reaches kubelets with client credentials for `kubectl logs` and `exec`, by
/// InternalIP first; PodNodeSelector with PodTolerationRestriction let a namespace pin its pods
/// to fake or real nodes; the controller manager and the scheduler run without leader election.
pub fn render(
    bin: &Path,
    pki: &Path,
    apiserver_port: Option<u16>,
    pods_reach: Option<Ipv4Addr>,
    default_stages: &str,
) -> String {
    let path = |name: &str| bin.join(name).display().to_string();
    let pki_file = |name: &str| pki.join(name).display().to_string();
    let config = KwokctlConfiguration {
        api_version: "config.kwok.x-k8s.io/v1alpha1",
        kind: "KwokctlConfiguration",
        options: Options {
            runtime: "binary",
            bind_address: "127.0.0.1",
            disable_qps_limits: true,
            kube_apiserver_binary: path("kube-apiserver"),
            kube_controller_manager_binary: path("kube-controller-manager"),
            kube_scheduler_binary: path("kube-scheduler"),
            kubectl_binary: path("kubectl"),
            etcd_binary: path("etcd"),
            kwok_controller_binary: path("kwok"),
            kube_apiserver_port: apiserver_port,
            kube_apiserver_cert_sans: vec![KUBERNETES_SERVICE_IP.to_string()],
        },
        components_patches: vec![
            ComponentPatch {
                name: "kwok-controller",
                extra_args: vec![
                    ExtraArg {
                        replace: true,
                        ..arg("manage-all-nodes", "false")
                    },
                    arg(
                        "manage-nodes-with-annotation-selector",
                        "kwok.x-k8s.io/node=fake",
                    ),
                ],
            },
            ComponentPatch {
                name: "kube-apiserver",
                extra_args: vec![
                    arg("kubelet-client-certificate", pki_file("admin.crt")),
                    arg("kubelet-client-key", pki_file("admin.key")),
                    arg(
                        "kubelet-preferred-address-types",
                        "InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
                    ),
                    arg(
                        "enable-admission-plugins",
                        "PodNodeSelector,PodTolerationRestriction",
                    ),
                    arg("service-cluster-ip-range", SERVICE_RANGE),
                ]
                .into_iter()
                .chain(pods_reach.into_iter().flat_map(reachable_at))
                .collect(),
            },
            // One of each: with a Lease, a few seconds without the API server (a fault test
            // pauses it) would end them, and nothing here restarts them.
            ComponentPatch {
                name: "kube-controller-manager",
                extra_args: vec![arg("leader-elect", "false")],
            },
            ComponentPatch {
                name: "kube-scheduler",
                extra_args: vec![arg("leader-elect", "false")],
            },
        ],
    };
    // kwok's stages are YAML text already; they follow as documents of their own.
    format!(
        "{}---\n{default_stages}\n---\n{ROIERGASIAS_STAGES}",
        super::yaml(&[config])
    )
}

/// The API server's flags for pods on the real nodes to reach it at `ip`.
fn reachable_at(ip: Ipv4Addr) -> [ExtraArg; 2] {
    [
        ExtraArg {
            replace: true,
            ..arg("bind-address", "0.0.0.0")
        },
        arg("advertise-address", ip.to_string()),
    ]
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
            None,
            "kind: Stage\n",
        );
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let options = &docs[0]["options"];
        for (key, name) in [
            ("kubeApiserverBinary", "kube-apiserver"),
            ("kubeControllerManagerBinary", "kube-controller-manager"),
            ("kubeSchedulerBinary", "kube-scheduler"),
            ("kubectlBinary", "kubectl"),
            ("etcdBinary", "etcd"),
            ("kwokControllerBinary", "kwok"),
        ] {
            assert_eq!(
                options[key],
                format!("/cache/bin/{name}"),
                "{key} in\n{text}"
            );
        }
        assert_eq!(options["bindAddress"], "127.0.0.1");
        assert!(!text.contains("kubeApiserverPort"));
        assert!(!text.contains("https://"), "nothing may be downloaded");
    }

    #[test]
    fn the_config_parses_back_to_the_expected_values() {
        let text = render(
            Path::new("/b"),
            Path::new("/pki"),
            Some(6443),
            None,
            "kind: Stage\n",
        );
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let expected = serde_json::json!({
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "disableQPSLimits": true,
                "kubeApiserverBinary": "/b/kube-apiserver",
                "kubeControllerManagerBinary": "/b/kube-controller-manager",
                "kubeSchedulerBinary": "/b/kube-scheduler",
                "kubectlBinary": "/b/kubectl",
                "etcdBinary": "/b/etcd",
                "kwokControllerBinary": "/b/kwok",
                "kubeApiserverPort": 6443,
                "kubeApiserverCertSANs": ["10.96.0.1"],
            },
            "componentsPatches": [
                {"name": "kwok-controller", "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false", "override": true},
                    {"key": "manage-nodes-with-annotation-selector", "value": "kwok.x-k8s.io/node=fake"},
                ]},
                {"name": "kube-apiserver", "extraArgs": [
                    {"key": "kubelet-client-certificate", "value": "/pki/admin.crt"},
                    {"key": "kubelet-client-key", "value": "/pki/admin.key"},
                    {"key": "kubelet-preferred-address-types", "value": "InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP"},
                    {"key": "enable-admission-plugins", "value": "PodNodeSelector,PodTolerationRestriction"},
                    {"key": "service-cluster-ip-range", "value": "10.96.0.0/12"},
                ]},
                {"name": "kube-controller-manager", "extraArgs": [
                    {"key": "leader-elect", "value": "false"},
                ]},
                {"name": "kube-scheduler", "extraArgs": [
                    {"key": "leader-elect", "value": "false"},
                ]},
            ],
        });
        assert_eq!(docs[0], expected);
        assert_eq!(docs[1], serde_json::json!({"kind": "Stage"}));
        let ours: Vec<serde_json::Value> = serde_saphyr::from_multiple(ROIERGASIAS_STAGES).unwrap();
        assert_eq!(docs[2..], ours[..], "our stages follow unchanged");
    }

    #[test]
    fn paths_yaml_would_misread_stay_strings() {
        for dir in [
            "/a: b #c", "/true", "/x\n  y", " /lead", "/1e3", "/'q\"", "/- [x]",
        ] {
            let text = render(Path::new(dir), Path::new(dir), None, None, "");
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
            assert_eq!(
                docs[0]["options"]["etcdBinary"],
                format!("{dir}/etcd"),
                "in\n{text}"
            );
            let apiserver = &docs[0]["componentsPatches"][1]["extraArgs"][0];
            assert_eq!(apiserver["value"], format!("{dir}/admin.crt"));
        }
    }

    #[test]
    fn kwok_fakes_only_fake_nodes_and_the_api_server_can_reach_kubelets() {
        let text = render(Path::new("/b"), Path::new("/pki"), None, None, "");
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
    fn with_real_nodes_the_api_server_is_reachable_by_pods_through_the_service() {
        let ip = Ipv4Addr::new(192, 0, 2, 2);
        let text = render(Path::new("/b"), Path::new("/pki"), None, Some(ip), "");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let patch = &docs[0]["componentsPatches"][1];
        assert_eq!(patch["name"], "kube-apiserver");
        let args = patch["extraArgs"].as_array().unwrap();
        let find = |key: &str| args.iter().find(|a| a["key"] == key).cloned();
        let bind = find("bind-address").expect("a bind address");
        assert_eq!(
            (&bind["value"], &bind["override"]),
            (&"0.0.0.0".into(), &true.into())
        );
        assert_eq!(find("advertise-address").unwrap()["value"], "192.0.2.2");
        assert_eq!(
            docs[0]["options"]["kubeApiserverCertSANs"][0],
            KUBERNETES_SERVICE_IP
        );
        // Without real nodes nothing listens beyond loopback.
        let text = render(Path::new("/b"), Path::new("/pki"), None, None, "");
        assert!(!text.contains("bind-address") && !text.contains("advertise-address"));
    }

    #[test]
    fn a_fixed_port_is_passed_on() {
        let text = render(Path::new("/b"), Path::new("/pki"), Some(34567), None, "");
        assert!(text.contains("\n  kubeApiserverPort: 34567\n"), "{text}");
    }

    #[test]
    fn defaults_and_our_stages_are_both_present() {
        let text = render(
            Path::new("/b"),
            Path::new("/pki"),
            None,
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
