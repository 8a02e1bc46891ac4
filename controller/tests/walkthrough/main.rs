//! The README's Kubernetes sections, followed command by command on the test
//! cluster with the real `helm` and `kubectl`; and what can be checked here of
//! the Helm charts, the Dockerfiles and the examples.
//!
//! README code blocks marked `<!-- walkthrough: NAME -->` are read from the
//! README itself, so it cannot drift from what is tested. In them, a
//! `# lists: a, b` comment after a `kubectl get` is a promise checked against
//! the NAME column (`# lists in order:` also checks the order; `<id>` stands for
//! a generated suffix). Like a person, the test waits (up to a minute) for a
//! listing to show what the README promises.
//!
//! On the cluster the operator runs as a local process under the chart's
//! ServiceAccount (a kubeconfig that impersonates it), with the arguments of
//! the Deployment the chart installed: this proves that the chart's RBAC and
//! flags are enough for it. The walkthroughs on the cluster are `#[ignore]`d, so a
//! plain `cargo test` passes without one; `cargo xtask test` runs them with
//! `--include-ignored` (by hand: `KUBECONFIG=... cargo test -p roiergasias-controller
//! --test walkthrough -- --include-ignored walk::`).

mod dockerfile;
mod examples;
mod helm;
mod python;
mod readme;
mod support;
mod walk;
