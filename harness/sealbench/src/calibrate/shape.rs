//! The floor of a workload's shape: a minimal load generator and a minimal relay moving
//! the same traffic as a run — `connections` connections, open-loop Poisson sends at
//! `rate` msgs/s in all, sent at the run's `tick` — with nothing a messenger needs and
//! nothing a floor can do without: no WebSocket, no crypto, no allocation, one `write`
//! per message, the relay forwarding each frame as it arrives.
//!
//! Why beside the hop ([`super::hop`]): at 10 msgs/s per connection a real run pays a
//! sleep and a wake-up in each process on nearly every message, which a busy-loop hop does
//! not. Machines differ most in exactly those costs (a timer wake-up was 18 µs on one VM
//! and 30 µs on another), so "CPU per message ÷ this floor at the same shape" is the
//! multiple meant to compare between machines.
//!
//! Two threads, each with its own epoll set: the generator (every client socket and a
//! periodic timerfd at `tick`) and the relay (every accepted socket). Client `i` sends to
//! client `i ^ 1` through the relay; a frame is `bytes` long and starts with its
//! destination as a u32. Each thread's CPU over the sending window, divided by the
//! messages, is its floor. Hand-written because it *is* the measurement.

use crate::clock::{now_ns, thread_cpu_ns};
use crate::rng::Rng;
use anyhow::{Context, Result, bail};
use rustix::event::epoll;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The traffic shape to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Connections (even: they send in pairs).
    pub connections: usize,
    /// Messages a second, all connections together.
    pub rate: f64,
    /// The sender's tick: due messages are sent when it fires.
    pub tick_ns: u64,
    /// Bytes per message on the wire (a 256 B sealed message in its frames: about 300).
    pub bytes: usize,
    /// Seconds of sending measured.
    pub seconds: f64,
}

/// The floor of one shape, as calibrations cache it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShapeFloor {
    /// Connections.
    pub connections: usize,
    /// Messages a second, all connections together.
    pub rate: f64,
    /// The tick, µs.
    pub tick_us: f64,
    /// Generator CPU per message (its send and its receive), ns.
    pub generator_ns: f64,
    /// Relay CPU per message (its receive and its forward), ns.
    pub relay_ns: f64,
    /// When it was measured, where that is not the calibration's own time (a floor kept
    /// from an earlier `calibrate`). Absent: measured with the calibration it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<String>,
}

impl ShapeFloor {
    /// True when this floor is of `connections` at about `rate` (within 25 %) and the
    /// same tick: the shape a run's multiples may be taken against.
    pub fn fits(&self, connections: usize, rate: f64, tick_us: f64) -> bool {
        self.connections == connections
            && rate > 0.0
            && (self.rate / rate - 1.0).abs() <= 0.25
            && (self.tick_us - tick_us).abs() < 0.5
    }
}

const TIMER: u64 = u64::MAX;

/// Measures `shape`.
///
/// # Errors
/// When sockets, epoll or a timerfd are not available, or messages do not arrive.
pub fn measure(shape: Shape) -> Result<ShapeFloor> {
    if shape.connections < 2
        || shape.connections % 2 != 0
        || shape.bytes < 8
        || shape.rate.is_nan()
        || shape.rate <= 0.0
    {
        bail!("a shape needs an even number of connections (at least 2), 8 bytes a message and a positive rate");
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let (mut clients, mut servers) = (Vec::with_capacity(shape.connections), Vec::with_capacity(shape.connections));
    for i in 0..shape.connections {
        let c = TcpStream::connect(addr).with_context(|| format!("connecting {i} of {}", shape.connections))?;
        let (s, _) = listener.accept().context("accepting")?;
        for sock in [&c, &s] {
            sock.set_nodelay(true)?;
            sock.set_nonblocking(true)?;
        }
        clients.push(c);
        servers.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let relay = {
        let (stop, bytes) = (stop.clone(), shape.bytes);
        std::thread::Builder::new().name("floor-relay".into()).spawn(move || relay(servers, bytes, &stop))?
    };
    let generated = generator(&mut clients, shape);
    stop.store(true, Ordering::Relaxed);
    let (relay_cpu, forwarded) = relay.join().map_err(|_| anyhow::anyhow!("the floor's relay thread panicked"))??;
    let (gen_cpu, sent) = generated?;
    if forwarded < sent {
        bail!("the floor's relay forwarded {forwarded} of {sent} messages");
    }
    Ok(ShapeFloor {
        measured_at: None,
        connections: shape.connections,
        rate: shape.rate,
        tick_us: shape.tick_ns as f64 / 1e3,
        generator_ns: gen_cpu as f64 / sent.max(1) as f64,
        relay_ns: relay_cpu as f64 / forwarded.max(1) as f64,
    })
}

fn events() -> Vec<epoll::Event> {
    vec![epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) }; 256]
}

fn write_all(s: &mut TcpStream, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(k) => buf = &buf[k..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e).context("writing a floor message"),
        }
    }
    Ok(())
}

