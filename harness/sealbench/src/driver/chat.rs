//! A conversation inside a shard: its devices, which pairwise sessions carry each sending
//! device's copies, whether the relay fans its messages out, and the record of each
//! message in flight that tells when its first and its last recipient had it. No I/O.
//!
//! A message with several recipient devices (a group message, or a 1:1 message to a user
//! with several devices, whose copies also go to the sender's own other devices) is one
//! *logical message*: every copy carries the sender's number for it in the plaintext
//! stamp (`msg`). `fanout_first` / `fanout_last` are measured against the devices that
//! were online when it was sent (a copy stored for an offline device is `offline_e2e`).

use super::ChatSpec;
use super::wire::{Side, Wire};
use crate::scenario::Fanout;
use crate::scenario::population::ChatKind;
use std::ops::Range;

/// How many messages of one sending device are tracked at once (older records are
/// reused: a fan-out still incomplete then is counted as such).
pub const TRACKED: usize = 256;

/// A logical message in flight.
#[derive(Debug, Clone, Copy, Default)]
struct InFlight {
    /// Its number (+1; 0 marks an empty record).
    msg_plus_one: u32,
    intended_ns: u64,
    /// Copies to devices online at the send, and how many of them arrived.
    expected: u32,
    arrived: u32,
}

/// What the arrival of one copy completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arrival {
    /// The first copy: intended → now.
    pub first_ns: Option<u64>,
    /// The last expected copy: intended → now.
    pub last_ns: Option<u64>,
}

/// One sending device's outgoing messages.
#[derive(Debug)]
pub struct Outbox {
    next_msg: u32,
    /// [`TRACKED`] records (6 KiB), allocated by the first message with two or more copies
    /// to track: a device that only ever sends 1:1 (one copy) never needs them, so an idle
    /// client or a 1:1 one carries none.
    tracked: Box<[InFlight]>,
}

impl Outbox {
    fn new() -> Self {
        Outbox { next_msg: 0, tracked: Box::default() }
    }

    /// Numbers a new message; tracks it when `expected` ≥ 2 copies go to online devices.
    /// Returns its number and whether a record still incomplete was reused.
    pub fn open(&mut self, intended_ns: u64, expected: u32) -> (u32, bool) {
        let msg = self.next_msg;
        self.next_msg = self.next_msg.wrapping_add(1);
        if self.tracked.is_empty() {
            if expected < 2 {
                return (msg, false);
            }
            self.tracked = vec![InFlight::default(); TRACKED].into_boxed_slice();
        }
        let slot = &mut self.tracked[msg as usize % TRACKED];
        let dropped = slot.msg_plus_one != 0 && slot.arrived < slot.expected;
        *slot = if expected >= 2 {
            InFlight { msg_plus_one: msg.wrapping_add(1), intended_ns, expected, arrived: 0 }
        } else {
            InFlight::default()
        };
        (msg, dropped)
    }

    /// A copy of message `msg` arrived at `now`.
    pub fn arrived(&mut self, msg: u32, now: u64) -> Arrival {
        let Some(slot) = self.tracked.get_mut(msg as usize % TRACKED) else { return Arrival::default() };
        if slot.msg_plus_one != msg.wrapping_add(1) || slot.arrived >= slot.expected {
            return Arrival::default();
        }
        slot.arrived += 1;
        let took = now.saturating_sub(slot.intended_ns);
        Arrival {
            first_ns: (slot.arrived == 1).then_some(took),
            last_ns: (slot.arrived == slot.expected).then_some(took),
        }
    }

    /// Tracked messages whose fan-out is still incomplete.
    pub fn incomplete(&self) -> u64 {
        self.tracked.iter().filter(|t| t.msg_plus_one != 0 && t.arrived < t.expected).count() as u64
    }
}

