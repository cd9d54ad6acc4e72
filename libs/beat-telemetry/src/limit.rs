//! A token bucket: a sustained rate with a burst allowance, for refusing work a caller asks for
//! faster than it may (the keystore's handshake signatures).

use std::time::{Duration, Instant};

/// `rate` tokens per second, at most `burst` saved up; a request takes one or is refused.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket (`burst` at once, then `rate` per second). Both at least 1.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token at time `now` if one is there.
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token now if one is there.
    pub fn try_take(&mut self) -> bool {
        #[allow(clippy::disallowed_methods)] // a service shell's rate limit: wall-clock by design
        let now = Instant::now();
        self.try_take_at(now)
    }

    /// How long until the next token, at `now` (zero if one is there).
    pub fn wait_at(&self, now: Instant) -> Duration {
        let elapsed = self
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        let tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        #[allow(clippy::disallowed_methods)] // any instant: the test passes its own times
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3);
        assert!((0..3).all(|_| b.try_take_at(t0)));
        assert!(!b.try_take_at(t0));
        assert_eq!(b.wait_at(t0), Duration::from_millis(100));
        // 100 ms at 10/s is one token, and no more than the burst accumulates.
        assert!(b.try_take_at(t0 + Duration::from_millis(100)));
        assert!(!b.try_take_at(t0 + Duration::from_millis(150)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.try_take_at(later)).count(), 3);
        // A clock that steps back takes nothing it should not.
        assert!(!b.try_take_at(t0));
    }
}
