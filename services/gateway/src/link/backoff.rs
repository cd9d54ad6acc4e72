//! Jittered exponential backoff between dial attempts.

use std::time::Duration;

use rand_core::Rng;

/// Doubles the delay after every failure, from `initial` up to `max`; each delay is drawn
/// uniformly from its upper half ("equal jitter"), so replicas that lost each other at the same
/// moment do not redial in lock-step.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The next delay; the one after it is twice as long (up to the maximum).
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            0
        } else {
            rng.next_u64() % (jitter_nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Starts over at the initial delay (after a link that stayed up).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut bases = Vec::new();
        for _ in 0..12 {
            let d = b.next_delay(&mut rng);
            bases.push(d);
        }
        let expected_base =
            |i: u32| Duration::from_millis(100 * 2u64.pow(i)).min(Duration::from_secs(10));
        for (i, d) in bases.iter().enumerate() {
            let base = expected_base(i as u32);
            assert!(
                *d >= base / 2 && *d <= base,
                "attempt {i}: {d:?} not in [{:?}, {base:?}]",
                base / 2
            );
        }
        assert!(bases[11] >= Duration::from_secs(5));
        // Jitter: not every capped delay is the same.
        assert!(bases[8..].windows(2).any(|w| w[0] != w[1]));
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(100));
    }
}
