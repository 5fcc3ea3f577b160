//! `rnn devices`: the backends compiled in, the CPU's kernels and the GPUs found.

use std::fmt::Write as _;

use anyhow::Result;

use crate::cli::{DevicesArgs, OutputFormat};
use crate::print::{emit, SCHEMA_VERSION};
use crate::Outcome;

pub fn devices(args: &DevicesArgs) -> Result<Outcome> {
    let inv = crate::device::inventory();
    match args.format {
        OutputFormat::Json => {
            let json = serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "backends": {"cpu": true, "cuda": inv.cuda_compiled},
                "cpu": {
                    "threads": inv.cpu_threads,
                    "features": inv.cpu_features,
                    "kernel": inv.cpu_kernel.as_str(),
                    "kernels_available": inv.cpu_kernels.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
                },
                "gpus": inv.gpus,
                "gpu_problem": inv.gpu_problem,
            });
            emit(&(json.to_string() + "\n"))?;
        }
        OutputFormat::Text => {
            let mut text = String::new();
            let kernels: Vec<&str> = inv.cpu_kernels.iter().map(|l| l.as_str()).collect();
            writeln!(
                text,
                "cpu     available, {} threads, {}; {} kernels (available: {}; {} forces one)",
                inv.cpu_threads,
                inv.cpu_features.join(" "),
                inv.cpu_kernel,
                kernels.join(", "),
                crate::device::CPU_KERNEL_VAR,
            )?;
            if !inv.cuda_compiled {
                writeln!(text, "cuda    not compiled in: {}", crate::device::REBUILD)?;
            } else if let Some(problem) = &inv.gpu_problem {
                writeln!(text, "cuda    compiled in; no GPU usable: {problem}")?;
            }
            for g in &inv.gpus {
                writeln!(
                    text,
                    "cuda:{}  {}, {}, compute capability {}",
                    g.ordinal,
                    g.name,
                    crate::memory::human(g.memory_bytes as u128),
                    g.compute_capability
                )?;
            }
            emit(&text)?;
        }
    }
    Ok(Outcome::Success)
}
