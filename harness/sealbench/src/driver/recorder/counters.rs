//! The run's counters, written once: [`counters_table!`] lists every counter with its
//! meaning, its one-line help text (`/metrics`), where `summary.json` shows it (section and
//! name) and how it merges. Everything else is generated from that list: [`Counters`]
//! and its merge (here), the help text ([`Counters::HELP`]), and the summary's
//! `clients` and `messages` sections with their conversions both ways
//! (`crate::results::summary`). Adding a counter is one row.
//!
//! Every message sent ends as delivered, refused or lost; the rest are extra
//! observations (duplicates, reorders, authentication failures).

use super::MAX_CODE;
use serde::{Deserialize, Serialize};

/// Calls the generator macro `$generate` with the list of counters, in four sections:
///
/// - `clients { counter => summary_name: "help"; … }` — shown in `summary.json`'s
///   `clients` section under `summary_name`;
/// - `accounting { … }` and `messages { … }` — shown in its `messages` section (the
///   accounting first: `sent = delivered + refused + undelivered_offline + lost`);
/// - `refused { counter: "help"; }` — the one counter kept per relay error code (a
///   `Vec` indexed by code, [`MAX_CODE`] long), shown as its total, by code name, and
///   with what is `lost`.
///
/// Every other counter is a `u64` that merges by addition (shards, seconds, split parts).
/// Each row's doc comment says why the counter exists; a generator puts it on the
/// fields it makes.
macro_rules! counters_table {
    ($generate:ident) => {
        $generate! {
            clients {
                /// TCP + WebSocket connections that succeeded.
                connects_ok => connected: "TCP + WebSocket connections that succeeded";
                /// Connections that failed (refused, timed out, upgrade refused).
                connects_failed => connect_failed: "Connections that failed (refused, timed out, upgrade refused)";
                /// HELLOs answered with an error (or not at all): registrations refused.
                registers_failed => register_failed: "HELLOs answered with an error or not at all";
                /// Connections the relay closed or lost unexpectedly during the run.
                disconnects => disconnected: "Connections the relay closed or lost unexpectedly";
                /// Handshakes completed (initiator side).
                handshakes_ok => handshakes_ok: "Handshakes completed (initiator side)";
                /// Handshakes that failed or timed out.
                handshakes_failed => handshakes_failed: "Handshakes that failed or timed out";
                /// Devices that came back online after going offline (churn: a new
                /// connection and HELLO; sessions resumed).
                reconnects => reconnects: "Devices that came back online";
                /// Reconnections that failed.
                reconnect_failures => reconnect_failures: "Reconnections that failed";
            }
            accounting {
                /// Transport messages sent, warm-up included (deliveries: a message to a
                /// group of 50 is up to 49 of them; `messages` counts it once).
                sent => sent: "Transport messages sent (deliveries: a group message counts once per recipient device)";
                /// Transport messages decrypted at their recipient (first copy).
                delivered => delivered: "Transport messages decrypted at their recipient (first copy)";
            }
            refused {
                /// Transport messages the relay refused, by error code.
                refused: "Transport messages the relay refused (all codes)";
            }
            messages {
                /// Copies of already-delivered messages (replays / duplicates): not in
                /// `delivered`.
                duplicated => duplicated: "Copies of already-delivered messages (replays, duplicates)";
                /// Messages that arrived after a later one of the same direction.
                reordered => reordered: "Messages that arrived after a later one of the same direction";
                /// Messages whose tag did not verify (forged or corrupted): not in `delivered`.
                auth_failed => auth_failed: "Messages whose authentication tag did not verify";
                /// Messages older than the receiver's replay window (never opened): not in
                /// `delivered`.
                too_old => too_old: "Messages older than the receiver's replay window";
                /// Deliveries the client could not parse.
                malformed => malformed: "Deliveries the client could not parse";
                /// Messages sent while the histograms recorded (after warm-up).
                sent_measured => sent_measured: "Messages sent after the warm-up (in the histograms)";
                /// Messages that were due but could not be handed to the socket yet
                /// (back-pressure: the connection's queue was full).
                backlogged => backlogged: "Due messages that waited for a full connection queue";
                /// Relay errors not tied to a transport message (handshake, key,
                /// registration frames).
                other_errors => control_errors: "Relay errors not tied to a transport message";
                /// Bytes of WebSocket messages sent by clients.
                bytes_sent => bytes_sent: "Bytes of WebSocket messages sent by clients";
                /// Bytes of WebSocket messages received by clients.
                bytes_received => bytes_received: "Bytes of WebSocket messages received by clients";
                /// Transport messages that reached an end whose handshake had not ended (or
                /// had failed): not opened, and not a forgery.
                not_ready => not_ready: "Transport messages that reached an end whose handshake had not ended";
                /// Authentic messages whose timing stamp cannot belong to this run (due
                /// before it started sending, sent before due, or after arrival: an
                /// independent client's zeros, another clock): delivered (in `delivered`
                /// too), never recorded as a latency.
                bad_timestamp => bad_timestamp: "Authentic messages delivered whose timing stamp cannot belong to this run (no latency recorded)";
                /// Messages sent more than [`LATE_SEND_NS`](super::LATE_SEND_NS) after their
                /// intended time, warm-up included (the saturation verdict's evidence: more
                /// than 1 % late ⇔ lag p99 above it).
                late_sends => late_sends: "Messages sent more than 1 ms after their intended time";
                /// Logical messages sent (a message to a group of 50 is one message and up
                /// to 49 deliveries; `sent` counts the deliveries).
                messages => messages: "Logical messages sent (a group message counts once)";
                /// Messages not sent because every device of the sending user was offline.
                skipped_offline => skipped_offline: "Messages not sent because every device of the sender was offline";
                /// Deliveries stored by the relay for a device that was still offline at the
                /// end (not lost: the relay holds them).
                undelivered_offline => undelivered_offline: "Deliveries held by the relay for a device offline at the end";
                /// GROUP_SEND frames the relay refused (the copies it did not deliver show
                /// as lost).
                group_refusals => group_refusals: "GROUP_SEND frames the relay refused";
                /// Messages whose fan-out never completed (a copy to a device online at the
                /// send was still missing when its record was reused or the run ended).
                fanout_incomplete => fanout_incomplete: "Messages whose fan-out never completed";
                /// Sender keys handed out over pairwise sessions and installed (relay
                /// fan-out).
                sender_keys => sender_keys: "Sender keys handed out and installed (relay fan-out)";
                /// `crypto.protocol = "mls"`: application messages from an epoch whose
                /// secrets the recipient no longer holds (authentic, but undecryptable: not
                /// delivered, so counted in `lost` too).
                old_epoch => old_epoch: "MLS messages from an epoch the recipient no longer holds (not delivered)";
                /// Membership churn (`crypto.mls_churn_every`, `crypto.megolm_leave_every`):
                /// copies the relay's group fan-out delivered to a device that was not a
                /// member for them (MLS: in their epoch, removed or not yet re-added;
                /// Megolm: sent after it left, and tried with the key it kept, in vain).
                /// Not among `sent`: a sender counts its members only.
                not_member => not_member: "Group copies the relay delivered to a device that was not a member for them (not sent)";
                /// Megolm: messages sent after a device left that it could read nonetheless
                /// (a rotation that did not exclude it; 0 in a correct run).
                departed_read => departed_read: "Megolm messages sent after a device left that it could read (must be 0)";
                /// Members removed during traffic: MLS remove commits, Megolm leaves…
                members_removed => members_removed: "Members removed during traffic (MLS remove commits, Megolm leaves)";
                /// …and MLS members re-added (commit and Welcome, from a fresh key
                /// package): Welcomes processed.
                members_readded => members_readded: "MLS members re-added by a commit and a Welcome during traffic";
                /// `traffic.keyword_share`: frames sent whose text carries a planted
                /// keyword (each copy of a client fan-out message is a frame, a relay
                /// fan-out message is one): what a scanning relay must find, exactly.
                keywords_planted => keywords_planted: "Frames sent carrying a planted keyword (traffic.keyword_share)";
                /// `crypto.franking`: franked messages whose commitment did not match the
                /// message and franking key their recipient decrypted (not delivered:
                /// counted in `lost` too).
                franking_mismatch => franking_mismatch: "Franked messages whose commitment did not match what was decrypted (not delivered)";
                /// `crypto.franking`: bytes franking added to the frames sent (the
                /// franking key sealed inside, the trailer beside the ciphertext).
                franking_bytes => franking_bytes: "Bytes franking added to the frames sent (key inside, trailer beside)";
                /// `traffic.report_share`: REPORTs sent to the relay by recipients…
                reports_sent => reports_sent: "REPORTs of franked messages sent to the relay";
                /// …verified by the relay…
                reports_verified => reports_verified: "REPORTs the relay verified";
                /// …refused: the message and franking key do not give the commitment…
                reports_refused_commitment => reports_refused_commitment: "REPORTs refused: message and key do not give the commitment";
                /// …refused: the relay's stamp does not verify for the commitment and context.
                reports_refused_stamp => reports_refused_stamp: "REPORTs refused: the relay's stamp does not verify";
            }
        }
    };
}
pub(crate) use counters_table;