/// The generator: Poisson sends at the tick, receives as they come; (CPU ns, messages
/// sent) over the sending window and the drain after it.
fn generator(clients: &mut [TcpStream], shape: Shape) -> Result<(u64, u64)> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (i, c) in clients.iter().enumerate() {
        epoll::add(&ep, c, epoll::EventData::new_u64(i as u64), epoll::EventFlags::IN)?;
    }
    let timer: OwnedFd = rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK)?;
    let tick = Timespec { tv_sec: (shape.tick_ns / 1_000_000_000) as _, tv_nsec: (shape.tick_ns % 1_000_000_000) as _ };
    rustix::time::timerfd_settime(
        &timer,
        TimerfdTimerFlags::empty(),
        &Itimerspec { it_interval: tick, it_value: tick },
    )?;
    epoll::add(&ep, &timer, epoll::EventData::new_u64(TIMER), epoll::EventFlags::IN)?;
    let mut rng = Rng::new(0x5EA1_F100, 0);
    let mut frame = vec![0x5au8; shape.bytes];
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut evs = events();
    let mean_gap_ns = 1e9 / shape.rate;
    let gap = |rng: &mut Rng| (-(1.0 - rng.next_f64()).ln() * mean_gap_ns) as u64;
    let t0 = now_ns();
    let end = t0 + (shape.seconds * 1e9) as u64;
    let mut next_at = t0 + gap(&mut rng);
    let (mut sent, mut received_bytes) = (0u64, 0u64);
    let cpu0 = thread_cpu_ns();
    loop {
        let now = now_ns();
        if now >= end && received_bytes >= sent * shape.bytes as u64 {
            break;
        }
        if now > end + 5_000_000_000 {
            bail!("the floor's messages did not all arrive within 5 s of the end");
        }
        let wait = Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        let n = epoll::wait(&ep, &mut evs[..], Some(&wait))?;
        for ev in &evs[..n] {
            let j = ev.data.u64();
            if j == TIMER {
                let mut b = [0u8; 8];
                let _ = rustix::io::read(&timer, &mut b);
                let now = now_ns();
                while next_at <= now && next_at < end {
                    let from = (rng.next_u64() % clients.len() as u64) as usize;
                    frame[..4].copy_from_slice(&((from ^ 1) as u32).to_le_bytes());
                    write_all(&mut clients[from], &frame)?;
                    sent += 1;
                    next_at += gap(&mut rng);
                }
                continue;
            }
            loop {
                match clients[j as usize].read(&mut inbuf) {
                    Ok(0) => bail!("a floor connection closed"),
                    Ok(k) => received_bytes += k as u64,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("reading a floor message"),
                }
            }
        }
    }
    Ok((thread_cpu_ns() - cpu0, sent))
}

/// The relay: every frame forwarded to its destination as it arrives; (CPU ns, frames
/// forwarded) until `stop`.
fn relay(mut conns: Vec<TcpStream>, bytes: usize, stop: &AtomicBool) -> Result<(u64, u64)> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (i, c) in conns.iter().enumerate() {
        epoll::add(&ep, c, epoll::EventData::new_u64(i as u64), epoll::EventFlags::IN)?;
    }
    // Each connection's frame in progress (a read may end inside one).
    let mut partial = vec![0u8; conns.len() * bytes];
    let mut filled = vec![0usize; conns.len()];
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut evs = events();
    let mut forwarded = 0u64;
    let cpu0 = thread_cpu_ns();
    while !stop.load(Ordering::Relaxed) {
        let wait = Timespec { tv_sec: 0, tv_nsec: 50_000_000 };
        let n = epoll::wait(&ep, &mut evs[..], Some(&wait))?;
        for ev in &evs[..n] {
            let j = ev.data.u64() as usize;
            loop {
                let k = match conns[j].read(&mut inbuf) {
                    Ok(0) => bail!("a floor connection closed"),
                    Ok(k) => k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("reading at the floor's relay"),
                };
                let mut at = 0;
                while at < k {
                    let take = (bytes - filled[j]).min(k - at);
                    let base = j * bytes;
                    partial[base + filled[j]..base + filled[j] + take].copy_from_slice(&inbuf[at..at + take]);
                    (filled[j], at) = (filled[j] + take, at + take);
                    if filled[j] == bytes {
                        let f = &partial[base..base + bytes];
                        let dest = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
                        if dest >= conns.len() {
                            bail!("a floor frame for connection {dest}");
                        }
                        write_all(&mut conns[dest], f)?;
                        forwarded += 1;
                        filled[j] = 0;
                    }
                }
            }
        }
    }
    Ok((thread_cpu_ns() - cpu0, forwarded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_of_the_shape_is_sent_forwarded_and_received() {
        // `measure` fails unless the relay forwarded every message the generator sent and
        // the generator received them all.
        let f = measure(Shape { connections: 20, rate: 2000.0, tick_ns: 200_000, bytes: 300, seconds: 0.5 }).unwrap();
        assert!(f.generator_ns > 0.0 && f.relay_ns > 0.0, "{f:?}");
        assert!(f.fits(20, 2100.0, 200.0) && !f.fits(20, 4000.0, 200.0) && !f.fits(40, 2000.0, 200.0));
        assert!(measure(Shape { connections: 3, rate: 1.0, tick_ns: 1, bytes: 300, seconds: 0.1 }).is_err());
    }
}
