//! Churn: devices that go offline and come back during the sending phase, the reconnect
//! storm, and the stages' connected-client targets (devices above the target are held
//! offline; they come back as it rises). Leaving closes the connection cleanly (the relay puts what it had
//! queued back into the device's mailbox); coming back is a new connection and the wire's
//! resumption (sealbench: HELLO; MQTT: CONNECT to the session the broker kept), after which
//! the server delivers the stored messages first. The device's end-to-end sessions resume
//! from their state: no new handshake.
//!
//! The plan (who leaves and returns when) is pure and seeded ([`Plan`]); [`run`] carries
//! it out on the shard's runtime.

use super::bring_up_reader_writer;
use super::state::State;
use crate::clock::now_ns;
use crate::driver::client::{self, Registration};
use crate::driver::schedule::Rng;
use crate::driver::{Control, ShardSpec};
use crate::scenario::Churn;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// A failed reconnection is tried again this much later.
const RETRY_NS: u64 = 250_000_000;

/// What happens to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Leave,
    Return,
}

/// The churn timeline of a shard: a heap of (time, device, step).
#[derive(Debug)]
pub(super) struct Plan {
    heap: BinaryHeap<Reverse<(u64, usize, Step)>>,
    rng: Rng,
    /// Which devices churn (a device the storm took but that does not churn comes back
    /// and stays).
    churns: Vec<bool>,
    online_mean_ns: f64,
    offline_mean_ns: f64,
    /// The storm: when, which share, and the window its devices return within.
    storm: Option<(u64, f64, u64)>,
}

impl Plan {
    /// The first departures of the churning devices (`churns[i]`), from `t0`.
    pub(super) fn new(churn: &Churn, churns: &[bool], t0: u64, seed: u64) -> Plan {
        let mut p = Plan {
            heap: BinaryHeap::new(),
            rng: Rng::new(seed, 0xC4A27),
            churns: churns.to_vec(),
            online_mean_ns: churn.online.as_nanos() as f64,
            offline_mean_ns: churn.offline.as_nanos() as f64,
            storm: churn.storm.as_ref().map(|s| (t0 + s.at.as_nanos() as u64, s.share, s.within.as_nanos() as u64)),
        };
        for (i, _) in churns.iter().enumerate().filter(|(_, c)| **c) {
            let at = t0 + p.exp(p.online_mean_ns);
            p.heap.push(Reverse((at, i, Step::Leave)));
        }
        p
    }

    fn exp(&mut self, mean: f64) -> u64 {
        (-(1.0 - self.rng.next_f64()).ln() * mean) as u64
    }

    /// When the next step is due (the storm included).
    pub(super) fn next_due(&self) -> Option<u64> {
        let h = self.heap.peek().map(|r| r.0.0);
        match (h, self.storm) {
            (Some(a), Some((b, ..))) => Some(a.min(b)),
            (a, b) => a.or(b.map(|s| s.0)),
        }
    }

    /// The steps due at `now`, in order; `online(i)` says whether device `i` is online.
    /// A departure schedules the return, a return the next departure.
    pub(super) fn due(&mut self, now: u64, online: impl Fn(usize) -> bool, devices: usize) -> Vec<(usize, Step)> {
        let mut out = Vec::new();
        if let Some((at, share, within)) = self.storm
            && at <= now
        {
            self.storm = None;
            for i in (0..devices).filter(|&i| online(i)) {
                if self.rng.next_f64() < share {
                    out.push((i, Step::Leave));
                    let back = now + (self.rng.next_f64() * within as f64) as u64;
                    self.heap.push(Reverse((back, i, Step::Return)));
                }
            }
        }
        while let Some(&Reverse((at, i, step))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let stormed = out.iter().any(|&(j, _)| j == i);
            match step {
                Step::Leave if stormed => {} // the storm took it; its return is scheduled
                Step::Leave => {
                    if online(i) {
                        out.push((i, Step::Leave));
                    }
                    let back = now + self.exp(self.offline_mean_ns);
                    self.heap.push(Reverse((back, i, Step::Return)));
                }
                Step::Return => {
                    out.push((i, Step::Return));
                    if self.churns[i] {
                        let next = now + self.exp(self.online_mean_ns);
                        self.heap.push(Reverse((next, i, Step::Leave)));
                    }
                }
            }
        }
        out
    }

