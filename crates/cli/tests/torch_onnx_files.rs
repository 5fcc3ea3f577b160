//! Model files as PyTorch and ONNX write them (`tests/fixtures/files/`), run by the real binary
//! against the framework's own outputs; the files rnn refuses exit 2 with one line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{check_args, check_npz, metadata_words, repo, rnn};
use std::path::{Path, PathBuf};

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

/// A graph whose initialisers fix h0 runs whole from it (ONNX Runtime's numbers); fed step by
/// step (`--stream`) or batch by batch (`--batch-size`) it would start from zeros, so both
/// refuse it by what it fixes.
#[test]
fn onnx_initial_h_initialiser_runs_whole_and_is_not_streamed() {
    check("onnx_fixed_h0.onnx");
    let path = repo("tests/fixtures/files/onnx_fixed_h0.onnx");
    let path = path.to_str().unwrap();
    let inputs = repo("tests/fixtures/files/onnx_fixed_h0.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    let batched = [
        "--batch-size",
        "1",
        "--input",
        inputs.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    for mode in [&["--stream"][..], &batched[..]] {
        let mut args = vec!["run", path];
        args.extend(mode);
        let out = rnn(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode:?}: {stderr}");
        assert!(stderr.contains("the model fixes h0"), "{mode:?}: {stderr}");
    }
    assert!(!out.exists());
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

/// Whole models as ONNX files: PyTorch's from either exporter (`xtask/fixtures/onnx_whole.py`;
/// the legacy exporter's for another batch and length than the export's, the default
/// exporter's for its own) and tf-keras's converted by tf2onnx (`tf2onnx_loop.py`), each run
/// from the graph's input (and the RNN's h0, where the graph takes it) to its outputs, named
/// as the graph names them, against ONNX Runtime on the file.
#[test]
fn onnx_whole_models_run_from_their_input_to_their_outputs() {
    for (model, outputs) in [
        ("onnx_whole_classifier", 1),
        ("onnx_whole_final_state", 1),
        ("onnx_whole_tagger", 1),
        ("onnx_whole_tied", 2),
        ("onnx_whole_glue", 1),
        ("onnx_whole_features", 1),
        ("onnx_whole_dynamo_classifier", 1),
        ("onnx_whole_dynamo_final_state", 1),
        ("onnx_whole_dynamo_tagger", 1),
        // A Concat of two unrolled steps of the graph's own, not the exporter's of every step.
        ("onnx_whole_dynamo_two_steps", 1),
        // Heads on h_n alone: the exporter never joins the steps of the one layer.
        ("onnx_whole_dynamo_final", 1),
        ("onnx_whole_dynamo_finals_bidirectional", 1),
        // Two recurrences (the second evaluated as the graph says) and one run twice.
        ("onnx_whole_dynamo_two_rnns", 1),
        ("onnx_whole_dynamo_twice", 1),
        // Mean, max, min and sum over the steps (`onnx_whole_pooled.py`), from both exporters
        // (opset 18: the axes an input).
        ("onnx_whole_pooled", 1),
        ("onnx_whole_dynamo_pooled", 1),
        ("tf2onnx_whole_classifier", 1),
        ("tf2onnx_whole_tagger", 1),
        // forward(ids, h0): the RNN's h0 a second graph input, given as the fixture's `h0`
        // (two layers; one of them bidirectional; the default exporter's unrolled too).
        ("onnx_whole_state", 2),
        ("onnx_whole_state_bidirectional", 2),
        ("onnx_whole_dynamo_state", 2),
    ] {
        let dir = repo("tests/fixtures/files");
        let onnx = dir.join(format!("{model}.onnx"));
        let fixture = dir.join(format!("{model}.safetensors"));
        let out = rnn(&[
            "check",
            onnx.to_str().unwrap(),
            "--fixture",
            fixture.to_str().unwrap(),
            "--atol",
            "1e-5",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{model}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("{outputs} of {outputs} tensors within tolerance")),
            "{model}: {stdout}"
        );
    }
}

#[test]
fn an_onnx_whole_model_names_its_outputs_and_checks_its_token_ids() {
    let dir = repo("tests/fixtures/files");
    let onnx = dir.join("onnx_whole_tied.onnx");
    let fixture = dir.join("onnx_whole_tied.safetensors");
    let out = rnn(&[
        "run",
        onnx.to_str().unwrap(),
        "--input",
        fixture.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let names: Vec<&str> = stdout
        .split("\"name\":")
        .skip(1)
        .filter_map(|s| s.trim_start().split('"').nth(1))
        .collect();
    assert_eq!(names, ["logits", "h_n"], "{stdout}");

    // The vocabulary has 30 rows: id 30 is refused, with its place.
    let scratch = tempfile::tempdir().unwrap();
    let ids = scratch.path().join("ids.json");
    std::fs::write(&ids, r#"{"input": [[1, 2, 30]]}"#).unwrap();
    let out = rnn(&[
        "run",
        onnx.to_str().unwrap(),
        "--input",
        ids.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[0, 30)") && stderr.contains("found 30 at [0, 2]"),
        "{stderr}"
    );

    // The graph runs on whole sequences: no stream.
    let out = rnn(&["run", onnx.to_str().unwrap(), "--stream"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("whole sequences"), "{stderr}");

    // inspect lists the nodes in the order they run, the stack among them.
    let out = rnn(&["inspect", onnx.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let gather = stdout.find("Gather node").unwrap();
    let stack = stdout.find("the RNN nodes").unwrap();
    let matmul = stdout.find("MatMul node").unwrap();
    assert!(gather < stack && stack < matmul, "{stdout}");
    assert!(stdout.contains("embedding.weight"), "{stdout}");
}

#[test]
fn an_onnx_whole_model_with_an_op_rnn_does_not_run_is_refused_by_name() {
    refused("onnx_whole_refused_conv.onnx", "Conv node");
    // tf2onnx writes Keras's mask_zero into the loop's body: the body's op is named.
    refused("refused_tf2onnx_whole_mask.onnx", "its body applies Add");
}

/// The default exporter unrolls the RNN over the example's steps and computes the rest for
/// that shape: another length or batch is refused, saying the shape the graph takes.
#[test]
fn an_unrolled_whole_model_runs_on_the_shape_it_was_exported_for() {
    let dir = repo("tests/fixtures/files");
    let onnx = dir.join("onnx_whole_dynamo_classifier.onnx");
    let scratch = tempfile::tempdir().unwrap();
    for (ids, found) in [
        (r#"{"input": [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]}"#, "[2, 5]"),
        (r#"{"input": [[1, 2, 3, 4]]}"#, "[1, 4]"),
    ] {
        let path = scratch.path().join("ids.json");
        std::fs::write(&path, ids).unwrap();
        let out = rnn(&[
            "run",
            onnx.to_str().unwrap(),
            "--input",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("the graph takes shape [2, 4]") && stderr.contains(found),
            "{stderr}"
        );
    }
}

/// tf2onnx's Keras SimpleRNN runs in ONNX Loop nodes (xtask/fixtures/tf2onnx_loop.py): the
/// recurrence lifted from each loop, ONNX Runtime's numbers on the file, and Keras's for
/// another length where the graph does not fix one; go_backwards's reversal is refused with
/// the Keras files to read instead.
#[test]
fn onnx_loops_of_tf2onnx_are_lifted() {
    check_npz("tf2onnx_stack.onnx", "tf2onnx_stack.npz", &[], 1);
    check_npz(
        "tf2onnx_relu_sequences.onnx",
        "tf2onnx_relu_sequences.npz",
        &[],
        1,
    );
    check_npz(
        "tf2onnx_relu_sequences.onnx",
        "tf2onnx_relu_sequences_other.npz",
        &[],
        1,
    );
    refused("refused_tf2onnx_backwards.onnx", "model.save(\"m.keras\")");
}

/// The default exporter's graph of one step holds no W_hh (h0·W_hhᵀ is folded away).
#[test]
fn onnx_unrolled_graph_of_one_step_is_refused() {
    refused(
        "refused_onnx_dynamo_one_step.onnx",
        "W_hh is not in the file",
    );
}

/// torch.onnx.export's default (dynamo) exporter unrolls nn.RNN step by step with a fixed
/// length: the recurrence is lifted from the steps, checked against ONNX Runtime on the file
/// (`NAME.npz`) and against torch for another length and batch (`NAME_other.npz`), with a
/// warning that says what the graph fixed.
#[test]
fn onnx_unrolled_by_the_default_exporter_runs_any_length_and_batch() {
    for name in [
        "onnx_dynamo_1l",
        "onnx_dynamo_2l",
        "onnx_dynamo_bidir",
        "onnx_dynamo_relu_no_bias",
        "onnx_dynamo_h0",
        "onnx_dynamo_batch_first_dynamic",
    ] {
        let model = format!("{name}.onnx");
        check_npz(&model, &format!("{name}.npz"), &[], 2);
        check_npz(&model, &format!("{name}_other.npz"), &[], 2);
    }
    let path = repo("tests/fixtures/files/onnx_dynamo_bidir.onnx");
    let fixture = repo("tests/fixtures/files/onnx_dynamo_bidir_other.npz");
    let out = rnn(&[
        "check",
        path.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unrolls the RNN over 4 steps for a batch of 2"),
        "{stderr}"
    );
}

/// The legacy exporter's glue around RNN nodes: batch-first Transposes with a zero h0 built by
/// ConstantOfShape and sliced per layer; `forward(x, h0)`'s graph input h0 sliced per layer.
#[test]
fn onnx_legacy_export_glue_is_evaluated() {
    check_npz(
        "onnx_legacy_batch_first.onnx",
        "onnx_legacy_batch_first.npz",
        &[],
        2,
    );
    check_npz(
        "onnx_legacy_h0_input.onnx",
        "onnx_legacy_h0_input.npz",
        &[],
        2,
    );
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

/// The tutorial's checkpoint, `torch.save({"epoch", "model_state_dict", "optimizer_state_dict",
/// "loss"})` after Adam steps (torch 2.15, from shared/cases/torch-checkpoint-dict): the
/// state_dict inside is read (`model_state_dict.rnn.*`), the optimizer's moments and the
/// scalars are not the model's, and torch's numbers come out.
#[test]
fn a_training_checkpoint_dict_is_read() {
    check_npz(
        "torch_checkpoint_dict.pt",
        "torch_checkpoint_dict.npz",
        &[],
        2,
    );
    let path = repo("tests/fixtures/files/torch_checkpoint_dict.pt");
    let out = rnn(&["inspect", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("model_state_dict.rnn.weight_hh_l1")
            && stdout.contains("optimizer_state_dict.state.0.exp_avg"),
        "{stdout}"
    );
}

/// `nn.utils.weight_norm(model.rnn, "weight_hh_l0")`'s state_dict (`_g` and `_v`, torch 2.15,
/// from shared/cases/torch-weight-norm): the weight computed as torch does, torch's numbers.
#[test]
fn a_weight_norm_state_dict_is_computed() {
    check_npz("torch_weight_norm.pt", "torch_weight_norm.npz", &[], 2);
    let path = repo("tests/fixtures/files/torch_weight_norm.pt");
    let out = rnn(&["inspect", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("weight norm"), "{stdout}");
}

/// Tensor names and shapes.
type StateDict<'a> = &'a [(&'a str, &'a [usize])];

/// A `torch.save` zip of a dict of dicts (`{outer: {name: float32 tensor of shape dims}}`),
/// each tensor in its own storage of zeros, written as torch.save lays it out.
fn torch_dicts(path: &std::path::Path, dicts: &[(&str, StateDict)]) {
    use std::io::Write;
    let text = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    };
    let int = |p: &mut Vec<u8>, n: usize| {
        p.push(b'J');
        p.extend((n as u32).to_le_bytes());
    };
    let mut pickle = b"\x80\x02}(".to_vec();
    let mut storages = Vec::new();
    for (outer, tensors) in dicts {
        text(&mut pickle, outer);
        pickle.extend(b"}(");
        for (name, dims) in *tensors {
            let key = storages.len().to_string();
            let count: usize = dims.iter().product();
            text(&mut pickle, name);
            pickle.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
            text(&mut pickle, "storage");
            pickle.extend(b"ctorch\nFloatStorage\n");
            text(&mut pickle, &key);
            text(&mut pickle, "cpu");
            int(&mut pickle, count);
            pickle.extend(b"tQ");
            int(&mut pickle, 0);
            pickle.push(b'(');
            for &d in *dims {
                int(&mut pickle, d);
            }
            pickle.extend(b"t(");
            for k in 0..dims.len() {
                int(&mut pickle, dims[k + 1..].iter().product());
            }
            pickle.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
            storages.push((key, vec![0u8; 4 * count]));
        }
        pickle.push(b'u');
    }
    pickle.extend(b"u.");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&pickle).unwrap();
    for (key, data) in &storages {
        zip.start_file(format!("archive/data/{key}"), stored)
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// A checkpoint holding two state_dicts of an RNN (a model and its moving average): nothing
/// says which to run, so rnn names both with the flag that picks each, and that flag runs it.
#[test]
fn two_state_dicts_in_one_checkpoint_are_named_not_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.pt");
    let rnn_dict: &[(&str, &[usize])] =
        &[("rnn.weight_ih_l0", &[4, 3]), ("rnn.weight_hh_l0", &[4, 4])];
    torch_dicts(&path, &[("model", rnn_dict), ("ema", rnn_dict)]);
    let model = path.to_str().unwrap();
    let input = dir.path().join("x.json");
    std::fs::write(&input, "[[[0.1, 0.2, 0.3]]]").unwrap();
    let input = input.to_str().unwrap();
    let out = rnn(&["run", model, "--input", input]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--prefix model.rnn.") && stderr.contains("--prefix ema.rnn."),
        "{stderr}"
    );
    let out = rnn(&["run", model, "--input", input, "--prefix", "ema.rnn."]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 2-layer bidirectional export re-saved with `save_as_external_data=True` (torch 2.15 and
/// onnx, from shared/cases/onnx-external-data): the tensors read from the file beside it.
#[test]
fn onnx_external_data_beside_the_model_is_read() {
    check_npz("onnx_external_data.onnx", "onnx_external_data.npz", &[], 2);
}

/// The same model, its data's location rewritten (same length) to leave the model's folder:
/// up a level, absolute, through a link, onto a FIFO. Each is refused with exit 2; none is
/// read or waited on.
#[test]
fn onnx_external_data_outside_the_folder_is_refused() {
    let files = repo("tests/fixtures/files");
    let model = std::fs::read(files.join("onnx_external_data.onnx")).unwrap();
    let data = std::fs::read(files.join("onnx_external_data.onnx.data")).unwrap();
    let location = b"onnx_external_data.onnx.data";
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("w.data"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(dir.path().join("up_external_data.onnx.data"), &data).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("w.data"),
        folder.join("link_external_data.onnx.data"),
    )
    .unwrap();
    let fifo = folder.join("fifo_external_data.onnx.data");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let absolute = format!("/{}", "x".repeat(location.len() - 1));
    for (to, says) in [
        ("../up_external_data.onnx.data", "not a plain path"),
        (absolute.as_str(), "not a plain path"),
        (
            "link_external_data.onnx.data",
            "leads out of the model's folder",
        ),
        ("fifo_external_data.onnx.data", "not a regular file"),
    ] {
        // The same length, so the protobuf's lengths still hold.
        let mut to = to.as_bytes().to_vec();
        to.resize(location.len(), b'a');
        let mut bytes = model.clone();
        let mut at = 0;
        while let Some(k) = bytes[at..]
            .windows(location.len())
            .position(|w| w == location)
        {
            bytes[at + k..at + k + location.len()].copy_from_slice(&to);
            at += k + location.len();
        }
        let path = folder.join("m.onnx");
        std::fs::write(&path, &bytes).unwrap();
        let out = rnn(&["inspect", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {stderr}",
            String::from_utf8_lossy(&to)
        );
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// torch.save under every file stem of 1 to 80 characters (xtask/fixtures/torch_stems.py):
/// the stem names the zip's records and moves torch's alignment padding; every one reads to
/// torch's numbers.
#[test]
fn torch_save_files_read_whatever_their_stem() {
    for n in 1..=80 {
        check_npz(&format!("stems/{}.pt", "a".repeat(n)), "stems.npz", &[], 2);
    }
}

/// `torch.export.save` archives (xtask/fixtures/torch_export.py, torch 2.15): the weights from
/// the archive, the options from the graph's aten.rnn node, against the exported program
/// loaded back; a graph that computes more than the RNN is refused naming the op.
#[test]
fn torch_export_archives_run_with_the_options_of_their_rnn_node() {
    for name in [
        "torch_export_2l",
        "torch_export_relu_bidir",
        "torch_export_f64",
    ] {
        check_npz(&format!("{name}.pt2"), &format!("{name}.npz"), &[], 2);
    }
    refused("refused_torch_export_head.pt2", "aten.linear.default");
}

/// Pruning (`_orig` · `_mask`) and the parametrizations API's weight norm (`original0`,
/// `original1`) as torch.save stores them (xtask/fixtures/torch_reparametrised.py): the weights
/// as torch computes them, torch's numbers.
#[test]
fn pruned_and_parametrized_state_dicts_compute_their_weights() {
    check_npz("torch_pruned.pt", "torch_pruned.npz", &[], 2);
    check_npz(
        "torch_parametrized_weight_norm.pt",
        "torch_parametrized_weight_norm.npz",
        &[],
        2,
    );
}

/// `--nonlinearity` takes the parametrised activations the metadata and the Python module
/// take (`leaky_relu(0.01)`, ONNX Runtime's LeakyRelu default, gives its numbers; another
/// alpha does not), and commas inside parentheses belong to the activation.
#[test]
fn parametrised_activations_are_given_on_the_command_line() {
    let dir = repo("tests/fixtures/files");
    let model = dir.join("onnx_leaky_default.onnx");
    let fixture = dir.join("onnx_leaky_default.safetensors");
    let run = |activation: &str| {
        rnn(&[
            "check",
            model.to_str().unwrap(),
            "--fixture",
            fixture.to_str().unwrap(),
            "--nonlinearity",
            activation,
        ])
        .status
        .code()
    };
    assert_eq!(run("leaky_relu(0.01)"), Some(0));
    assert_eq!(run("leaky_relu(0.3)"), Some(1));
    assert_eq!(
        run("affine(0.7,0.2),tanh"),
        Some(2),
        "one layer, two activations"
    );
    assert_eq!(run("leaky_relu(0.01"), Some(2));
}

/// `rnn convert … -o X.pt` against PyTorch itself (`xtask/fixtures/torch_converted.py`): each
/// committed `.pt` was loaded with `torch.load(weights_only=True)` into the `nn.RNN` that rnn
/// printed and run by torch. The same source converts to the same bytes today, and rnn reads
/// the `.pt` back to torch's numbers.
#[test]
fn converted_state_dicts_are_the_files_torch_loaded() {
    let cases = converted_files_are_the_ones_run("converted", |fixture| {
        (
            fixture.with_extension("pt"),
            "import torch\nrnn = torch.nn.RNN(",
        )
    });
    assert!(cases >= 6, "{cases} converted fixtures");
}

/// `rnn convert … -o X.onnx` against ONNX Runtime itself (`xtask/fixtures/onnx_converted.py`):
/// each committed `.onnx` passed `onnx.checker` and ran in onnxruntime, with its optional
/// inputs left out (h0 zeros, whole sequences) and given (`h0`, `lengths`). The same source
/// converts to the same bytes today, and rnn reads the `.onnx` back to ONNX Runtime's numbers.
#[test]
fn converted_onnx_graphs_are_the_files_onnx_runtime_ran() {
    let dir = repo("tests/fixtures/converted_onnx");
    let cases = converted_files_are_the_ones_run("converted_onnx", |fixture| {
        let graph = metadata_words(fixture, "onnx").concat();
        (dir.join(graph), "import onnxruntime")
    });
    assert!(cases >= 20, "{cases} converted fixtures");
}

/// `rnn convert … -o X.keras` against Keras itself (`xtask/fixtures/keras_converted.py`): each
/// committed `.keras` was loaded with `keras.models.load_model` and run by `predict`. The same
/// source converts to the same bytes today, and rnn reads the `.keras` back to Keras's numbers.
#[test]
fn converted_keras_models_are_the_files_keras_loaded() {
    let cases = converted_files_are_the_ones_run("converted_keras", |fixture| {
        (fixture.with_extension("keras"), "import keras")
    });
    assert!(cases >= 15, "{cases} converted fixtures");
}

/// `rnn convert … -o X.weights.h5` against Keras itself: each committed weights file was
/// loaded into the model that the Python rnn printed builds (`model_from_json`, then
/// `load_weights`) and run by `predict`. The same bytes today, and rnn reads the weights back
/// (with the conversion's flags: a weights file records no options) to Keras's numbers.
#[test]
fn converted_keras_weights_are_the_files_keras_loaded() {
    let cases = converted_files_are_the_ones_run("converted_keras_weights", |fixture| {
        (fixture.with_extension("weights.h5"), "import keras")
    });
    assert!(cases >= 5, "{cases} converted fixtures");
}

/// What a Keras model of SimpleRNN layers cannot express is refused by name, and nothing is
/// written.
#[test]
fn a_conversion_to_keras_refuses_what_simple_rnn_cannot_express() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("files/onnx_clip.onnx", &[][..], "ONNX's clip"),
        (
            "files/onnx_reverse.onnx",
            &[][..],
            "ONNX's reverse direction (layer 0)",
        ),
        (
            "torch_l2_no_bias.safetensors",
            &["--nonlinearity", "leaky_relu(0.1)"][..],
            "activation leaky_relu(0.1) (layer 0), an ONNX one",
        ),
        (
            "files/onnx_tanh_relu.onnx",
            &[][..],
            "a backward activation (relu)",
        ),
        ("files/torch_export_f64.pt2", &[][..], "F64 weights"),
        (
            "files/keras_masked_bidirectional.keras",
            &["--masked-steps", "zeros"][..],
            "masked steps zeros behind a Masking layer",
        ),
    ];
    assert_refused("m.keras", "cannot write a Keras model", &cases);
}

/// For each fixture in `tests/fixtures/<dir>`: `rnn convert` of its `convert_source` with its
/// `convert_args` writes the bytes of the committed file `committed` names (and prints the
/// loader it starts with), and `rnn check` of that file against the fixture passes. The number
/// of fixtures.
fn converted_files_are_the_ones_run(
    dir: &str,
    committed: impl Fn(&Path) -> (PathBuf, &'static str),
) -> usize {
    let dir = repo("tests/fixtures").join(dir);
    let scratch = tempfile::tempdir().unwrap();
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let fixture = entry.unwrap().path();
        if fixture.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        cases += 1;
        let (committed, loader) = committed(&fixture);
        let source = metadata_words(&fixture, "convert_source").concat();
        let source = repo("tests/fixtures").join(source);
        let again = scratch.path().join(committed.file_name().unwrap());
        let mut args = vec![
            "convert".to_string(),
            source.display().to_string(),
            "-o".into(),
            again.display().to_string(),
        ];
        args.extend(metadata_words(&fixture, "convert_args"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rnn(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with(loader), "{stdout}");
        assert!(
            std::fs::read(&again).unwrap() == std::fs::read(&committed).unwrap(),
            "{}: rnn convert {args:?} no longer writes the bytes the framework ran",
            committed.display()
        );
        let mut check = vec![
            "check".to_string(),
            committed.display().to_string(),
            "--fixture".into(),
            fixture.display().to_string(),
        ];
        check.extend(check_args(&fixture));
        let check: Vec<&str> = check.iter().map(String::as_str).collect();
        let out = rnn(&check);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{check:?}: {stdout}");
        let within = stdout.lines().last().unwrap_or_default();
        let counts: Vec<&str> = within.split_whitespace().collect();
        assert!(
            matches!(counts.as_slice(), [n, "of", m, "tensors", "within", "tolerance"] if n == m && *n != "0"),
            "{check:?}: {stdout}"
        );
    }
    cases
}

/// What nn.RNN cannot express is refused by name, and nothing is written.
#[test]
fn a_conversion_to_pytorch_refuses_what_nn_rnn_cannot_express() {
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "keras_go_backwards.safetensors",
            &["--go-backwards", "--masked-steps", "zeros"][..],
            "go_backwards (layer 0)",
        ),
        (
            "keras_merge_sum.safetensors",
            &["--merge-mode", "sum", "--masked-steps", "zeros"][..],
            "merge_mode sum",
        ),
        (
            "keras_activation_selu.safetensors",
            &["--nonlinearity", "selu"][..],
            "activation selu",
        ),
        (
            "keras_simple_rnn_sequences.safetensors",
            &[][..],
            "masked steps repeat-last",
        ),
        ("files/onnx_clip.onnx", &[][..], "ONNX's clip"),
        (
            "files/onnx_fixed_h0.onnx",
            &[][..],
            "fixes h0 (ONNX initialisers), which the converted file would not keep",
        ),
    ];
    assert_refused("m.pt", "cannot write a PyTorch nn.RNN state_dict", &cases);
}

/// What an ONNX graph of RNN nodes (or ONNX Runtime, which runs them in float32 only) cannot
/// express is refused by name, and nothing is written.
#[test]
fn a_conversion_to_onnx_refuses_what_the_graph_cannot_express() {
    let cases: [(&str, &[&str], &str); 9] = [
        (
            "keras_go_backwards.safetensors",
            &["--go-backwards", "--masked-steps", "zeros"][..],
            "go_backwards (layer 0)",
        ),
        (
            "keras_merge_none.safetensors",
            &["--merge-mode", "none", "--masked-steps", "zeros"][..],
            "merge_mode none (layer 0)",
        ),
        (
            "keras_activation_selu.safetensors",
            &["--nonlinearity", "selu", "--masked-steps", "zeros"][..],
            "activation selu (layer 0)",
        ),
        (
            "keras_activation_hard_sigmoid.safetensors",
            &["--nonlinearity", "hard_sigmoid", "--masked-steps", "zeros"][..],
            "activation hard_sigmoid (layer 0)",
        ),
        (
            "torch_l2_no_bias.safetensors",
            &["--nonlinearity", "leaky_relu(0.1)"][..],
            "ONNX's parameters are float32",
        ),
        (
            "keras_simple_rnn_sequences.safetensors",
            &[][..],
            "masked steps repeat-last",
        ),
        (
            "keras_masking.safetensors",
            &["--mask-value", "0", "--masked-steps", "zeros"][..],
            "a Keras Masking layer",
        ),
        (
            "files/torch_export_f64.pt2",
            &[][..],
            "F64 weights for ONNX Runtime",
        ),
        (
            "files/onnx_fixed_h0.onnx",
            &[][..],
            "fixes h0 (ONNX initialisers), which the converted file would not keep",
        ),
    ];
    assert_refused("m.onnx", "cannot write an ONNX graph of RNN nodes", &cases);
}

/// `rnn convert SOURCE -o OUTPUT FLAGS…` for each case (a source under tests/fixtures, its
/// flags, what the message says): exit 2, one line that says `format` and the case's words,
/// and nothing written.
fn assert_refused(output: &str, format: &str, cases: &[(&str, &[&str], &str)]) {
    let scratch = tempfile::tempdir().unwrap();
    let out_path = scratch.path().join(output);
    for &(source, flags, says) in cases {
        let source = repo("tests/fixtures").join(source);
        let mut args = vec![
            "convert",
            source.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ];
        args.extend(flags);
        let out = rnn(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(format) && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(!out_path.exists());
    }
}

/// ONNX Runtime gives a sequence of length 0 a final state of 0, rnn its initial state: an ONNX
/// model run with such a sequence and a nonzero h0 is refused; with an h0 of zeros it runs.
#[test]
fn an_empty_sequence_with_a_nonzero_h0_is_refused_for_an_onnx_model() {
    let scratch = tempfile::tempdir().unwrap();
    let model = repo("tests/fixtures/converted_onnx/torch_bidir.onnx");
    let run = |h0: f32| {
        let inputs = scratch.path().join("in.safetensors");
        let x: Vec<u8> = (0..5 * 2 * 3)
            .flat_map(|i| (0.1 * i as f32).to_le_bytes())
            .collect();
        let h: Vec<u8> = (0..2 * 2 * 5).flat_map(|_| h0.to_le_bytes()).collect();
        let lengths: Vec<u8> = [5i64, 0].iter().flat_map(|l| l.to_le_bytes()).collect();
        let view = |dtype, shape: Vec<usize>, data: &'static [u8]| {
            safetensors::tensor::TensorView::new(dtype, shape, data).unwrap()
        };
        let (x, h, lengths) = (x.leak(), h.leak(), lengths.leak());
        let tensors = [
            ("input", view(safetensors::Dtype::F32, vec![5, 2, 3], x)),
            ("h0", view(safetensors::Dtype::F32, vec![2, 2, 5], h)),
            ("lengths", view(safetensors::Dtype::I64, vec![2], lengths)),
        ];
        safetensors::serialize_to_file(tensors, None, &inputs).unwrap();
        rnn(&[
            "run",
            model.to_str().unwrap(),
            "--input",
            inputs.to_str().unwrap(),
        ])
    };
    let out = run(0.5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "sequence 1 has length 0 and a nonzero h0: ONNX Runtime gives it a final state of 0"
        ),
        "{stderr}"
    );
    let out = run(0.0);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An ONNX `direction=reverse` layer keeps its outputs in time order; `--go-backwards` would
/// put them in processing order. Both cannot hold: the flag is refused, not applied over it.
#[test]
fn go_backwards_over_an_onnx_reverse_layer_is_refused() {
    let path = repo("tests/fixtures/files/onnx_reverse.onnx");
    let fixture = repo("tests/fixtures/files/onnx_reverse.safetensors");
    let out = rnn(&[
        "check",
        path.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
        "--go-backwards",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--go-backwards: layer 0 already reads its sequence from the end"),
        "{stderr}"
    );
}

/// A whole model whose graph takes the RNN's h0 (`forward(ids, h0)`) runs from zeros where no
/// h0 is given, as nn.RNN's forward does: the same output as zeros given, another than the
/// fixture's h0 gives. A whole model whose graph does not take it refuses an h0.
#[test]
fn an_onnx_whole_model_takes_h0_where_its_graph_does() {
    use safetensors::tensor::TensorView;
    let dir = repo("tests/fixtures/files");
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(dir.join("onnx_whole_state.safetensors")).unwrap();
    let fixture = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (input, h0) = (
        fixture.tensor("input").unwrap(),
        fixture.tensor("h0").unwrap(),
    );
    let zero_bytes = vec![0u8; h0.data().len()];
    let zeros = TensorView::new(h0.dtype(), h0.shape().to_vec(), &zero_bytes).unwrap();
    let save = |name: &str, tensors: Vec<(&str, &TensorView)>| {
        let path = tmp.path().join(name);
        std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
        path
    };
    let run = |inputs: &Path, model: &str| {
        let out = rnn(&[
            "run",
            dir.join(model).to_str().unwrap(),
            "--input",
            inputs.to_str().unwrap(),
            "--format",
            "json",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code(), stdout, stderr)
    };
    let alone = save("alone.safetensors", vec![("input", &input)]);
    let with_zeros = save("zeros.safetensors", vec![("input", &input), ("h0", &zeros)]);
    let with_h0 = save("h0.safetensors", vec![("input", &input), ("h0", &h0)]);
    let mut outputs = Vec::new();
    for inputs in [&alone, &with_zeros, &with_h0] {
        let (code, stdout, stderr) = run(inputs, "onnx_whole_state.onnx");
        assert_eq!(code, Some(0), "{stderr}");
        outputs.push(stdout);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_ne!(outputs[2], outputs[1]);
    let (code, _, stderr) = run(&with_h0, "onnx_whole_classifier.onnx");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("takes no h0 or lengths"), "{stderr}");
}
