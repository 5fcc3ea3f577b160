//! rnn-core and rnn-weights, used as a library, against the fixtures the real frameworks wrote.
//! (`crates/cli/tests` runs `rnn check` on every fixture; this is the library's view.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use candle_core::DType;
use rnn_core::{MaskedSteps, Nonlinearity, TimeOrder};
use rnn_weights::{
    compare, expected_outputs, name_outputs, Form, Inputs, LayerConfig, LoadedWeights, StackConfig,
    TensorFile, Tolerance,
};

/// Every committed fixture.
fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

/// Runs the fixture's model on its inputs and returns the worst (max abs error, tensor name).
/// Fixtures that need flags (`check_args` in their metadata) are skipped: `None`.
fn worst_error(path: &Path, dtype: DType) -> Option<(f64, String)> {
    let file = TensorFile::read(path).unwrap();
    if file
        .metadata()
        .get("check_args")
        .is_some_and(|a| !a.is_empty())
    {
        return None;
    }
    let model = LoadedWeights::from_file(&file, dtype, None).unwrap();
    let inputs = Inputs::require(&file, dtype).unwrap();
    let mut config = model.recorded_config();
    config.batch_first = Some(inputs.form == Form::Sequence && model.batch_first_by_default());
    let rnn = config.build(&model.weights).unwrap();
    let (output, states) = rnn
        .forward_states(&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref())
        .unwrap();
    let h_n = rnn.stack_states(&states).ok().flatten();
    let got = name_outputs(inputs.form, &output, h_n.as_ref()).unwrap();
    let last = rnn.merge_final_states(&states).unwrap();
    let expected = expected_outputs(&file, inputs.form, dtype == DType::F64).unwrap();
    assert!(!expected.is_empty(), "{}", path.display());
    let mut worst = (0.0, String::new());
    for e in expected {
        let (_, full) = got.iter().find(|(n, _)| *n == e.name).unwrap();
        let g = if e.tensor.rank() < full.rank() {
            &last
        } else {
            full
        };
        let c = compare(g, &e.tensor, Tolerance::default()).unwrap();
        assert!(c.passed(), "{}: {}: {c:?}", path.display(), e.source);
        if c.max_abs > worst.0 {
            worst = (c.max_abs, e.source);
        }
    }
    Some(worst)
}

#[test]
fn fixtures_pass_through_the_library_in_f32() {
    let mut checked = 0;
    for path in fixtures() {
        if let Some((worst, name)) = worst_error(&path, DType::F32) {
            // The frameworks and candle both round each op to float32: a few ulp apart.
            assert!(worst < 1e-6, "{}: {name} off by {worst:e}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} fixtures checked");
}

#[test]
fn fixtures_pass_through_the_library_in_f64() {
    for path in fixtures() {
        if let Some((worst, name)) = worst_error(&path, DType::F64) {
            let tight = name.ends_with("_f64");
            let bound = if tight { 1e-12 } else { 1e-6 };
            assert!(worst < bound, "{}: {name} off by {worst:e}", path.display());
        }
    }
}

#[test]
fn canonical_save_round_trips_weights_and_configuration() {
    let dir = std::env::temp_dir().join(format!("rnn-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tf1_article_seed0.safetensors");
    let model = LoadedWeights::read(&source, DType::F32).unwrap();
    let saved = dir.join("canonical.safetensors");
    let layer = LayerConfig {
        time: TimeOrder::GoBackwards,
        clip: Some(2.5),
        ..LayerConfig::new(Nonlinearity::Selu)
    };
    let config = StackConfig {
        layers: vec![layer],
        masked_steps: MaskedSteps::RepeatLast,
        batch_first: Some(true),
        mask_value: Some(0.0),
        input_mask: Some("`embedding` (Embedding, mask_zero=True)".into()),
    };
    rnn_weights::save_canonical(&saved, &model.weights, &config, &[]).unwrap();
    let back = LoadedWeights::read(&saved, DType::F32).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(back.naming, rnn_weights::Naming::Pytorch);
    assert_eq!(back.recorded.layers, Some(vec![layer]));
    assert_eq!(back.recorded.masked_steps, Some(MaskedSteps::RepeatLast));
    assert_eq!(back.recorded.batch_first, Some(true));
    assert_eq!(back.recorded.mask_value, Some(0.0));
    assert_eq!(
        back.recorded.input_mask.as_deref(),
        Some("`embedding` (Embedding, mask_zero=True)")
    );
    assert_eq!(back.recorded_config(), config);
    let values = |m: &LoadedWeights| {
        m.weights[0][0]
            .w_ih
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(values(&back), values(&model));
}
