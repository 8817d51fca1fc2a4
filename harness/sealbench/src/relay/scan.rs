//! The relay that reads: what a platform without end-to-end encryption can do with what it
//! carries (`sealbench relay --scan FILE`, `relay.scan` in a scenario).
//!
//! The relay parses the E2E header of every SEND / GROUP_SEND body (docs/PROTOCOL.md §3).
//! A body of kind PLAIN (9) or PLAIN_GROUP (10) is readable: the message text after its
//! 24-byte timing stamp is matched against a keyword list with one Aho-Corasick automaton
//! (the `aho-corasick` crate), and every keyword that stands there as a whole word — not
//! inside a longer word — is a match. Any other kind is ciphertext the relay cannot read:
//! it is counted as `unreadable`, never scanned. With [`ScanAction::Block`] a message with
//! a match is refused with `CONTENT_BLOCKED` instead of being routed.
//!
//! Matching is exact bytes (case-sensitive). Whole words: a match counts when the bytes
//! before and after it are not word bytes (ASCII letters and digits, and every byte of a
//! multi-byte UTF-8 character), or are the text's ends. The automaton finds the leftmost
//! longest match at each position, so a keyword that is the prefix of another (`bad`,
//! `badge`) never hides the longer one where the longer one stands as a word.
//!
//! Building the matcher (reading or generating the list) happens once, at start; scanning
//! a message allocates nothing.

use crate::words;
use aho_corasick::{AhoCorasick, MatchKind};
use sealcore::payload::{E2E_HEADER_LEN, E2eKind, PLAINTEXT_HEADER_LEN};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What the relay does with a message in which a keyword matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanAction {
    /// Count it and route it as usual.
    #[default]
    Count,
    /// Refuse it with `CONTENT_BLOCKED` (docs/PROTOCOL.md §4.4): it is not routed.
    Block,
}

impl ScanAction {
    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            ScanAction::Count => "count",
            ScanAction::Block => "block",
        }
    }
}

impl FromStr for ScanAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "count" => Ok(ScanAction::Count),
            "block" => Ok(ScanAction::Block),
            other => Err(format!("unknown scan action `{other}`: use `count` or `block`")),
        }
    }
}

/// Why a keyword list or its matcher could not be made. Each names the file, flag or field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The list's file could not be read.
    #[error("{}: cannot read the keyword list: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The list has no keyword.
    #[error(
        "{what}: the keyword list is empty (one keyword per line; blank lines and lines starting with '#' are skipped)"
    )]
    Empty {
        /// The file, or the field or flag that asked for a generated list.
        what: String,
    },
    /// A generated list larger than the generator makes.
    #[error("{what}: {n} words is more than the {max} a generated list may hold", max = words::MAX_WORDS)]
    TooMany {
        /// The field or flag.
        what: String,
        /// The size asked for.
        n: usize,
    },
    /// The automaton could not be built (a list too large for it).
    #[error("{what}: cannot build the keyword matcher: {source}")]
    Build {
        /// The file or the generated list.
        what: String,
        /// Why.
        source: aho_corasick::BuildError,
    },
}

/// A keyword list and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordList {
    words: Vec<Vec<u8>>,
    source: String,
}

impl WordList {
    /// The first `n` words sealbench generates ([`crate::words`]); `what` names the field
    /// or flag that asked for it (in errors).
    ///
    /// # Errors
    /// [`ScanError::Empty`] for 0 words, [`ScanError::TooMany`] past [`words::MAX_WORDS`].
    pub fn generated(n: usize, what: &str) -> Result<Self, ScanError> {
        match n {
            0 => Err(ScanError::Empty { what: what.to_owned() }),
            n if n > words::MAX_WORDS => Err(ScanError::TooMany { what: what.to_owned(), n }),
            n => Ok(WordList {
                words: words::list(words::SEED, n).into_iter().map(String::into_bytes).collect(),
                source: format!("{n} generated words"),
            }),
        }
    }

