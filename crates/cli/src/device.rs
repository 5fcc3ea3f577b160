//! Choosing where to compute: `--device cpu | cuda | cuda:N | auto`. Nothing falls back from
//! CUDA to the CPU silently: `cuda` either opens that GPU or fails saying why and what to do;
//! `auto` really tries the GPU and says on stderr what it chose.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use rnn_core::cpu_kernel::{self, KernelLevel};

/// A `--device` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "auto" => Ok(Self::Auto),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "`{s}` is not a device: expected cpu, cuda, cuda:N (N = 0, 1, …) or auto"
                )),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

/// How to get a CUDA build, for messages.
pub const REBUILD: &str = "rebuild with `cargo build --release --features cuda` on a machine with \
                           a CUDA 13 toolkit, or `cargo xtask cuda-build` to fetch one from PyPI";

/// Opens the chosen device. `auto` reports its choice on stderr, once.
pub fn open(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(n) => gpu::open(n),
        DeviceChoice::Auto => match gpu::open(0) {
            Ok(device) => {
                eprintln!("rnn: --device auto chose cuda:0 ({})", gpu::name(0));
                Ok(device)
            }
            Err(why) => {
                eprintln!("rnn: --device auto chose the CPU: {why:#}");
                Ok(Device::Cpu)
            }
        },
    }
}

/// The environment variable that forces the CPU kernel level.
pub const CPU_KERNEL_VAR: &str = "RNN_CPU_KERNEL";

/// Forces the CPU kernels [`CPU_KERNEL_VAR`] names (`avx512`, `avx2` or `generic`), where it is
/// set and not empty: to compare the levels, or to compute here what a CPU without AVX-512
/// computes.
///
/// # Errors
/// When the value names no level, or one this CPU lacks.
pub fn force_cpu_kernel_from_env() -> Result<()> {
    let Some(value) = std::env::var_os(CPU_KERNEL_VAR) else {
        return Ok(());
    };
    if value.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = KernelLevel::ALL.iter().map(|l| l.as_str()).collect();
    let level = value
        .to_str()
        .and_then(KernelLevel::from_name)
        .ok_or_else(|| {
            anyhow!(
                "{CPU_KERNEL_VAR}={value:?} is not a CPU kernel level: expected {}",
                names.join(", ")
            )
        })?;
    cpu_kernel::set(level).with_context(|| format!("{CPU_KERNEL_VAR}={level}"))
}

/// The backends compiled in, and each GPU: for `rnn devices`.
pub struct Inventory {
    pub cuda_compiled: bool,
    pub cpu_threads: usize,
    pub cpu_features: Vec<&'static str>,
    /// The CPU kernel level runs use (forced or detected), and every level this CPU runs.
    pub cpu_kernel: KernelLevel,
    pub cpu_kernels: Vec<KernelLevel>,
    pub gpus: Vec<GpuInfo>,
    /// Why no GPU is listed, when none is.
    pub gpu_problem: Option<String>,
}

/// One GPU as the driver describes it.
#[derive(serde::Serialize)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub memory_bytes: u64,
    pub compute_capability: String,
}

pub fn inventory() -> Inventory {
    let (gpus, gpu_problem) = match gpu::list() {
        Ok(gpus) if gpus.is_empty() => (gpus, Some("the driver reports no GPU".to_string())),
        Ok(gpus) => (gpus, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    Inventory {
        cuda_compiled: cfg!(feature = "cuda"),
        cpu_threads: candle_core::utils::get_num_threads(),
        cpu_features: cpu_features(),
        cpu_kernel: cpu_kernel::get(),
        cpu_kernels: KernelLevel::available(),
        gpus,
        gpu_problem,
    }
}

fn cpu_features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut found = Vec::new();
        if std::arch::is_x86_feature_detected!("avx2") {
            found.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            found.push("fma");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            found.push("avx512f");
        }
        found
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

#[cfg(not(feature = "cuda"))]
mod gpu {
    use super::*;

    pub fn open(n: usize) -> Result<Device> {
        bail!("--device cuda:{n}: this rnn was built without CUDA support; {REBUILD}")
    }

    pub fn name(_: usize) -> String {
        String::new()
    }

    pub fn list() -> Result<Vec<GpuInfo>> {
        bail!("built without the cuda feature")
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use candle_core::cuda_backend::cudarc::driver::CudaContext;

    // candle links the CUDA libraries at load time: a binary built with the cuda feature does
    // not start at all without libcuda.so.1 and the CUDA 13 runtime libraries (the dynamic
    // loader says which is missing). Past that point, the driver answers for itself.
    fn count() -> Result<usize> {
        match CudaContext::device_count() {
            Ok(n) => Ok(n.max(0) as usize),
            Err(e) => bail!(
                "the NVIDIA driver did not answer ({e}): is a GPU present and the driver loaded?"
            ),
        }
    }

    pub fn open(n: usize) -> Result<Device> {
        let available = count()?;
        if available == 0 {
            bail!("--device cuda:{n}: the NVIDIA driver reports no GPU on this machine");
        }
        if n >= available {
            bail!(
                "--device cuda:{n}: this machine has {available} GPU(s), numbered 0 to {}",
                available - 1
            );
        }
        let device = Device::new_cuda(n).map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("PTX") || text.contains("UNSUPPORTED") {
                "the driver is older than the CUDA version the kernels were compiled for: \
                 update the driver, or rebuild with a toolkit no newer than the driver's CUDA \
                 version (nvidia-smi shows it)"
            } else {
                "see `rnn devices`"
            };
            anyhow::anyhow!("--device cuda:{n}: cannot open the GPU: {text}; {hint}")
        })?;
        // Kernels are compiled on first use: run one now, so that a PTX/driver mismatch shows
        // here, named, not in the middle of a run.
        let probe = candle_core::Tensor::ones(4, candle_core::DType::F32, &device)
            .and_then(|t| t.tanh())
            .and_then(|t| t.to_vec1::<f32>());
        if let Err(e) = probe {
            bail!(
                "--device cuda:{n}: the GPU opened but cannot run rnn's kernels ({e}); this is \
                 usually a driver older than the toolkit the binary was built with: update the \
                 driver or rebuild with an older toolkit"
            );
        }
        Ok(device)
    }

    pub fn name(n: usize) -> String {
        CudaContext::new(n)
            .and_then(|c| c.name())
            .unwrap_or_else(|_| "unknown GPU".into())
    }

    pub fn list() -> Result<Vec<GpuInfo>> {
        let n = count()?;
        (0..n)
            .map(|ordinal| {
                let ctx = CudaContext::new(ordinal)
                    .map_err(|e| anyhow::anyhow!("cuda:{ordinal}: {e}"))?;
                let (major, minor) = ctx.compute_capability().unwrap_or((0, 0));
                Ok(GpuInfo {
                    ordinal,
                    name: ctx.name().unwrap_or_else(|_| "unknown".into()),
                    memory_bytes: ctx.total_mem().unwrap_or(0) as u64,
                    compute_capability: format!("{major}.{minor}"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
