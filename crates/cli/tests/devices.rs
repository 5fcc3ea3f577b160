//! The same checks on every device this build can use: the CPU always, CUDA under
//! `--features cuda`. Where the CUDA build finds no GPU, the CUDA half says so on stderr and is
//! skipped, not passed. On the GPU machine (no Rust toolchain, another path) `RNN_BIN` and
//! `RNN_REPO_ROOT` point at the carried binary and checkout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{check_args, fixtures, repo, rnn};

/// The devices to test on, each with whether it can run here (and why not).
fn devices() -> Vec<(&'static str, Result<(), String>)> {
    let mut list = vec![("cpu", Ok(()))];
    if cfg!(feature = "cuda") {
        let out = rnn(&["devices", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let usable = v["gpus"].as_array().is_some_and(|g| !g.is_empty());
        let why = v["gpu_problem"].as_str().unwrap_or("no GPU").to_string();
        list.push(("cuda", if usable { Ok(()) } else { Err(why) }));
    }
    list
}

#[test]
fn every_fixture_passes_on_every_device_at_the_default_tolerances() {
    for (device, usable) in devices() {
        if let Err(why) = usable {
            eprintln!("SKIPPED on {device}: {why}");
            continue;
        }
        for fixture in fixtures() {
            let mut args = vec!["check".to_string(), fixture.to_str().unwrap().into()];
            args.extend(check_args(&fixture));
            args.extend(["--device".into(), device.into()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = rnn(&args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{device} {}: {}{}",
                fixture.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// CPU and GPU agree to 1e-6 in f32 on the article's model and on every fixture.
#[test]
fn cpu_and_cuda_agree_within_1e6() {
    let usable = devices().into_iter().any(|(d, u)| d == "cuda" && u.is_ok());
    if !usable {
        eprintln!("SKIPPED: no usable CUDA device in this build or on this machine");
        return;
    }
    let mut files = fixtures();
    files.push(repo("models/seed/article.safetensors"));
    for fixture in files {
        let mut args = vec!["check".to_string(), fixture.to_str().unwrap().into()];
        args.extend(check_args(&fixture));
        args.extend(["--devices".into(), "cpu,cuda".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rnn(&args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for line in text.lines().filter(|l| l.starts_with("divergence")) {
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(value <= 1e-6, "{}: {line}", fixture.display());
        }
        assert!(text.contains("divergence"), "{}: {text}", fixture.display());
    }
}

/// A build without the cuda feature refuses `--device cuda` with exit 2 and says how to get one.
#[test]
#[cfg(not(feature = "cuda"))]
fn cuda_on_a_cpu_only_build_is_a_clear_error() {
    for device in ["cuda", "cuda:1"] {
        let out = rnn(&["run", "--device", device]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("built without CUDA support") && err.contains("--features cuda"),
            "{err}"
        );
    }
    let out = rnn(&["run", "--device", "auto"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--device auto chose the CPU"));
}

/// A CUDA build on a machine without a GPU (CI, and ours) refuses `--device cuda` clearly.
#[test]
#[cfg(feature = "cuda")]
fn cuda_without_a_gpu_is_a_clear_error() {
    let usable = devices().into_iter().any(|(d, u)| d == "cuda" && u.is_ok());
    if usable {
        eprintln!("SKIPPED: this machine has a GPU");
        return;
    }
    let out = rnn(&["run", "--device", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: --device cuda:0: ") && !err.contains("internal error"),
        "{err}"
    );
}
