//! The subcommands, one module each. Each depends on the loading pipeline
//! ([`crate::pipeline`]) and the modules below it, never on another command.

pub mod check;
pub mod completions;
pub mod convert;
pub mod devices;
pub mod init;
pub mod inspect;
pub mod man;
pub mod plot;
pub mod run;
