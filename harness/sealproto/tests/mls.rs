//! MLS through the adapter, with a simulated relay (one FIFO queue per device, the group's
//! fan-out to the members at send time): a group of 20 with adds, removes and
//! self-updates during traffic delivers every application message to every member that
//! was in the group when it was sent, with exact accounting.
#![cfg(feature = "mls")]

use sealproto::ProtoError;
use sealproto::mls::{MlsMember, PAST_EPOCHS, Processed};
use std::collections::{BTreeSet, VecDeque};

type R = Result<(), Box<dyn std::error::Error>>;

/// xorshift64*: deterministic choices without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

enum Wire {
    Commit(Vec<u8>),
    App { msg: u32, bytes: Vec<u8> },
}

struct Sim {
    devices: Vec<MlsMember>,
    queues: Vec<VecDeque<std::rc::Rc<Wire>>>,
    /// The relay's group: who gets a fan-out now.
    group: BTreeSet<usize>,
    expected: u64,
    delivered: u64,
    got: Vec<BTreeSet<u32>>,
    errors: std::collections::BTreeMap<&'static str, u64>,
}

fn id(d: usize) -> [u8; 8] {
    (d as u64 + 1).to_le_bytes()
}

impl Sim {
    fn fan_out(&mut self, from: usize, w: Wire) {
        let w = std::rc::Rc::new(w);
        let app = matches!(*w, Wire::App { .. });
        for &m in self.group.iter().filter(|&&m| m != from) {
            self.queues[m].push_back(w.clone());
            self.expected += u64::from(app);
        }
    }

    /// Device `d` processes up to `n` queued messages.
    fn drain(&mut self, d: usize, n: usize) -> R {
        for _ in 0..n {
            let Some(w) = self.queues[d].pop_front() else { return Ok(()) };
            match &*w {
                Wire::Commit(b) => match self.devices[d].process(b)? {
                    Processed::Commit { .. } | Processed::Removed => {}
                    other => return Err(format!("a commit processed as {other:?}").into()),
                },
                Wire::App { msg, bytes } => match self.devices[d].process(bytes) {
                    Ok(Processed::Application(pt)) => {
                        assert_eq!(pt, msg.to_le_bytes(), "the plaintext is the message's own");
                        assert!(self.got[d].insert(*msg), "delivered twice");
                        self.delivered += 1;
                    }
                    Ok(other) => return Err(format!("an application message processed as {other:?}").into()),
                    Err(e) => *self.errors.entry(e.name()).or_default() += 1,
                },
            }
        }
        Ok(())
    }

    fn catch_up(&mut self, d: usize) -> R {
        let n = self.queues[d].len();
        self.drain(d, n)
    }
}

#[test]
fn an_mls_group_of_20_with_adds_removes_and_self_updates_delivers_every_message() -> R {
    const START: usize = 20;
    const POOL: usize = 26; // devices that may join later
    let mut sim = Sim {
        devices: (0..POOL).map(|d| MlsMember::new(&id(d))).collect::<Result<_, _>>()?,
        queues: (0..POOL).map(|_| VecDeque::new()).collect(),
        group: BTreeSet::new(),
        expected: 0,
        delivered: 0,
        got: vec![BTreeSet::new(); POOL],
        errors: Default::default(),
    };
    // The first device creates the group, adding 19 others in one commit.
    let kps: Vec<Vec<u8>> = (1..START).map(|d| sim.devices[d].key_package(false)).collect::<Result<_, _>>()?;
    let refs: Vec<&[u8]> = kps.iter().map(Vec::as_slice).collect();
    let c = sim.devices[0].create_group(b"group-1", &refs)?;
    let welcome = c.welcome.ok_or("no welcome")?;
    for d in 1..START {
        assert_eq!(sim.devices[d].join(&welcome)?, c.epoch);
    }
    sim.group = (0..START).collect();
    assert_eq!(sim.devices[5].members(), START);

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut msg = 0u32;
    let (mut adds, mut removes, mut updates) = (0, 0, 0);
    let mut outside: Vec<usize> = (START..POOL).collect();
    for round in 0..400 {
        let members: Vec<usize> = sim.group.iter().copied().collect();
        match rng.below(20) {
            // A commit: by an up-to-date member (the relay orders commits; sealbench's
            // driver lets one member commit at a time).
            0 => {
                let by = members[rng.below(members.len())];
                sim.catch_up(by)?;
                match rng.below(3) {
                    0 if !outside.is_empty() => {
                        let joiner = outside.remove(0);
                        let kp = sim.devices[joiner].key_package(false)?;
                        let c = sim.devices[by].add(&[&kp])?;
                        sim.fan_out(by, Wire::Commit(c.commit));
                        sim.devices[joiner].join(&c.welcome.ok_or("no welcome")?)?;
                        sim.group.insert(joiner);
                        adds += 1;
                    }
                    1 if members.len() > 12 => {
                        let gone = *members.iter().find(|&&m| m != by).ok_or("no one to remove")?;
                        let c = sim.devices[by].remove(&[&id(gone)])?;
                        sim.group.remove(&gone);
                        // The removed device still gets the commit that removes it.
                        sim.queues[gone].push_back(std::rc::Rc::new(Wire::Commit(c.commit.clone())));
                        sim.fan_out(by, Wire::Commit(c.commit));
                        sim.catch_up(gone)?;
                        assert!(!sim.devices[gone].in_group(), "removed at round {round}");
                        removes += 1;
                    }
                    _ => {
                        let c = sim.devices[by].self_update()?;
                        sim.fan_out(by, Wire::Commit(c.commit));
                        updates += 1;
                    }
                }
            }
            // An application message from a member that has read its queue.
            1..=12 => {
                let from = members[rng.below(members.len())];
                sim.catch_up(from)?;
                let mut bytes = Vec::new();
                sim.devices[from].encrypt(&msg.to_le_bytes(), &mut bytes)?;
                sim.fan_out(from, Wire::App { msg, bytes });
                msg += 1;
            }
            // Members read part of their queues (commits stay in flight meanwhile).
            _ => {
                let d = members[rng.below(members.len())];
                let n = rng.below(6);
                sim.drain(d, n)?;
            }
        }
    }
    for d in sim.group.clone() {
        sim.catch_up(d)?;
    }
    assert!(adds > 0 && removes > 0 && updates > 0, "adds {adds}, removes {removes}, updates {updates}");
    assert!(sim.errors.is_empty(), "undecryptable: {:?}", sim.errors);
    assert_eq!(sim.delivered, sim.expected, "every message to every member at its send time");
    assert!(sim.expected > 1000);
    let epoch = sim.devices[*sim.group.first().ok_or("empty")?].epoch();
    assert!(sim.group.iter().all(|&d| sim.devices[d].epoch() == epoch), "one epoch for all");
    Ok(())
}