    /// A reconnection of device `i` failed: try again soon.
    fn retry(&mut self, i: usize, now: u64) {
        self.heap.push(Reverse((now + RETRY_NS, i, Step::Return)));
    }
}

/// How often the connected-client target is followed.
const PRESENCE_PERIOD_NS: u64 = 100_000_000;

/// What a shard's churn needs.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    churn: Churn,
    churns: Vec<bool>,
    seed: u64,
    target: client::Target,
    /// The run's plan, when its stages set connected-client targets.
    presence: Option<std::sync::Arc<crate::scenario::Plan>>,
}

impl Setup {
    /// The shard's churn, if its scenario has any (churn, a storm, or client targets).
    pub(super) fn of(spec: &ShardSpec) -> Option<Setup> {
        let presence = spec.plan.clients_at(0.0).is_some().then(|| spec.plan.clone());
        let churn = spec.plan.scenario.churn.clone().unwrap_or(Churn {
            share: 0.0,
            online: std::time::Duration::from_secs(1),
            offline: std::time::Duration::from_secs(1),
            storm: None,
        });
        let churns: Vec<bool> = spec.clients.iter().map(|c| c.churns).collect();
        if !churns.iter().any(|&c| c) && churn.storm.is_none() && presence.is_none() {
            return None;
        }
        Some(Setup { churn, churns, seed: spec.seed ^ spec.index as u64, target: spec.target.clone(), presence })
    }
}

/// Carries out churn from `t0` until `stop_at` (or a stop): devices leave and come back.
pub(super) async fn run(setup: Setup, control: Control, state: Rc<RefCell<State>>, t0: u64, stop_at: u64) {
    let plan = Rc::new(RefCell::new(Plan::new(&setup.churn, &setup.churns, t0, setup.seed)));
    let devices = setup.churns.len();
    let mut next_presence = t0;
    while !control.stop.load(Ordering::Relaxed) && now_ns() < stop_at {
        if let Some(p) = setup.presence.as_ref().filter(|_| now_ns() >= next_presence) {
            let t_s = now_ns().saturating_sub(t0) as f64 / 1e9;
            if let Some(all) = p.clients_at(t_s) {
                let mine = (all * devices as f64 / p.scenario.clients.count as f64).round() as usize;
                follow_target(&setup, &state, &plan, mine.min(devices));
            }
            next_presence = now_ns() + PRESENCE_PERIOD_NS;
        }
        let due = plan.borrow().next_due().unwrap_or(stop_at);
        let wake = if setup.presence.is_some() { due.min(next_presence) } else { due }.min(stop_at);
        // Churn steps need millisecond precision, not the senders' timer.
        let nap = wake.saturating_sub(now_ns()).min(50_000_000);
        tokio::time::sleep(std::time::Duration::from_nanos(nap)).await;
        let now = now_ns();
        if now >= stop_at {
            break;
        }
        let steps = {
            let st = state.borrow();
            plan.borrow_mut().due(now, |i| st.net.clients[i].tx.is_some(), devices)
        };
        for (i, step) in steps {
            match step {
                Step::Leave => leave(&mut state.borrow_mut(), i),
                Step::Return if state.borrow().net.clients[i].parked => {} // held offline by the target
                Step::Return => return_later(&setup, &state, &plan, i),
            }
        }
    }
}

/// Starts device `i`'s reconnection.
fn return_later(setup: &Setup, state: &Rc<RefCell<State>>, plan: &Rc<RefCell<Plan>>, i: usize) {
    let (state, plan, target) = (state.clone(), plan.clone(), setup.target.clone());
    tokio::task::spawn_local(async move { come_back(&state, &plan, &target, i).await });
}

/// Parks or unparks devices so that `target` of this shard's devices are not held
/// offline by the stages (devices offline for churn count as connected here: the target
/// bounds presence, churn comes on top). Parks from the highest index down, unparks in
/// the reverse order.
fn follow_target(setup: &Setup, state: &Rc<RefCell<State>>, plan: &Rc<RefCell<Plan>>, target: usize) {
    let mut st = state.borrow_mut();
    let n = st.net.clients.len();
    let parked = st.net.clients.iter().filter(|c| c.parked).count();
    let want_parked = n - target;
    if parked < want_parked {
        for i in (0..n).rev().filter(|&i| !st.net.clients[i].parked).take(want_parked - parked).collect::<Vec<_>>() {
            st.net.clients[i].parked = true;
            leave(&mut st, i);
        }
    } else if parked > want_parked {
        let back: Vec<usize> = (0..n).filter(|&i| st.net.clients[i].parked).take(parked - want_parked).collect();
        for &i in &back {
            st.net.clients[i].parked = false;
        }
        drop(st);
        for i in back {
            return_later(setup, state, plan, i);
        }
    }
}

