//! Row ids: a short type prefix and 128 random bits, so ids are unguessable across tenants and readable in logs.

use rand::RngCore;

/// A new id such as `team_3f9c...` (prefix + 32 hex characters).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::new_id("team");
        assert!(a.starts_with("team_") && a.len() == 37);
        assert_ne!(a, super::new_id("team"));
    }
}
