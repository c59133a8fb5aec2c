//! Automatic prefix caching, as vLLM V1 does it (on by default; `--no-enable-prefix-caching` turns it off).
//!
//! A prompt's tokens are cut into blocks of [`BLOCK_TOKENS`]; each full block is known by a hash chained over every
//! block before it, so a block hash stands for the whole prefix up to it. A request reuses the longest run of its
//! leading blocks the cache holds, and prefill runs only on the rest (lower time to first token on a hit). After
//! prefill its blocks are in the cache; when the cache is full, the least recently used blocks go first. Capacity is
//! the KV cache (`--sim-kv-cache-tokens`) in blocks: like vLLM, freed blocks keep their contents until reused.
//!
//! Counted as vLLM counts them, in tokens: `vllm:prefix_cache_queries_total` (prompt tokens looked up) and
//! `vllm:prefix_cache_hits_total` (tokens found cached).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::tokenizer;

/// Tokens per KV block (vLLM's default `--block-size`).
pub const BLOCK_TOKENS: usize = 16;

/// The chained hashes of a prompt's full blocks.
pub fn block_hashes(prompt: &str) -> Vec<u64> {
    let ids = tokenizer::encode(prompt);
    let mut hashes = Vec::with_capacity(ids.len() / BLOCK_TOKENS);
    let mut parent: u64 = 0xcbf2_9ce4_8422_2325;
    for block in ids.chunks_exact(BLOCK_TOKENS) {
        let mut h = parent;
        for id in block {
            for b in id.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        hashes.push(h);
        parent = h;
    }
    hashes
}

/// The blocks held, least recently used first out.
#[derive(Debug)]
pub struct PrefixCache {
    inner: Mutex<Blocks>,
}

#[derive(Debug, Default)]
struct Blocks {
    capacity: usize,
    /// Block hash -> when it was last used.
    used: HashMap<u64, u64>,
    /// When -> block hash: the eviction order.
    order: BTreeMap<u64, u64>,
    clock: u64,
}

impl PrefixCache {
    /// A cache of `capacity_tokens` (0: caching off).
    pub fn new(capacity_tokens: u64) -> Self {
        Self {
            inner: Mutex::new(Blocks {
                capacity: usize::try_from(capacity_tokens / BLOCK_TOKENS as u64)
                    .unwrap_or(usize::MAX),
                ..Blocks::default()
            }),
        }
    }

    /// Looks `hashes` up (the leading blocks held count, up to the first missing one), then holds them all as
    /// the most recently used. Returns the tokens found cached.
    pub fn lookup_and_insert(&self, hashes: &[u64]) -> u64 {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if b.capacity == 0 {
            return 0;
        }
        let hits = hashes.iter().take_while(|h| b.used.contains_key(h)).count();
        for &h in hashes {
            b.clock += 1;
            let now = b.clock;
            if let Some(before) = b.used.insert(h, now) {
                b.order.remove(&before);
            }
            b.order.insert(now, h);
        }
        while b.used.len() > b.capacity {
            let Some((_, oldest)) = b.order.pop_first() else {
                break;
            };
            b.used.remove(&oldest);
        }
        (hits * BLOCK_TOKENS) as u64
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .used
            .len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> String {
        (0..n).map(|i| format!(" w{i}")).collect()
    }

    #[test]
    fn a_shared_prefix_hits_and_a_different_one_does_not() {
        let cache = PrefixCache::new(10_000);
        let system = words(64); // 64 tokens: 4 blocks
        let first = block_hashes(&format!("{system} first question"));
        let second = block_hashes(&format!("{system} second question, longer"));
        assert_eq!(first[..4], second[..4], "the shared blocks hash alike");
        assert_eq!(cache.lookup_and_insert(&first), 0, "cold");
        assert_eq!(cache.lookup_and_insert(&second), 4 * BLOCK_TOKENS as u64);
        assert_eq!(
            cache.lookup_and_insert(&second),
            (second.len() * BLOCK_TOKENS) as u64
        );
        // The same words after a different first block share nothing: the hashes are chained.
        let shifted = block_hashes(&format!(" x{system}"));
        assert_eq!(cache.lookup_and_insert(&shifted), 0);
    }

    #[test]
    fn the_least_recently_used_blocks_go_first() {
        let cache = PrefixCache::new(4 * BLOCK_TOKENS as u64);
        let a = block_hashes(&words(32)); // 2 blocks
        let b = block_hashes(&format!(" b{}", words(31)));
        let c = block_hashes(&format!(" c{}", words(31)));
        cache.lookup_and_insert(&a);
        cache.lookup_and_insert(&b);
        assert_eq!(
            cache.lookup_and_insert(&a),
            32,
            "a is still held, and now the newest"
        );
        cache.lookup_and_insert(&c);
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.lookup_and_insert(&a), 32, "b went, not a");
        assert_eq!(cache.lookup_and_insert(&b), 0);
        assert_eq!(PrefixCache::new(0).lookup_and_insert(&a), 0, "off");
    }
}
