//! `rnn check`: a run held against expected outputs, as numpy.allclose does, on one device or
//! several.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rnn_weights::{
    compare, expected_named, expected_outputs, Expected, Form, Inputs, TensorFile, Tolerance,
    F64_SUFFIX,
};

use crate::cli::CheckArgs;
use crate::device::DeviceChoice;
use crate::pipeline::{
    build_on, check_all_read, forward, load_weights, prepare_inputs, read_model_file,
    screen_sources,
};
use crate::print::emit;
use crate::screen::{screen, Padding};
use crate::Outcome;

/// Default tolerances per dtype, from the errors measured against the frameworks' float64
/// results (README, "Precision"): f32 and f64 as numpy.allclose's usual bounds, wider for the
/// half-precision types.
fn default_tolerance(dtype: DType) -> Tolerance {
    match dtype {
        DType::F16 => Tolerance {
            atol: 1e-2,
            rtol: 1e-2,
        },
        DType::BF16 => Tolerance {
            atol: 6e-2,
            rtol: 6e-2,
        },
        _ => Tolerance::default(),
    }
}

/// The devices a check runs on: `--devices a,b` or `--device`.
fn check_devices(args: &CheckArgs) -> Vec<DeviceChoice> {
    match &args.devices {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![args.options.device],
    }
}

