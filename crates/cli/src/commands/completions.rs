//! `rnn completions`: a shell's completion script, from the clap definition.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::print::emit;
use crate::Outcome;

pub fn completions(args: &CompletionsArgs) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "rnn", &mut script);
    emit(&String::from_utf8(script)?)?;
    Ok(Outcome::Success)
}
