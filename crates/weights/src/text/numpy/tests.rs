//! rnn's printing against what numpy itself printed for the same arrays
//! (`tests/fixtures/numpy_print/cases.json`, written by `xtask/fixtures/numpy_print.py`).

use super::*;
use candle_core::Device;

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    values: Vec<serde_json::Value>,
    threshold: Option<usize>,
    text: String,
}

fn value(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        v => v.as_f64().unwrap(),
    }
}

fn tensor(case: &Case) -> Tensor {
    let values: Vec<f64> = case.values.iter().map(value).collect();
    let t = Tensor::from_vec(values, case.shape.as_slice(), &Device::Cpu).unwrap();
    match case.dtype.as_str() {
        // Every float32 was written exactly, so the conversion is exact.
        "float32" => t.to_dtype(candle_core::DType::F32).unwrap(),
        "float64" => t,
        other => panic!("{}: dtype {other}", case.name),
    }
}

#[test]
fn prints_as_numpy_printed_the_same_arrays() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/numpy_print/cases.json"
    );
    let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert!(fixture.cases.len() >= 20);
    let mut wrong = Vec::new();
    for case in &fixture.cases {
        let options = match case.threshold {
            Some(threshold) => PrintOptions {
                threshold,
                ..PrintOptions::default()
            },
            None => PrintOptions::default().everything(),
        };
        let got = array2string(&tensor(case), &options).unwrap();
        if got != case.text {
            wrong.push(format!(
                "{}:\n--- numpy\n{}\n--- rnn\n{got}",
                case.name, case.text
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn one_line_neither_wraps_nor_summarises() {
    let t = Tensor::from_vec(
        (0..2000).map(|i| i as f32 / 7.0).collect::<Vec<_>>(),
        2000,
        &Device::Cpu,
    )
    .unwrap();
    let text = array2string(&t, &PrintOptions::default().one_line()).unwrap();
    assert!(!text.contains('\n') && !text.contains("..."));
    assert_eq!(text.split_whitespace().count(), 2000);
}
