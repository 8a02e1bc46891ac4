//! The node client certificate: `system:node:<name>` in group `system:nodes`, signed by the cluster CA,
//! so each kubelet is authorized as its own node (Node authorizer, NodeRestriction), not as the admin.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Writes `node.key` and `node.crt` into `dir` unless both are there.
pub fn ensure_node_cert(
    dir: &Path,
    node: &str,
    ca_crt: &Path,
    ca_key: &Path,
) -> anyhow::Result<()> {
    let (key, crt) = (dir.join("node.key"), dir.join("node.crt"));
    if key.is_file() && crt.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let csr = dir.join("node.csr");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )?;
    openssl(
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .args(["-subj", &format!("/O=system:nodes/CN=system:node:{node}")])
            .arg("-out")
            .arg(&csr),
    )?;
    // A random serial: -CAcreateserial would write a serial file into the cluster's pki directory.
    let serial = format!("0x{:016x}{:08x}", std::process::id(), nanos());
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-set_serial", &serial])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(ca_crt)
            .arg("-CAkey")
            .arg(ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt),
    )?;
    let _ = std::fs::remove_file(csr);
    Ok(())
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn openssl(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .context("running openssl (Debian package openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
