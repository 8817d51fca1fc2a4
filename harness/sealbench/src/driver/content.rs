//! What a message says after its timing stamp (`traffic.content`): zeros, or text a
//! relay that reads could scan — seeded pseudo-words, and in a share of the messages
//! (`traffic.keyword_share`) one keyword of the scan list.
//!
//! The text is prepared once per shard ([`Corpus::new`]): filler words (never on a list,
//! see [`crate::words`]) one space apart, and a few hundred keywords of the list. A message
//! takes its [`Text`] from its identity (conversation, sending device, message number)
//! alone, so the same message carries the same bytes whatever the protocol — sealed by
//! the end-to-end protocols, in the clear with `plaintext`. Writing it copies slices of
//! the prepared buffers: no allocation, no formatting per message.
//!
//! A text is whole words: it starts at a word, a word cut by the message's end is blanked
//! (spaces), and a planted keyword is put between two words with a space after it. So a
//! whole-word scan finds exactly the planted keyword — once — and nothing else.

use crate::rng::Rng;
use crate::words;

/// Offsets a message's text may start at: the filler is this much longer than the largest
/// message, so messages of one size still differ.
const SPREAD: usize = 64 * 1024;
/// Distinct keywords a shard plants (drawn once from the list's first words).
const PLANTED: usize = 256;

/// The prepared text of a shard.
pub struct Corpus {
    /// Filler words, each followed by one space.
    filler: Vec<u8>,
    /// Planted keywords, one after another…
    keywords: Vec<u8>,
    /// …and where each is in `keywords` (start, length).
    spans: Vec<(u32, u8)>,
    /// A message carries a keyword when the top 32 bits of its hash are below this
    /// (`keyword_share` × 2^32: 2^32 plants in every message).
    plant_below: u64,
    /// Mixed into every message's hash (the run's seed).
    seed: u64,
}

impl std::fmt::Debug for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corpus")
            .field("filler_bytes", &self.filler.len())
            .field("keywords", &self.spans.len())
            .field("plant_below", &self.plant_below)
            .finish_non_exhaustive()
    }
}

impl Corpus {
    /// The text of a run with `seed` whose messages' text is at most `max_text` bytes,
    /// with `keyword_share` of them carrying one of the first `keywords` words of the
    /// generated list (`scenario::PLANT_FROM` at most, so that any generated list at least
    /// that long holds every one).
    pub fn new(seed: u64, max_text: usize, keyword_share: f64, keywords: usize) -> Corpus {
        let mut rng = Rng::new(seed, 0x7e47);
        let len = SPREAD + max_text + 2 * (words::MAX_WORD_LEN + 1);
        let mut filler = Vec::with_capacity(len + words::MAX_WORD_LEN + 1);
        while filler.len() < len {
            let i = words::FILLER_FROM + (rng.next_u64() % u64::from(words::FILLER_FROM)) as u32;
            words::push_word(words::SEED, i, &mut filler);
            filler.push(b' ');
        }
        let from = keywords.max(1) as u64;
        let (mut kw, mut spans) = (Vec::new(), Vec::with_capacity(PLANTED));
        for _ in 0..PLANTED {
            let at = kw.len();
            words::push_word(words::SEED, (rng.next_u64() % from) as u32, &mut kw);
            spans.push((at as u32, (kw.len() - at) as u8));
        }
        let plant_below = (keyword_share.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64;
        Corpus { filler, keywords: kw, spans, plant_below, seed }
    }

    /// The text of `plan`'s messages, or None for zeros (`traffic.content = "zeros"`).
    pub fn of(plan: &crate::scenario::Plan) -> Option<Corpus> {
        let c = &plan.content;
        let max_text = plan.sizes.iter().map(|&(size, _)| size).max().unwrap_or(0);
        c.text.then(|| Corpus::new(c.seed, max_text, c.keyword_share, c.keywords))
    }

    /// The text of message `msg` of the device at `sender` in conversation `chat`.
    #[inline]
    pub fn text(&self, chat: u32, sender: usize, msg: u32) -> Text<'_> {
        let who = (u64::from(chat) << 32) | sender as u64;
        Text { corpus: Some(self), hash: Rng::new(self.seed ^ who, u64::from(msg)).next_u64() }
    }

    /// Where a text of `n` bytes starts in the filler, and the keyword it carries (None:
    /// not planted, or too short to hold one).
    #[inline]
    fn layout(&self, hash: u64, n: usize) -> (usize, Option<&[u8]>) {
        let start = self.word_at((hash as usize) % SPREAD);
        let keyword = ((hash >> 32) < self.plant_below)
            .then(|| {
                let (at, len) = self.spans[(hash as usize >> 16) % self.spans.len()];
                &self.keywords[at as usize..at as usize + len as usize]
            })
            .filter(|k| k.len() < n);
        (start, keyword)
    }

