//! `rnn`: run, check and inspect basic (Elman) recurrent networks.
//!
//! This is the one place that prints, reads flags and picks exit codes: 0 success, 1 a
//! comparison outside tolerance, 2 an error (printed once, as `error: ...` with its causes).

mod bench;
mod cli;
mod commands;
mod device;
mod memory;
mod pipeline;
mod plot;
mod print;
mod progress;
mod screen;
mod state_plot;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// The outcome of a command that did not fail.
pub enum Outcome {
    /// The command did what was asked.
    Success,
    /// `rnn check` found a tensor outside the tolerance.
    Mismatch,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic is a bug in rnn or below it; the user still gets one line and exit code 2, not a
    // backtrace and 101. The hook keeps the default report away from stderr.
    static PANIC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    std::panic::set_hook(Box::new(|info| {
        let _ = PANIC.set(info.to_string().replace('\n', " "));
    }));
    let result = std::panic::catch_unwind(|| {
        device::force_cpu_kernel_from_env()?;
        run(&cli.command)
    })
    .unwrap_or_else(|_| {
        let what = PANIC.get().map_or("", String::as_str);
        Err(anyhow::anyhow!(
            "internal error (a bug in rnn; please report it with the command that caused it): {what}"
        ))
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Mismatch) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Bounded, whatever a file put into the message.
            let message = format!("{e:#}");
            eprintln!(
                "error: {}",
                rnn_weights::clip(&message, rnn_weights::MESSAGE_CHARS)
            );
            ExitCode::from(2)
        }
    }
}

/// The command, on its arguments.
fn run(command: &Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Run(args) => commands::run::run(args),
        Command::Check(args) => commands::check::check(args),
        Command::Inspect(args) => commands::inspect::inspect(args),
        Command::Init(args) => commands::init::init(args),
        Command::Convert(args) => commands::convert::convert(args),
        Command::Bench(args) => bench::bench(args),
        Command::Devices(args) => commands::devices::devices(args),
        Command::Plot(args) => commands::plot::plot(args),
        Command::Completions(args) => commands::completions::completions(args),
        Command::Man => commands::man::man(),
    }
}

/// A reader that closed our stdout early (`rnn run | head -1`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
