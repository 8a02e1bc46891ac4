//! `cargo xtask gen-crd [--check]`: the Workflow CRD from the `crd` crate's types.

use anyhow::{Context, bail};
use std::path::PathBuf;

pub fn run(check: bool) -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(roiergasias_crd::CRD_PATH);
    let generated = roiergasias_crd::crd_yaml();
    if check {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            bail!(
                "{} differs from what the crd types generate: run `cargo xtask gen-crd` and commit it",
                roiergasias_crd::CRD_PATH
            );
        }
        println!("{} is up to date", roiergasias_crd::CRD_PATH);
        return Ok(());
    }
    let dir = path.parent().context("CRD path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, generated).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", roiergasias_crd::CRD_PATH);
    Ok(())
}
