//! Who the simulated clients are and who talks to whom: devices grouped into users, users
//! into conversations (1:1 or groups), decided once per run from the scenario and its seed.
//! Pure: the driver deals whole conversations to shards from this, so that every device
//! of a conversation — every sender and every recipient of its messages — lives in one
//! shard, on one clock.
//!
//! Each user is in exactly one conversation. A messenger's users are in many; for load,
//! what matters is the traffic a conversation carries and how it fans out, and one
//! conversation per user keeps conversations independent (whole conversations per shard)
//! without losing either.

use super::{ConversationKind, Fanout, Pairing, Scenario};
use crate::rng::Rng;
use anyhow::{Result, bail};

/// A user: some consecutive devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Index of its first device (devices are numbered 0.., relay ids are index + 1).
    pub first_device: u32,
    /// How many devices.
    pub devices: u32,
    /// Its devices go offline and come back (`churn.share`).
    pub churns: bool,
}

impl User {
    /// Its device indices.
    pub fn device_range(&self) -> std::ops::Range<u32> {
        self.first_device..self.first_device + self.devices
    }
}

/// What a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// A 1:1 conversation between two users (a message goes to every device of the peer
    /// and to the sender's own other devices).
    Direct,
    /// A group.
    Group {
        /// How a message reaches its members.
        fanout: Fanout,
        /// The size it was drawn with from `group_sizes` (its class; the group holds this
        /// many users, or a few more when users were left over).
        size: u32,
    },
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// Its number in the run (0..).
    pub id: u32,
    /// 1:1 or group.
    pub kind: ChatKind,
    /// Its users (indices into [`Population::users`]).
    pub users: Vec<u32>,
    /// The first `senders` of `users` send.
    pub senders: u32,
}

/// The run's users and conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    /// Every user.
    pub users: Vec<User>,
    /// Every conversation.
    pub chats: Vec<Chat>,
}

/// Random streams of the layout (independent of the senders' streams).
const DEVICES_STREAM: u64 = 0xDE71CE;
const ORDER_STREAM: u64 = 0xC0FFEE;
const GROUPS_STREAM: u64 = 0x6A0C;
const CHURN_STREAM: u64 = 0xC4A2;

