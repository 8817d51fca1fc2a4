//! The adversarial relay (a test aid, never on by default): it tampers with, replays,
//! duplicates, drops, reorders or delays a configured fraction of the 1:1 messages it
//! forwards, and counts exactly what it did, so that a client's security accounting can be
//! checked against the truth under load.
//!
//! The relay cannot see inside the end-to-end layer. To touch only handshake-complete
//! traffic it peeks at **one byte**, the E2E kind at the start of a SEND body
//! (`docs/PROTOCOL.md` §3): only bodies whose first byte is 2 (transport message) or 6 (an
//! Olm message of a set-up session, `crypto.protocol = "olm"`) and that are long enough to
//! hold a transport message are eligible. Handshake messages, group
//! messages and everything else pass untouched. This peek exists for testing only.
//!
//! The decision is sans-IO and deterministic: [`Adversary::decide`] maps (seed, the
//! eligible message's index) to an [`Action`] with a keyed hash, so a run with the same
//! seed and the same order of messages makes the same decisions.
//!
//! What each action does to an eligible SEND (the sender is ACKed on acceptance in every
//! case, as without the adversary: it acts *after* the relay accepted the message):
//! - `tamper`: one bit of the ciphertext-or-tag part is flipped (never the relay header,
//!   the E2E header or the transport counter), so the receiver sees an authentication
//!   failure.
//! - `replay`: delivered now, and an identical copy is delivered again `delay_by` later.
//! - `duplicate`: delivered twice, back to back.
//! - `drop`: not delivered (still ACKed, see above).
//! - `reorder`: held until the next message from the same sender to the same recipient
//!   has been delivered, then delivered. If none follows within `delay_by`, it is
//!   released as is and not counted (nothing was reordered). The message it waits for is
//!   forwarded untouched, whatever its own decision would have been, so that the
//!   receiver sees the reorder (a tampered or dropped follower would hide it); so each
//!   counted reorder is exactly one message that arrives after a later one.
//! - `delay`: delivered `delay_by` later.

use sealcore::payload::{E2E_HEADER_LEN, E2eKind};
use std::time::Duration;

/// Fractions of eligible messages for each action (they must add up to at most 1), how
/// long `delay` and `replay` wait, and the seed of the decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adversary {
    /// Fraction whose body gets one bit flipped.
    pub tamper: f64,
    /// Fraction delivered, then delivered again `delay_by` later.
    pub replay: f64,
    /// Fraction delivered twice at once.
    pub duplicate: f64,
    /// Fraction not delivered.
    pub drop: f64,
    /// Fraction held and delivered after the next one to the same recipient.
    pub reorder: f64,
    /// Fraction delivered `delay_by` late.
    pub delay: f64,
    /// How long `delay` holds a message and `replay` waits before the copy.
    pub delay_by: Duration,
    /// Seed of the decisions.
    pub seed: u64,
}

impl Default for Adversary {
    fn default() -> Self {
        Adversary {
            tamper: 0.0,
            replay: 0.0,
            duplicate: 0.0,
            drop: 0.0,
            reorder: 0.0,
            delay: 0.0,
            delay_by: Duration::from_millis(50),
            seed: 0,
        }
    }
}

/// What the adversary does to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Forward it untouched.
    Pass,
    /// Flip the bit at this offset of the body (within the ciphertext-or-tag part).
    Tamper {
        /// Bit index from the start of the body.
        bit: usize,
    },
    /// Forward it, and again later.
    Replay,
    /// Forward it twice.
    Duplicate,
    /// Do not forward it.
    Drop,
    /// Forward it after the next one to the same recipient.
    Reorder,
    /// Forward it later.
    Delay,
}

