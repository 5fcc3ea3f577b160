//! Weights a PyTorch state_dict stores reparametrised, computed as torch computes them:
//!
//! - weight norm, `torch.nn.utils.weight_norm(module, name, dim)`: `{name}_g` and `{name}_v`;
//!   `torch.nn.utils.parametrizations.weight_norm`: `parametrizations.{name}.original0` (g) and
//!   `.original1` (v). The weight is `v · (g / ‖v‖)`, the norm taken over every axis but `dim`
//!   (torch's `_weight_norm`: g keeps `v`'s size along `dim` and 1 on every other axis).
//! - pruning, `torch.nn.utils.prune`: `{name}_orig` and `{name}_mask`; the weight is
//!   `orig · mask`.
//!
//! Any other parametrization (`parametrizations.{name}.original` alone: spectral norm,
//! orthogonal, one of the user's own) cannot be computed from the names and is refused.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};

/// Replaces each reparametrised pair in `tensors` by the weight it stands for, returning for
/// each computed weight how it was computed (for `inspect`'s "stored as"). The error says
/// which tensors cannot be computed, and why.
pub(crate) fn compute(
    tensors: &mut BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, String>, String> {
    let mut computed = BTreeMap::new();
    let names: Vec<String> = tensors.keys().cloned().collect();
    for name in &names {
        if let Some(stem) = name.strip_suffix("_g") {
            let v = format!("{stem}_v");
            if tensors.contains_key(&v) && !tensors.contains_key(stem) {
                let (g_t, v_t) = (&tensors[name], &tensors[&v]);
                let (weight, dim) = weight_norm(g_t, v_t).map_err(|e| format!("`{name}`: {e}"))?;
                computed.insert(stem.to_string(), (weight, [name.clone(), v.clone()], dim));
            }
        } else if let Some(stem) = name.strip_suffix("_orig") {
            let mask = format!("{stem}_mask");
            if tensors.contains_key(&mask) && !tensors.contains_key(stem) {
                let weight = pruned(&tensors[name], &tensors[&mask])
                    .map_err(|e| format!("`{name}` and `{mask}`: {e}"))?;
                computed.insert(
                    stem.to_string(),
                    (weight, [name.clone(), mask.clone()], None),
                );
            }
        } else if let Some((module, rest)) = split_parametrization(name) {
            let Some(param) = rest.strip_suffix(".original0") else {
                if rest.ends_with(".original") {
                    return Err(format!(
                        "`{name}` is a parametrization other than weight norm (spectral norm, \
                         orthogonal, or one of your own), which rnn cannot compute from the \
                         names; save the weight itself (torch.nn.utils.parametrize.\
                         remove_parametrizations(module, \"{}\") before state_dict())",
                        rest.trim_end_matches(".original")
                    ));
                }
                continue;
            };
            let v = format!("{module}parametrizations.{param}.original1");
            let target = format!("{module}{param}");
            if tensors.contains_key(&v) && !tensors.contains_key(&target) {
                let (g_t, v_t) = (&tensors[name], &tensors[&v]);
                let (weight, dim) = weight_norm(g_t, v_t).map_err(|e| format!("`{name}`: {e}"))?;
                computed.insert(target, (weight, [name.clone(), v.clone()], dim));
            }
        }
    }
    let mut how = BTreeMap::new();
    for (target, (weight, [a, b], dim)) in computed {
        let text = match dim {
            Some(Some(d)) => format!("{b} · ({a} / ‖{b}‖ over every axis but {d}): weight norm"),
            Some(None) => format!("{b} · ({a} / ‖{b}‖): weight norm over the whole tensor"),
            None => format!("{a} · {b}: pruned"),
        };
        tensors.remove(&a);
        tensors.remove(&b);
        tensors.insert(target.clone(), weight);
        how.insert(target, text);
    }
    Ok(how)
}

/// `module.` and `name.original…` of `module.parametrizations.name.original…`.
fn split_parametrization(name: &str) -> Option<(&str, &str)> {
    let at = name.find("parametrizations.")?;
    if at > 0 && !name[..at].ends_with('.') {
        return None;
    }
    Some((&name[..at], &name[at + "parametrizations.".len()..]))
}

/// torch's `_weight_norm(v, g, dim)`: `v · (g / ‖v‖)`, the norm over every axis but `dim`,
/// computed in f64 and returned in `v`'s dtype; `dim` is read from `g`'s shape (`None` for a
/// norm over the whole tensor: every axis of `g` is 1).
#[allow(clippy::type_complexity)]
fn weight_norm(g: &Tensor, v: &Tensor) -> Result<(Tensor, Option<Option<usize>>), String> {
    let (gd, vd) = (g.dims(), v.dims());
    let shape_error = || {
        format!(
            "expected g of {vd:?}'s rank, 1 on every axis but the norm's own (where it is \
             {vd:?}'s size), found {gd:?}"
        )
    };
    let dim = if gd.is_empty() || gd.iter().all(|&d| d == 1) {
        if !gd.is_empty() && gd.len() != vd.len() {
            return Err(shape_error());
        }
        None
    } else {
        if gd.len() != vd.len() {
            return Err(shape_error());
        }
        let axes: Vec<usize> = (0..gd.len()).filter(|&k| gd[k] != 1).collect();
        match axes.as_slice() {
            [k] if gd[*k] == vd[*k] => Some(*k),
            _ => return Err(shape_error()),
        }
    };
    let run = || -> candle_core::Result<Tensor> {
        let v64 = v.to_dtype(DType::F64)?;
        let g64 = g.to_dtype(DType::F64)?;
        let mut squares = v64.sqr()?;
        for axis in (0..vd.len()).rev() {
            if Some(axis) != dim {
                squares = squares.sum_keepdim(axis)?;
            }
        }
        let norm = squares.sqrt()?;
        let g64 = if gd.is_empty() {
            g64.reshape(norm.dims())?
        } else {
            g64
        };
        v64.broadcast_mul(&g64.broadcast_div(&norm)?)?
            .to_dtype(v.dtype())
    };
    let weight = run().map_err(|e| e.to_string())?;
    Ok((weight, Some(dim)))
}

/// `orig · mask`, in `orig`'s dtype.
fn pruned(orig: &Tensor, mask: &Tensor) -> Result<Tensor, String> {
    if orig.dims() != mask.dims() {
        return Err(format!(
            "expected a mask of the weight's shape {:?}, found {:?}",
            orig.dims(),
            mask.dims()
        ));
    }
    mask.to_dtype(orig.dtype())
        .and_then(|m| orig.mul(&m))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(values: &[f32], dims: &[usize]) -> Tensor {
        Tensor::from_slice(values, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn weight_norm_over_dim_0_scales_each_row_to_g() {
        // Rows (3, 4) and (0, 2), norms 5 and 2; g = (10, -1).
        let mut m = BTreeMap::from([
            ("rnn.weight_hh_l0_g".to_string(), t(&[10.0, -1.0], &[2, 1])),
            (
                "rnn.weight_hh_l0_v".to_string(),
                t(&[3.0, 4.0, 0.0, 2.0], &[2, 2]),
            ),
        ]);
        let how = compute(&mut m).unwrap();
        assert!(how["rnn.weight_hh_l0"].contains("weight norm"));
        let w = m["rnn.weight_hh_l0"].to_vec2::<f32>().unwrap();
        assert_eq!(w, [[6.0, 8.0], [0.0, -1.0]]);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn the_parametrizations_api_and_pruning_are_computed() {
        let mut m = BTreeMap::from([
            (
                "rnn.parametrizations.weight_ih_l0.original0".to_string(),
                t(&[2.0], &[1, 1]),
            ),
            (
                "rnn.parametrizations.weight_ih_l0.original1".to_string(),
                t(&[3.0, 4.0], &[1, 2]),
            ),
            ("rnn.weight_hh_l0_orig".to_string(), t(&[1.5, 2.5], &[1, 2])),
            ("rnn.weight_hh_l0_mask".to_string(), t(&[1.0, 0.0], &[1, 2])),
        ]);
        compute(&mut m).unwrap();
        let ih = m["rnn.weight_ih_l0"].to_vec2::<f32>().unwrap();
        assert!((ih[0][0] - 1.2).abs() < 1e-6 && (ih[0][1] - 1.6).abs() < 1e-6);
        assert_eq!(
            m["rnn.weight_hh_l0"].to_vec2::<f32>().unwrap(),
            [[1.5, 0.0]]
        );
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn other_parametrizations_and_bad_shapes_are_refused() {
        let mut m = BTreeMap::from([(
            "rnn.parametrizations.weight_hh_l0.original".to_string(),
            t(&[1.0], &[1, 1]),
        )]);
        assert!(compute(&mut m)
            .unwrap_err()
            .contains("other than weight norm"));
        let mut m = BTreeMap::from([
            ("w_g".to_string(), t(&[1.0, 2.0, 3.0], &[1, 3])),
            ("w_v".to_string(), t(&[1.0, 2.0, 3.0, 4.0], &[2, 2])),
        ]);
        assert!(compute(&mut m).unwrap_err().contains("expected g"));
    }
}