    /// The first word start at or after `i`.
    #[inline]
    fn word_at(&self, mut i: usize) -> usize {
        while i > 0 && self.filler[i - 1] != b' ' {
            i += 1;
        }
        i
    }

    /// The last word boundary of the filler at most `n` bytes after `start` (a word start
    /// `start + a`, the byte before it a space), as `a`.
    #[inline]
    fn boundary_within(&self, start: usize, n: usize) -> usize {
        let mut a = n;
        while a > 0 && self.filler[start + a - 1] != b' ' {
            a -= 1;
        }
        a
    }

    /// Copies the filler from `start` into `dst`, blanking a word the end cuts.
    #[inline]
    fn copy_words(&self, dst: &mut [u8], start: usize) {
        let n = dst.len();
        let whole = self.boundary_within(start, n);
        dst[..whole].copy_from_slice(&self.filler[start..start + whole]);
        // What follows the last boundary is a whole word when a space follows it.
        if self.filler.get(start + n) == Some(&b' ') {
            dst[whole..].copy_from_slice(&self.filler[start + whole..start + n]);
        } else {
            dst[whole..].fill(b' ');
        }
    }
}

/// The text of one message: zeros, or a place in its shard's [`Corpus`]. Small and
/// `Copy`: it travels in [`crate::driver::protocol::Timed`] to whichever seal writes it.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    corpus: Option<&'a Corpus>,
    hash: u64,
}

impl Text<'static> {
    /// Zeros (`traffic.content = "zeros"`, and set-up messages).
    pub const ZEROS: Text<'static> = Text { corpus: None, hash: 0 };
}

impl Text<'_> {
    /// Whether a text of `n` bytes (the plaintext after the stamp) carries a keyword.
    #[inline]
    pub fn planted(self, n: usize) -> bool {
        self.corpus.is_some_and(|c| c.layout(self.hash, n).1.is_some())
    }

    /// Writes the text over `dst` (the plaintext after the stamp); zeros leave `dst` as
    /// it is (the stamp's writer zeroed it).
    #[inline]
    pub fn write(self, dst: &mut [u8]) {
        let Some(c) = self.corpus else { return };
        if dst.is_empty() {
            return;
        }
        let (start, keyword) = c.layout(self.hash, dst.len());
        let Some(k) = keyword else { return c.copy_words(dst, start) };
        // Words, the keyword and a space, words: the keyword near the middle, on a boundary.
        let a = c.boundary_within(start, (dst.len() - k.len() - 1) / 2);
        dst[..a].copy_from_slice(&c.filler[start..start + a]);
        dst[a..a + k.len()].copy_from_slice(k);
        dst[a + k.len()] = b' ';
        c.copy_words(&mut dst[a + k.len() + 1..], start + a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::scan::{ScanAction, Scanner, WordList};

    #[test]
    fn text_is_whole_words_and_exactly_the_planted_messages_match_once() {
        // The largest list: a word cut short by the message's end, were it left, would
        // be one of its words often enough to show.
        let scanner = Scanner::new(&WordList::generated(100_000, "t").unwrap(), ScanAction::Count).unwrap();
        let corpus = Corpus::new(7, 4096, 0.3, 1_000);
        let (mut planted, mut total) = (0, 0);
        for n in [1usize, 5, 9, 10, 40, 232, 1000, 4096] {
            for msg in 0..1_000u32 {
                let text = corpus.text(3, 1, msg);
                let mut dst = vec![0u8; n];
                text.write(&mut dst);
                assert!(
                    dst.iter().all(|&b| b == b' ' || b.is_ascii_lowercase()),
                    "{:?}",
                    String::from_utf8_lossy(&dst)
                );
                let expect = u32::from(text.planted(n));
                assert_eq!(scanner.count(&dst), expect, "n {n} msg {msg}: {}", String::from_utf8_lossy(&dst));
                let mut again = vec![0u8; n];
                text.write(&mut again);
                assert_eq!(dst, again, "the same message, the same bytes");
                planted += expect;
                total += 1;
            }
        }
        let share = f64::from(planted) / f64::from(total);
        assert!((0.2..0.4).contains(&share), "about 30 % planted: {share}");
    }

    #[test]
    fn zeros_and_no_share_plant_nothing() {
        let mut dst = [0u8; 64];
        Text::ZEROS.write(&mut dst);
        assert_eq!(dst, [0u8; 64]);
        assert!(!Text::ZEROS.planted(64));
        let corpus = Corpus::new(1, 64, 0.0, 1_000);
        assert!((0..1000).all(|m| !corpus.text(0, 0, m).planted(64)));
        let all = Corpus::new(1, 64, 1.0, 1_000);
        assert!((0..1000).all(|m| all.text(0, 0, m).planted(64)));
    }
}
