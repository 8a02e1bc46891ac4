//! What the roiergasias cluster tests (`controller/tests/cluster`, `controller/tests/walkthrough`)
//! and the operator bench (`cargo xtask bench operator`) share: a client for the test cluster, a
//! throwaway namespace per test, the chart's CRDs, waits on conditions, the operator as a real
//! process, Workflow manifests and a small HTTP client for the operator's own server.
//!
//! Helpers named for tests panic with a message that says what was awaited and what was last seen:
//! a failed test is the report. The few the bench uses as well return errors instead.

pub mod cluster;
pub mod faults;
pub mod http;
pub mod operator;
pub mod real;
pub mod wait;
pub mod workflow;

pub use cluster::{
    ON_FAKE_NODES, ON_REAL_NODES, TestNamespace, client, ensure_crds, require_real_nodes,
    tools_dir, unique_name,
};
pub use operator::{Operator, RUNNER_IMAGE};
pub use wait::{TIMEOUT, until, wait_deleted, wait_for, wait_for_within};