/// What the adversary did, by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdversaryCounts {
    /// Messages delivered with one bit flipped.
    pub tampered: u64,
    /// Messages delivered a second time later (the copies).
    pub replayed: u64,
    /// Messages delivered twice at once (the second copies).
    pub duplicated: u64,
    /// Messages not delivered.
    pub dropped: u64,
    /// Messages delivered after a later one to the same recipient.
    pub reordered: u64,
    /// Messages delivered `delay_by` late.
    pub delayed: u64,
}

/// Why an adversary configuration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AdversaryError {
    /// A fraction is not within 0..=1, or they add up to more than 1.
    #[error("adversary fractions must each be within 0..=1 and add up to at most 1 ({0})")]
    Fractions(String),
    /// The text form has an unknown key or a bad value.
    #[error("--adversary: {0}")]
    Syntax(String),
}

/// Bytes an eligible body must have: E2E header, transport counter, one tag.
const MIN_TRANSPORT_BODY: usize = E2E_HEADER_LEN + 8 + 16;

impl Adversary {
    /// Checks the fractions.
    ///
    /// # Errors
    /// [`AdversaryError::Fractions`] when one is out of range or their sum exceeds 1.
    pub fn validate(&self) -> Result<(), AdversaryError> {
        let f = self.fractions();
        if f.iter().any(|x| !(0.0..=1.0).contains(x)) || f.iter().sum::<f64>() > 1.0 + 1e-9 {
            return Err(AdversaryError::Fractions(format!("{f:?}")));
        }
        Ok(())
    }

    fn fractions(&self) -> [f64; 6] {
        [self.tamper, self.replay, self.duplicate, self.drop, self.reorder, self.delay]
    }

    /// Parses `tamper=0.01,replay=0.01,duplicate=0,drop=0.01,reorder=0.01,delay=0.01,
    /// delay_ms=50,seed=7` (any subset; unnamed fractions are 0).
    ///
    /// # Errors
    /// [`AdversaryError`] naming the bad key or value.
    pub fn parse(s: &str) -> Result<Self, AdversaryError> {
        let mut a = Adversary::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) =
                part.split_once('=').ok_or_else(|| AdversaryError::Syntax(format!("`{part}` is not key=value")))?;
            let num =
                || v.trim().parse::<f64>().map_err(|_| AdversaryError::Syntax(format!("`{k}`: `{v}` is not a number")));
            match k.trim() {
                "tamper" => a.tamper = num()?,
                "replay" => a.replay = num()?,
                "duplicate" => a.duplicate = num()?,
                "drop" => a.drop = num()?,
                "reorder" => a.reorder = num()?,
                "delay" => a.delay = num()?,
                "delay_ms" => {
                    let ms = num()?;
                    if !(ms.is_finite() && ms >= 0.0) {
                        return Err(AdversaryError::Syntax(format!("delay_ms must be zero or positive, got {v}")));
                    }
                    a.delay_by = Duration::from_secs_f64(ms / 1e3);
                }
                "seed" => {
                    a.seed =
                        v.trim().parse().map_err(|_| AdversaryError::Syntax(format!("seed: `{v}` is not a u64")))?
                }
                other => {
                    return Err(AdversaryError::Syntax(format!(
                        "unknown key `{other}` (known: tamper, replay, duplicate, drop, reorder, delay, delay_ms, seed)"
                    )));
                }
            }
        }
        a.validate()?;
        Ok(a)
    }

    /// Is a SEND with this body one the adversary may touch (an E2E transport message, or
    /// an Olm message after its session's set-up)?
    pub fn eligible(body: &[u8]) -> bool {
        body.len() >= MIN_TRANSPORT_BODY && (body[0] == E2eKind::Transport as u8 || body[0] == E2eKind::Olm as u8)
    }

    /// The action for the `index`-th eligible message whose body is `body_len` bytes.
    pub fn decide(&self, index: u64, body_len: usize) -> Action {
        let h = splitmix64(self.seed ^ splitmix64(index));
        // 53 random bits as a uniform fraction in [0, 1).
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        for (i, f) in self.fractions().into_iter().enumerate() {
            acc += f;
            if u < acc {
                return match i {
                    0 => {
                        // A bit of the ciphertext-or-tag part: after E2E header and counter.
                        let start = (E2E_HEADER_LEN + 8) * 8;
                        let span = (body_len * 8).saturating_sub(start).max(1);
                        Action::Tamper { bit: start + (splitmix64(h) % span as u64) as usize }
                    }
                    1 => Action::Replay,
                    2 => Action::Duplicate,
                    3 => Action::Drop,
                    4 => Action::Reorder,
                    _ => Action::Delay,
                };
            }
        }
        Action::Pass
    }
}