/// A conversation in a shard.
#[derive(Debug)]
pub struct Chat {
    /// Its number in the run (the relay group is `id + 1`; group messages carry `id`).
    pub id: u32,
    /// 1:1 or group.
    pub kind: ChatKind,
    /// Its devices are the shard's clients `first_client..first_client + devices`.
    pub first_client: usize,
    /// Devices in it.
    pub devices: usize,
    /// Each user's device positions.
    pub users: Vec<Range<usize>>,
    /// Users who send: the first `sending_users`.
    pub sending_users: usize,
    /// Their devices: positions `..sending`.
    pub sending: usize,
    /// Per sending device position: its copies as (session, its side in the session).
    pub routes: Vec<Vec<(usize, Side)>>,
    /// Per sending device position: its messages in flight.
    pub outboxes: Vec<Outbox>,
    /// A group whose messages the relay fans out (one message per send, whatever the
    /// protocol seals it with); otherwise one copy per recipient device.
    relay: bool,
    /// Tags its messages are recorded under.
    pub tags: Vec<super::recorder::tags::TagId>,
    /// 1:1 with alternating senders: whose turn it is.
    pub turn: usize,
    /// The wire its group sends are written for (the shard sets it; sealbench's until then).
    pub wire: Wire,
}

impl Chat {
    /// The shard's record of conversation `spec`.
    pub(super) fn new(spec: &ChatSpec) -> Chat {
        let devices = spec.users.last().map_or(0, |u| u.end);
        let mut routes = vec![Vec::new(); spec.sending];
        for &(a, b, session) in &spec.sessions {
            if a < spec.sending {
                routes[a].push((session, Side::Initiator));
            }
            if b < spec.sending {
                routes[b].push((session, Side::Responder));
            }
        }
        let sending_users = spec.users.iter().take_while(|u| u.end <= spec.sending).count();
        Chat {
            id: spec.id,
            kind: spec.kind,
            first_client: spec.first_client,
            devices,
            users: spec.users.clone(),
            sending_users,
            sending: spec.sending,
            routes,
            outboxes: (0..spec.sending).map(|_| Outbox::new()).collect(),
            relay: matches!(spec.kind, ChatKind::Group { fanout: Fanout::Relay, .. }),
            tags: Vec::new(),
            turn: 0,
            wire: Wire::Sealbench,
        }
    }

    /// Relay fan-out: the relay delivers one sealed message to every other member.
    pub fn relay_fanout(&self) -> bool {
        self.relay
    }

    /// The position of the sending device with relay id `id` (`ids` by position).
    pub fn sender_position(&self, id: u64, ids: impl Fn(usize) -> u64) -> Option<usize> {
        (0..self.sending).find(|&p| ids(p) == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_arrival_bracket_every_copy() {
        let mut o = Outbox::new();
        let (m, dropped) = o.open(1_000, 3);
        assert!(!dropped);
        assert_eq!(o.arrived(m, 1_500), Arrival { first_ns: Some(500), last_ns: None });
        assert_eq!(o.arrived(m, 1_700), Arrival::default());
        assert_eq!(o.arrived(m, 2_000), Arrival { first_ns: None, last_ns: Some(1_000) });
        assert_eq!(o.arrived(m, 2_100), Arrival::default(), "a fourth copy is not expected");
        assert_eq!(o.incomplete(), 0);
    }

    #[test]
    fn single_copy_messages_allocate_no_records() {
        let mut o = Outbox::new();
        for i in 0..3 {
            assert_eq!(o.open(0, 1), (i, false));
        }
        assert!(o.tracked.is_empty(), "one-copy messages are not tracked");
        assert_eq!(o.arrived(1, 10), Arrival::default());
        let (m, _) = o.open(100, 2);
        assert_eq!(o.tracked.len(), TRACKED);
        assert_eq!(o.arrived(m, 150), Arrival { first_ns: Some(50), last_ns: None });
    }

    #[test]
    fn a_reused_record_reports_its_incomplete_fanout() {
        let mut o = Outbox::new();
        let (m, _) = o.open(0, 2);
        o.arrived(m, 10);
        for _ in 1..TRACKED {
            o.open(0, 1);
        }
        assert_eq!(o.incomplete(), 1);
        let (_, dropped) = o.open(0, 2);
        assert!(dropped);
        assert_eq!(o.arrived(m, 20), Arrival::default(), "the old message's record is gone");
    }
}
