use clap::Subcommand;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Print the directory holding the binaries (last line).
    Path,
}

pub fn run(_command: Option<ToolsCommand>) -> anyhow::Result<()> {
    anyhow::bail!("tools is not written yet")
}
