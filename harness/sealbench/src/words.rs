//! Seeded pseudo-words: the keyword lists a scanning relay matches (`relay.scan.words`,
//! `sealbench relay --scan-words N`) and the text the driver fills messages with
//! (`traffic.content = "text"`), from one generator so that a planted keyword really is
//! on the relay's list and the filler text never is.
//!
//! Word `i` of a seed is a pure function of `(seed, i)`: index `i` (below 2^24) is mixed by
//! a bijection of 24-bit numbers, then written in bijective base 64 with one two-letter
//! syllable (a consonant and a vowel) per digit — so different indices always give
//! different words, and a list of `n` words is the first `n` indices (a list of 1,000
//! words is a prefix of the list of 100,000). Keyword lists take indices below
//! [`MAX_WORDS`]; filler text takes indices from [`FILLER_FROM`] on: no filler word is on
//! any list, whatever its size. Written out rather than drawn from a crate so that a list
//! is the same in every version of sealbench (a leaf: it imports nothing of this crate).

/// The seed of the lists sealbench generates (`relay.scan.words`, `--scan-words`).
pub const SEED: u64 = 0x5CA7_0FC0_FFEE;
/// The most words a generated list may hold.
pub const MAX_WORDS: usize = 1_000_000;
/// The first index of filler words (never on a list: lists stop below [`MAX_WORDS`]).
pub const FILLER_FROM: u32 = 1 << 23;
/// The longest word: four syllables of two letters (2^24 indices fit in four base-64 digits).
pub const MAX_WORD_LEN: usize = 8;

const INDEX_BITS: u32 = 24;
const MASK: u32 = (1 << INDEX_BITS) - 1;
const CONSONANTS: &[u8; 16] = b"bdfghjklmnprstvz";
const VOWELS: &[u8; 4] = b"aeio";

/// Mixes a 24-bit index by a bijection (xor, multiply by an odd number, xorshift: each
/// step invertible modulo 2^24), so consecutive indices give unrelated words.
fn mix(seed: u64, i: u32) -> u32 {
    let mut x = i & MASK;
    for round in 0..3u32 {
        let key = (seed >> (round * 16)) as u32 ^ (seed >> 48) as u32;
        x = (x ^ key) & MASK;
        x = x.wrapping_mul(0x009E_3779) & MASK;
        x ^= x >> 12;
    }
    x
}

/// Appends word `i` of `seed` to `out` (2 to [`MAX_WORD_LEN`] lowercase ASCII letters).
///
/// # Panics
/// Never: `i` is taken modulo 2^24.
pub fn push_word(seed: u64, i: u32, out: &mut Vec<u8>) {
    // Bijective base 64 of mix + 1: digits 1..=64, no leading-zero ambiguity.
    let mut n = u64::from(mix(seed, i)) + 1;
    let start = out.len();
    while n > 0 {
        let d = ((n - 1) % 64) as usize;
        out.push(VOWELS[d % 4]);
        out.push(CONSONANTS[d / 4]);
        n = (n - 1) / 64;
    }
    out[start..].reverse(); // consonant, vowel; most significant syllable first
}

/// Word `i` of `seed`.
pub fn word(seed: u64, i: u32) -> String {
    let mut v = Vec::with_capacity(MAX_WORD_LEN);
    push_word(seed, i, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// The first `n` words of `seed` (at most [`MAX_WORDS`]; more are not generated).
pub fn list(seed: u64, n: usize) -> Vec<String> {
    (0..n.min(MAX_WORDS) as u32).map(|i| word(seed, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_list_is_distinct_deterministic_and_the_prefix_of_a_longer_one() {
        let long = list(SEED, 100_000);
        let set: HashSet<&String> = long.iter().collect();
        assert_eq!(set.len(), long.len(), "every word different");
        assert_eq!(list(SEED, 1_000)[..], long[..1_000], "1,000 words: the first of 100,000");
        assert_eq!(word(SEED, 7), long[7]);
        assert_ne!(list(SEED ^ 1, 10), list(SEED, 10), "another seed, another list");
        for w in &long {
            assert!((2..=MAX_WORD_LEN).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
    }

    #[test]
    fn filler_words_are_never_on_a_list() {
        let list: HashSet<String> = list(SEED, 200_000).into_iter().collect();
        for i in FILLER_FROM..FILLER_FROM + 200_000 {
            assert!(!list.contains(&word(SEED, i)), "filler word {i} is on the list");
        }
    }
}
