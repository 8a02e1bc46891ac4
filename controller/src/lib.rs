pub mod http;
pub mod leader;
pub mod telemetry;
