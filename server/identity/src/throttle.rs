//! Login throttling: after too many failed sign-ins for one email, or from one address, further attempts are
//! refused for a while. In memory per server replica: a determined attacker spreading over replicas gets at
//! most replicas x limit guesses per window, which argon2's cost keeps small.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    lockout: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            lockout,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait before `keys` may try again, if any of them is locked.
    pub fn check(&self, keys: &[&str], now: Instant) -> Option<u64> {
        let entries = self.entries.lock().ok()?;
        keys.iter()
            .filter_map(|k| entries.get(*k).and_then(|e| e.locked_until))
            .filter(|until| *until > now)
            .map(|until| (until - now).as_secs().max(1))
            .max()
    }

    pub fn record_failure(&self, keys: &[&str], now: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() > 100_000 {
            // Bound memory under a spray attack: forget entries whose window has passed.
            entries.retain(|_, e| {
                now.duration_since(e.first_failure) < self.window
                    || e.locked_until.is_some_and(|u| u > now)
            });
        }
        for key in keys {
            let e = entries.entry((*key).to_string()).or_insert(Entry {
                failures: 0,
                first_failure: now,
                locked_until: None,
            });
            if now.duration_since(e.first_failure) > self.window
                || e.locked_until.is_some_and(|u| u <= now)
            {
                *e = Entry {
                    failures: 0,
                    first_failure: now,
                    locked_until: None,
                };
            }
            e.failures += 1;
            if e.failures >= self.max_failures {
                e.locked_until = Some(now + self.lockout);
            }
        }
    }

    pub fn record_success(&self, keys: &[&str]) {
        if let Ok(mut entries) = self.entries.lock() {
            for key in keys {
                entries.remove(*key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_unlocks_after_the_lockout() {
        let t = LoginThrottle::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let now = Instant::now();
        for _ in 0..2 {
            t.record_failure(&["ann"], now);
        }
        assert_eq!(t.check(&["ann"], now), None);
        t.record_failure(&["ann"], now);
        assert_eq!(t.check(&["ann"], now), Some(30));
        assert_eq!(t.check(&["bob"], now), None);
        assert_eq!(t.check(&["ann"], now + Duration::from_secs(31)), None);
    }

    #[test]
    fn success_clears_and_old_failures_expire() {
        let t = LoginThrottle::new(2, Duration::from_secs(10), Duration::from_secs(30));
        let now = Instant::now();
        t.record_failure(&["ann"], now);
        t.record_success(&["ann"]);
        t.record_failure(&["ann"], now);
        assert_eq!(t.check(&["ann"], now), None);
        // A failure outside the window starts a new count.
        t.record_failure(&["ann"], now + Duration::from_secs(11));
        assert_eq!(t.check(&["ann"], now + Duration::from_secs(11)), None);
    }

    #[test]
    fn any_locked_key_locks_the_attempt() {
        let t = LoginThrottle::new(1, Duration::from_secs(10), Duration::from_secs(5));
        let now = Instant::now();
        t.record_failure(&["ip:10.0.0.1"], now);
        assert!(t.check(&["ann", "ip:10.0.0.1"], now).is_some());
    }
}
