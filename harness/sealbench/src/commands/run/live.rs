//! What `run` shows and serves while it goes on, once per merged second: the terminal
//! view or the progress line, `--json-stream` lines, `--metrics`, `--dashboard` and
//! `--remote-write`. Composition only: each output is its own module
//! ([`crate::present::live`], [`crate::results::stream`], [`crate::present::prometheus`],
//! [`crate::present::dashboard`], [`crate::present::remote_write`]), fed the same
//! [`LiveSecond`].
//!
//! Where the human output goes:
//! - stdout is a terminal (and neither `--quiet` nor `--json-stream -`): the live view,
//!   redrawn in place on stdout, where the final table follows it;
//! - otherwise the progress line on stderr as before (redrawn on a terminal, every 5 s
//!   into a file or pipe); none with `--quiet`;
//! - `--json-stream -` gives stdout to the JSON lines, so the final table goes to
//!   stderr ([`Watch::human_on_stderr`]).

use crate::cli::live::LiveArgs;
use crate::driver::Second;
use crate::driver::recorder::Counters;
use crate::error::Failure;
use crate::present::console;
use crate::present::dashboard::DashboardServer;
use crate::present::live::{TerminalView, render, terminal_width};
use crate::present::metrics_http::MetricsServer;
use crate::present::remote_write::RemoteWrite;
use crate::results::live::LiveTracker;
use crate::results::stream::{JsonStream, StreamTarget};
use crate::results::summary::Summary;
use crate::scenario::{Part, Plan};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// How the human sees the run.
#[derive(Debug)]
enum Display {
    /// The block redrawn on stdout.
    View(TerminalView, usize),
    /// The one-line progress on stderr; `tty`: redrawn in place, else every 5 s.
    Progress { tty: bool, last: Instant, clients: usize },
    /// Nothing.
    Quiet,
}

/// What the runs of a batch (`matrix`'s cells, `capacity`'s steps) share: one `/metrics`
/// server, one dashboard and one JSON stream for them all (each run's figures restart at
/// its start, as a counter does when its process restarts), and `--quiet`.
#[derive(Debug)]
pub struct Batch {
    metrics: Option<MetricsServer>,
    dashboard: Option<DashboardServer>,
    remote: Option<RemoteWrite>,
    stream: Option<JsonStream>,
    quiet: bool,
    /// Draw plots (and report.html) for each run.
    pub plots: bool,
    /// `--metrics-linger`, after the batch's last run.
    linger: Option<std::time::Duration>,
}

impl Batch {
    /// Binds `/metrics` and opens the stream once, before the first run.
    ///
    /// # Errors
    /// As [`Watch::start`].
    pub fn start(args: &LiveArgs, plots: bool) -> Result<Batch, Failure> {
        let (metrics, dashboard) = bind_servers(args)?;
        let stream = args.json_stream.clone().map(JsonStream::open).transpose().map_err(Failure::usage)?;
        let remote = start_remote_write(args, None)?;
        Ok(Batch { metrics, dashboard, remote, stream, quiet: args.quiet, plots, linger: args.metrics_linger })
    }

    /// Shows a finished run's figures on the dashboard (when there is one).
    pub fn report(&self, summary: &Summary, dir: &std::path::Path) {
        if let Some(d) = &self.dashboard {
            d.report(summary, dir);
        }
    }
}

impl Drop for Batch {
    /// Once the batch's runs are over: the last push and what was pushed, then
    /// `--metrics-linger` after the last run.
    fn drop(&mut self) {
        if let Some(r) = self.remote.take() {
            eprintln!("remote write: {}", r.finish());
        }
        if let (Some(m), Some(max)) = (&self.metrics, self.linger) {
            m.linger(max);
        }
    }
}

/// Starts `--remote-write` (a URL it cannot use is a usage error, exit 2).
fn start_remote_write(args: &LiveArgs, part: Option<Part>) -> Result<Option<RemoteWrite>, Failure> {
    let Some(url) = &args.remote_write else { return Ok(None) };
    RemoteWrite::start(url, args.remote_write_interval, part).map(Some).map_err(Failure::usage)
}

/// Binds `--metrics` and `--dashboard` (each printed with its address) before the run.
fn bind_servers(args: &LiveArgs) -> Result<(Option<MetricsServer>, Option<DashboardServer>), Failure> {
    let metrics = args.metrics.map(MetricsServer::bind).transpose().map_err(Failure::usage)?;
    if let Some(m) = &metrics {
        eprintln!("metrics: http://{}/metrics", m.addr());
    }
    let dashboard = args.dashboard.map(DashboardServer::bind).transpose().map_err(Failure::usage)?;
    if let Some(d) = &dashboard {
        eprintln!("dashboard: http://{}/", d.addr());
    }
    Ok((metrics, dashboard))
}

