//! kube-proxy for the real nodes' pods, so a Service address leads to its endpoints: the
//! `kubernetes` Service, which in-cluster clients (the operator's pod) dial, and the operator's
//! metrics Service. One for the host: both nodes share its network stack.
//!
//! iptables mode (the host has no `nft` command for nftables mode). It changes nothing on the host
//! beyond its own chains: no conntrack sysctls (all zero), no route_localnet (no NodePorts on
//! loopback), health and metrics on loopback; `down` stops it and removes the chains.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use super::poll;
use crate::cluster::config::{KUBERNETES_SERVICE_IP, SERVICE_RANGE};

/// Every pod address of the real nodes (each node's bridge has a /24 of it).
pub const POD_RANGE: &str = "10.244.0.0/16";
/// The prefix of every chain kube-proxy makes, in every table.
const CHAIN_PREFIX: &str = ":KUBE-";

/// The KubeProxyConfiguration for this host. JSON is YAML, which kube-proxy reads.
pub fn config(kubeconfig: &Path, node: &str, health_port: u16, metrics_port: u16) -> String {
    let loopback = |port: u16| format!("{}:{port}", Ipv4Addr::LOCALHOST);
    json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": node,
        "mode": "iptables",
        "clusterCIDR": POD_RANGE,
        "healthzBindAddress": loopback(health_port),
        "metricsBindAddress": loopback(metrics_port),
        "iptables": {"localhostNodePorts": false},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    })
    .to_string()
}

/// kube-proxy's chains on the host, one line each (empty when it left none).
pub fn chains_left() -> Vec<String> {
    let Ok(out) = Command::new("iptables-save").output() else {
        return Vec::new();
    };
    chains(&String::from_utf8_lossy(&out.stdout))
}

fn chains(saved: &str) -> Vec<String> {
    let mut table = "";
    let mut found = Vec::new();
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if let Some(rest) = line.strip_prefix(CHAIN_PREFIX) {
            let chain = rest.split_whitespace().next().unwrap_or_default();
            found.push(format!("iptables chain KUBE-{chain} ({table})"));
        }
    }
    found
}

/// Removes kube-proxy's rules and chains (`kube-proxy --cleanup`), if it left any.
pub fn clean(bin: &Path) -> anyhow::Result<()> {
    if chains_left().is_empty() {
        return Ok(());
    }
    let out = Command::new(bin.join("kube-proxy"))
        .arg("--cleanup")
        .output()
        .context("running kube-proxy --cleanup")?;
    let left = chains_left();
    if !left.is_empty() {
        bail!(
            "kube-proxy --cleanup left {} ({})",
            left.join(", "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Waits until the `kubernetes` Service leads somewhere: kube-proxy has synced its rules.
pub fn wait_synced(within: Duration) -> anyhow::Result<()> {
    let service = format!("-d {KUBERNETES_SERVICE_IP}/32");
    poll::until(Duration::from_millis(100), within, || {
        let out = Command::new("iptables-save").args(["-t", "nat"]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text
            .lines()
            .any(|l| l.contains(&service) && l.contains("KUBE-SVC-"))
        {
            bail!(
                "kube-proxy did not route the `kubernetes` Service ({KUBERNETES_SERVICE_IP}, \
                 range {SERVICE_RANGE}) within {within:?}"
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_touches_no_host_setting_and_listens_on_loopback() {
        let text = config(Path::new("/k/kubeconfig"), "real-node1", 1234, 5678);
        let cfg: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
        assert_eq!(cfg["mode"], "iptables");
        assert_eq!(cfg["clientConnection"]["kubeconfig"], "/k/kubeconfig");
        assert_eq!(cfg["healthzBindAddress"], "127.0.0.1:1234");
        assert_eq!(cfg["metricsBindAddress"], "127.0.0.1:5678");
        assert_eq!(cfg["iptables"]["localhostNodePorts"], false);
        for key in ["maxPerCore", "min"] {
            assert_eq!(cfg["conntrack"][key], 0, "{key}");
        }
        for key in ["tcpEstablishedTimeout", "tcpCloseWaitTimeout"] {
            assert_eq!(cfg["conntrack"][key], "0s", "{key}");
        }
    }

    #[test]
    fn its_chains_are_found_in_every_table_and_nothing_else() {
        let saved = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FORWARD - [0:0]\n\
                     -A FORWARD -j KUBE-FORWARD\nCOMMIT\n*nat\n:OUTPUT ACCEPT [0:0]\n\
                     :KUBE-SERVICES - [0:0]\n:KUBELIKE - [0:0]\nCOMMIT\n";
        assert_eq!(
            chains(saved),
            [
                "iptables chain KUBE-FORWARD (filter)",
                "iptables chain KUBE-SERVICES (nat)"
            ]
        );
        assert!(chains("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").is_empty());
    }
}
