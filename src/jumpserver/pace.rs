//! Keeps a long walk inside its share of JumpServer's request budget. v4.10.15/16 throttle an
//! authenticated user at 180 requests a minute (transcript 156, README surprise 1) and the bot
//! is one user: a sync that used all of it would make every grant during the sync wait for a
//! 429's `Retry-After`. A token bucket: `per_minute` refill, a quarter of a minute's worth as
//! burst, so a small org's sync runs at full speed and a large one settles at the share.
use tokio::time::{Duration, Instant};

#[derive(Debug)]
pub struct Pacer {
    /// Requests a minute; 0 = unpaced.
    per_minute: u32,
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Pacer {
    pub fn new(per_minute: u32) -> Self {
        let burst = (f64::from(per_minute) / 4.0).max(1.0);
        Self {
            per_minute,
            tokens: burst,
            burst,
            last: Instant::now(),
        }
    }

    /// Waits until one more request fits the budget, then takes it.
    pub async fn take(&mut self) {
        if self.per_minute == 0 {
            return;
        }
        let rate = f64::from(self.per_minute) / 60.0; // tokens a second
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            tokio::time::sleep(wait).await;
            self.last = Instant::now();
            self.tokens = 1.0;
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_settles_at_the_share() {
        let mut p = Pacer::new(120); // 2 a second, burst 30
        let t0 = Instant::now();
        for _ in 0..30 {
            p.take().await;
        }
        assert!(t0.elapsed() < Duration::from_millis(10), "burst is free");
        for _ in 0..20 {
            p.take().await;
        }
        let secs = t0.elapsed().as_secs_f64();
        assert!((9.5..10.5).contains(&secs), "20 more at 2/s took {secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unpaced() {
        let mut p = Pacer::new(0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            p.take().await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