impl Population {
    /// Lays out `s`: devices into users, users into conversations.
    ///
    /// # Errors
    /// When the clients cannot form the conversations asked for (names the field).
    pub fn new(s: &Scenario) -> Result<Population> {
        let kind = s.conversations.kind;
        let mut users = users(s)?;
        let mut order: Vec<u32> = (0..users.len() as u32).collect();
        if s.conversations.pairing == Pairing::Random {
            let mut rng = Rng::new(s.seed, ORDER_STREAM);
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        let in_groups = match kind {
            ConversationKind::Pairs => 0,
            ConversationKind::Groups => order.len(),
            ConversationKind::Mix => {
                let share = s.conversations.group_share;
                let n = (order.len() as f64 * share).round() as usize;
                // The rest must pair up.
                if (order.len() - n) % 2 == 1 { n + 1 } else { n }.min(order.len())
            }
        };
        let mut chats = Vec::new();
        if in_groups > 0 {
            groups(s, &order[..in_groups], &mut chats)?;
        }
        let direct = &order[in_groups..];
        if direct.len() % 2 == 1 {
            bail!(
                "clients.count: {} users left for 1:1 conversations is odd; give clients.count one more or one fewer device",
                direct.len()
            );
        }
        for pair in direct.chunks(2) {
            chats.push(Chat { id: chats.len() as u32, kind: ChatKind::Direct, users: pair.to_vec(), senders: 2 });
        }
        if let Some(churn) = &s.churn {
            let mut rng = Rng::new(s.seed, CHURN_STREAM);
            for u in &mut users {
                u.churns = rng.next_f64() < churn.share;
            }
        }
        Ok(Population { users, chats })
    }

    /// Devices of conversation `c`, grouped by user in the conversation's user order.
    pub fn devices_of<'a>(&'a self, c: &'a Chat) -> impl Iterator<Item = u32> + 'a {
        c.users.iter().flat_map(move |&u| self.users[u as usize].device_range())
    }

    /// Devices in conversation `c`.
    pub fn device_count(&self, c: &Chat) -> u32 {
        c.users.iter().map(|&u| self.users[u as usize].devices).sum()
    }

    /// The group-size classes in the run, ascending (empty without groups).
    pub fn group_sizes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .chats
            .iter()
            .filter_map(|c| match c.kind {
                ChatKind::Group { size, .. } => Some(size),
                ChatKind::Direct => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Devices into users, by the `clients.devices` distribution (the last user takes what
/// is left).
fn users(s: &Scenario) -> Result<Vec<User>> {
    let n = s.clients.count as u32;
    let dist = &s.clients.devices;
    if dist.is_empty() {
        return Ok((0..n).map(|d| User { first_device: d, devices: 1, churns: false }).collect());
    }
    let total: f64 = dist.iter().map(|d| d.weight).sum();
    if !(total.is_finite() && total > 0.0) || dist.iter().any(|d| d.weight < 0.0 || d.devices == 0) {
        bail!(
            "clients.devices: each entry needs devices ≥ 1 and a weight ≥ 0, and the weights must add up to more than 0"
        );
    }
    let mut rng = Rng::new(s.seed, DEVICES_STREAM);
    let mut users = Vec::new();
    let mut next = 0u32;
    while next < n {
        let want = pick(dist.iter().map(|d| (d.devices as u32, d.weight / total)), rng.next_f64());
        let devices = want.min(n - next);
        users.push(User { first_device: next, devices, churns: false });
        next += devices;
    }
    if s.conversations.kind == ConversationKind::Pairs && users.len() % 2 == 1 && users.len() > 1 {
        // An odd user out would have no one to talk to: its devices go to the user before.
        if let Some(last) = users.pop()
            && let Some(prev) = users.last_mut()
        {
            prev.devices += last.devices;
        }
    }
    Ok(users)
}

/// Users into groups, sizes drawn from `conversations.group_sizes` (near the end, among
/// the sizes that still fit); users left over (fewer than the smallest size) join the
/// groups already made, one each in turn.
fn groups(s: &Scenario, users: &[u32], chats: &mut Vec<Chat>) -> Result<()> {
    let dist = &s.conversations.group_sizes;
    if dist.is_empty() {
        bail!("conversations.group_sizes: `groups` and `mix` need group sizes, e.g. [{{ size = 5, weight = 1 }}]");
    }
    let total: f64 = dist.iter().map(|g| g.weight).sum();
    if !(total.is_finite() && total > 0.0) || dist.iter().any(|g| g.weight < 0.0 || g.size < 2) {
        bail!(
            "conversations.group_sizes: each entry needs size ≥ 2 and a weight ≥ 0, and the weights must add up to more than 0"
        );
    }
    let mut rng = Rng::new(s.seed, GROUPS_STREAM);
    let first = chats.len();
    let mut at = 0;
    loop {
        // Draw among the sizes that still fit (the weights of those renormalised).
        let left = users.len() - at;
        let fit: f64 = dist.iter().filter(|g| g.size <= left).map(|g| g.weight).sum();
        if fit <= 0.0 {
            break;
        }
        let size =
            pick(dist.iter().filter(|g| g.size <= left).map(|g| (g.size as u32, g.weight / fit)), rng.next_f64());
        let members = users[at..at + size as usize].to_vec();
        at += size as usize;
        let senders = match s.conversations.group_senders {
            0 => size,
            n => (n as u32).min(size),
        };
        let kind = ChatKind::Group { fanout: s.conversations.fanout, size };
        chats.push(Chat { id: chats.len() as u32, kind, users: members, senders });
    }
    let made = chats.len() - first;
    if made == 0 {
        bail!(
            "conversations.group_sizes: {} users cannot fill a group of the sizes drawn; add clients or use smaller groups",
            users.len()
        );
    }
    for (i, &u) in users[at..].iter().enumerate() {
        chats[first + i % made].users.push(u);
    }
    Ok(())
}

/// The value whose cumulative weight first passes `x` (weights normalised).
fn pick(entries: impl Iterator<Item = (u32, f64)>, x: f64) -> u32 {
    let mut acc = 0.0;
    let mut last = 1;
    for (v, w) in entries {
        acc += w;
        last = v;
        if x < acc {
            return v;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{DevicesWeight, GroupSize};

    fn scenario(text: &str) -> Scenario {
        let base = "name = \"t\"\nduration = \"1s\"\n";
        toml::from_str(&format!("{base}{text}")).unwrap()
    }

    #[test]
    fn pairs_of_single_devices_are_adjacent_clients() {
        let p = Population::new(&scenario("[clients]\ncount = 6\n")).unwrap();
        assert_eq!(p.chats.len(), 3);
        assert_eq!(p.devices_of(&p.chats[1]).collect::<Vec<_>>(), vec![2, 3]);
        assert!(p.chats.iter().all(|c| c.kind == ChatKind::Direct && c.senders == 2));
    }

    #[test]
    fn every_device_belongs_to_exactly_one_conversation() {
        let mut s = scenario("[clients]\ncount = 1000\n[conversations]\nkind = \"mix\"\npairing = \"random\"\n");
        s.clients.devices = vec![DevicesWeight { devices: 1, weight: 1.0 }, DevicesWeight { devices: 3, weight: 1.0 }];
        s.conversations.group_sizes = vec![
            GroupSize { size: 5, weight: 6.0 },
            GroupSize { size: 50, weight: 3.0 },
            GroupSize { size: 3, weight: 1.0 },
        ];
        let p = Population::new(&s).unwrap();
        let mut seen = vec![0; 1000];
        for c in &p.chats {
            for d in p.devices_of(c) {
                seen[d as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "each device once");
        assert!(p.chats.iter().any(|c| c.kind == ChatKind::Direct));
        assert_eq!(p.group_sizes(), vec![3, 5, 50]);
        for c in &p.chats {
            if let ChatKind::Group { size, .. } = c.kind {
                assert!(c.users.len() >= size as usize && c.senders == 4.min(size));
            }
        }
        assert_eq!(Population::new(&s).unwrap(), p, "deterministic from the seed");
    }

    #[test]
    fn too_few_users_for_any_group_is_refused_with_the_field() {
        let mut s = scenario("[clients]\ncount = 4\n[conversations]\nkind = \"groups\"\n");
        s.conversations.group_sizes = vec![GroupSize { size: 5, weight: 1.0 }];
        let e = Population::new(&s).unwrap_err().to_string();
        assert!(e.contains("conversations.group_sizes"), "{e}");
    }
}