pub fn check(args: &CheckArgs) -> Result<Outcome> {
    let dtype: DType = args.options.dtype.into();
    let model_file = read_model_file(Some(&args.model))?;
    let model = load_weights(&model_file, dtype, &args.options.read)?;
    let fixture = match &args.fixture {
        Some(path) => TensorFile::read(path).context("cannot read the fixture")?,
        None => model_file.clone(),
    };
    let inputs = Inputs::require(&fixture, dtype)?;
    if args.fixture.is_some() {
        check_all_read(&fixture, &inputs, &model_file)?;
    }
    // The inputs made ready once, on the CPU (the model's fixed inputs, its masks); each
    // device's model then runs them.
    let on_cpu = build_on(
        &model_file,
        &model,
        &args.options.read,
        inputs.form,
        &candle_core::Device::Cpu,
    )?;
    let inputs = prepare_inputs(&on_cpu, inputs, &fixture, args.fixture.is_none())?;
    let layout = on_cpu.rnn().batch_first();
    // f32 runs compare with the framework's f32 outputs; every other dtype with its float64
    // results where the fixture has them.
    let prefer_f64 = dtype != DType::F32 || args.float64_reference;
    let names = on_cpu.output_names();
    let mut expected = match &names {
        Some(names) => expected_named(&fixture, names, prefer_f64)?,
        None => expected_outputs(&fixture, inputs.form, prefer_f64)?,
    };
    match (
        on_cpu.model_output(),
        rnn_weights::keras_last_step_output(&model_file),
    ) {
        (Some(name), _) => {
            expected.extend(expected_named(&fixture, &[name.to_string()], prefer_f64)?);
        }
        // The fixture holds the Keras model's output, which a run of the layers picked does
        // not give: it would go uncompared.
        (None, Some(name)) if fixture.contains(&name) => bail!(
            "{}: `{name}` is the Keras model's own output, which rnn gives running the model \
             as its file records it, not the layers picked (--stack, --prefix); run without \
             them, or remove `{name}`",
            fixture.path().display()
        ),
        _ => {}
    }
    if expected.is_empty() {
        bail!(
            "{}: no expected outputs to compare with: expected {} beside the inputs",
            fixture.path().display(),
            match (&names, inputs.form) {
                (Some(names), _) => format!("`{}` (the model's output)", names.join("`, `")),
                (None, Form::Steps) => "Y0, Y1, …".into(),
                (None, Form::Sequence) => "`output` and/or `h_n`".into(),
            }
        );
    }
    screen_sources(
        &model_file,
        &model,
        &fixture,
        &inputs,
        layout,
        args.options.strict,
    )?;
    let defaults = default_tolerance(dtype);
    let tol = Tolerance {
        atol: args.atol.unwrap_or(defaults.atol),
        rtol: args.rtol.unwrap_or(defaults.rtol),
    };
    let against = match &args.fixture {
        Some(path) => format!("against {}", path.display()),
        None => "against its own expected outputs".into(),
    };
    let mut report = format!(
        "checking {} {against} (atol {:e}, rtol {:e}, {dtype:?})\n",
        model_file.path().display(),
        tol.atol,
        tol.rtol,
    );
    let devices = check_devices(args);
    let mut failed = 0;
    // Each device's outputs, compared as they would be with the fixture.
    let mut per_device: Vec<(String, Vec<(String, Tensor)>)> = Vec::new();
    for choice in &devices {
        let device = crate::device::open(*choice)?;
        // The CPU's model is the one already built for the inputs.
        let built = if device.is_cpu() {
            on_cpu.clone()
        } else {
            build_on(
                &model_file,
                &model,
                &args.options.read,
                inputs.form,
                &device,
            )?
        };
        let results = forward(&built, &inputs.to_device(&device)?, fixture.path(), false)?;
        let padding = Padding::of(inputs.lengths.as_deref(), layout);
        let named = results
            .named
            .iter()
            .map(|(n, t)| (n.as_str(), t, padding.filter(|_| n == "output")));
        screen("computed output", named, args.options.strict)?;
        let got: HashMap<String, Tensor> = results.named.into_iter().collect();
        let label = if devices.len() > 1 {
            format!("[{choice}] ")
        } else {
            String::new()
        };
        let mut compared = Vec::new();
        for Expected {
            name,
            source,
            tensor: want,
        } in &expected
        {
            let got = match got.get(name) {
                // Keras's return_sequences=False: only the last step's output was kept.
                Some(full) if name == "output" && want.rank() + 1 == full.rank() => &results.last,
                Some(full) => full,
                None => bail!(
                    "{}: expected output `{name}` has no counterpart in this run (it gives {})",
                    fixture.path().display(),
                    got.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            let c = compare(got, want, tol)
                .with_context(|| format!("{}: tensor `{source}`", fixture.path().display()))?;
            let verdict = if c.passed() { "ok" } else { "MISMATCH" };
            write!(
                report,
                "{label}{verdict:<8} {source:<10} {:?}  max abs {:.3e}  max rel {:.3e}",
                want.dims(),
                c.max_abs,
                c.max_rel
            )?;
            if let Some((at, g, w)) = &c.worst {
                write!(report, "  worst at {at:?}: got {g:.9} want {w:.9}")?;
            }
            if !c.passed() {
                write!(
                    report,
                    "  ({} of {} elements outside)",
                    c.mismatches, c.elements
                )?;
                failed += 1;
            }
            report.push('\n');
            compared.push((source.clone(), got.to_device(&candle_core::Device::Cpu)?));
        }
        per_device.push((choice.to_string(), compared));
    }
    if let Some(((first, base), rest)) = per_device.split_first() {
        for (other, outputs) in rest {
            for ((name, a), (_, b)) in base.iter().zip(outputs) {
                let d = compare(
                    b,
                    a,
                    Tolerance {
                        atol: 0.0,
                        rtol: 0.0,
                    },
                )?;
                writeln!(
                    report,
                    "divergence {other} vs {first}  {name:<10} max abs {:.3e}",
                    d.max_abs
                )?;
            }
        }
    }
    // Expected outputs are known in both precisions even when only one is compared.
    let compared: Vec<String> = expected
        .iter()
        .flat_map(|e| [e.name.clone(), format!("{}{F64_SUFFIX}", e.name)])
        .collect();
    let used: BTreeSet<&str> = inputs
        .names
        .iter()
        .chain(&compared)
        .map(String::as_str)
        .chain(
            model
                .source_names()
                .into_iter()
                .filter(|_| args.fixture.is_none()),
        )
        .collect();
    let ignored: Vec<String> = fixture
        .names()
        .into_iter()
        .filter(|n| !used.contains(n.as_str()))
        .collect();
    if !ignored.is_empty() {
        writeln!(report, "ignored: {}", ignored.join(", "))?;
    }
    let total = expected.len() * devices.len();
    writeln!(
        report,
        "{} of {total} tensors within tolerance",
        total - failed
    )?;
    emit(&report)?;
    Ok(if failed == 0 {
        Outcome::Success
    } else {
        Outcome::Mismatch
    })
}
