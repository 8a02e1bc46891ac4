//! The operator's tests on the test cluster, one module per concern. Those that need the cluster
//! are `#[ignore]`d, so a plain `cargo test` passes without one; `cargo xtask test` starts the
//! cluster and runs them with `--include-ignored`. By hand, with a cluster up:
//! `KUBECONFIG=... cargo test -p roiergasias-controller --test cluster -- --include-ignored splits::`.
//!
//! Shared helpers (namespaces, waits, the operator process, Workflow manifests) are in the
//! `roiergasias-testkit` crate.

mod failures;
mod faults;
mod helm_values;
mod hostile;
mod leader_election;
mod lifecycle;
mod policy;
mod real_lifecycle;
mod real_pods;
mod restart;
mod scale;
mod smoke;
mod splits;

/// This build's operator binary, with the test-only crash points (see controller/Cargo.toml).
const OPERATOR: &str = env!("CARGO_BIN_EXE_roiergasias-operator");
