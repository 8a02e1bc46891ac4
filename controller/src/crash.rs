//! Test-only crash points for the cluster tests' kill-and-restart cases.
//!
//! Compiled in only with the `crash-points` feature, which the tests enable (see Cargo.toml):
//! a release build has neither the variable's name nor the exit.

/// Test-only: `ROIERGASIAS_TEST_CRASH_AFTER=configmap:2,advance:1` makes the process exit (86)
/// at those points (after creating ConfigMap 2; after seeing Job 1 Complete, before acting on
/// it; `retry:2`: after accepting a retry from split 2, before creating anything), so the cluster tests can kill the controller exactly between two writes. Without the
/// `crash-points` feature this is empty and [`CrashPoints::at`] does nothing.
#[derive(Clone, Debug, Default)]
pub struct CrashPoints(#[cfg(feature = "crash-points")] Vec<(String, u32)>);

#[cfg(feature = "crash-points")]
impl CrashPoints {
    pub const ENV: &'static str = "ROIERGASIAS_TEST_CRASH_AFTER";

    pub fn from_env() -> Self {
        Self::parse(&std::env::var(Self::ENV).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Self {
        CrashPoints(
            text.split(',')
                .filter_map(|p| {
                    let (point, n) = p.trim().split_once(':')?;
                    Some((point.to_owned(), n.parse().ok()?))
                })
                .collect(),
        )
    }

    pub fn at(&self, point: &str, n: u32) {
        if self.0.iter().any(|(p, m)| p == point && *m == n) {
            eprintln!("{}: crash point {point}:{n} reached; exiting", Self::ENV);
            std::process::exit(86);
        }
    }
}

#[cfg(not(feature = "crash-points"))]
impl CrashPoints {
    pub fn from_env() -> Self {
        CrashPoints()
    }

    #[inline(always)]
    pub fn at(&self, _point: &str, _n: u32) {}
}

#[cfg(all(test, feature = "crash-points"))]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse_and_ignore_garbage() {
        let points = CrashPoints::parse("configmap:2, advance:1,bogus,job:x");
        assert_eq!(
            points.0,
            vec![("configmap".into(), 2), ("advance".into(), 1)]
        );
        assert!(CrashPoints::parse("").0.is_empty());
    }
}
