//! Model files as PyTorch and ONNX write them (`tests/fixtures/files/`), run by the real binary
//! against the framework's own outputs; the files rnn refuses exit 2 with one line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{check_args, repo, rnn};

/// `rnn check NAME.<ext> --fixture NAME.safetensors` with the fixture's flags, within 1e-5.
fn check(model: &str) {
    let dir = repo("tests/fixtures/files");
    let stem = model.rsplit_once('.').unwrap().0;
    let fixture = dir.join(format!("{stem}.safetensors"));
    let model = dir.join(model);
    let mut args = vec![
        "check".to_string(),
        model.to_str().unwrap().to_string(),
        "--fixture".into(),
        fixture.to_str().unwrap().to_string(),
        "--atol".into(),
        "1e-5".into(),
    ];
    args.extend(check_args(&fixture));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rnn(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{model:?}: {stdout}{stderr}");
    assert!(
        stdout.contains("2 of 2 tensors within tolerance"),
        "{stdout}"
    );
}

fn refused(model: &str, says: &str) {
    let path = repo("tests/fixtures/files").join(model);
    let out = rnn(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{model}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(model) && stderr.contains(says), "{stderr}");
}

#[test]
fn torch_save_zip_state_dict() {
    check("torch_zip_bidir.pt");
}

#[test]
fn torch_save_legacy_state_dict() {
    check("torch_legacy.pth");
}

#[test]
fn torch_save_nested_state_dict() {
    check("torch_nested.bin");
}

#[test]
fn onnx_export_of_a_bidirectional_stack() {
    check("onnx_export_bidir.onnx");
}

#[test]
fn onnx_rnn_node_with_initial_h_and_sequence_lens_initialisers() {
    check("onnx_relu_h0_lengths.onnx");
}

#[test]
fn onnx_float64_run_against_torch() {
    let dir = repo("tests/fixtures/files");
    let out = rnn(&[
        "check",
        dir.join("onnx_export_bidir.onnx").to_str().unwrap(),
        "--fixture",
        dir.join("onnx_export_bidir.safetensors").to_str().unwrap(),
        "--dtype",
        "f64",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

#[test]
fn torchscript_is_refused() {
    refused("refused_torchscript.pt", "TorchScript");
}

#[test]
fn whole_module_is_refused() {
    refused("refused_whole_module.pt", "model.state_dict()");
}

#[test]
fn onnx_gather_is_refused() {
    refused("refused_onnx_gather.onnx", "Gather");
}

#[test]
fn onnx_without_rnn_node_is_refused() {
    refused("refused_onnx_dynamo.onnx", "dynamo=False");
}

#[test]
fn onnx_clip() {
    check("onnx_clip.onnx");
    check("onnx_clip_relu_bidir.onnx");
}

#[test]
fn onnx_activations_per_direction() {
    check("onnx_tanh_relu.onnx");
    check("onnx_softplus_sigmoid.onnx");
}

#[test]
fn onnx_parametrised_activations() {
    check("onnx_leaky_thresholded.onnx");
    check("onnx_affine_scaled_tanh.onnx");
    check("onnx_hard_sigmoid_params.onnx");
    check("onnx_softsign_elu_clip.onnx");
}

#[test]
fn onnx_parametrised_activations_with_onnx_defaults() {
    check("onnx_hard_sigmoid_elu.onnx");
    check("onnx_leaky_default.onnx");
}

/// `rnn convert` keeps what the attributes say (reverse activation, parameters, clip) in the
/// canonical file's metadata: the converted file runs to ONNX Runtime's numbers with no flag,
/// and `inspect` shows it.
#[test]
fn onnx_attributes_survive_convert() {
    let dir = repo("tests/fixtures/files");
    let tmp = std::env::temp_dir().join(format!("rnn-onnx-attrs-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in ["onnx_softsign_elu_clip", "onnx_affine_scaled_tanh"] {
        let converted = tmp.join(format!("{name}.safetensors"));
        let out = rnn(&[
            "convert",
            dir.join(format!("{name}.onnx")).to_str().unwrap(),
            "-o",
            converted.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let out = rnn(&[
            "check",
            converted.to_str().unwrap(),
            "--fixture",
            dir.join(format!("{name}.safetensors")).to_str().unwrap(),
            "--atol",
            "1e-5",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {stdout}");
        assert!(
            stdout.contains("2 of 2 tensors within tolerance"),
            "{stdout}"
        );
    }
    let out = rnn(&[
        "inspect",
        tmp.join("onnx_softsign_elu_clip.safetensors")
            .to_str()
            .unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(text.contains("nonlinearity:  softsign\n"), "{text}");
    assert!(text.contains("reverse:       elu(0.5)\n"), "{text}");
    assert!(text.contains("clip:          2\n"), "{text}");
}

/// A flag's activation is both directions': the reverse one the file records gives way.
#[test]
fn nonlinearity_flag_replaces_both_directions() {
    let dir = repo("tests/fixtures/files");
    let out = rnn(&[
        "check",
        dir.join("onnx_tanh_relu.onnx").to_str().unwrap(),
        "--fixture",
        dir.join("onnx_tanh_relu.safetensors").to_str().unwrap(),
        "--nonlinearity",
        "tanh",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// direction=reverse: one direction read from the end, its outputs in time order.
#[test]
fn onnx_reverse() {
    check("onnx_reverse.onnx");
}

#[test]
fn onnx_attributes_rnn_cannot_compute_exactly_are_refused_by_name() {
    refused(
        "refused_onnx_alpha_order.onnx",
        "activation_alpha=[0.7, 0.3]",
    );
    refused(
        "refused_onnx_thresholded_relu_default.onnx",
        "ThresholdedRelu without activation_alpha",
    );
}

/// `--clip` overrides the attribute: the node's own 0.75 matches ONNX Runtime, 100 (a clamp
/// never reached) does not; a bound that is not positive is refused.
#[test]
fn clip_flag_gives_what_the_attribute_gives() {
    let dir = repo("tests/fixtures/files");
    let model = dir.join("onnx_clip.onnx");
    let fixture = dir.join("onnx_clip.safetensors");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "check",
            model.to_str().unwrap(),
            "--fixture",
            fixture.to_str().unwrap(),
            "--atol",
            "1e-5",
        ];
        args.extend_from_slice(extra);
        rnn(&args)
    };
    assert_eq!(run(&["--clip", "0.75"]).status.code(), Some(0));
    assert_eq!(run(&["--clip", "100"]).status.code(), Some(1));
    let out = run(&["--clip", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--clip: expected a positive bound"),
        "{stderr}"
    );
}
