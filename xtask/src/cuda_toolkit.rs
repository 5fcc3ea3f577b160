//! `cargo xtask cuda-toolkit`: a CUDA 13.0 build toolkit from PyPI, for building `--features
//! cuda` on a machine without a GPU, a driver or NVIDIA's installers (CI, and ours).
//!
//! NVIDIA's CUDA 13.0.2 wheels go into a venv under `$CUDA_PIP_PREFIX` (default
//! `~/.cache/cuda-pip`); a `cuda/` tree of symlinks beside it is laid out the way a CUDA_HOME
//! is (bin, include, nvvm, lib with unversioned link names), and a link-time-only `libcuda.so`
//! stub is generated from `cuda.h`, since no wheel ships one: one exported function per driver
//! entry point, each returning CUDA_ERROR_STUB_LIBRARY (34), SONAME libcuda.so.1. It is for
//! the linker only and must never be on a run-time library path.
//!
//! nvcc stays at 13.0: the GPU machine's driver (R580, CUDA 13.0) rejects PTX from a newer one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The pins of NVIDIA's meta package cuda-toolkit==13.0.2.
const WHEELS: &[&str] = &[
    "cuda-toolkit[nvcc,crt,nvvm,cccl,cudart,cublas,curand,nvrtc]==13.0.2",
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cublas==13.1.0.3",
    "nvidia-curand==10.4.0.35",
    "nvidia-cuda-nvrtc==13.0.88",
];

/// Where the toolkit goes.
pub fn prefix() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CUDA_PIP_PREFIX") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set CUDA_PIP_PREFIX")?;
    Ok(PathBuf::from(home).join(".cache/cuda-pip"))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs (or checks) the toolkit; returns the CUDA_HOME to build with.
pub fn install() -> Result<PathBuf> {
    let prefix = prefix()?;
    let venv = prefix.join("venv");
    let home = prefix.join("cuda");
    let python = venv.join("bin/python");
    if !python.exists() {
        println!("creating {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    println!("installing the CUDA 13.0.2 wheels (about 1.2 GB the first time)");
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--only-binary=:all:")
        .args(WHEELS))?;
    let site = run(Command::new(&python).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]))?;
    let cu13 = PathBuf::from(site.trim()).join("nvidia/cu13");
    if !cu13.join("bin/nvcc").exists() {
        bail!("nvcc not found in {}", cu13.display());
    }

    std::fs::create_dir_all(home.join("lib/stubs"))?;
    for dir in ["bin", "include", "nvvm"] {
        symlink(&cu13.join(dir), &home.join(dir))?;
    }
    symlink(Path::new("lib"), &home.join("lib64"))?;
    for entry in std::fs::read_dir(cu13.join("lib"))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !(name.contains(".so.") || name.ends_with(".a")) {
            continue;
        }
        symlink(&path, &home.join("lib").join(&name))?;
        // The unversioned name `-lcublas` looks for; the .alt variants must not take it.
        if let Some((stem, _)) = name.split_once(".so.") {
            if !name.contains(".alt.so.") {
                symlink(
                    Path::new(&name),
                    &home.join("lib").join(format!("{stem}.so")),
                )?;
            }
        }
    }
    make_driver_stub(&cu13, &home.join("lib/stubs"))?;

    let version = run(Command::new(home.join("bin/nvcc")).arg("--version"))?;
    if !version.contains("release 13.0") {
        bail!("expected nvcc release 13.0, found: {version}");
    }
    println!("CUDA_HOME={}", home.display());
    println!(
        "build with: CUDA_HOME={0} PATH={0}/bin:$PATH NVCC={0}/bin/nvcc CUDA_COMPUTE_CAP=90 \
         cargo build --release --features cuda",
        home.display()
    );
    Ok(home)
}

fn symlink(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).with_context(|| format!("cannot replace {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

/// Generates `libcuda.so` (SONAME libcuda.so.1) exporting every `cu*` entry point of `cuda.h`
/// (names after preprocessing, which are the versioned `_v2` ABI names, and as written), each
/// returning 34. Regenerated only when `cuda.h` changes.
fn make_driver_stub(cu13: &Path, stubs: &Path) -> Result<()> {
    let header = cu13.join("include/cuda.h");
    let text = std::fs::read_to_string(&header)
        .with_context(|| format!("cannot read {}", header.display()))?;
    let stamp_path = stubs.join("libcuda.so.stamp");
    let stamp = format!("{}-v1", text.len());
    let stub = stubs.join("libcuda.so");
    if stub.exists() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(());
    }
    let preprocessed = run(Command::new("gcc")
        .args(["-E", "-P", "-x", "c"])
        .arg(format!("-I{}", cu13.join("include").display()))
        .arg(&header))?;
    let mut names = BTreeSet::new();
    collect_entry_points(&preprocessed, &mut names);
    for line in text.lines() {
        if let Some(rest) = line.split("CUDAAPI").nth(1) {
            collect_entry_points(rest, &mut names);
        }
    }
    let mut source = String::from("/* link-time stub for libcuda.so.1, not a driver */\n");
    for name in &names {
        source.push_str(&format!("int {name}(void) {{ return 34; }}\n"));
    }
    let dir = std::env::temp_dir().join(format!("cuda-stub-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("stub.c"), source)?;
    run(Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-O0",
            "-w",
            "-Wl,-soname,libcuda.so.1",
            "-o",
        ])
        .arg(&stub)
        .arg(dir.join("stub.c")))?;
    std::fs::remove_dir_all(&dir).ok();
    std::fs::write(&stamp_path, stamp)?;
    println!(
        "generated {} ({} entry points)",
        stub.display(),
        names.len()
    );
    Ok(())
}

/// Every `cuXxx(` in `text`: a word starting `cu` and an upper-case letter, before `(`.
fn collect_entry_points(text: &str, names: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 3 < bytes.len() {
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if word_start
            && bytes[i] == b'c'
            && bytes[i + 1] == b'u'
            && bytes[i + 2].is_ascii_uppercase()
        {
            let end = (i..bytes.len())
                .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
                .unwrap_or(bytes.len());
            let after = text[end..].trim_start();
            if after.starts_with('(') {
                names.insert(text[i..end].to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
}