/// Device `i` goes offline: its queue closes, its writer sends a close frame, and its
/// reader (of a connection no longer current) reads until the relay closes.
fn leave(st: &mut State, i: usize) {
    let c = &mut st.net.clients[i];
    if c.tx.take().is_some() {
        c.generation += 1;
        st.net.connected = st.net.connected.saturating_sub(1);
    }
}

/// Device `i` comes back: a new connection and HELLO; stored messages follow WELCOME.
async fn come_back(state: &Rc<RefCell<State>>, plan: &Rc<RefCell<Plan>>, target: &client::Target, i: usize) {
    let (id, source) = {
        let mut st = state.borrow_mut();
        let c = &st.net.clients[i];
        if c.tx.is_some() || c.returning || c.parked || st.closing {
            return;
        }
        st.net.clients[i].returning = true;
        (st.devices[i].id, st.net.clients[i].source)
    };
    let r = client::connect(target, source, id, Registration { resume: true, ..Registration::default() }).await;
    state.borrow_mut().net.clients[i].returning = false;
    match r {
        Ok(reg) => {
            let mut st = state.borrow_mut();
            if st.closing {
                return;
            }
            st.books.counters.reconnects += 1;
            let now = now_ns();
            let stored = st.stored_at_return(i, reg.stored);
            st.net.clients[i].stored_left = stored;
            st.net.clients[i].welcome_ns = now;
            drop(st);
            bring_up_reader_writer(state, i, reg);
        }
        Err(e) => {
            let mut st = state.borrow_mut();
            st.books.counters.reconnect_failures += 1;
            let e = match e {
                client::ConnectFailure::Connect(e) | client::ConnectFailure::Register(e) => e,
            };
            st.first_error.get_or_insert_with(|| format!("reconnect: {e:#}"));
            plan.borrow_mut().retry(i, now_ns());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn churn(storm: Option<crate::scenario::Storm>) -> Churn {
        Churn { share: 1.0, online: Duration::from_secs(2), offline: Duration::from_secs(1), storm }
    }

    #[test]
    fn devices_alternate_between_leaving_and_returning() {
        let mut p = Plan::new(&churn(None), &[true, false, true], 0, 7);
        let mut online = [true, true, true];
        let mut seen = [0, 0, 0];
        let mut t = 0;
        while t < 60_000_000_000 {
            t = p.next_due().unwrap();
            for (i, step) in p.due(t, |i| online[i], 3) {
                assert_eq!(online[i], step == Step::Leave, "a device leaves only when online, returns when not");
                online[i] = step == Step::Return;
                seen[i] += 1;
            }
        }
        assert_eq!(seen[1], 0, "a device that does not churn stays");
        // 60 s of 2 s online + 1 s offline: about 20 cycles, 40 steps.
        assert!((25..=60).contains(&seen[0]) && (25..=60).contains(&seen[2]), "{seen:?}");
    }

    #[test]
    fn a_storm_takes_its_share_of_the_online_devices_at_once_and_returns_them_within_the_window() {
        let storm = crate::scenario::Storm { at: Duration::from_secs(5), share: 0.5, within: Duration::from_secs(2) };
        let mut c = churn(Some(storm));
        c.share = 0.0;
        let n = 2000;
        let mut p = Plan::new(&c, &vec![false; n], 0, 3);
        assert_eq!(p.next_due(), Some(5_000_000_000));
        let left = p.due(5_000_000_000, |_| true, n);
        assert!(left.iter().all(|&(_, s)| s == Step::Leave));
        assert!((900..=1100).contains(&left.len()), "{}", left.len());
        let mut back = 0;
        while let Some(t) = p.next_due() {
            if t > 7_000_000_000 {
                break;
            }
            back += p.due(t, |_| false, n).iter().filter(|s| s.1 == Step::Return).count();
        }
        assert_eq!(back, left.len(), "every stormed device is back within the window");
    }
}
