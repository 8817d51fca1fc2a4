//! The floor of one loopback TCP hop: what the kernel charges a process to move one
//! message from one socket to another on this machine, the unit every relay and every
//! load generator pays at least once per message.
//!
//! One thread, `connections` connected pairs over 127.0.0.1 with `TCP_NODELAY` (as the
//! driver's and the relay's sockets), every receiving end in one epoll set. A round
//! writes `batch` messages of `bytes` each to one sending end in one `write`, waits in
//! `epoll_wait`, and reads everything ready; the sending ends are taken in turn, so the
//! caches see as many sockets as a real run does. The thread's CPU time over the rounds,
//! divided by the messages moved, is the hop: write + wake + read, both sides' system
//! calls, nothing else. Hand-written because it *is* the measurement (no library measures
//! this); no allocation inside the timed loop.

use crate::clock::thread_cpu_ns;
use anyhow::{Context, Result, bail};
use rustix::event::epoll;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;

/// How long one round may wait for its bytes before the measurement fails (it takes
/// microseconds; this only bounds a broken machine).
const WAIT_AT_MOST: rustix::time::Timespec = rustix::time::Timespec { tv_sec: 5, tv_nsec: 0 };

/// One hop measurement's shape.
#[derive(Debug, Clone, Copy)]
pub struct HopShape {
    /// Connected socket pairs.
    pub connections: usize,
    /// Bytes per message (a sealed 256 B message in its frame and WebSocket header is
    /// about 300).
    pub bytes: usize,
    /// Messages per write.
    pub batch: usize,
    /// Rounds (writes) timed.
    pub rounds: usize,
}

/// A set of connected pairs and the epoll set of their receiving ends.
#[derive(Debug)]
pub struct Loopback {
    senders: Vec<TcpStream>,
    receivers: Vec<TcpStream>,
    epoll: OwnedFd,
}

impl Loopback {
    /// Connects `n` pairs over 127.0.0.1.
    ///
    /// # Errors
    /// When sockets cannot be made (the open-file limit: two per pair).
    pub fn new(n: usize) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
        let addr = listener.local_addr()?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).context("creating an epoll set")?;
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for i in 0..n {
            let s = TcpStream::connect(addr).with_context(|| format!("connecting loopback pair {i} of {n}"))?;
            let (r, _) = listener.accept().context("accepting a loopback pair")?;
            for sock in [&s, &r] {
                sock.set_nodelay(true)?;
                sock.set_nonblocking(true)?;
            }
            epoll::add(&epoll, &r, epoll::EventData::new_u64(i as u64), epoll::EventFlags::IN)
                .context("adding a socket to the epoll set")?;
            senders.push(s);
            receivers.push(r);
        }
        Ok(Loopback { senders, receivers, epoll })
    }

    /// CPU ns per message for `shape` (its `connections` is this set's size).
    ///
    /// # Errors
    /// When a socket fails or a message does not arrive.
    pub fn measure(&mut self, shape: HopShape) -> Result<f64> {
        let n = self.senders.len();
        if n == 0 || shape.batch == 0 || shape.bytes == 0 {
            bail!("a hop needs at least one connection, one message and one byte");
        }
        let out = vec![0x5au8; shape.bytes * shape.batch];
        let mut inbuf = vec![0u8; 64 * 1024];
        let mut events =
            vec![epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) }; 64];
        let cpu0 = thread_cpu_ns();
        for round in 0..shape.rounds {
            let i = round % n;
            let mut written = 0;
            while written < out.len() {
                match self.senders[i].write(&out[written..]) {
                    Ok(k) => written += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                    Err(e) => return Err(e).context("writing on a loopback pair"),
                }
            }
            let mut read = 0;
            while read < out.len() {
                let ready = epoll::wait(&self.epoll, &mut events[..], Some(&WAIT_AT_MOST)).context("epoll_wait")?;
                if ready == 0 {
                    bail!("a loopback message did not arrive within {} s", WAIT_AT_MOST.tv_sec);
                }
                for ev in &events[..ready] {
                    let j = ev.data.u64() as usize;
                    loop {
                        match self.receivers[j].read(&mut inbuf) {
                            Ok(0) => bail!("a loopback pair closed"),
                            Ok(k) => read += k,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e).context("reading a loopback pair"),
                        }
                    }
                }
            }
        }
        let cpu = thread_cpu_ns() - cpu0;
        Ok(cpu as f64 / (shape.rounds * shape.batch) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_moves_every_byte_of_every_round() {
        // `measure` fails unless every byte written arrives on the other end.
        let mut l = Loopback::new(8).unwrap();
        let one = l.measure(HopShape { connections: 8, bytes: 300, batch: 1, rounds: 200 }).unwrap();
        let many = l.measure(HopShape { connections: 8, bytes: 300, batch: 16, rounds: 50 }).unwrap();
        assert!(one > 0.0 && many > 0.0);
        assert!(l.measure(HopShape { connections: 8, bytes: 300, batch: 0, rounds: 1 }).is_err());
    }
}
