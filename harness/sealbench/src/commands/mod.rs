//! One module per subcommand: turns parsed arguments into work and writes its outputs.

pub mod crypto;
pub mod relay;
pub mod run;
