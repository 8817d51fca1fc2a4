//! What the tests against real servers share (`tests/mqtt.rs`, `tests/xmpp.rs`): finding
//! the server's binary, a free port, and a server process of the test's own — started with
//! a generated configuration in a temporary directory, waited for until its port accepts,
//! and killed when dropped (also when a test fails).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A boxed error, as the tests return.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The binary `name`: on the PATH, or in `debian_dir` (where Debian's package puts it,
/// which a non-root PATH may lack). A missing binary is an error that says what to install:
/// the tests need the real server, CI installs it (`.ci/run`).
pub fn binary(name: &str, debian_dir: &str, needs: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(debian_dir)])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "the `{name}` binary is not installed (these tests need {needs}): run `apt-get install {name}` \
                 (Debian/Ubuntu; .ci/run installs it in CI)"
            )
        })
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server process of this test's own; killed when dropped.
pub struct Server {
    child: Child,
    /// The address the test connects to.
    pub addr: SocketAddr,
    /// Its configuration, data and logs.
    pub dir: tempfile::TempDir,
    /// Log files in `dir`, read back for failure messages.
    logs: &'static [&'static str],
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Runs `bin args` (its output into `dir/<logs[0]>`) and returns once `port` on
    /// 127.0.0.1 accepts, within `timeout`; an exit or a timeout before that is an error
    /// carrying the server's logs.
    pub fn start(
        bin: &Path,
        args: &[&std::ffi::OsStr],
        dir: tempfile::TempDir,
        port: u16,
        timeout: Duration,
        logs: &'static [&'static str],
    ) -> Result<Server, Error> {
        let out = std::fs::File::create(dir.path().join(logs[0]))?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut server = Server { child, addr, dir, logs };
        let name = bin.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let deadline = Instant::now() + timeout;
        while TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("{name} exited ({status}) at start: {}", server.log()).into());
            }
            if Instant::now() > deadline {
                return Err(format!("{name} did not open {} in time: {}", server.addr, server.log()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Its logs, concatenated.
    pub fn log(&self) -> String {
        self.logs.iter().map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default()).collect()
    }
}
