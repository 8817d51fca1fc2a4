//! `run --json-stream FILE|-`: one [`LiveSecond`] per line (newline-delimited JSON),
//! flushed as each second completes, so `tail -f`, `jq` or a log shipper sees every
//! second while the run goes on.
//!
//! Errors: the file is created before the run starts (a bad path is a usage error);
//! once running, a write error stops the stream with one warning that names the file and
//! the run carries on (its result files matter more than the stream). A closed stdout
//! (`--json-stream - | head -3`) ends the stream quietly, as [`crate::output::stdout`] does.

use super::live::LiveSecond;
use anyhow::{Context, Result};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    /// Standard output (`-`).
    Stdout,
    /// A file, created (or truncated) before the run.
    File(PathBuf),
}

impl StreamTarget {
    /// `-` is standard output; anything else a file path.
    pub fn parse(text: &str) -> Self {
        if text == "-" { StreamTarget::Stdout } else { StreamTarget::File(PathBuf::from(text)) }
    }

    /// How error messages name it.
    fn name(&self) -> String {
        match self {
            StreamTarget::Stdout => "standard output".to_owned(),
            StreamTarget::File(p) => p.display().to_string(),
        }
    }
}

/// An open stream of live seconds.
pub struct JsonStream {
    target: StreamTarget,
    out: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for JsonStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonStream").field("target", &self.target).field("open", &self.is_open()).finish()
    }
}

impl JsonStream {
    /// Opens `target` (creating or truncating a file).
    ///
    /// # Errors
    /// When the file cannot be created; the message names it and the flag.
    pub fn open(target: StreamTarget) -> Result<Self> {
        let out: Box<dyn Write + Send> = match &target {
            StreamTarget::Stdout => Box::new(std::io::stdout()),
            StreamTarget::File(p) => Box::new(BufWriter::new(create(p)?)),
        };
        Ok(JsonStream { target, out: Some(out) })
    }

    /// Writes one line and flushes it. After a write error the stream is closed (one
    /// warning on stderr; none for a closed pipe) and later calls do nothing.
    pub fn write(&mut self, sec: &LiveSecond) {
        let Some(out) = self.out.as_mut() else { return };
        let result = serde_json::to_vec(sec).map_err(std::io::Error::other).and_then(|mut line| {
            line.push(b'\n');
            out.write_all(&line)?;
            out.flush()
        });
        if let Err(e) = result {
            if e.kind() != ErrorKind::BrokenPipe {
                eprintln!("warning: --json-stream {}: {e}; no more lines will be written", self.target.name());
            }
            self.out = None;
        }
    }

    /// False once a write failed.
    pub fn is_open(&self) -> bool {
        self.out.is_some()
    }
}

fn create(p: &Path) -> Result<std::fs::File> {
    std::fs::File::create(p).with_context(|| format!("--json-stream {}: cannot create the file", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_stdout_and_anything_else_a_file() {
        assert_eq!(StreamTarget::parse("-"), StreamTarget::Stdout);
        assert_eq!(StreamTarget::parse("live.jsonl"), StreamTarget::File("live.jsonl".into()));
    }

    #[test]
    fn a_file_that_cannot_be_created_is_named() {
        let e = JsonStream::open(StreamTarget::parse("/nonexistent-dir/x.jsonl")).map(|_| ()).unwrap_err();
        assert!(format!("{e:#}").contains("--json-stream /nonexistent-dir/x.jsonl"), "{e:#}");
    }
}
