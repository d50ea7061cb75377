//! Retry delays.

use std::time::Duration;

/// The delay before retry number `attempt` (1 = the first retry): `base · 2^(attempt-1)`,
/// capped at `max`, with "equal jitter" (between half and all of it) so that scans failing
/// together do not retry in lockstep.
#[must_use]
pub fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_capped_with_jitter() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempt in 1..10 {
            let expected = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let d = retry_delay(attempt, base, max);
                assert!(
                    d >= expected / 2 && d <= expected,
                    "attempt {attempt}: {d:?}"
                );
            }
        }
        assert!(retry_delay(500, base, max) <= max);
    }
}
