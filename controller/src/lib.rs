//! The roiergasias operator: reconciles `Workflow`s into one ConfigMap and Job per split.
//!
//! - Pure, no client: [`workflow`] (the machine: every decision), `transition` (how each
//!   decision changes status), `bounds`, `build`, `names`, `plan`, `policy`, `status_patch`.
//! - The seam: `api` (every API call, over kube, or a fake in tests).
//! - I/O: [`reconcile`] (decide → carry out), `observe`, [`cache`], `memory`, [`crash`].
//! - Process wiring: [`http`], [`leader`], [`telemetry`] and the binary.

mod api;
mod bounds;
mod build;
mod cache;
pub mod context;
pub mod controllers;
pub mod crash;
mod error;
pub mod http;
pub mod leader;
mod memory;
mod names;
mod observe;
mod plan;
pub mod policy;
mod reconcile;
mod status_patch;
pub mod telemetry;
mod transition;
mod workflow;
