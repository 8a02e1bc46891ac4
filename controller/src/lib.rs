//! The roiergasias operator: reconciles `Workflow`s into one ConfigMap and Job per split.
//!
//! Pure parts (no client): [`plan`], [`state`], [`transition`], [`build`], [`names`].
//! I/O: [`reconcile`]; process wiring: [`http`], [`leader`], [`telemetry`] and the binary.

pub mod build;
pub mod http;
pub mod leader;
pub mod names;
pub mod plan;
pub mod reconcile;
pub mod state;
pub mod telemetry;
pub mod transition;
