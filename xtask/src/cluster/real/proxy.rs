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

/// kube-proxy's chains on the host, as `table/KUBE-NAME` (empty when there are none).
pub fn chains_left() -> Vec<String> {
    chains(&saved(None))
}

fn saved(table: Option<&str>) -> String {
    let mut cmd = Command::new("iptables-save");
    if let Some(table) = table {
        cmd.args(["-t", table]);
    }
    let out = cmd.output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

fn chains(saved: &str) -> Vec<String> {
    let mut table = "";
    let mut found = Vec::new();
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if let Some(rest) = line.strip_prefix(CHAIN_PREFIX) {
            let chain = rest.split_whitespace().next().unwrap_or_default();
            found.push(format!("{table}/KUBE-{chain}"));
        }
    }
    found
}

/// The rules of `saved` (one table's) that jump to `chain`, as arguments for `iptables -D`.
fn jumps_to(saved: &str, chain: &str) -> Vec<Vec<String>> {
    saved
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .filter_map(|rule| shell_words::split(rule).ok())
        .filter(|args| args.windows(2).any(|w| w[0] == "-j" && w[1] == chain))
        .collect()
}

/// Removes kube-proxy's rules and chains but those in `kept` (the host's own): `kube-proxy
/// --cleanup`, then what it leaves to a kubelet (KUBE-FIREWALL), by hand.
pub fn clean(bin: &Path, kept: &[String]) -> anyhow::Result<()> {
    let ours = || -> Vec<String> {
        let mut left = chains_left();
        left.retain(|c| !kept.contains(c));
        left
    };
    if ours().is_empty() {
        return Ok(());
    }
    let _ = Command::new(bin.join("kube-proxy"))
        .arg("--cleanup")
        .output();
    for entry in ours() {
        let (table, chain) = entry.split_once('/').expect("table/chain");
        for rule in jumps_to(&saved(Some(table)), chain) {
            let delete: Vec<String> = std::iter::once("-D".to_string()).chain(rule).collect();
            iptables(table, &delete)?;
        }
        iptables(table, &["-F".into(), chain.into()])?;
        iptables(table, &["-X".into(), chain.into()])?;
    }
    let left = ours();
    if !left.is_empty() {
        bail!("kube-proxy's iptables chains {} are left", left.join(", "));
    }
    Ok(())
}

fn iptables(table: &str, args: &[String]) -> anyhow::Result<()> {
    let out = Command::new("iptables")
        .args(["-t", table])
        .args(args)
        .output()
        .context("running iptables")?;
    if !out.status.success() {
        bail!(
            "iptables -t {table} {} failed: {}",
            args.join(" "),
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
    fn its_chains_and_the_rules_jumping_to_them_are_found() {
        let saved = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n\
                     -A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -m comment --comment \"block x\" -j DROP\n\
                     -A OUTPUT -d 10.0.0.1/32 -j ACCEPT\nCOMMIT\n*nat\n:OUTPUT ACCEPT [0:0]\n\
                     :KUBE-SERVICES - [0:0]\n:KUBELIKE - [0:0]\nCOMMIT\n";
        assert_eq!(chains(saved), ["filter/KUBE-FIREWALL", "nat/KUBE-SERVICES"]);
        assert!(chains("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").is_empty());
        assert_eq!(
            jumps_to(saved, "KUBE-FIREWALL"),
            [["INPUT", "-j", "KUBE-FIREWALL"]]
        );
        assert!(jumps_to(saved, "KUBE-SERVICES").is_empty());
    }
}
