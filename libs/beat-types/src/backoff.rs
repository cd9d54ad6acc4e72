//! Jittered exponential backoff, the one every service and client uses between retries (a
//! gateway redialling a peer, consensus reconnecting to its keystore or gateway, the state
//! service resubmitting to consensus, `beat_client` failing over between replicas).
//!
//! The delay doubles after every failure, from `initial` up to `max`, and each delay is drawn
//! uniformly from the upper half of its step ("equal jitter"): replicas or services that failed
//! at the same moment do not retry in lock-step, and no delay is shorter than half its step.

use std::time::Duration;

/// Jittered exponential backoff (module docs).
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    /// xorshift64 state: jitter only, nothing secret depends on it.
    state: u64,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`, with jitter seeded from the OS.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let mut seed = [0u8; 8];
        // Without OS randomness the jitter is merely predictable.
        let _ = getrandom::fill(&mut seed);
        Self::with_seed(initial, max, u64::from_le_bytes(seed))
    }

    /// As [`Backoff::new`], with the jitter seeded from `seed` (reproducible tests).
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max: max.max(initial),
            current: initial,
            state: seed | 1,
        }
    }

    /// The next delay; the step after it is twice as long (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.state % span.saturating_add(1))
    }

    /// Back to the initial delay (after a success, or a link that stayed up).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(10), 1);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let step = Duration::from_millis(100 * 2u64.pow(i as u32)).min(Duration::from_secs(10));
            assert!(
                *d >= step / 2 && *d <= step,
                "attempt {i}: {d:?} not in [{:?}, {step:?}]",
                step / 2
            );
        }
        assert!(delays[8..].windows(2).any(|w| w[0] != w[1]), "jitter");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // A maximum below the initial delay is the initial delay.
        let mut flat = Backoff::with_seed(Duration::from_millis(10), Duration::ZERO, 3);
        assert!((0..4).all(|_| flat.next_delay() <= Duration::from_millis(10)));
        // Seeded: reproducible.
        let again: Vec<Duration> = {
            let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(10), 1);
            (0..12).map(|_| b.next_delay()).collect()
        };
        assert_eq!(again, delays);
    }
}