/// What a held message becomes when it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The second copy of a replayed message.
    Replayed,
    /// A delayed message.
    Delayed,
    /// A message held for reordering that no other message followed in time: released as
    /// is, and not counted.
    Unreordered,
}

/// The messages one connection's adversary holds: delayed ones, replay copies, and at
/// most one per recipient waiting to be reordered. Sans-IO: the caller passes the time.
#[derive(Debug, Default)]
pub struct Held {
    /// (release time, what, recipient, frame), in release order (one `delay_by` for all).
    queue: std::collections::VecDeque<(tokio::time::Instant, Released, u64, bytes::Bytes)>,
    /// recipient → (fallback release time, frame) waiting for the next message to it.
    reorder: std::collections::HashMap<u64, (tokio::time::Instant, bytes::Bytes)>,
}

impl Held {
    /// When something must be released next.
    pub fn next_release(&self) -> Option<tokio::time::Instant> {
        let q = self.queue.front().map(|e| e.0);
        let r = self.reorder.values().map(|e| e.0).min();
        match (q, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Holds `frame` for `recipient` until `at`.
    pub fn hold(&mut self, at: tokio::time::Instant, what: Released, recipient: u64, frame: bytes::Bytes) {
        self.queue.push_back((at, what, recipient, frame));
    }

    /// Holds `frame` until the next message to `recipient` (or `fallback`). False when one
    /// is already held for that recipient (then the caller forwards this one normally).
    pub fn hold_for_reorder(&mut self, recipient: u64, fallback: tokio::time::Instant, frame: bytes::Bytes) -> bool {
        match self.reorder.entry(recipient) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((fallback, frame));
                true
            }
        }
    }

    /// Is a message held to follow the next one to `recipient`?
    pub fn waiting(&self, recipient: u64) -> bool {
        !self.reorder.is_empty() && self.reorder.contains_key(&recipient)
    }

    /// A message was just forwarded to `recipient`: the one held to follow it, if any.
    pub fn follower(&mut self, recipient: u64) -> Option<bytes::Bytes> {
        if self.reorder.is_empty() {
            return None;
        }
        self.reorder.remove(&recipient).map(|e| e.1)
    }

    /// Everything due at `now`: (what, recipient, frame), oldest first.
    pub fn due(&mut self, now: tokio::time::Instant) -> Vec<(Released, u64, bytes::Bytes)> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|e| e.0 <= now) {
            if let Some((_, what, to, f)) = self.queue.pop_front() {
                out.push((what, to, f));
            }
        }
        let late: Vec<u64> = self.reorder.iter().filter(|(_, e)| e.0 <= now).map(|(k, _)| *k).collect();
        for to in late {
            if let Some((_, f)) = self.reorder.remove(&to) {
                out.push((Released::Unreordered, to, f));
            }
        }
        out
    }
}

