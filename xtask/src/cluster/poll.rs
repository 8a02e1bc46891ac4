//! Waiting on a condition: the one poll-until helper of the cluster code, on backon's blocking retry.

use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ConstantBuilder};

/// Calls `probe` every `every` until it returns `Ok`, or until `within` has passed since the first
/// call; then returns the probe's last error. The probe always runs at least once.
pub fn until<T, E>(
    every: Duration,
    within: Duration,
    probe: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = Instant::now() + within;
    probe
        .retry(ConstantBuilder::new().with_delay(every).without_max_times())
        .sleep(std::thread::sleep)
        .when(|_| Instant::now() < deadline)
        .call()
}

/// [`until`] for a condition: whether it held before `within` ran out.
pub fn wait(every: Duration, within: Duration, mut holds: impl FnMut() -> bool) -> bool {
    until(every, within, || if holds() { Ok(()) } else { Err(()) }).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn polls_until_the_probe_succeeds_and_returns_its_value() {
        let mut calls = 0;
        let got = until(MS, Duration::from_secs(60), || {
            calls += 1;
            if calls == 3 { Ok(calls) } else { Err(calls) }
        });
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn gives_up_after_the_deadline_with_the_last_error() {
        let mut calls = 0;
        let got: Result<(), _> = until(MS, 20 * MS, || {
            calls += 1;
            Err(calls)
        });
        let last = got.unwrap_err();
        assert!(last > 1, "it retried ({last} calls)");
        assert_eq!(last, calls);
    }

    #[test]
    fn a_zero_budget_still_probes_once() {
        let mut calls = 0;
        assert!(!wait(MS, Duration::ZERO, || {
            calls += 1;
            false
        }));
        assert_eq!(calls, 1);
        assert!(wait(MS, Duration::ZERO, || true));
    }
}