    /// The keywords of a file: one per line, surrounding white space trimmed; blank lines
    /// and lines starting with `#` skipped. Any bytes (UTF-8 or not) are matched as they are.
    ///
    /// # Errors
    /// [`ScanError::Read`] when the file cannot be read, [`ScanError::Empty`] when it
    /// holds no keyword.
    pub fn read(path: &Path) -> Result<Self, ScanError> {
        let text = std::fs::read(path).map_err(|source| ScanError::Read { path: path.to_owned(), source })?;
        let words: Vec<Vec<u8>> = text
            .split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
            .map(<[u8]>::to_vec)
            .collect();
        if words.is_empty() {
            return Err(ScanError::Empty { what: path.display().to_string() });
        }
        Ok(WordList { words, source: path.display().to_string() })
    }

    /// Keywords in the list.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Never true for a list that was made (an empty one is refused).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Where it came from: the file, or `N generated words`.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The matcher a scanning relay holds: built once, shared by every connection.
#[derive(Debug, Clone)]
pub struct Scanner {
    automaton: AhoCorasick,
    action: ScanAction,
    words: usize,
    source: String,
}

impl Scanner {
    /// A matcher for `list` that does `action` with a match.
    ///
    /// # Errors
    /// [`ScanError::Build`] when the automaton cannot be built.
    pub fn new(list: &WordList, action: ScanAction) -> Result<Self, ScanError> {
        // The crate picks the automaton: a DFA for up to 100 keywords, past that its
        // contiguous NFA (a DFA's memory grows with states × byte classes) — so the lists
        // of 1,000, 10,000 and 100,000 words compared in a matrix all run the same kind.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&list.words)
            .map_err(|source| ScanError::Build { what: list.source.clone(), source })?;
        Ok(Scanner { automaton, action, words: list.len(), source: list.source.clone() })
    }

    /// What it does with a match.
    pub fn action(&self) -> ScanAction {
        self.action
    }

    /// Keywords on its list.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Where its list came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Keywords standing as whole words in `text`.
    #[inline]
    pub fn count(&self, text: &[u8]) -> u32 {
        let mut n = 0;
        for m in self.automaton.find_iter(text) {
            let before = m.start().checked_sub(1).map(|i| text[i]);
            let after = text.get(m.end()).copied();
            if !before.is_some_and(word_byte) && !after.is_some_and(word_byte) {
                n += 1;
            }
        }
        n
    }
}

/// A byte that is part of a word: an ASCII letter or digit, or any byte of a multi-byte
/// UTF-8 character (letters of other scripts).
#[inline]
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// The message text of a SEND / GROUP_SEND body the relay can read: what follows the E2E
/// header and the timing stamp of a PLAIN or PLAIN_GROUP body (empty when the body is
/// shorter). None for every other kind: ciphertext, or not an E2E body at all.
#[inline]
pub fn readable(body: &[u8]) -> Option<&[u8]> {
    let kind = *body.first()?;
    if kind != E2eKind::Plain as u8 && kind != E2eKind::PlainGroup as u8 {
        return None;
    }
    Some(body.get(E2E_HEADER_LEN + PLAINTEXT_HEADER_LEN..).unwrap_or(&[]))
}

/// What the scanning relay saw over a run (`relay_stats.scan` in `summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScanStats {
    /// Keywords on the list.
    pub words: usize,
    /// `count` or `block`.
    pub action: ScanAction,
    /// SEND / GROUP_SEND bodies it could read (PLAIN, PLAIN_GROUP) and scanned.
    pub scanned: u64,
    /// Bodies it could not read (end-to-end encrypted: never scanned).
    pub unreadable: u64,
    /// Scanned bodies with at least one match.
    pub matched: u64,
    /// Matches in all scanned bodies together.
    pub matches: u64,
    /// Bodies refused with `CONTENT_BLOCKED` (action `block`).
    pub blocked: u64,
    /// Scan time per scanned body (one in [`SCAN_SAMPLE`] timed), absent before any was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_us: Option<ScanTime>,
}