/// Generates [`Counters`], its merge and its help text from [`counters_table!`].
macro_rules! counters_struct {
    (
        clients { $( $(#[$cdoc:meta])* $c:ident => $csum:ident : $chelp:literal; )* }
        accounting { $( $(#[$adoc:meta])* $a:ident => $asum:ident : $ahelp:literal; )* }
        refused { $(#[$rdoc:meta])* $r:ident : $rhelp:literal; }
        messages { $( $(#[$mdoc:meta])* $m:ident => $msum:ident : $mhelp:literal; )* }
    ) => {
        /// The run's counters (the list in [`self`](crate::driver::recorder::counters) says what each means).
        #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
        pub struct Counters {
            $( $(#[$cdoc])* #[serde(default)] pub $c: u64, )*
            $( $(#[$adoc])* #[serde(default)] pub $a: u64, )*
            $(#[$rdoc])*
            #[serde(default)]
            pub $r: Vec<u64>,
            $( $(#[$mdoc])* #[serde(default)] pub $m: u64, )*
        }

        impl Counters {
            /// Every counter's name and one-line meaning (the `/metrics` HELP lines).
            pub const HELP: &[(&str, &str)] = &[
                $( (stringify!($c), $chelp), )*
                $( (stringify!($a), $ahelp), )*
                (stringify!($r), $rhelp),
                $( (stringify!($m), $mhelp), )*
            ];

            /// Combines every scalar counter of `self` with the same counter of `o`, and
            /// the per-code refusals likewise (one field list for `add` and `since`).
            fn combine(&mut self, o: &Counters, f: impl Fn(u64, u64) -> u64) {
                $( self.$c = f(self.$c, o.$c); )*
                $( self.$a = f(self.$a, o.$a); )*
                $( self.$m = f(self.$m, o.$m); )*
                if self.$r.len() < MAX_CODE {
                    self.$r.resize(MAX_CODE, 0);
                }
                for (i, a) in self.$r.iter_mut().enumerate() {
                    *a = f(*a, o.$r.get(i).copied().unwrap_or(0));
                }
            }
        }
    };
}

counters_table!(counters_struct);

impl Counters {
    /// Zeroed counters.
    pub fn new() -> Self {
        Counters { refused: vec![0; MAX_CODE], ..Default::default() }
    }

    /// Adds `o` into `self`, saturating at `u64::MAX` (a merged count can never wrap to
    /// a small number).
    pub fn add(&mut self, o: &Counters) {
        self.combine(o, u64::saturating_add);
    }

    /// What changed since `before` (counters only grow; a smaller value reads as 0).
    pub fn since(&self, before: &Counters) -> Counters {
        let mut d = self.clone();
        d.combine(before, u64::saturating_sub);
        d
    }

    /// Total refused transport messages.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().fold(0, |a, &b| a.saturating_add(b))
    }

    /// Sent messages neither delivered, refused, nor held by the relay for a device that
    /// was offline at the end.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(
            self.delivered.saturating_add(self.refused_total()).saturating_add(self.undelivered_offline),
        )
    }

    /// The one-line meaning of the counter named `name` (`refused`: all codes).
    pub fn help(name: &str) -> Option<&'static str> {
        Counters::HELP.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let mut a = Counters::new();
        a.sent = u64::MAX;
        a.delivered = u64::MAX;
        a.refused[3] = u64::MAX;
        let b = a.clone();
        a.add(&b);
        assert_eq!((a.sent, a.delivered, a.refused[3]), (u64::MAX, u64::MAX, u64::MAX));
        assert_eq!(a.refused_total(), u64::MAX);
        assert_eq!(a.lost(), 0);
    }

    #[test]
    fn add_and_since_cover_every_counter_and_every_code() {
        let mut one = Counters::new();
        (one.connects_ok, one.sent, one.members_readded) = (1, 2, 3);
        one.refused[5] = 4;
        let mut sum = one.clone();
        sum.add(&one);
        assert_eq!((sum.connects_ok, sum.sent, sum.members_readded, sum.refused[5]), (2, 4, 6, 8));
        assert_eq!(sum.since(&one), one);
        assert_eq!(one.since(&sum), Counters::new(), "counters only grow: a smaller value reads as 0");
    }

    #[test]
    fn every_counter_has_one_line_of_help() {
        let fields = serde_json::to_value(Counters::new()).ok();
        let names: Vec<String> = fields.and_then(|v| v.as_object().map(|o| o.keys().cloned().collect())).unwrap();
        assert_eq!(names.len(), Counters::HELP.len());
        assert!(names.iter().all(|n| Counters::help(n).is_some_and(|h| !h.contains('\n'))));
    }
}
