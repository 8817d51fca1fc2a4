//! What every result file starts with — `summary.json`, `matrix.json`,
//! `capacity.json` and `crypto.json` alike: its layout version, its kind and where it came
//! from. One [`Header`], flattened into each result type, so the files keep these as
//! top-level fields.

use crate::provenance::Provenance;
use serde::{Deserialize, Serialize};

/// The fields every result file starts with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// Layout version of this kind of file.
    pub schema_version: u32,
    /// What wrote it: `run`, `merge`, `matrix`, `capacity` or `crypto` (lets `compare`
    /// tell result kinds apart).
    pub kind: String,
    /// Machine and software.
    pub provenance: Provenance,
}

impl Header {
    /// The header of a `kind` file of layout `schema_version`.
    pub fn new(schema_version: u32, kind: &str, provenance: Provenance) -> Self {
        Header { schema_version, kind: kind.to_owned(), provenance }
    }
}
