use clap::Subcommand;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start (or reuse) the test cluster; prints the kubeconfig path last.
    Up,
    /// Delete the cluster and every process it started.
    Down,
    /// Say what is running.
    Status,
}

pub fn run(_command: ClusterCommand) -> anyhow::Result<()> {
    anyhow::bail!("cluster is not written yet")
}
