//! uring-hop: what one loopback TCP hop costs in CPU when the writes and reads of many
//! *different* connections share one system call (io_uring), against the epoll floor that
//! `sealbench calibrate` measures (harness/sealbench/src/calibrate/hop.rs).
//!
//! Same shape as calibrate's hop: `--conns` connected pairs over 127.0.0.1, TCP_NODELAY,
//! nonblocking, `--bytes`-byte messages, one thread (plus, for SQPOLL only, the kernel's
//! submission thread, which belongs to this process and is counted). CPU is
//! getrusage(RUSAGE_SELF) — every thread of the process, io_uring's io-wq workers and SQPOLL
//! thread included — over the timed rounds, divided by the messages moved. Variants are
//! measured in interleaved rounds (the order rotates each round); the table gives the median
//! and the min–max over rounds. Every message's bytes are counted on its receiver, per
//! socket, and any shortfall or excess fails the run.

use io_uring::{IoUring, opcode, squeue, types};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

/// How long any wait may take before the run fails (a hop takes microseconds).
const WAIT_AT_MOST_S: u64 = 5;
/// Receive buffer per in-flight receive: larger than a message, so an excess is seen.
const RBUF: usize = 4096;
/// SQPOLL thread idle time before it sleeps (ms).
const SQPOLL_IDLE_MS: u32 = 10;

fn process_cpu_ns() -> u64 {
    // SAFETY: rusage is plain integers, all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into `ru`, which we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn thread_cpu_ns() -> u64 {
    // SAFETY: timespec is plain integers, all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes only into `ts`, which we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Threads of this process other than the main one (io_uring's io-wq workers "iou-wrk-*",
/// the SQPOLL thread "iou-sqp-*"), with their on-CPU ns from /proc/self/task/*/schedstat.
fn other_threads() -> Vec<(String, u64)> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let tid = e.file_name().to_string_lossy().to_string();
            if tid == me {
                continue;
            }
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
            let ns = std::fs::read_to_string(e.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
                .unwrap_or(0);
            out.push((comm, ns));
        }
    }
    out
}

/// The kernel's softirq threads (ksoftirqd/N). Loopback delivery normally runs its softirq
/// in the sender's own context (charged to us); when softirqs are deferred, the receive path's
/// work lands on these threads and not on this process. Their CPU over a run is reported
/// beside ours (system-wide: other processes' softirqs count there too).
fn ksoftirqd_pids() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.bytes().all(|b| b.is_ascii_digit())
                && std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with("ksoftirqd/"))
            {
                out.push(name);
            }
        }
    }
    out
}

fn ksoftirqd_ns(pids: &[String]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
        .sum()
}

struct Pairs {
    senders: Vec<TcpStream>,
    receivers: Vec<TcpStream>,
}

impl Pairs {
    fn new(n: usize) -> Res<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for i in 0..n {
            let s = TcpStream::connect(addr).map_err(|e| format!("connect pair {i}: {e}"))?;
            let (r, _) = listener.accept().map_err(|e| format!("accept pair {i}: {e}"))?;
            for sock in [&s, &r] {
                sock.set_nodelay(true).map_err(|e| e.to_string())?;
                sock.set_nonblocking(true).map_err(|e| e.to_string())?;
            }
            senders.push(s);
            receivers.push(r);
        }
        Ok(Pairs { senders, receivers })
    }
    fn n(&self) -> usize {
        self.senders.len()
    }
}

