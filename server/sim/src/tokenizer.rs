//! A deterministic, reversible tokenizer-like splitter (no vocabulary file).
//!
//! The rule, so tests and users can predict counts:
//! 1. Text is cut into pieces: a *word* is an optional single leading space followed by a
//!    run of alphanumeric characters (Unicode `is_alphanumeric`); every other character
//!    (punctuation, newline, a space not followed by a letter or digit, ...) is a piece alone.
//! 2. A piece longer than 4 bytes is split, from the left, into chunks of at most 4 bytes
//!    (never inside a character).
//! 3. Each chunk is one token. Its id is the chunk's UTF-8 bytes read as a big-endian
//!    integer (so `"a"` is 97 and `" the"` is 0x20746865); decoding reverses that exactly.
//!
//! `"Hello, world!"` is `Hell|o|,| wor|ld|!`: 6 tokens. This is about one token per
//! 3-4 characters of English, close to real BPE tokenizers, and it grows with the prompt.

/// The pieces of `text` as defined above, as string slices.
pub fn tokens(text: &str) -> Tokens<'_> {
    Tokens {
        rest: text,
        pending: "",
    }
}

/// Number of tokens in `text`.
pub fn count(text: &str) -> usize {
    tokens(text).count()
}

/// Token ids of `text`.
pub fn encode(text: &str) -> Vec<u32> {
    tokens(text).map(token_id).collect()
}

/// Text of the given token ids (invalid UTF-8 sequences become U+FFFD).
pub fn decode(ids: &[u32]) -> String {
    let mut bytes = Vec::with_capacity(ids.len() * 3);
    for &id in ids {
        bytes.extend_from_slice(token_bytes(id).as_slice());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The text of one token id.
pub fn token_str(id: u32) -> String {
    decode(&[id])
}

/// The id of one token (a chunk of at most 4 bytes).
pub fn token_id(token: &str) -> u32 {
    token
        .bytes()
        .take(4)
        .fold(0u32, |acc, b| (acc << 8) | u32::from(b))
}

struct TokenBytes {
    buf: [u8; 4],
    start: usize,
}

impl TokenBytes {
    fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn token_bytes(id: u32) -> TokenBytes {
    let buf = id.to_be_bytes();
    let start = if id == 0 {
        3
    } else {
        buf.iter().position(|&b| b != 0).unwrap_or(3)
    };
    TokenBytes { buf, start }
}

/// Iterator over the tokens of a text.
pub struct Tokens<'a> {
    rest: &'a str,
    /// Remainder of a piece longer than 4 bytes still being chunked.
    pending: &'a str,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.pending.is_empty() {
            if self.rest.is_empty() {
                return None;
            }
            let len = piece_len(self.rest);
            let (piece, rest) = self.rest.split_at(len);
            self.pending = piece;
            self.rest = rest;
        }
        let len = chunk_len(self.pending);
        let (chunk, rest) = self.pending.split_at(len);
        self.pending = rest;
        Some(chunk)
    }
}

/// Byte length of the first piece of a non-empty `text`.
fn piece_len(text: &str) -> usize {
    let mut chars = text.char_indices();
    let Some((_, first)) = chars.next() else {
        return 0;
    };
    let mut end = first.len_utf8();
    if first == ' ' {
        match text[end..].chars().next() {
            Some(c) if c.is_alphanumeric() => {}
            _ => return end,
        }
    } else if !first.is_alphanumeric() {
        return end;
    }
    for (i, c) in text[end..].char_indices() {
        if !c.is_alphanumeric() {
            return end + i;
        }
    }
    end = text.len();
    end
}

/// Byte length of the first chunk (at most 4 bytes, at least one character) of a piece.
fn chunk_len(piece: &str) -> usize {
    let mut end = 0;
    for (i, c) in piece.char_indices() {
        let next = i + c.len_utf8();
        if next > 4 && end > 0 {
            break;
        }
        end = next;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example() {
        let t: Vec<&str> = tokens("Hello, world!").collect();
        assert_eq!(t, vec!["Hell", "o", ",", " wor", "ld", "!"]);
        assert_eq!(count("Hello, world!"), 6);
    }

    #[test]
    fn short_words_are_one_token() {
        assert_eq!(count("The cat sat on the mat."), 7);
        assert_eq!(count(""), 0);
        assert_eq!(count("  "), 2);
        assert_eq!(count("a\nb"), 3);
    }

    #[test]
    fn count_grows_with_prompt() {
        let short = count("tell me a story");
        let long = count(&"tell me a story ".repeat(50));
        assert!(long > short * 40);
    }

    #[test]
    fn ids_round_trip() {
        for text in [
            "Hello, world!",
            "naïve café — 東京タワー 🚀!",
            "x\u{0}y",
            "  spaced   out  ",
            "12345678",
        ] {
            let ids = encode(text);
            assert_eq!(decode(&ids), text, "round trip of {text:?}");
            assert_eq!(ids.len(), count(text));
        }
        assert_eq!(token_id("a"), 97);
        assert_eq!(token_id(" the"), 0x2074_6865);
        assert_eq!(token_str(0), "\u{0}");
    }

    #[test]
    fn chunks_never_split_characters() {
        for t in tokens("東京タワー😀😀abc") {
            assert!(t.len() <= 4);
        }
    }

    #[test]
    fn decode_of_garbage_is_lossy_not_a_panic() {
        let s = decode(&[0xFF, 0xC3]);
        assert!(!s.is_empty());
    }
}
