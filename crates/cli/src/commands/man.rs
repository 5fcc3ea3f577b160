//! `rnn man`: the man page, from the clap definition.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::print::emit;
use crate::Outcome;

pub fn man() -> Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    emit(&String::from_utf8(page)?)?;
    Ok(Outcome::Success)
}
