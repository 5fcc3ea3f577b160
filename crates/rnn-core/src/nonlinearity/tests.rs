use super::*;
use candle_core::Device;

/// ONNX's parametrised activations at a few points, worked by hand (α = 0.5, β = 2):
/// leaky_relu: -2 → -1, 3 → 3; thresholded_relu: 0.5 → 0 (not above α), 0.75 → 0.75;
/// affine: 1 → 0.5·1 + 2 = 2.5; scaled_tanh: 0 → 0, 1 → 0.5·tanh(2);
/// hard_sigmoid: -5 → 0, 0 → min(1, 2) = 1, -3 → 0.5·-3 + 2 = 0.5; elu: -1 → 0.5·(e⁻¹ − 1).
#[test]
fn parametrised_activations_by_hand() {
    let (a, b) = (Param::new(0.5), Param::new(2.0));
    let cases: [(Nonlinearity, &[f64], &[f64]); 6] = [
        (
            Nonlinearity::LeakyRelu { alpha: a },
            &[-2.0, 3.0],
            &[-1.0, 3.0],
        ),
        (
            Nonlinearity::ThresholdedRelu { alpha: a },
            &[0.5, 0.75],
            &[0.0, 0.75],
        ),
        (Nonlinearity::Affine { alpha: a, beta: b }, &[1.0], &[2.5]),
        (
            Nonlinearity::ScaledTanh { alpha: a, beta: b },
            &[0.0, 1.0],
            &[0.0, 0.5 * 2.0f64.tanh()],
        ),
        (
            Nonlinearity::LinearHardSigmoid { alpha: a, beta: b },
            &[-5.0, 0.0, -3.0],
            &[0.0, 1.0, 0.5],
        ),
        (
            Nonlinearity::ScaledElu { alpha: a },
            &[-1.0, 2.0],
            &[0.5 * ((-1.0f64).exp() - 1.0), 2.0],
        ),
    ];
    for (n, x, want) in cases {
        let got = n
            .apply(&Tensor::new(x, &Device::Cpu).unwrap())
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < 1e-12,
                "{n}: {x:?} gave {got:?}, want {want:?}"
            );
        }
        assert_eq!(Nonlinearity::from_name(&n.to_string()), Some(n), "{n}");
    }
}

#[test]
fn names_round_trip_with_parameters() {
    let n = Nonlinearity::from_name("leaky_relu(0.10000000149011612)").unwrap();
    assert_eq!(
        n,
        Nonlinearity::LeakyRelu {
            alpha: Param::new(f64::from(0.1f32))
        }
    );
    assert_eq!(n.to_string(), "leaky_relu(0.10000000149011612)");
    assert_eq!(n.as_str(), "leaky_relu");
    assert_eq!(
        Nonlinearity::from_name("hard_sigmoid(0.2,0.5)")
            .unwrap()
            .to_string(),
        "hard_sigmoid(0.2,0.5)"
    );
    assert_eq!(
        Nonlinearity::from_name("hard_sigmoid"),
        Some(Nonlinearity::HardSigmoid)
    );
    for bad in [
        "leaky_relu",
        "leaky_relu()",
        "affine(1)",
        "tanh(1)",
        "elu(x)",
        "elu(1",
    ] {
        assert_eq!(Nonlinearity::from_name(bad), None, "{bad}");
    }
    for n in Nonlinearity::ALL {
        assert_eq!(Nonlinearity::from_name(&n.to_string()), Some(n));
    }
}

/// `FromStr`, the one parser of the command line and the Python module: `-` for `_` in a
/// name, parameters as written (a sign, an exponent).
#[test]
fn names_parse_with_hyphens_and_signed_parameters() {
    let parse = |t: &str| t.parse::<Nonlinearity>();
    assert_eq!(parse("hard-sigmoid"), Ok(Nonlinearity::HardSigmoid));
    assert_eq!(
        parse(" affine(1,-0.5) "),
        Ok(Nonlinearity::Affine {
            alpha: Param::new(1.0),
            beta: Param::new(-0.5),
        })
    );
    assert_eq!(
        parse("leaky_relu(1e-3)"),
        Ok(Nonlinearity::LeakyRelu {
            alpha: Param::new(1e-3),
        })
    );
    let err = parse("tahn").unwrap_err();
    assert!(
        err.contains("`tahn` is not one of the accepted values: tanh, relu"),
        "{err}"
    );
}
