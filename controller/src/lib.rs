//! The roiergasias operator: reconciles `Workflow`s into one ConfigMap and Job per split.
//!
//! Pure parts (no client): [`plan`], [`state`], [`transition`], [`bounds`], [`build`], [`names`].
//! I/O: [`reconcile`] (with [`context`], [`cache`], [`observe`], [`write`](mod@write), `rederive`,
//! [`crash`]);
//! process wiring: [`http`], [`leader`], [`telemetry`] and the binary.

pub mod bounds;
pub mod build;
pub mod cache;
pub mod context;
pub mod crash;
pub mod http;
pub mod leader;
pub mod names;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod reconcile;
mod rederive;
pub mod state;
pub mod telemetry;
pub mod transition;
pub mod write;
