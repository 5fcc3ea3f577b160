//! `cargo xtask fixtures`: reference outputs from the real frameworks.
//!
//! A Python venv with the pinned packages of `xtask/requirements.txt` is created once, outside
//! the repository (`$RNN_XTASK_VENV`, else `~/.cache/rnn-xtask/venv`), and reinstalled only when
//! the requirements change. The generator scripts in `xtask/fixtures/` write
//! `tests/fixtures/*.safetensors`, which are committed: `cargo test` never needs Python.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Generator scripts, run in this order.
const SCRIPTS: &[&str] = &[
    "tf1_article.py",
    "tf1_cells.py",
    "torch_rnn.py",
    "keras_simple_rnn.py",
    "keras_semantics.py",
    "tf1_structure.py",
    "torch_aliases.py",
    "numpy_formats.py",
    "torch_files.py",
    "onnx_exports.py",
    "torch_stems.py",
    "torch_export.py",
    "torch_reparametrised.py",
    "tf2onnx_loop.py",
    "onnx_attributes.py",
    "onnx_fixed_h0.py",
    "framework_files.py",
    "keras_mask_tenth.py",
    "keras_whole.py",
    "tfkeras_whole.py",
    "tfkeras_saved_models.py",
    "keras3_train_checkpoint.py",
    "keras3_stacked_cells.py",
    "keras_last_step.py",
    "torch_gradients.py",
    "numpy_print.py",
    "torch_converted.py",
    "onnx_converted.py",
    "keras_converted.py",
    "onnx_whole.py",
    "keras_whole_outputs.py",
    "onnx_whole_pooled.py",
    "keras_float16.py",
    "tfkeras_cells.py",
];

pub fn run(root: &Path) -> Result<()> {
    let python = venv_python(root)?;
    let out = root.join("tests/fixtures");
    // torch_, onnx_ and keras_converted.py run `rnn convert`: the binary of this checkout.
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "rnn-cli"])
        .current_dir(root)
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p rnn-cli failed ({status})");
    }
    let rnn = root.join("target/release/rnn");
    for script in SCRIPTS {
        let path = root.join("xtask/fixtures").join(script);
        println!("running {}", path.display());
        let status = Command::new(&python)
            .arg(&path)
            .arg(&out)
            .env("TF_CPP_MIN_LOG_LEVEL", "2")
            .env("TF_USE_LEGACY_KERAS", "1")
            .env("RNN_BIN", &rnn)
            .status()
            .with_context(|| format!("cannot start {}", python.display()))?;
        if !status.success() {
            bail!("{script} failed ({status})");
        }
    }
    Ok(())
}

/// The cached venv's python, creating the venv or reinstalling when the requirements changed.
pub fn venv_python(root: &Path) -> Result<PathBuf> {
    let venv = match std::env::var_os("RNN_XTASK_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; set RNN_XTASK_VENV")?;
            PathBuf::from(home).join(".cache/rnn-xtask/venv")
        }
    };
    let python = venv.join("bin/python");
    let requirements = root.join("xtask/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let stamp = venv.join("rnn-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    if !python.exists() {
        println!("creating the venv {}", venv.display());
        let status = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .context("cannot run python3 to create the venv")?;
        if !status.success() {
            bail!("python3 -m venv {} failed ({status})", venv.display());
        }
    }
    println!(
        "installing {} (several GB the first time)",
        requirements.display()
    );
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(&requirements)
        .status()
        .context("cannot run pip in the venv")?;
    if !status.success() {
        bail!(
            "pip install -r {} failed ({status})",
            requirements.display()
        );
    }
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}