/// The live outputs of one run.
#[derive(Debug)]
pub(super) struct Watch {
    tracker: LiveTracker,
    metrics: Option<MetricsServer>,
    dashboard: Option<DashboardServer>,
    remote: Option<RemoteWrite>,
    stream: Option<JsonStream>,
    display: Display,
    json_on_stdout: bool,
    /// `--metrics-linger`: how long the end of the run waits for the final scrape.
    linger: Option<std::time::Duration>,
}

/// At the end of the run, whatever its outcome, after the results are written:
/// `--metrics-linger` holds `/metrics` until the final figures are scraped.
impl Drop for Watch {
    fn drop(&mut self) {
        if let (Some(m), Some(max)) = (&self.metrics, self.linger) {
            m.linger(max);
        }
    }
}

impl Watch {
    /// Opens the stream and binds `/metrics` before the run starts.
    ///
    /// # Errors
    /// Exit 2 when the `--metrics` or `--dashboard` address cannot be bound or the
    /// `--json-stream` file cannot be created (the message names the flag and the value).
    pub(super) fn start(args: &LiveArgs, plan: &Plan) -> Result<Watch, Failure> {
        let (metrics, dashboard) = bind_servers(args)?;
        let stream = args.json_stream.clone().map(JsonStream::open).transpose().map_err(Failure::usage)?;
        let remote = start_remote_write(args, plan.part)?;
        let json_on_stdout = args.json_stream == Some(StreamTarget::Stdout);
        let display = if args.quiet {
            Display::Quiet
        } else if std::io::stdout().is_terminal() && !json_on_stdout {
            Display::View(TerminalView::default(), terminal_width())
        } else {
            let tty = std::io::stderr().is_terminal();
            Display::Progress { tty, last: Instant::now(), clients: plan.local().1 }
        };
        let tracker = LiveTracker::new(plan, crate::timefmt::unix_seconds_now());
        Ok(Watch { tracker, metrics, dashboard, remote, stream, display, json_on_stdout, linger: args.metrics_linger })
    }

    /// Shows, writes and publishes one merged second.
    pub(super) fn on_second(&mut self, sec: &Second, total: &Counters) {
        let live = self.tracker.next(sec);
        match &mut self.display {
            Display::View(view, width) => {
                let frame = view.frame(&render(&live, *width));
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(frame.as_bytes()).and_then(|()| out.flush());
            }
            Display::Progress { tty, last, clients } => {
                let line = console::progress_line(sec, total, *clients);
                if *tty {
                    eprint!("\r\x1b[2K{line}");
                } else if last.elapsed().as_secs() >= 5 {
                    eprintln!("{line}");
                    *last = Instant::now();
                }
            }
            Display::Quiet => {}
        }
        if let Some(s) = &mut self.stream {
            s.write(&live);
        }
        if let Some(d) = &self.dashboard {
            d.second(&live);
        }
        if let Some(r) = &self.remote {
            r.metrics().publish(live.clone());
        }
        if let Some(m) = &self.metrics {
            m.metrics().publish(live);
        }
    }

    /// Ends the redrawn progress line (the view ends with a newline already); makes the
    /// last remote-write push and says what was pushed.
    pub(super) fn finish(&mut self) {
        if let Display::Progress { tty: true, .. } = self.display {
            eprintln!();
        }
        if let Some(r) = self.remote.take() {
            eprintln!("remote write: {}", r.finish());
        }
    }

    /// Shows the run's final figures on the dashboard (when there is one).
    pub(super) fn report(&self, summary: &Summary, dir: &std::path::Path) {
        if let Some(d) = &self.dashboard {
            d.report(summary, dir);
        }
    }

    /// The watch of one run of a batch (`matrix`'s cells, `capacity`'s steps): the batch's
    /// `/metrics` server, dashboard and JSON stream (taken for this run, handed back by
    /// [`Watch::end_in`]), and a progress line on stderr every 5 s unless `--quiet`.
    pub(crate) fn in_batch(batch: &mut Batch, plan: &Plan) -> Watch {
        let display = if batch.quiet {
            Display::Quiet
        } else {
            Display::Progress { tty: false, last: Instant::now(), clients: plan.local().1 }
        };
        let tracker = LiveTracker::new(plan, crate::timefmt::unix_seconds_now());
        let dashboard = batch.dashboard.take();
        if let Some(d) = &dashboard {
            d.begin();
        }
        let (metrics, remote, stream) = (batch.metrics.take(), batch.remote.take(), batch.stream.take());
        Watch { tracker, metrics, dashboard, remote, stream, display, json_on_stdout: false, linger: None }
    }

    /// Hands the server and the stream back to the batch for its next run.
    pub(crate) fn end_in(mut self, batch: &mut Batch) {
        (batch.metrics, batch.dashboard, batch.remote, batch.stream) =
            (self.metrics.take(), self.dashboard.take(), self.remote.take(), self.stream.take());
    }

    /// True when stdout carries the JSON lines, so the final table goes to stderr.
    pub(super) fn human_on_stderr(&self) -> bool {
        self.json_on_stdout
    }
}