/// SplitMix64: a fast, well-mixed 64-bit hash of a counter.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: f64) -> Adversary {
        Adversary {
            tamper: f,
            replay: f,
            duplicate: f,
            drop: f,
            reorder: f,
            delay: f,
            seed: 42,
            ..Adversary::default()
        }
    }

    #[test]
    fn decisions_are_deterministic_for_a_seed() {
        let a = all(0.1);
        let x: Vec<_> = (0..1000).map(|i| a.decide(i, 100)).collect();
        let y: Vec<_> = (0..1000).map(|i| a.decide(i, 100)).collect();
        assert_eq!(x, y);
        let b = Adversary { seed: 43, ..a };
        assert_ne!(x, (0..1000).map(|i| b.decide(i, 100)).collect::<Vec<_>>());
    }

    #[test]
    fn each_action_happens_at_its_fraction() {
        let a = all(0.05);
        let n = 200_000u64;
        let mut counts = std::collections::HashMap::new();
        for i in 0..n {
            let k = match a.decide(i, 100) {
                Action::Tamper { .. } => "tamper",
                other => match other {
                    Action::Pass => "pass",
                    Action::Replay => "replay",
                    Action::Duplicate => "duplicate",
                    Action::Drop => "drop",
                    Action::Reorder => "reorder",
                    _ => "delay",
                },
            };
            *counts.entry(k).or_insert(0u64) += 1;
        }
        for k in ["tamper", "replay", "duplicate", "drop", "reorder", "delay"] {
            let got = counts[k] as f64 / n as f64;
            assert!((got - 0.05).abs() < 0.005, "{k}: {got}");
        }
        assert!((counts["pass"] as f64 / n as f64 - 0.7).abs() < 0.01);
    }

    #[test]
    fn tampering_flips_a_bit_past_the_counter_and_inside_the_body() {
        let a = Adversary { tamper: 1.0, ..Adversary::default() };
        for i in 0..10_000 {
            let Action::Tamper { bit } = a.decide(i, 40) else { panic!("always tamper") };
            assert!((13 * 8..40 * 8).contains(&bit), "{bit}");
        }
    }

    #[test]
    fn a_held_message_follows_the_next_one_to_its_recipient_or_its_fallback() {
        let t0 = tokio::time::Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut h = Held::default();
        assert!(h.hold_for_reorder(7, ms(50), bytes::Bytes::from_static(b"a")));
        assert!(!h.hold_for_reorder(7, ms(50), bytes::Bytes::from_static(b"b")), "one per recipient");
        assert!(h.hold_for_reorder(8, ms(60), bytes::Bytes::from_static(b"c")));
        h.hold(ms(40), Released::Delayed, 9, bytes::Bytes::from_static(b"d"));
        assert_eq!(h.next_release(), Some(ms(40)));
        assert_eq!(h.follower(7).as_deref(), Some(&b"a"[..]));
        assert_eq!(h.follower(7), None);
        assert!(h.due(ms(39)).is_empty());
        assert_eq!(h.due(ms(40)).len(), 1);
        let late = h.due(ms(60));
        assert_eq!(late, vec![(Released::Unreordered, 8, bytes::Bytes::from_static(b"c"))]);
        assert_eq!(h.next_release(), None);
    }

    #[test]
    fn only_transport_and_olm_message_bodies_are_eligible() {
        let mut body = vec![2u8; MIN_TRANSPORT_BODY];
        assert!(Adversary::eligible(&body));
        body[0] = E2eKind::Olm as u8;
        assert!(Adversary::eligible(&body));
        for kind in [E2eKind::Handshake, E2eKind::OlmSetup, E2eKind::SenderKey, E2eKind::MlsWelcome] {
            body[0] = kind as u8;
            assert!(!Adversary::eligible(&body), "{kind:?}");
        }
        assert!(!Adversary::eligible(&[2u8; 10]));
    }

    #[test]
    fn parse_reads_the_flag_and_refuses_nonsense() {
        let a = Adversary::parse("tamper=0.01, drop=0.02,delay_ms=5,seed=9").unwrap();
        assert_eq!((a.tamper, a.drop, a.delay_by, a.seed), (0.01, 0.02, Duration::from_millis(5), 9));
        assert!(Adversary::parse("tamper=0.7,drop=0.7").is_err());
        assert!(Adversary::parse("tampr=0.1").is_err());
        assert!(Adversary::parse("tamper=x").is_err());
    }
}
