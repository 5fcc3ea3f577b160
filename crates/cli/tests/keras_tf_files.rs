//! Files as the frameworks write them (`tests/fixtures/files/`, by
//! `xtask/fixtures/framework_files.py`): a TF1 `Saver` checkpoint, the article's program saved
//! with `Saver`, a TF2 `tf.train.Checkpoint` of a Keras model, a Keras `.weights.h5` and a
//! `.keras` archive, each checked by the real binary against the framework's own results,
//! with no flag beyond those the fixture records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{check_args, check_npz, repo, rnn};

fn check(model: &str, fixture: &str) {
    let model = repo(&format!("tests/fixtures/files/{model}"));
    let fixture = repo(&format!("tests/fixtures/files/{fixture}.safetensors"));
    let mut args = vec![
        "check".to_string(),
        model.to_str().unwrap().to_string(),
        "--fixture".to_string(),
        fixture.to_str().unwrap().to_string(),
    ];
    args.extend(check_args(&fixture));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rnn(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{stdout}\n{stderr}");
    assert!(stdout.contains("within tolerance"), "{stdout}");
}

#[test]
fn a_tf1_saver_checkpoint_of_a_bidirectional_dynamic_rnn_by_its_prefix() {
    check("tf1_saver_bidirectional", "tf1_saver_bidirectional");
}

/// A TF1 `Saver` checkpoint of a relu `BasicRNNCell`: the checkpoint holds the kernel and bias
/// only, and the `.meta` graph that `Saver` writes beside it by default records the relu, which
/// rnn reads (before, it ran tanh, the cell's default, with exit 0). Naming the `.meta` names
/// the checkpoint.
#[test]
fn a_tf1_cell_s_activation_is_read_from_the_meta_graph_beside_it() {
    check("tf1_saver_relu", "tf1_saver_relu");
    // The .meta names the checkpoint too.
    check("tf1_saver_relu.meta", "tf1_saver_relu");
}

#[test]
fn a_tf1_saver_checkpoint_by_its_index_file() {
    check("tf1_saver_bidirectional.index", "tf1_saver_bidirectional");
}

#[test]
fn the_articles_program_saved_with_saver_unnamed_variables_named_by_shape() {
    check("tf1_saver_article", "tf1_saver_article");
}

#[test]
fn a_tf2_checkpoint_of_a_keras_stack() {
    check("tf2_checkpoint_keras", "tf2_checkpoint_keras");
}

#[test]
fn a_keras_weights_h5_of_a_two_layer_stack() {
    check("keras_stack.weights.h5", "keras_stack");
}

#[test]
fn a_keras_archive_with_masking_bidirectional_sum_sigmoid_and_go_backwards() {
    check(
        "keras_masked_bidirectional.keras",
        "keras_masked_bidirectional",
    );
}

/// Masking(0.1): Keras compares in float32, so float32 0.1 is masked (rnn compared in float64
/// and masked nothing: a wrong number before this fixture).
#[test]
fn a_keras_masking_value_float32_does_not_hold_masks_as_keras_does() {
    check("keras_mask_tenth.keras", "keras_mask_tenth");
}

#[test]
fn a_keras_archive_records_its_options() {
    let path = repo("tests/fixtures/files/keras_masked_bidirectional.keras");
    let out = rnn(&["inspect", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for want in ["sigmoid", "sum", "true"] {
        assert!(stdout.contains(want), "{want} missing from:\n{stdout}");
    }
}

/// A `.keras` with a `Masking` layer: the lengths come from the input's masked steps when
/// the fixture gives none, and a mask with a hole is refused.
#[test]
fn a_keras_masking_layer_gives_the_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo("tests/fixtures/files/keras_masked_bidirectional.safetensors");
    let file = rnn_weights::TensorFile::read(&fixture).unwrap();
    let tensors: Vec<(String, candle_core::Tensor)> = file
        .names()
        .into_iter()
        .filter(|n| n != "lengths")
        .map(|n| (n.clone(), file.raw(&n).unwrap().clone()))
        .collect();
    let without = dir.path().join("without_lengths.safetensors");
    rnn_weights::write_safetensors(&without, &tensors, Default::default()).unwrap();
    let model = repo("tests/fixtures/files/keras_masked_bidirectional.keras");
    let out = rnn(&[
        "check",
        model.to_str().unwrap(),
        "--fixture",
        without.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Sequence 0 masked at step 1 (all zeros) but not at step 2.
    let input = tensors.into_iter().find(|(n, _)| n == "input").unwrap().1;
    let mut values = input.to_vec3::<f32>().unwrap();
    values[0][1] = vec![0.0; values[0][1].len()];
    let holey = candle_core::Tensor::new(values, &candle_core::Device::Cpu).unwrap();
    let path = dir.path().join("holey.safetensors");
    rnn_weights::write_safetensors(&path, &[("input".to_string(), holey)], Default::default())
        .unwrap();
    let out = rnn(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // This model has a go_backwards layer, whose outputs under such a mask rnn does not place
    // as Keras does: refused (forward and Bidirectional layers run it).
    assert!(
        stderr.contains("holes") && stderr.contains("go_backwards"),
        "{stderr}"
    );
    let out = rnn(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--stream",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Keras 3 `RNN(SimpleRNNCell(5), return_sequences=True)`: the same computation as a
/// SimpleRNN, read from the cell's config and the RNN layer's options.
#[test]
fn an_rnn_over_a_simple_rnn_cell_is_a_simple_rnn() {
    check_npz("keras_rnn_cell.keras", "keras_rnn_cell.npz", &[], 1);
}

/// Functional(Input → Sequential `encoder`[SimpleRNN(5), SimpleRNN(3)] → Dense(2)): the nested
/// stack is found under `encoder/`, and the flag that picks it gives Keras's output of the
/// nested Sequential.
#[test]
fn a_stack_inside_a_nested_sequential_is_found() {
    check_npz(
        "keras_nested_sequential.keras",
        "keras_nested_sequential.npz",
        &["--stack", "encoder/simple_rnn_1/,encoder/simple_rnn_2/"],
        1,
    );
}

/// tf-keras (Keras 2.21) `model.save("m.h5")` of SimpleRNN(6, relu) → SimpleRNN(4), the legacy
/// HDF5 layout (`model_weights/`, `layer_names`, `weight_names`, the root's `model_config`):
/// weights, order and relu from the file alone, Keras's numbers.
#[test]
fn a_tf_keras_full_model_h5_is_read_with_its_config() {
    check_npz("tfkeras_full.h5", "tfkeras_full.npz", &[], 1);
}

/// tf-keras `model.save("dir")` (a SavedModel folder, xtask/fixtures/tfkeras_saved_models.py):
/// read by the folder, its saved_model.pb and its variables' index alike, the checkpoint's
/// object graph and keras_metadata.pb giving names, order and options (relu; a Bidirectional
/// with merge_mode="sum" under a go_backwards layer), against tf-keras's `predict` on the model
/// loaded back.
#[test]
fn a_tf_keras_savedmodel_folder_is_read_with_its_config() {
    for name in ["tfkeras_savedmodel", "tfkeras_savedmodel_bidir"] {
        for entry in ["", "/saved_model.pb", "/variables/variables.index"] {
            check_npz(&format!("{name}{entry}"), &format!("{name}.npz"), &[], 1);
        }
    }
}

/// A SavedModel with a Dense head runs whole (its layers' variables found through the
/// checkpoint's object graph); `--stack` picks the RNN, which gives the RNN's own numbers.
#[test]
fn a_tf_keras_savedmodel_with_a_head_runs_whole_or_its_stack_alone() {
    let dir = repo("tests/fixtures/files");
    let model = dir.join("tfkeras_savedmodel_dense");
    let out = rnn(&["inspect", model.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("run whole") && stdout.contains("dense (Dense)"),
        "{stdout}"
    );
    // A Functional model of two outputs from token ids, through a Bidirectional layer's
    // states and a TimeDistributed head (`tfkeras_saved_models.py`), against tf-keras's
    // predict on the folder.
    check("tfkeras_savedmodel_whole", "tfkeras_savedmodel_whole");
    check_npz(
        "tfkeras_savedmodel_dense",
        "tfkeras_savedmodel_dense.npz",
        &["--stack", "simple_rnn/"],
        1,
    );
}

/// A compiled and fitted model's SavedModel stores its optimizer's slots and its metrics'
/// counters beside the model (`optimizer/…`, `keras_api/metrics/…`): training state that the
/// forward pass never reads, skipped; the model runs as tf-keras's reloaded `predict` does.
#[test]
fn a_trained_model_s_savedmodel_runs_past_its_optimizer_and_metrics() {
    check("tfkeras_savedmodel_trained", "tfkeras_savedmodel_trained");
}

/// A traced SavedModel of a stateful SimpleRNN stores the RNN's state between calls: saved
/// before any call (zeros), it runs as tf-keras's reloaded model does; saved after a call, it
/// is refused, since tf-keras's reloaded model goes on from the state it stores.
#[test]
fn a_stateful_rnn_s_stored_state_is_read_where_zero_and_refused_otherwise() {
    check("tfkeras_savedmodel_stateful", "tfkeras_savedmodel_stateful");
    let dir = repo("tests/fixtures/files");
    let out = rnn(&[
        "run",
        dir.join("tfkeras_savedmodel_stateful_used")
            .to_str()
            .unwrap(),
        "--input",
        dir.join("tfkeras_savedmodel_stateful.safetensors")
            .to_str()
            .unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stores a state that is not zeros") && stderr.contains("reset_states()"),
        "{stderr}"
    );
}

/// The same folder without tf-keras's keras_metadata.pb (as Keras 3's `model.export` writes
/// none): nothing ties the numbered variables to layers, so it is refused with what to save.
#[test]
fn a_savedmodel_without_keras_metadata_is_refused_with_what_to_save() {
    let source = repo("tests/fixtures/files/tfkeras_savedmodel");
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("exported");
    std::fs::create_dir_all(folder.join("variables")).unwrap();
    for entry in [
        "saved_model.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    ] {
        std::fs::copy(source.join(entry), folder.join(entry)).unwrap();
    }
    let out = rnn(&["run", folder.to_str().unwrap(), "--input", "x.npy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("without the keras_metadata.pb")
            && stderr.contains("model.save(\"m.keras\")"),
        "{stderr}"
    );
}

/// Keras 3.15 `tf.train.Checkpoint(model=…, optimizer=…)` after a step of Adam
/// (xtask/fixtures/keras3_train_checkpoint.py): the model's variables are keyed under the
/// optimizer; the object graph ties them to the layers, and the Adam slots are left out.
#[test]
fn a_keras3_checkpoint_with_its_optimizer_reads_the_model() {
    check_npz(
        "keras3_train_checkpoint.index",
        "keras3_train_checkpoint.npz",
        &[],
        1,
    );
}

/// Keras 3 `RNN(StackedRNNCells([SimpleRNNCell(4, relu), SimpleRNNCell(3)]))`: the stack of
/// layers it computes, each cell's options from the config, Keras's numbers.
#[test]
fn keras3_stacked_cells_run_as_a_stack() {
    check_npz(
        "keras3_stacked_cells.keras",
        "keras3_stacked_cells.npz",
        &[],
        1,
    );
}

/// Cells named by the user (`SimpleRNNCell(4, name="my_cell")`, a stack of `a` and `b`):
/// the archive's weights carry those names where a default cell's carry `simple_rnn_cell`,
/// and the config says they are SimpleRNNCells.
/// The legacy `.h5` of each (Keras 3's and tf-keras's `model.save("m.h5")`, `tfkeras_cells.py`)
/// names the cells' weights by their own names (`rnn/my_cell/kernel`,
/// `rnn/stacked_rnn_cells/a/kernel`), default-named stacks too.
#[test]
fn keras3_cells_with_names_of_their_own_run() {
    for (model, fixture) in [
        ("keras3_named_cell.keras", "keras3_named_cell.npz"),
        ("keras3_named_cells.keras", "keras3_named_cells.npz"),
        ("keras3_named_cell.h5", "keras3_named_cell.npz"),
        ("keras3_named_cells.h5", "keras3_named_cells.npz"),
        ("keras3_stacked_cells.h5", "keras3_stacked_cells.npz"),
        ("tfkeras_named_cell.h5", "tfkeras_named_cell.npz"),
        ("tfkeras_named_cells.h5", "tfkeras_named_cells.npz"),
        ("tfkeras_stacked_cells.h5", "tfkeras_stacked_cells.npz"),
    ] {
        check_npz(model, fixture, &[], 1);
    }
}

/// A Keras 3 model under the `float16` dtype policy (`keras_float16.py`): its float16 weights
/// read from the `.keras` archive and from `model.save("m.h5")`; computed in float16, Keras's
/// numbers; computed in float32 (the default), said to differ by that rounding.
#[test]
fn a_keras_float16_model_reads_its_float16_weights() {
    for model in ["keras3_float16.keras", "keras3_float16.h5"] {
        check_npz(model, "keras3_float16.npz", &["--dtype", "f16"], 1);
        let dir = repo("tests/fixtures/files");
        let out = rnn(&[
            "run",
            dir.join(model).to_str().unwrap(),
            "--input",
            dir.join("keras3_float16.npz").to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("Keras computes layers of this model in float16"),
            "{stderr}"
        );
    }
}

// Whole Keras 3 models (issue 27; `xtask/fixtures/keras_whole.py`): each run from its own
// input (token ids or vectors) to its own output, named as Keras names it, against Keras's
// predict on the reloaded file. The inputs pad at the front, at the end and leave holes; one
// sequence is all padding.

#[test]
fn a_text_classifier_from_token_ids_to_probabilities() {
    check("keras_whole_classifier.keras", "keras_whole_classifier");
    // Keras 3's model.save("m.h5"): the legacy layout, its weights under the model's name.
    check("keras_whole_classifier.h5", "keras_whole_classifier");
}

#[test]
fn a_tagger_with_masking_and_time_distributed_softmax() {
    check("keras_whole_tagger.keras", "keras_whole_tagger");
}

#[test]
fn a_functional_model_with_a_bidirectional_layer_dropouts_and_a_softmax_head() {
    check("keras_whole_functional.keras", "keras_whole_functional");
}

#[test]
fn flatten_after_a_go_backwards_layer_and_dense_heads_without_bias_and_log_softmax() {
    check("keras_whole_flatten.keras", "keras_whole_flatten");
}

/// `Softmax(axis=1)` on `[batch, units]`: the last axis, named by number.
#[test]
fn a_softmax_whose_axis_is_the_last_by_number_runs() {
    check("keras_whole_softmax_axis.keras", "keras_whole_softmax_axis");
}

#[test]
fn a_stacked_tagger_from_token_ids_repeats_outputs_at_masked_steps_as_keras_does() {
    check("keras_whole_tagger_ids.keras", "keras_whole_tagger_ids");
}

// Functional models that branch after their RNN (`xtask/fixtures/keras_whole_outputs.py`,
// `tfkeras_whole.py`): every output compared, named as tf-keras names them.

#[test]
fn two_heads_on_one_rnn_give_both_outputs() {
    check("keras_whole_two_heads.keras", "keras_whole_two_heads");
}

#[test]
fn return_state_states_read_by_a_head_and_given_as_outputs() {
    check("keras_whole_states.keras", "keras_whole_states");
    // tf-keras: the repeated output `birnn` named birnn, birnn_1, birnn_2.
    check("tfkeras_whole_states.h5", "tfkeras_whole_states");
    check("tfkeras_whole_states.keras", "tfkeras_whole_states");
}

#[test]
fn every_merge_layer_over_the_states_of_two_layers_under_a_mask_with_holes() {
    check("keras_whole_merges.keras", "keras_whole_merges");
    // A head on the lower layer's state, which Keras lists before the top recurrent layer.
    check("keras_whole_lower_head.keras", "keras_whole_lower_head");
}

/// Models nested in a model saved as model.save("m.h5") by Keras 3 and tf-keras (the legacy
/// layout: a nested model's group holds its layers' weights, each under its own layer's name):
/// a nested encoder under a Dense head, and a nested Sequential head, whose output takes the
/// nested model's name (`xtask/fixtures/keras_whole.py`, `tfkeras_whole.py`).
#[test]
fn models_nested_in_h5_files() {
    for name in [
        "keras_whole_nested_h5_encoder",
        "keras_whole_nested_h5_head",
        "tfkeras_whole_nested_encoder",
        "tfkeras_whole_nested_head",
    ] {
        check(&format!("{name}.h5"), name);
    }
    // tf-keras's .keras archive of the same models: the nested model's layers keyed by class
    // and place inside its own group (`layers/sequential/layers/simple_rnn`).
    for name in ["tfkeras_whole_nested_encoder", "tfkeras_whole_nested_head"] {
        check(&format!("{name}.keras"), name);
    }
}

#[test]
fn a_nested_encoder_read_by_two_heads() {
    check("keras_whole_nested.keras", "keras_whole_nested");
    // And a nested Sequential head on the RNN's output, beside a Dense on its state.
    check("keras_whole_nested_head.keras", "keras_whole_nested_head");
}

/// tf-keras (Keras 2) `model.save("m.h5")`, the legacy HDF5 layout: a classifier from token ids
/// through a Bidirectional layer and a Dropout between recurrent layers, and a relu tagger with
/// a sigmoid TimeDistributed head (`xtask/fixtures/tfkeras_whole.py`).
#[test]
fn whole_tf_keras_models_saved_as_h5() {
    check("tfkeras_whole_classifier.h5", "tfkeras_whole_classifier");
    check("tfkeras_whole_tagger.h5", "tfkeras_whole_tagger");
    // tf-keras's hard_sigmoid is clip(0.2x + 0.5, 0, 1), not Keras 3's relu6(x + 3) / 6.
    check(
        "tfkeras_whole_hard_sigmoid.h5",
        "tfkeras_whole_hard_sigmoid",
    );
}

/// The same tf-keras models saved as model.save("m.keras"): an archive whose weights are keyed
/// by each layer's class and place (`simple_rnn`, `simple_rnn_1`, `time_distributed`), which
/// config.json's layers name in the same order; tf-keras's predict on the reloaded archive is
/// the .h5's (asserted by the generator).
#[test]
fn whole_tf_keras_models_saved_as_keras_archives() {
    for name in ["classifier", "tagger", "hard_sigmoid", "states"] {
        check(
            &format!("tfkeras_whole_{name}.keras"),
            &format!("tfkeras_whole_{name}"),
        );
    }
}

/// SimpleRNN(zero_output_for_mask=True): zeros at masked steps, not the last output repeated.
#[test]
fn zero_output_for_mask_gives_zeros_at_masked_steps() {
    check("keras_whole_zero_output.keras", "keras_whole_zero_output");
}

/// The RNN alone under a Keras Masking layer whose masks pad at the front and leave holes:
/// Keras skips those steps with the state carried, and so does rnn (one direction, stacked,
/// and Bidirectional).
#[test]
fn a_masking_layer_s_holes_and_front_padding_are_skipped_as_keras_does() {
    check(
        "keras_whole_masking_holes.keras",
        "keras_whole_masking_holes",
    );
    check(
        "keras_whole_masking_holes_bidirectional.keras",
        "keras_whole_masking_holes_bidirectional",
    );
}

/// `rnn run` prints the model's output under Keras's name for it; `--stack` still runs the
/// recurrent layers alone (their `output` and `h_n`).
#[test]
fn a_whole_model_s_output_is_named_as_keras_names_it_and_stack_picks_the_rnn_alone() {
    let model = repo("tests/fixtures/files/keras_whole_tagger.keras");
    let input = repo("tests/fixtures/files/keras_whole_tagger.safetensors");
    let (model, input) = (model.to_str().unwrap(), input.to_str().unwrap());
    let out = rnn(&["run", model, "--input", input]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("tags"), "{stdout}");
    assert!(!stdout.contains("h_n"), "{stdout}");
    // With --stack the RNN runs alone, its masks from the recorded Masking: its own output.
    let out = rnn(&["run", model, "--input", input, "--stack", "rnn/"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("output") && stdout.contains("h_n"),
        "{stdout}"
    );
}

/// `rnn inspect` lists every layer of a whole model, what each does, and the tensors each uses.
#[test]
fn inspect_lists_a_whole_model_s_layers() {
    let path = repo("tests/fixtures/files/keras_whole_functional.keras");
    let out = rnn(&["inspect", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for want in [
        "run whole, from its input to its output `probabilities`",
        "(Embedding)          token ids to vectors; id 0 masks its step",
        "spatial_dropout1d (SpatialDropout1D) nothing at inference",
        "2 recurrent layers under the mask (a masked step carries the last output, zeros in a \
         Bidirectional layer), returning its last step",
        "logits (Dense)                   x·kernel + bias over the last axis, then linear",
        "probabilities (Softmax)          softmax",
        "-> logits (kernel)",
    ] {
        assert!(stdout.contains(want), "{want} missing from:\n{stdout}");
    }
}

/// `rnn run --stream` on a whole model: one token id per line, each line's output the model's
/// output for the ids so far (what `rnn run` gives on them, to the bit); an id that the model
/// masks (padding, which Keras skips) is refused.
#[test]
fn a_whole_model_streams_token_by_token() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let model = repo("tests/fixtures/files/keras_whole_classifier.keras");
    let stream = |stdin: &str| {
        let mut child = Command::new(common::bin())
            .args([
                "run",
                model.to_str().unwrap(),
                "--stream",
                "--format",
                "json",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = stream("5\n17\n3\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|&b| b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.json");
    std::fs::write(&ids, r#"{"input": [[5, 17, 3]]}"#).unwrap();
    let whole = rnn(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        ids.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let whole: serde_json::Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(last["output"], whole["outputs"][0]["values"]);
    let out = stream("5\n0\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stdin line 2") && stderr.contains("masked"),
        "{stderr}"
    );
}

/// A Keras model that is its recurrent layers alone, whose top layer returns its last step only
/// (`return_sequences=False`), gives that output under Keras's name beside `output` and `h_n`
/// (`keras_last_step.py`): a `Bidirectional(merge_mode="ave")` one, whose output (the two
/// directions' final states averaged) is no step of `output`, and a stack; each from `.keras`
/// and `.h5`, against Keras's predict. Picking the layers (`--stack`) runs the RNN alone.
#[test]
fn a_keras_model_returning_its_last_step_gives_that_output_by_name() {
    for (name, output) in [("birnn", "birnn"), ("stack", "top")] {
        for ext in ["keras", "h5"] {
            let model = format!("keras_last_step_{name}.{ext}");
            check_npz(&model, &format!("keras_last_step_{name}.npz"), &[], 1);
            let dir = repo("tests/fixtures/files");
            let input = dir.join(format!("keras_last_step_{name}.npz"));
            let out = rnn(&[
                "run",
                dir.join(&model).to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{model}: {stdout}");
            assert!(stdout.starts_with("output [3, 6, "), "{model}: {stdout}");
            assert!(
                stdout.contains(&format!("\n{output} [3, ")),
                "{model}: {stdout}"
            );
        }
    }
    let dir = repo("tests/fixtures/files");
    let out = rnn(&[
        "run",
        dir.join("keras_last_step_birnn.keras").to_str().unwrap(),
        "--input",
        dir.join("keras_last_step_birnn.npz").to_str().unwrap(),
        "--stack",
        "birnn/",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("birnn ["), "{stdout}");
    // A check of the layers picked would leave the model's output in the fixture uncompared.
    let out = rnn(&[
        "check",
        dir.join("keras_last_step_birnn.keras").to_str().unwrap(),
        "--fixture",
        dir.join("keras_last_step_birnn.npz").to_str().unwrap(),
        "--stack",
        "birnn/",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`birnn` is the Keras model's own output"),
        "{stderr}"
    );
}
