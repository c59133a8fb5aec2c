//! The shape of every secret we hand out: API keys (`tg-`) and personal access tokens (`tgp-`).
//!
//! A secret is `<prefix><id><secret>`: the id (12 lowercase letters and digits) is public and names the row;
//! the secret part (32 base62 characters, about 190 bits) is only ever stored as a SHA-256 hash. The fixed,
//! documented prefixes let secret scanners recognise a leaked key. Because the secret has that much entropy, an
//! unsalted hash is enough (a slow password hash would only slow the gateway); hashes are compared in constant
//! time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What kind of secret a string is, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// An API key for the gateway, bound to one subscription.
    ApiKey,
    /// A personal access token for the management API, acting as the user who made it.
    AccessToken,
}

impl SecretKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::ApiKey => "tg-",
            Self::AccessToken => "tgp-",
        }
    }
}

pub const ID_LEN: usize = 12;
pub const SECRET_LEN: usize = 32;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly minted secret: the full text (shown once), its public id and the hash to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub full: String,
    pub id: String,
    pub hash: [u8; 32],
}

impl Minted {
    /// What lists show in place of the secret: the prefix and id, enough to recognise the key.
    pub fn display_prefix(&self) -> String {
        self.full[..self.full.len() - SECRET_LEN].to_string()
    }
}

/// Mints a secret from `random` bytes (the caller supplies a CSPRNG's output, so this stays pure and testable).
/// Each byte picks one character; rejection sampling is unnecessary because the tiny modulo bias of 256 over 36
/// or 62 symbols costs well under a bit of the ~190 bits of entropy.
pub fn mint(kind: SecretKind, random: &[u8; ID_LEN + SECRET_LEN]) -> Minted {
    let id: String = random[..ID_LEN]
        .iter()
        .map(|b| ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()] as char)
        .collect();
    let secret: String = random[ID_LEN..]
        .iter()
        .map(|b| SECRET_ALPHABET[usize::from(*b) % SECRET_ALPHABET.len()] as char)
        .collect();
    let hash = hash_secret(&secret);
    Minted {
        full: format!("{}{id}{secret}", kind.prefix()),
        id,
        hash,
    }
}

/// A presented secret split into its id and secret parts, borrowed from the input (no allocation: the gateway
/// calls this on every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// Splits `text` if it has the shape of a `kind` secret; None for anything else.
pub fn parse(kind: SecretKind, text: &str) -> Option<Presented<'_>> {
    let rest = text.strip_prefix(kind.prefix())?;
    if rest.len() != ID_LEN + SECRET_LEN || !rest.is_ascii() {
        return None;
    }
    let (id, secret) = rest.split_at(ID_LEN);
    let id_ok = id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let secret_ok = secret.bytes().all(|b| b.is_ascii_alphanumeric());
    (id_ok && secret_ok).then_some(Presented { id, secret })
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ.
pub fn verify(presented: &str, stored: &[u8; 32]) -> bool {
    hash_secret(presented).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(seed: u8) -> [u8; ID_LEN + SECRET_LEN] {
        let mut r = [0u8; ID_LEN + SECRET_LEN];
        for (i, b) in r.iter_mut().enumerate() {
            *b = seed
                .wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(7));
        }
        r
    }

    #[test]
    fn minted_keys_parse_back_and_verify() {
        let m = mint(SecretKind::ApiKey, &random(3));
        assert!(m.full.starts_with("tg-"));
        assert_eq!(m.full.len(), 3 + ID_LEN + SECRET_LEN);
        let p = parse(SecretKind::ApiKey, &m.full).expect("parses");
        assert_eq!(p.id, m.id);
        assert!(verify(p.secret, &m.hash));
        assert_eq!(m.display_prefix(), format!("tg-{}", m.id));
    }

    #[test]
    fn a_wrong_secret_does_not_verify() {
        let m = mint(SecretKind::ApiKey, &random(3));
        let mut forged = m.full.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        let p = parse(SecretKind::ApiKey, &forged).unwrap();
        assert!(!verify(p.secret, &m.hash));
    }

    #[test]
    fn kinds_do_not_cross() {
        let token = mint(SecretKind::AccessToken, &random(9));
        assert!(token.full.starts_with("tgp-"));
        assert_eq!(parse(SecretKind::ApiKey, &token.full), None);
        assert!(parse(SecretKind::AccessToken, &token.full).is_some());
    }

    #[test]
    fn malformed_input_is_rejected_without_panicking() {
        for bad in [
            "",
            "tg-",
            "tg-short",
            "sk-abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd",
            "tg-ABCDEFGHIJKL0123456789012345678901234567890a", // uppercase id
            "tg-abcdefghijkl0123456789012345678901234567890é", // non-ascii
            "tg-abcdefghijkl01234567890123456789012345678901!",
        ] {
            assert_eq!(parse(SecretKind::ApiKey, bad), None, "{bad}");
        }
    }
}
