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
//! On the cluster the hello-world, multi-node, upgrade and standby walks install the chart
//! as written (`helm install --wait`), so the operator runs as the chart's pod on a real node,
//! under the chart's ServiceAccount, probes and security context; the one change to a README
//! command is `--set watchNamespaces={the walk's namespace}`, since other tests share the
//! cluster. The machine-learning walk runs on kwok's fake nodes, so there the operator runs
//! as a local process with the Deployment's arguments, impersonating its ServiceAccount.
//!
//! The walkthroughs on the cluster are `#[ignore]`d, so a plain `cargo test` passes without one; `cargo xtask test` runs them with
//! `--include-ignored` (by hand: `KUBECONFIG=... cargo test -p roiergasias-controller
//! --test walkthrough -- --include-ignored walk::`).

mod dockerfile;
mod examples;
mod helm;
mod python;
mod readme;
mod support;
mod walk;
