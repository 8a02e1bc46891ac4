pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("the engine benchmark is not written yet")
}
