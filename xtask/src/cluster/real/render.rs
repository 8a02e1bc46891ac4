//! The real nodes' configuration files: pure rendering from a [`NodeLayout`], no I/O.
//!
//! Everything is built as data and serialized (JSON for the kubelet, its kubeconfig and CNI, which
//! all read JSON; TOML for containerd), so no path or value can break the syntax.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::{Value, json};

/// Where one real node keeps everything, and how it is reached.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    /// Kubernetes node name, e.g. `real-node1`.
    pub name: String,
    /// Value of the `node.roiergasias` label, e.g. `node1`.
    pub label: String,
    /// Persistent files: configs, kubelet root, containerd root, logs.
    pub data: PathBuf,
    /// Sockets and runtime state (short: unix socket paths are limited to 108 bytes).
    pub run: PathBuf,
    /// The cgroup every pod of this kubelet lives under, the same name in every hierarchy.
    pub cgroup_root: String,
    pub bridge: String,
    pub subnet: String,
    pub node_ip: Ipv4Addr,
    pub kubelet_port: u16,
    pub healthz_port: u16,
    pub pause_image: String,
}

impl NodeLayout {
    pub fn socket(&self) -> PathBuf {
        self.run.join("containerd.sock")
    }
    pub fn containerd_config(&self) -> PathBuf {
        self.data.join("containerd/config.toml")
    }
    pub fn cni_dir(&self) -> PathBuf {
        self.data.join("cni/net.d")
    }
    pub fn kubelet_dir(&self) -> PathBuf {
        self.data.join("kubelet")
    }
    pub fn kubelet_config(&self) -> PathBuf {
        self.kubelet_dir().join("config.json")
    }
    pub fn kubelet_kubeconfig(&self) -> PathBuf {
        self.kubelet_dir().join("kubeconfig.json")
    }
    pub fn pki_dir(&self) -> PathBuf {
        self.kubelet_dir().join("pki")
    }
}

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// containerd 2.x (config version 3): own root, state, socket and CNI directory; runc from Debian.
pub fn containerd_config(node: &NodeLayout, runc: &str, cni_bin: &str) -> String {
    let cfg = json!({
        "version": 3,
        "root": s(&node.data.join("containerd/root")),
        "state": s(&node.run.join("state")),
        "grpc": {"address": s(&node.socket())},
        "ttrpc": {"address": s(&node.run.join("containerd.sock.ttrpc"))},
        "plugins": {
            "io.containerd.cri.v1.images": {
                "snapshotter": "overlayfs",
                "pinned_images": {"sandbox": node.pause_image},
            },
            "io.containerd.cri.v1.runtime": {
                "enable_selinux": false,
                // This VM's capability bounding set lacks CAP_SYS_RESOURCE: an oom_score_adj below
                // the parent's (the pause container asks for -998) fails in runc.
                "restrict_oom_score_adj": true,
                "netns_mounts_under_state_dir": true,
                "cdi_spec_dirs": [],
                "containerd": {
                    "default_runtime_name": "runc",
                    "runtimes": {"runc": {
                        "runtime_type": "io.containerd.runc.v2",
                        "options": {
                            "SystemdCgroup": false,
                            "BinaryName": runc,
                            "Root": s(&node.run.join("runc")),
                        },
                    }},
                },
                "cni": {
                    "bin_dirs": [cni_bin],
                    "conf_dir": s(&node.cni_dir()),
                    "max_conf_num": 1,
                },
            },
            "io.containerd.grpc.v1.cri": {
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
            },
            "io.containerd.nri.v1.nri": {"disable": true},
            "io.containerd.internal.v1.opt": {"path": s(&node.data.join("containerd/opt"))},
        },
    });
    toml::to_string(&cfg).expect("a JSON object of strings, numbers and booleans is valid TOML")
}

/// One bridge per node, addresses from the node's own subnet; pods reach each other and the host.
pub fn cni_conflist(node: &NodeLayout) -> String {
    pretty(&json!({
        "cniVersion": "1.0.0",
        "name": node.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": s(&node.data.join("cni/ipam")),
                },
            },
            {"type": "loopback"},
        ],
    }))
}

/// The KubeletConfiguration: cgroup v1 with cgroupfs, its own cgroup root, no iptables chains.
pub fn kubelet_config(node: &NodeLayout, client_ca: &std::path::Path) -> String {
    let endpoint = format!("unix://{}", s(&node.socket()));
    pretty(&json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.node_ip.to_string(),
        "port": node.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": node.healthz_port,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": s(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": endpoint,
        "imageServiceEndpoint": endpoint,
        "cgroupDriver": "cgroupfs",
        // Two kubelets sharing a cgroup root clean up each other's pods.
        "cgroupRoot": format!("/{}", node.cgroup_root),
        "cgroupsPerQOS": true,
        "enforceNodeAllocatable": ["pods"],
        "failSwapOn": false,
        "failCgroupV1": false,
        "makeIPTablesUtilChains": false,
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": s(&node.data.join("pod-logs")),
        "serializeImagePulls": false,
        "rotateCertificates": false,
        "serverTLSBootstrap": false,
        // The suite's real-pod tests, walkthroughs (operator pods too) and fault tests share two
        // nodes: 20 ran out once, and a test's pod then waits Unschedulable ("Too many pods").
        "maxPods": 100,
        // Images are imported, never pulled: nothing may garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "fileCheckFrequency": "5s",
        "syncFrequency": "10s",
    }))
}

