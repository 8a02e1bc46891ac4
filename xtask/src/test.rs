#[derive(clap::Args)]
pub struct TestArgs {}

pub fn run(_args: TestArgs) -> anyhow::Result<()> {
    anyhow::bail!("test is not written yet")
}
