//! Result directories and file writing shared by every command.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Writes `text` to standard output. A closed stdout (`sealbench run … | head`) ends the
/// output quietly instead of panicking: the work is done, the files are written, and the
/// exit code still says how it went. Any other write error is reported on stderr.
pub fn stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warning: writing to standard output: {e}");
    }
}

/// Creates the result directory: `out` if given, else `results/<default_name>/`.
///
/// # Errors
/// When the directory cannot be created, or `out` exists and is not a directory.
pub fn result_dir(out: Option<&Path>, default_name: &str) -> Result<PathBuf> {
    let dir = match out {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("results").join(default_name),
    };
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: exists and is not a directory", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating result directory {}", dir.display()))?;
    Ok(dir)
}

/// Removes `dir` when it is an empty directory (a run that failed before writing
/// anything); leaves anything else alone.
pub fn remove_if_empty(dir: &Path) {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(dir);
    }
}

/// In a result directory (one with a `summary.json`), removes what a run's presentation
/// writes — `report.html` and the `.png` / `.svg` plots — so that a run written there
/// without plots does not sit beside the previous run's.
///
/// # Errors
/// When a file cannot be removed.
pub fn remove_stale_presentation(dir: &Path) -> Result<()> {
    if !dir.join("summary.json").is_file() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ours = path.file_name().is_some_and(|n| n == "report.html")
            || path.extension().is_some_and(|e| e == "png" || e == "svg");
        if ours && path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path` (through a temporary file and a rename, so a
/// crash never leaves half a file).
///
/// # Errors
/// When the file cannot be written; the message names it.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising results")?;
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
///
/// # Errors
/// When the file cannot be written; the message names it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