/// A kubeconfig naming the node's own client certificate (group `system:nodes`), as kube's typed
/// `Kubeconfig`, written as JSON.
pub fn kubelet_kubeconfig(node: &NodeLayout, server: &str, ca: &std::path::Path) -> String {
    use kube::config::{
        AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
    };
    let pki = node.pki_dir();
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: "roiergasias".into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                certificate_authority: Some(s(ca)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: node.name.clone(),
            auth_info: Some(AuthInfo {
                client_certificate: Some(s(&pki.join("node.crt"))),
                client_key: Some(s(&pki.join("node.key"))),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "default".into(),
            context: Some(Context {
                cluster: "roiergasias".into(),
                user: Some(node.name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some("default".into()),
        ..Default::default()
    };
    serde_json::to_string_pretty(&config).expect("a kubeconfig serializes")
}

/// The kubelet's command line.
pub fn kubelet_args(node: &NodeLayout, labels: &str) -> Vec<String> {
    vec![
        format!("--config={}", s(&node.kubelet_config())),
        format!("--kubeconfig={}", s(&node.kubelet_kubeconfig())),
        format!("--root-dir={}", s(&node.kubelet_dir().join("root"))),
        format!("--cert-dir={}", s(&node.pki_dir())),
        format!("--hostname-override={}", node.name),
        format!("--node-ip={}", node.node_ip),
        format!("--node-labels={labels}"),
        "--v=1".to_string(),
    ]
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> NodeLayout {
        NodeLayout {
            name: "real-node1".into(),
            label: "node1".into(),
            data: "/cache/real/node1".into(),
            run: "/run/roiergasias/node1".into(),
            cgroup_root: "roiergasias-node1".into(),
            bridge: "rgs-node1".into(),
            subnet: "10.244.1.0/24".into(),
            node_ip: Ipv4Addr::new(10, 0, 0, 5),
            kubelet_port: 10250,
            healthz_port: 10248,
            pause_image: "localhost/roiergasias/pause:3.10".into(),
        }
    }

    #[test]
    fn containerd_is_confined_to_the_nodes_own_directories() {
        let text = containerd_config(&layout(), "/usr/sbin/runc", "/usr/lib/cni");
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["version"].as_integer(), Some(3));
        assert_eq!(
            parsed["root"].as_str(),
            Some("/cache/real/node1/containerd/root")
        );
        assert_eq!(
            parsed["grpc"]["address"].as_str(),
            Some("/run/roiergasias/node1/containerd.sock")
        );
        let runtime = &parsed["plugins"]["io.containerd.cri.v1.runtime"];
        assert_eq!(runtime["restrict_oom_score_adj"].as_bool(), Some(true));
        assert_eq!(
            runtime["cni"]["conf_dir"].as_str(),
            Some("/cache/real/node1/cni/net.d")
        );
        let runc = &runtime["containerd"]["runtimes"]["runc"]["options"];
        assert_eq!(runc["Root"].as_str(), Some("/run/roiergasias/node1/runc"));
        assert_eq!(runc["SystemdCgroup"].as_bool(), Some(false));
    }

    #[test]
    fn the_kubelet_has_its_own_cgroup_root_and_no_iptables_chains() {
        let cfg: Value =
            serde_json::from_str(&kubelet_config(&layout(), "/pki/ca.crt".as_ref())).unwrap();
        assert_eq!(cfg["cgroupRoot"], "/roiergasias-node1");
        assert_eq!(cfg["failCgroupV1"], false);
        assert_eq!(cfg["cgroupDriver"], "cgroupfs");
        assert_eq!(cfg["makeIPTablesUtilChains"], false);
        assert_eq!(cfg["address"], "10.0.0.5");
        assert_eq!(
            cfg["containerRuntimeEndpoint"],
            "unix:///run/roiergasias/node1/containerd.sock"
        );
        assert_eq!(cfg["authentication"]["anonymous"]["enabled"], false);
    }

    #[test]
    fn the_bridge_and_subnet_are_the_nodes() {
        let cni: Value = serde_json::from_str(&cni_conflist(&layout())).unwrap();
        assert_eq!(cni["plugins"][0]["bridge"], "rgs-node1");
        assert_eq!(
            cni["plugins"][0]["ipMasq"], false,
            "no iptables rules on the host"
        );
        assert_eq!(
            cni["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.1.0/24"
        );
    }

    /// What a parser reads back from each document, in full: nothing may change by accident.
    #[test]
    fn the_kubeconfig_parses_back_to_the_expected_values() {
        let text = kubelet_kubeconfig(&layout(), "https://10.0.0.5:6443", "/pki/ca.crt".as_ref());
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let expected = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "roiergasias", "cluster": {
                "server": "https://10.0.0.5:6443",
                "certificate-authority": "/pki/ca.crt",
            }}],
            "users": [{"name": "real-node1", "user": {
                "client-certificate": "/cache/real/node1/kubelet/pki/node.crt",
                "client-key": "/cache/real/node1/kubelet/pki/node.key",
            }}],
            "contexts": [{"name": "default", "context": {"cluster": "roiergasias", "user": "real-node1"}}],
            "current-context": "default",
        });
        assert_eq!(parsed, expected);
        // kube's own reader (client-go's format) finds the same.
        let cfg = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(cfg.current_context.as_deref(), Some("default"));
        let cluster = cfg.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.5:6443"));
    }

    #[test]
    fn the_kubelet_config_parses_back_to_the_expected_values() {
        let parsed: Value =
            serde_json::from_str(&kubelet_config(&layout(), "/pki/ca.crt".as_ref())).unwrap();
        let endpoint = "unix:///run/roiergasias/node1/containerd.sock";
        let expected = json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "10.0.0.5",
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": false},
                "webhook": {"enabled": true},
                "x509": {"clientCAFile": "/pki/ca.crt"},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": endpoint,
            "imageServiceEndpoint": endpoint,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": "/roiergasias-node1",
            "cgroupsPerQOS": true,
            "enforceNodeAllocatable": ["pods"],
            "failSwapOn": false,
            "failCgroupV1": false,
            "makeIPTablesUtilChains": false,
            "resolvConf": "/etc/resolv.conf",
            "podLogsDir": "/cache/real/node1/pod-logs",
            "serializeImagePulls": false,
            "rotateCertificates": false,
            "serverTLSBootstrap": false,
            "maxPods": 100,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "fileCheckFrequency": "5s",
            "syncFrequency": "10s",
        });
        assert_eq!(parsed, expected);
    }

    #[test]
    fn the_cni_conflist_parses_back_to_the_expected_values() {
        let parsed: Value = serde_json::from_str(&cni_conflist(&layout())).unwrap();
        let expected = json!({
            "cniVersion": "1.0.0",
            "name": "real-node1",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "rgs-node1",
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.244.1.0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": "/cache/real/node1/cni/ipam",
                    },
                },
                {"type": "loopback"},
            ],
        });
        assert_eq!(parsed, expected);
    }

    #[test]
    fn the_containerd_config_parses_back_to_the_expected_values() {
        let text = containerd_config(&layout(), "/usr/sbin/runc", "/usr/lib/cni");
        let parsed: Value = toml::from_str(&text).unwrap();
        let run = "/run/roiergasias/node1";
        let expected = json!({
            "version": 3,
            "root": "/cache/real/node1/containerd/root",
            "state": format!("{run}/state"),
            "grpc": {"address": format!("{run}/containerd.sock")},
            "ttrpc": {"address": format!("{run}/containerd.sock.ttrpc")},
            "plugins": {
                "io.containerd.cri.v1.images": {
                    "snapshotter": "overlayfs",
                    "pinned_images": {"sandbox": "localhost/roiergasias/pause:3.10"},
                },
                "io.containerd.cri.v1.runtime": {
                    "enable_selinux": false,
                    "restrict_oom_score_adj": true,
                    "netns_mounts_under_state_dir": true,
                    "cdi_spec_dirs": [],
                    "containerd": {
                        "default_runtime_name": "runc",
                        "runtimes": {"runc": {
                            "runtime_type": "io.containerd.runc.v2",
                            "options": {
                                "SystemdCgroup": false,
                                "BinaryName": "/usr/sbin/runc",
                                "Root": format!("{run}/runc"),
                            },
                        }},
                    },
                    "cni": {
                        "bin_dirs": ["/usr/lib/cni"],
                        "conf_dir": "/cache/real/node1/cni/net.d",
                        "max_conf_num": 1,
                    },
                },
                "io.containerd.grpc.v1.cri": {
                    "stream_server_address": "127.0.0.1",
                    "stream_server_port": "0",
                },
                "io.containerd.nri.v1.nri": {"disable": true},
                "io.containerd.internal.v1.opt": {"path": "/cache/real/node1/containerd/opt"},
            },
        });
        assert_eq!(parsed, expected);
    }

    #[test]
    fn the_kubeconfig_uses_the_nodes_certificate_not_the_admins() {
        let text = kubelet_kubeconfig(&layout(), "https://127.0.0.1:6443", "/pki/ca.crt".as_ref());
        let cfg: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            cfg["users"][0]["user"]["client-certificate"],
            "/cache/real/node1/kubelet/pki/node.crt"
        );
        assert!(!text.contains("admin"));
    }
}
