//! One module per subcommand: turns parsed arguments into work and writes its outputs.

pub mod capacity;
pub mod compare;
pub mod crypto;
pub mod matrix;
pub mod relay;
pub mod run;
