pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("the operator benchmark is not written yet")
}
