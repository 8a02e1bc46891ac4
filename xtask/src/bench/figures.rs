//! The operator bench's figures as JSON (`--json PATH`), for scripts and plots: one object per
//! driver measured in the run, and what the run ran on.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// One driver's figures; a figure the driver cannot give is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Figures {
    pub workflows: usize,
    pub splits: usize,
    pub total_s: f64,
    pub splits_per_min: f64,
    pub handoff_p50_ms: Option<f64>,
    pub handoff_p99_ms: Option<f64>,
    pub writes_per_split: f64,
    pub status_bytes_per_write: Option<f64>,
    pub peak_rss_mib: Option<f64>,
}

impl Figures {
    /// `handoffs` sorted ascending; `writes` the driver's API writes (ConfigMaps, Jobs, Workflows).
    pub fn new(workflows: usize, splits: usize, total: Duration, handoffs: &[Duration]) -> Self {
        let total_s = total.as_secs_f64();
        let ms = |q| super::operator::percentile(handoffs, q).map(|d| millis(d, 1));
        Self {
            workflows,
            splits,
            total_s: round(total_s, 2),
            splits_per_min: if total_s > 0.0 {
                round(splits as f64 * 60.0 / total_s, 1)
            } else {
                0.0
            },
            handoff_p50_ms: ms(0.5),
            handoff_p99_ms: ms(0.99),
            writes_per_split: 0.0,
            status_bytes_per_write: None,
            peak_rss_mib: None,
        }
    }
}

/// What the JSON file holds.
#[derive(Debug, Serialize)]
pub(crate) struct Run {
    pub operator: Figures,
    /// The CPUs of the machine, and its 1-minute load average at the start and at the end.
    pub cpus: usize,
    pub load_1m: [String; 2],
    /// The operator binary that ran.
    pub operator_binary: String,
}

impl Run {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// Fails now, not after a long run, when `path` cannot be written.
pub(crate) fn check_writable(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .with_context(|| format!("--json {}: cannot write there", path.display()))
}

fn millis(d: Duration, places: i32) -> f64 {
    round(d.as_secs_f64() * 1000.0, places)
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_run_and_name_the_issue_s_fields() {
        let handoffs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let mut f = Figures::new(200, 600, Duration::from_secs(30), &handoffs);
        f.writes_per_split = 3.33;
        assert_eq!(f.splits_per_min, 1200.0);
        assert_eq!(
            (f.handoff_p50_ms, f.handoff_p99_ms),
            (Some(50.0), Some(99.0))
        );
        let json = serde_json::to_value(&f).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "handoff_p50_ms",
                "handoff_p99_ms",
                "peak_rss_mib",
                "splits",
                "splits_per_min",
                "status_bytes_per_write",
                "total_s",
                "workflows",
                "writes_per_split"
            ]
        );
        assert_eq!(json["peak_rss_mib"], serde_json::Value::Null);
    }

    #[test]
    fn no_handoffs_and_no_time_give_nulls_and_zero() {
        let f = Figures::new(1, 1, Duration::ZERO, &[]);
        assert_eq!(f.splits_per_min, 0.0);
        assert_eq!(f.handoff_p50_ms, None);
    }

    #[test]
    fn an_unwritable_path_is_refused_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/out.json");
        let err = check_writable(&missing).unwrap_err().to_string();
        assert!(err.contains("--json") && err.contains("out.json"), "{err}");
        let ok = dir.path().join("out.json");
        check_writable(&ok).unwrap();
        let run = Run {
            operator: Figures::new(2, 6, Duration::from_secs(6), &[]),
            cpus: 2,
            load_1m: ["1.0".into(), "2.0".into()],
            operator_binary: "op".into(),
        };
        run.write(&ok).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ok).unwrap()).unwrap();
        assert_eq!(back["operator"]["splits_per_min"], 60.0);
        assert_eq!(back["load_1m"][1], "2.0");
    }
}
