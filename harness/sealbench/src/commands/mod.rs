//! One module per subcommand: parses its arguments and composes the work: run, write the
//! result data ([`crate::results`]), judge it ([`crate::verdict`]), then present it
//! ([`crate::present`]). Nothing imports these modules but [`crate::app`].

pub mod calibrate;
pub mod capacity;
pub mod compare;
pub mod crypto;
pub mod matrix;
pub mod merge;
pub mod relay;
pub mod run;
