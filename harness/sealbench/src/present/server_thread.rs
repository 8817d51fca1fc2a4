//! A small HTTP server on a thread of its own with a one-thread tokio runtime: what
//! `--metrics` ([`super::metrics_http`]) and `--dashboard` ([`super::dashboard`]) both
//! serve from.
//!
//! Why a thread of its own: no client of these servers, however slow, hostile or
//! many, may delay a message — they never run on a shard thread or the relay's runtime.
//! Why bind at once: a port already taken must be a clear usage error (exit 2), naming
//! the flag and the address, before any client connects — not a warning mid-run.

use anyhow::{Context, Result};
use std::future::Future;
use std::net::SocketAddr;

/// A server running on its thread; dropping it asks it to stop and waits for it.
#[derive(Debug)]
pub struct ServerThread {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `addr` for `flag` now and runs `serve(listener, stopped)` on a thread named
    /// `name`; `stopped` resolves when the server is dropped.
    ///
    /// # Errors
    /// When `addr` cannot be bound (in use, not a local address, no permission) or the
    /// thread cannot start; the message names the flag and the address.
    pub fn bind<F, Fut>(flag: &str, addr: SocketAddr, name: &str, serve: F) -> Result<Self>
    where
        F: FnOnce(std::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("{flag} {addr}: cannot listen there"))?;
        listener.set_nonblocking(true).with_context(|| format!("{flag} {addr}"))?;
        let local = listener.local_addr().with_context(|| format!("{flag} {addr}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .with_context(|| format!("{flag}: starting the server's runtime"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || rt.block_on(serve(listener, stopped)))
            .with_context(|| format!("{flag}: starting the server's thread"))?;
        Ok(ServerThread { addr: local, stop: Some(stop), thread: Some(thread) })
    }

    /// The address served (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