/// Epoll: per round, `per_sock` messages in one write to each of `k` different senders
/// (k writes), then epoll_wait + read until all arrived. k = 1, per_sock = 1 is calibrate's
/// unbatched hop; k = 1, per_sock = 16 its batched one.
fn run_epoll(p: &mut Pairs, k: usize, per_sock: usize, bytes: usize, msgs: usize) -> Res<Sample> {
    let n = p.n();
    let ep = epoll_create()?;
    for (i, r) in p.receivers.iter().enumerate() {
        epoll_ctl(ep, libc::EPOLL_CTL_ADD, r.as_raw_fd(), i as u64)?;
    }
    let out = vec![0x5au8; bytes * per_sock];
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut got = vec![0usize; n];
    let rounds = msgs.div_ceil(k * per_sock);
    let (mut total_w, mut total_r) = (0usize, 0usize);
    let (c0, t0, w0) = (process_cpu_ns(), thread_cpu_ns(), Instant::now());
    for round in 0..rounds {
        let base = round * k;
        for j in 0..k {
            let i = (base + j) % n;
            let mut written = 0;
            let mut spins = 0u32;
            while written < out.len() {
                match p.senders[i].write(&out[written..]) {
                    Ok(w) => written += w,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        spins += 1;
                        if spins > 10_000_000 {
                            return Err("a sender stayed full".into());
                        }
                        std::hint::spin_loop()
                    }
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            total_w += written;
        }
        let want = k * out.len();
        let mut read = 0;
        while read < want {
            // SAFETY: `events` is a live buffer of events.len() entries owned by this frame.
            let ready = unsafe {
                libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, (WAIT_AT_MOST_S * 1000) as i32)
            };
            if ready < 0 {
                return Err(format!("epoll_wait: {}", std::io::Error::last_os_error()));
            }
            if ready == 0 {
                return Err(format!("epoll: {} of {want} bytes arrived within {WAIT_AT_MOST_S} s", read));
            }
            for ev in &events[..ready as usize] {
                let j = ev.u64 as usize;
                loop {
                    match p.receivers[j].read(&mut inbuf) {
                        Ok(0) => return Err("a loopback pair closed".into()),
                        Ok(r) => {
                            read += r;
                            got[j] += r;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
            }
        }
        if read != want {
            return Err(format!("epoll round {round}: read {read} bytes, wrote {want}"));
        }
        total_r += read;
    }
    let s = Sample::new(c0, t0, w0, rounds * k * per_sock);
    for (i, r) in p.receivers.iter().enumerate() {
        epoll_ctl(ep, libc::EPOLL_CTL_DEL, r.as_raw_fd(), i as u64)?;
    }
    // SAFETY: `ep` is the epoll fd created above and not used after this.
    unsafe { libc::close(ep) };
    check_counts(total_w, total_r, &got, rounds, k, per_sock * bytes, n)?;
    Ok(s)
}

fn epoll_create() -> Res<RawFd> {
    // SAFETY: plain syscall, no pointers.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 { Err(format!("epoll_create1: {}", std::io::Error::last_os_error())) } else { Ok(fd) }
}

fn epoll_ctl(ep: RawFd, op: i32, fd: RawFd, data: u64) -> Res<()> {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: data };
    // SAFETY: `ev` lives across the call.
    let rc = unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
    if rc < 0 { Err(format!("epoll_ctl: {}", std::io::Error::last_os_error())) } else { Ok(()) }
}

/// Every receiver got exactly what its sender was sent, and the totals agree.
fn check_counts(w: usize, r: usize, got: &[usize], rounds: usize, k: usize, per: usize, n: usize) -> Res<()> {
    if w != r || w != rounds * k * per {
        return Err(format!("bytes: wrote {w}, read {r}, expected {}", rounds * k * per));
    }
    for (i, g) in got.iter().enumerate() {
        // Socket i was a target once for each slot index (round*k + j) % n == i.
        let total = rounds * k;
        let times = total / n + usize::from(i < total % n);
        if *g != times * per {
            return Err(format!("socket {i}: read {g} bytes, expected {}", times * per));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    /// Default ring, plain fds.
    Plain,
    /// Registered files (IOSQE_FIXED_FILE).
    Fixed,
    /// Registered files + IORING_SETUP_SINGLE_ISSUER + IORING_SETUP_DEFER_TASKRUN.
    FixedDefer,
    /// Registered files + IORING_SETUP_SQPOLL (kernel submission thread; its CPU counted).
    SqPoll,
}

struct Ring {
    ring: IoUring,
    flavour: Flavour,
}

impl Ring {
    fn new(flavour: Flavour, p: &Pairs) -> Res<Self> {
        let mut b = IoUring::builder();
        match flavour {
            Flavour::Plain | Flavour::Fixed => {}
            Flavour::FixedDefer => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
            Flavour::SqPoll => {
                b.setup_sqpoll(SQPOLL_IDLE_MS);
            }
        }
        let ring = b.build(512).map_err(|e| format!("io_uring_setup ({flavour:?}): {e}"))?;
        if !ring.params().is_feature_ext_arg() {
            return Err("kernel lacks IORING_FEAT_EXT_ARG (bounded waits)".into());
        }
        if flavour != Flavour::Plain {
            let fds: Vec<RawFd> = p.senders.iter().chain(p.receivers.iter()).map(|s| s.as_raw_fd()).collect();
            ring.submitter().register_files(&fds).map_err(|e| format!("register_files ({flavour:?}): {e}"))?;
        }
        Ok(Ring { ring, flavour })
    }

    fn send(&self, p: &Pairs, i: usize, buf: *const u8, len: usize) -> squeue::Entry {
        if self.flavour == Flavour::Plain {
            opcode::Send::new(types::Fd(p.senders[i].as_raw_fd()), buf, len as u32).build()
        } else {
            opcode::Send::new(types::Fixed(i as u32), buf, len as u32).build()
        }
    }

    fn recv(&self, p: &Pairs, i: usize, buf: *mut u8, len: usize) -> squeue::Entry {
        if self.flavour == Flavour::Plain {
            opcode::Recv::new(types::Fd(p.receivers[i].as_raw_fd()), buf, len as u32).build()
        } else {
            opcode::Recv::new(types::Fixed((p.n() + i) as u32), buf, len as u32).build()
        }
    }

    fn push(&mut self, e: squeue::Entry) -> Res<()> {
        // SAFETY: every SQE points at a run's `out` (send) or a slot of its `rbufs` (recv),
        // or (multishot) carries no buffer; `run_uring`/`run_multishot` own those buffers
        // and free them only after every completion submitted was reaped (a round does not
        // end with anything in flight); on an error they leak them instead of freeing.
        unsafe { self.ring.submission().push(&e) }.map_err(|_| "submission queue full".to_string())
    }

    /// Submits what is queued and waits (bounded) until `want` completions are ready.
    fn submit_wait(&mut self, want: usize) -> Res<()> {
        let ts = types::Timespec::new().sec(WAIT_AT_MOST_S);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {
                if self.ring.completion().len() >= want {
                    Ok(())
                } else {
                    Err(format!("io_uring: completions did not arrive within {WAIT_AT_MOST_S} s"))
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) => Err(format!("io_uring_enter: {e}")),
        }
    }
}

const SEND: u64 = 1 << 32;
const RECV: u64 = 2 << 32;

/// io_uring: per round, one send SQE to each of `k` different senders and one recv SQE on
/// each matching receiver, one io_uring_enter (submit + wait for all 2k completions), reap.
/// Short sends/recvs are resubmitted for the remainder (never seen in practice; counted).
fn run_uring(ring: &mut Ring, p: &mut Pairs, k: usize, armed: bool, bytes: usize, msgs: usize) -> Res<(Sample, usize)> {
    let out = vec![0x5au8; bytes];
    let mut rbufs = vec![0u8; k * RBUF];
    let r = run_uring_inner(ring, p, k, armed, bytes, msgs, &out, &mut rbufs);
    if r.is_err() {
        // Operations may still be in flight: their buffers must outlive them (the process
        // is about to exit on this error).
        std::mem::forget(out);
        std::mem::forget(rbufs);
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn run_uring_inner(
    ring: &mut Ring,
    p: &mut Pairs,
    k: usize,
    armed: bool,
    bytes: usize,
    msgs: usize,
    out: &[u8],
    rbufs: &mut [u8],
) -> Res<(Sample, usize)> {
    let n = p.n();
    let mut sent = vec![0usize; k];
    let mut recvd = vec![0usize; k];
    let mut got = vec![0usize; n];
    let rounds = msgs.div_ceil(k);
    let (mut total_w, mut total_r, mut resubmits) = (0usize, 0usize, 0usize);
    let before = other_threads().iter().map(|t| t.1).sum::<u64>();
    let (c0, t0, w0) = (process_cpu_ns(), thread_cpu_ns(), Instant::now());
    for round in 0..rounds {
        let base = round * k;
        // `armed`: the receives go first, find no data, and wait armed (poll + wake-up +
        // task work), as a driver's reads would wait for data it cannot predict. Otherwise
        // the sends go first and each receive finds its data already queued.
        if armed {
            for j in 0..k {
                let buf = rbufs[j * RBUF..].as_mut_ptr();
                let e = ring.recv(p, (base + j) % n, buf, RBUF).user_data(RECV | j as u64);
                ring.push(e)?;
            }
        }
        for j in 0..k {
            let e = ring.send(p, (base + j) % n, out.as_ptr(), bytes).user_data(SEND | j as u64);
            ring.push(e)?;
        }
        if !armed {
            for j in 0..k {
                let buf = rbufs[j * RBUF..].as_mut_ptr();
                let e = ring.recv(p, (base + j) % n, buf, RBUF).user_data(RECV | j as u64);
                ring.push(e)?;
            }
        }
        sent.iter_mut().for_each(|x| *x = 0);
        recvd.iter_mut().for_each(|x| *x = 0);
        let mut pending = 2 * k;
        let mut passes = 0;
        while pending > 0 {
            passes += 1;
            if passes > 1000 {
                return Err(format!("io_uring round {round}: {pending} operations never completed"));
            }
            ring.submit_wait(pending)?;
            let mut again: Vec<(u64, usize)> = Vec::new();
            for cqe in ring.ring.completion() {
                pending -= 1;
                let (kind, j) = (cqe.user_data() & !0xffff_ffff, (cqe.user_data() & 0xffff_ffff) as usize);
                let res = cqe.result();
                if res < 0 {
                    if res == -libc::EAGAIN || res == -libc::EINTR {
                        again.push((kind, j));
                        continue;
                    }
                    return Err(format!(
                        "io_uring {} on slot {j}: {}",
                        if kind == SEND { "send" } else { "recv" },
                        std::io::Error::from_raw_os_error(-res)
                    ));
                }
                let res = res as usize;
                if kind == SEND {
                    sent[j] += res;
                    total_w += res;
                    if sent[j] < bytes {
                        again.push((kind, j));
                    }
                } else {
                    if res == 0 {
                        return Err("a loopback pair closed".into());
                    }
                    recvd[j] += res;
                    total_r += res;
                    got[(base + j) % n] += res;
                    if recvd[j] > bytes {
                        return Err(format!("receiver {} got {} bytes, sent {bytes}", (base + j) % n, recvd[j]));
                    }
                    if recvd[j] < bytes {
                        again.push((kind, j));
                    }
                }
            }
            for (kind, j) in again {
                resubmits += 1;
                let i = (base + j) % n;
                let e = if kind == SEND {
                    ring.send(p, i, out[sent[j]..].as_ptr(), bytes - sent[j]).user_data(SEND | j as u64)
                } else {
                    let buf = rbufs[j * RBUF + recvd[j]..].as_mut_ptr();
                    ring.recv(p, i, buf, RBUF - recvd[j]).user_data(RECV | j as u64)
                };
                ring.push(e)?;
                pending += 1;
            }
        }
    }
    if ring.flavour == Flavour::SqPoll {
        // Let the submission thread's idle spin run out and count it: it is this variant's.
        std::thread::sleep(Duration::from_millis(3 * SQPOLL_IDLE_MS as u64));
    }
    let mut s = Sample::new(c0, t0, w0, rounds * k);
    let after = other_threads().iter().map(|t| t.1).sum::<u64>();
    s.other_threads_ns = after.saturating_sub(before);
    check_counts(total_w, total_r, &got, rounds, k, bytes, n)?;
    Ok((s, resubmits))
}

/// A provided-buffer ring (IORING_REGISTER_PBUF_RING) of `ENTRIES` buffers of `BUF` bytes:
/// the kernel picks a buffer for each multishot receive completion; we hand it back after
/// reading by writing its entry and advancing the tail (no system call).
struct BufRing {
    entries: *mut BufEntry,
    layout: std::alloc::Layout,
    bufs: Vec<u8>,
    tail: u16,
}

#[repr(C)]
struct BufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    /// In entry 0 this field is the ring's tail, shared with the kernel.
    resv: u16,
}

const BR_ENTRIES: u16 = 4096;
const BR_BUF: usize = 512;
const BGID: u16 = 7;

impl BufRing {
    fn new(ring: &IoUring) -> Res<Self> {
        let layout = std::alloc::Layout::from_size_align(BR_ENTRIES as usize * 16, 4096).unwrap();
        // SAFETY: non-zero size; zeroed memory is a valid (empty) ring of plain integers.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) } as *mut BufEntry;
        if entries.is_null() {
            return Err("allocating the buffer ring".into());
        }
        let mut br = BufRing { entries, layout, bufs: vec![0u8; BR_ENTRIES as usize * BR_BUF], tail: 0 };
        // SAFETY: `entries` (BR_ENTRIES entries, page aligned) lives until Drop, which runs
        // only after the caller has unregistered the group (run_multishot does before return).
        unsafe { ring.submitter().register_buf_ring_with_flags(entries as u64, BR_ENTRIES, BGID, 0) }
            .map_err(|e| format!("register_buf_ring: {e}"))?;
        for bid in 0..BR_ENTRIES {
            br.give_back(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Puts buffer `bid` at the tail (visible to the kernel after `publish`).
    fn give_back(&mut self, bid: u16) {
        let idx = (self.tail & (BR_ENTRIES - 1)) as usize;
        let addr = self.bufs[bid as usize * BR_BUF..].as_ptr() as u64;
        // SAFETY: idx < BR_ENTRIES, inside the allocation; the kernel does not read entries
        // past the published tail, so this slot is ours until `publish`. The `resv` field
        // (the tail, in entry 0) is left alone.
        unsafe {
            let e = self.entries.add(idx);
            (*e).addr = addr;
            (*e).len = BR_BUF as u32;
            (*e).bid = bid;
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail is the u16 at offset 14 of entry 0 (struct io_uring_buf_ring),
        // aligned and inside the allocation; the kernel reads it with acquire semantics.
        let tail = unsafe { &*(std::ptr::addr_of_mut!((*self.entries).resv) as *const std::sync::atomic::AtomicU16) };
        tail.store(self.tail, std::sync::atomic::Ordering::Release);
    }

    fn buf(&self, bid: u16, len: usize) -> &[u8] {
        &self.bufs[bid as usize * BR_BUF..bid as usize * BR_BUF + len]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; unregistered before drop.
        unsafe { std::alloc::dealloc(self.entries as *mut u8, self.layout) };
    }
}

/// io_uring, the driver's realistic read path: one multishot receive armed once on every
/// receiver (outside the timing, as a client's read stays armed for its lifetime), buffers
/// from a provided-buffer ring; per round only the `k` send SQEs are submitted, one
/// io_uring_enter waits for the k send and k receive completions; buffers go back to the
/// ring. Uses the registered-files ring given (SINGLE_ISSUER + DEFER_TASKRUN).
fn run_multishot(ring: &mut Ring, p: &mut Pairs, k: usize, bytes: usize, msgs: usize) -> Res<(Sample, usize)> {
    if ring.flavour == Flavour::Plain || ring.flavour == Flavour::SqPoll {
        return Err("multishot runs on a registered-files ring".into());
    }
    let mut br = BufRing::new(&ring.ring)?;
    let out = vec![0x5au8; bytes];
    let r = run_multishot_inner(ring, p, k, bytes, msgs, &mut br, &out);
    if r.is_err() {
        // The buffer ring may still be registered and receives armed: leak rather than free
        // memory the kernel may write (the process is about to exit on this error).
        std::mem::forget(br);
        std::mem::forget(out);
    }
    r
}

fn run_multishot_inner(
    ring: &mut Ring,
    p: &mut Pairs,
    k: usize,
    bytes: usize,
    msgs: usize,
    br: &mut BufRing,
    out: &[u8],
) -> Res<(Sample, usize)> {
    let n = p.n();
    for i in 0..n {
        let e = opcode::RecvMulti::new(types::Fixed((n + i) as u32), BGID).build().user_data(RECV | i as u64);
        ring.push(e)?;
        if i % 256 == 255 {
            ring.submit_wait(0)?;
        }
    }
    ring.submit_wait(0)?;
    let mut got = vec![0usize; n];
    let mut round_got = vec![0usize; n];
    let rounds = msgs.div_ceil(k);
    let (mut total_w, mut total_r) = (0usize, 0usize);
    let (c0, t0, w0) = (process_cpu_ns(), thread_cpu_ns(), Instant::now());
    let mut result: Res<()> = Ok(());
    'rounds: for round in 0..rounds {
        let base = round * k;
        for j in 0..k {
            let e = ring.send(p, (base + j) % n, out.as_ptr(), bytes).user_data(SEND | j as u64);
            ring.push(e)?;
        }
        let (mut sends_left, mut recv_left) = (k, k);
        let mut passes = 0;
        while sends_left + recv_left > 0 {
            passes += 1;
            if passes > 1000 {
                result = Err(format!("multishot round {round}: {} operations never completed", sends_left + recv_left));
                break 'rounds;
            }
            ring.submit_wait(sends_left + recv_left)?;
            for cqe in ring.ring.completion() {
                let (kind, j) = (cqe.user_data() & !0xffff_ffff, (cqe.user_data() & 0xffff_ffff) as usize);
                let res = cqe.result();
                if kind == SEND {
                    if res != bytes as i32 {
                        return Err(format!("multishot: send returned {res}"));
                    }
                    sends_left -= 1;
                    total_w += bytes;
                    continue;
                }
                if res <= 0 || !io_uring::cqueue::more(cqe.flags()) {
                    return Err(format!("multishot recv on receiver {j} ended: {res}"));
                }
                let bid =
                    io_uring::cqueue::buffer_select(cqe.flags()).ok_or("a receive completion without a buffer")?;
                let r = res as usize;
                if br.buf(bid, r).iter().any(|&b| b != 0x5a) {
                    return Err(format!("receiver {j}: corrupt bytes"));
                }
                br.give_back(bid);
                got[j] += r;
                round_got[j] += r;
                total_r += r;
                if round_got[j] > bytes {
                    return Err(format!("receiver {j} got {} bytes in a round, sent {bytes}", round_got[j]));
                }
                if round_got[j] == bytes {
                    recv_left -= 1;
                }
            }
            br.publish();
        }
        for j in 0..k {
            round_got[(base + j) % n] = 0;
        }
    }
    let s = Sample::new(c0, t0, w0, rounds * k);
    // Disarm every receive (outside the timing) and reap their final completions.
    ring.ring
        .submitter()
        .register_sync_cancel(Some(types::Timespec::new().sec(WAIT_AT_MOST_S)), types::CancelBuilder::any().all())
        .map_err(|e| format!("cancelling the multishot receives: {e}"))?;
    let mut ended = 0;
    let mut passes = 0;
    while ended < n {
        passes += 1;
        if passes > 100 {
            return Err(format!("only {ended} of {n} multishot receives ended after cancel"));
        }
        ring.submit_wait(1)?;
        for cqe in ring.ring.completion() {
            if cqe.user_data() & !0xffff_ffff == RECV && !io_uring::cqueue::more(cqe.flags()) {
                ended += 1;
            }
        }
    }
    ring.ring.submitter().unregister_buf_ring(BGID).map_err(|e| format!("unregister_buf_ring: {e}"))?;
    result?;
    check_counts(total_w, total_r, &got, rounds, k, bytes, n)?;
    Ok((s, 0))
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Process CPU ns per message (all threads).
    proc_ns: f64,
    /// Main thread CPU ns per message.
    thread_ns: f64,
    /// Wall ns per message.
    wall_ns: f64,
    msgs: usize,
    /// On-CPU ns of threads other than the main one over the run (schedstat), total.
    other_threads_ns: u64,
    /// On-CPU ns of the ksoftirqd threads over the run (system-wide, not in proc_ns).
    ksoftirqd_ns: u64,
}

impl Sample {
    fn new(c0: u64, t0: u64, w0: Instant, msgs: usize) -> Self {
        let (c1, t1, w1) = (process_cpu_ns(), thread_cpu_ns(), w0.elapsed());
        let m = msgs as f64;
        Sample {
            proc_ns: (c1 - c0) as f64 / m,
            thread_ns: (t1 - t0) as f64 / m,
            wall_ns: w1.as_nanos() as f64 / m,
            msgs,
            other_threads_ns: 0,
            ksoftirqd_ns: 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    Epoll { k: usize, per_sock: usize },
    Uring { flavour: Flavour, k: usize, armed: bool },
    Multishot { k: usize },
}

impl Variant {
    fn label(&self) -> String {
        match *self {
            Variant::Epoll { k: 1, per_sock: 1 } => "epoll, unbatched (calibrate's floor)".into(),
            Variant::Epoll { k: 1, per_sock } => format!("epoll, {per_sock} msgs in one write to one socket"),
            Variant::Epoll { k, .. } => format!("epoll, {k} conns per epoll_wait ({k} writes, reads)"),
            Variant::Uring { flavour, k, armed } => {
                let f = match flavour {
                    Flavour::Plain => "io_uring",
                    Flavour::Fixed => "io_uring + registered files",
                    Flavour::FixedDefer => "io_uring + reg. files + SINGLE_ISSUER + DEFER_TASKRUN",
                    Flavour::SqPoll => "io_uring SQPOLL + reg. files (kernel thread counted)",
                };
                let order = if armed { "recv armed before send" } else { "send then recv" };
                format!("{f}, {order}, {k} conns per submit")
            }
            Variant::Multishot { k } => {
                format!(
                    "io_uring + reg. files + SI + DT, multishot recv armed on all + buffer ring, {k} conns per submit"
                )
            }
        }
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    (m, v[0], v[v.len() - 1])
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("uring-hop: FAILED: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let conns = arg(&args, "--conns", 1000);
    let bytes = arg(&args, "--bytes", 300);
    let msgs = arg(&args, "--msgs", 20_000);
    let rounds = arg(&args, "--rounds", 7);
    let ks = [1usize, 4, 16, 64];
    let no_sqpoll = args.iter().any(|a| a == "--no-sqpoll");
    if bytes == 0 || bytes > RBUF / 2 || conns < 64 || rounds == 0 || msgs == 0 {
        return Err(format!("need 0 < --bytes <= {}, --conns >= 64, --rounds, --msgs > 0", RBUF / 2));
    }

    let mut p = Pairs::new(conns)?;
    let mut variants = vec![Variant::Epoll { k: 1, per_sock: 1 }, Variant::Epoll { k: 1, per_sock: 16 }];
    for &k in &ks[1..] {
        variants.push(Variant::Epoll { k, per_sock: 1 });
    }
    let mut flavours = vec![Flavour::Plain, Flavour::Fixed, Flavour::FixedDefer];
    if !no_sqpoll {
        flavours.push(Flavour::SqPoll);
    }
    // Rings: one per flavour, made once; a flavour the kernel refuses is reported and skipped
    // (Plain refused means io_uring is unavailable here: stop).
    let mut rings: Vec<Ring> = Vec::new();
    for f in flavours {
        match Ring::new(f, &p) {
            Ok(r) => {
                rings.push(r);
                for &k in &ks {
                    variants.push(Variant::Uring { flavour: f, k, armed: false });
                }
                if f == Flavour::FixedDefer {
                    for &k in &ks {
                        variants.push(Variant::Multishot { k });
                    }
                }
                if matches!(f, Flavour::Plain | Flavour::FixedDefer) {
                    for &k in &ks {
                        variants.push(Variant::Uring { flavour: f, k, armed: true });
                    }
                }
            }
            Err(e) if f == Flavour::Plain => return Err(format!("io_uring refused on this machine: {e}")),
            Err(e) => println!("note: flavour {f:?} refused by the kernel: {e}"),
        }
    }
    let ring_of = |f: Flavour, rings: &[Ring]| rings.iter().position(|r| r.flavour == f).unwrap();

    let mut run = |v: Variant, m: usize, rings: &mut Vec<Ring>| -> Res<(Sample, usize)> {
        match v {
            Variant::Epoll { k, per_sock } => Ok((run_epoll(&mut p, k, per_sock, bytes, m)?, 0)),
            Variant::Uring { flavour, k, armed } => {
                let i = ring_of(flavour, rings);
                let r = run_uring(&mut rings[i], &mut p, k, armed, bytes, m);
                if flavour == Flavour::SqPoll {
                    std::thread::sleep(Duration::from_millis(3 * SQPOLL_IDLE_MS as u64));
                }
                r
            }
            Variant::Multishot { k } => {
                let i = ring_of(Flavour::FixedDefer, rings);
                run_multishot(&mut rings[i], &mut p, k, bytes, m)
            }
        }
    };

    let ksoft = ksoftirqd_pids();
    // Warm-up: every variant once, untimed for the table.
    for &v in &variants {
        run(v, msgs / 4, &mut rings)?;
    }
    let mut results: Vec<Vec<Sample>> = vec![Vec::new(); variants.len()];
    let mut resubmits = 0usize;
    for r in 0..rounds {
        for i in 0..variants.len() {
            let vi = (i + r * 3) % variants.len();
            // After an SQPOLL run, let its kernel thread fall asleep so it charges nothing to
            // the next variant (its idle tail is counted in its own run).
            let k0 = ksoftirqd_ns(&ksoft);
            let (mut s, re) = run(variants[vi], msgs, &mut rings)?;
            s.ksoftirqd_ns = ksoftirqd_ns(&ksoft).saturating_sub(k0);
            resubmits += re;
            results[vi].push(s);
        }
        eprintln!("round {}/{rounds} done", r + 1);
    }

    let floor = median_min_max(results[0].iter().map(|s| s.proc_ns).collect()).0;
    println!(
        "\n{conns} loopback pairs, {bytes} B messages, TCP_NODELAY, {msgs} msgs per variant per round, {rounds} interleaved rounds; \
         CPU = getrusage(RUSAGE_SELF) (all threads) / messages\n"
    );
    println!(
        "| variant | µs CPU/msg, median (min–max) | × epoll floor | main thread µs/msg | other threads µs/msg | wall µs/msg | ksoftirqd µs/msg (not ours) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (v, ss) in variants.iter().zip(&results) {
        let (m, lo, hi) = median_min_max(ss.iter().map(|s| s.proc_ns).collect());
        let th = median_min_max(ss.iter().map(|s| s.thread_ns).collect()).0;
        let oth = median_min_max(ss.iter().map(|s| s.other_threads_ns as f64 / s.msgs as f64).collect()).0;
        let wall = median_min_max(ss.iter().map(|s| s.wall_ns).collect()).0;
        let ks = median_min_max(ss.iter().map(|s| s.ksoftirqd_ns as f64 / s.msgs as f64).collect()).0;
        println!(
            "| {} | {:.2} ({:.2}–{:.2}) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            v.label(),
            m / 1e3,
            lo / 1e3,
            hi / 1e3,
            m / floor,
            th / 1e3,
            oth / 1e3,
            wall / 1e3,
            ks / 1e3
        );
    }
    let threads = other_threads();
    println!(
        "\nshort sends/recvs resubmitted: {resubmits}; threads besides main at exit: {:?}",
        threads.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    println!("every byte written was read back on its own receiver (counted per socket).");
    Ok(())
}
