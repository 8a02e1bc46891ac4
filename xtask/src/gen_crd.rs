pub fn run(_check: bool) -> anyhow::Result<()> {
    anyhow::bail!("gen-crd is not written yet")
}