#[test]
fn a_message_from_an_epoch_past_the_kept_secrets_is_counted_as_old_epoch() -> R {
    let mut a = MlsMember::new(b"a")?;
    let mut b = MlsMember::new(b"b")?;
    let kp = b.key_package(false)?;
    let c = a.create_group(b"g", &[&kp])?;
    b.join(&c.welcome.ok_or("no welcome")?)?;
    let mut early = Vec::new();
    a.encrypt(b"early", &mut early)?;
    let mut recent = Vec::new();
    for i in 0..=PAST_EPOCHS {
        let c = a.self_update()?;
        b.process(&c.commit)?;
        if i == 0 {
            a.encrypt(b"recent", &mut recent)?;
        }
    }
    assert_eq!(b.process(&early), Err(ProtoError::OldEpoch));
    assert_eq!(b.process(&recent)?, Processed::Application(b"recent".to_vec()), "within the kept epochs");
    assert_eq!(b.process(&recent), Err(ProtoError::Replay));
    let mut next = Vec::new();
    a.encrypt(b"next", &mut next)?;
    let c = a.remove(&[b"b"])?;
    assert_eq!(b.process(&c.commit)?, Processed::Removed);
    assert_eq!(b.process(&next), Err(ProtoError::NotMember));
    Ok(())
}

#[test]
fn a_removed_member_rejoins_the_same_group_from_a_fresh_key_package() -> R {
    // The creator removes device 1, then re-adds it: device 1 still holds its (inactive)
    // state of that group id, which openmls would refuse a Welcome over; join drops it.
    let mut a = MlsMember::new(&id(0))?;
    let mut b = MlsMember::new(&id(1))?;
    let kp = b.key_package(false)?;
    let created = a.create_group(b"g", &[&kp])?;
    b.join(created.welcome.as_deref().ok_or("a Welcome")?)?;
    let removal = a.remove(&[&id(1)])?;
    assert_eq!(b.process(&removal.commit)?, Processed::Removed);
    assert!(!b.in_group());
    let mut m = Vec::new();
    a.encrypt(b"after the removal", &mut m)?;
    assert_eq!(b.process(&m), Err(ProtoError::NotMember), "a removed member reads nothing");
    assert_eq!(b.last_epoch(), removal.epoch, "but it knows the message's epoch");

    let fresh = b.key_package(false)?;
    let readd = a.add(&[&fresh])?;
    assert_eq!(b.join(readd.welcome.as_deref().ok_or("a Welcome")?)?, readd.epoch);
    assert!(b.in_group() && b.members() == 2);
    m.clear();
    a.encrypt(b"welcome back", &mut m)?;
    assert_eq!(b.process(&m)?, Processed::Application(b"welcome back".to_vec()));
    Ok(())
}
