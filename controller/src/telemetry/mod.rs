//! Operator telemetry: Prometheus metrics in OpenMetrics text.

mod metrics;

pub use metrics::{ApiWrite, HandoffKey, Metrics, ReconcileTimer};