/// Scan time of one message, µs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScanTime {
    /// Messages timed.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
}

impl ScanTime {
    /// From a histogram of ns (None when empty).
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Self> {
        let us = |ns: u64| ns as f64 / 1e3;
        (!h.is_empty()).then(|| ScanTime {
            count: h.len(),
            mean_us: h.mean() / 1e3,
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
        })
    }
}

/// One scanned body in this many is timed (two clock reads cost ~50 ns, a scan of 256 B a
/// few hundred: timing every one would be a visible share of what is measured).
pub const SCAN_SAMPLE: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(words: &[&str]) -> Scanner {
        let list = WordList { words: words.iter().map(|w| w.as_bytes().to_vec()).collect(), source: "test".into() };
        Scanner::new(&list, ScanAction::Count).unwrap()
    }

    #[test]
    fn only_whole_words_match_and_a_prefix_never_hides_the_longer_keyword() {
        let s = scanner(&["bad", "badge", "kato"]);
        assert_eq!(s.count(b"a bad badge"), 2);
        assert_eq!(s.count(b"badly abad bad."), 1, "inside a word is no match; punctuation ends a word");
        assert_eq!(s.count(b"bakato kato"), 1);
        assert_eq!(s.count(b"kato"), 1, "the text's ends are boundaries");
        assert_eq!(s.count("\u{e9}kato bad\u{e9}".as_bytes()), 0, "a UTF-8 letter is part of the word");
        assert_eq!(s.count(b""), 0);
    }

    #[test]
    fn only_plain_bodies_are_readable_and_the_stamp_is_not_text() {
        let mut body = vec![E2eKind::Plain as u8, 0, 0, 0, 0];
        body.extend_from_slice(&[b'k'; PLAINTEXT_HEADER_LEN]);
        body.extend_from_slice(b"kato");
        assert_eq!(readable(&body), Some(&b"kato"[..]));
        body[0] = E2eKind::PlainGroup as u8;
        assert_eq!(readable(&body), Some(&b"kato"[..]));
        body[0] = E2eKind::Transport as u8;
        assert_eq!(readable(&body), None, "ciphertext is not read");
        assert_eq!(readable(&[E2eKind::Plain as u8, 1]), Some(&b""[..]), "too short: nothing to read");
        assert_eq!(readable(&[]), None);
    }

    #[test]
    fn a_bad_list_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("sealbench-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "# only a comment\n\n   \n").unwrap();
        let e = WordList::read(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.txt") && e.contains("empty"), "{e}");
        let missing = dir.join("missing.txt");
        let e = WordList::read(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.txt") && e.contains("cannot read"), "{e}");
        let list = dir.join("list.txt");
        std::fs::write(&list, "# keywords\r\nkato\r\n  bad  \n").unwrap();
        let l = WordList::read(&list).unwrap();
        assert_eq!(l.words, vec![b"kato".to_vec(), b"bad".to_vec()]);
        let e = WordList::generated(0, "relay.scan.words").unwrap_err().to_string();
        assert!(e.starts_with("relay.scan.words"), "{e}");
        let e = WordList::generated(words::MAX_WORDS + 1, "--scan-words").unwrap_err().to_string();
        assert!(e.starts_with("--scan-words"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_generated_list_matches_its_own_words_and_not_filler_words() {
        let s = Scanner::new(&WordList::generated(10_000, "t").unwrap(), ScanAction::Count).unwrap();
        let mut text = Vec::new();
        for i in 0..200u32 {
            words::push_word(words::SEED, words::FILLER_FROM + i, &mut text);
            text.push(b' ');
        }
        assert_eq!(s.count(&text), 0);
        words::push_word(words::SEED, 9_999, &mut text);
        assert_eq!(s.count(&text), 1);
    }
}
