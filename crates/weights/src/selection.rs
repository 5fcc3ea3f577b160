//! Choosing the one RNN a file's names prove: the whole file, the tensors under a prefix, or
//! several prefixes stacked in an order the user states. Where the names leave more than one
//! reading, the error lists each with the flags that pick it; nothing is guessed.

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;
use crate::naming::{self, Names, Naming, Plan};

/// Which RNN of a file to read, when the names alone do not settle it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Read the names in this scheme only.
    pub naming: Option<Naming>,
    /// Read only the tensors whose names start with this (`encoder.`, `bidirectional_rnn/`).
    pub prefix: Option<String>,
    /// Read the RNN under each of these prefixes and stack them, bottom layer first: for
    /// stacks whose names do not give their order (Keras layers named by hand, TF1 layers in
    /// scopes of their own).
    pub stack: Vec<String>,
}

impl Selection {
    /// Whether the user picked layers (`--prefix`, `--stack`): then the RNN they pick runs
    /// alone, whatever the file records around it.
    pub fn picks_layers(&self) -> bool {
        self.prefix.is_some() || !self.stack.is_empty()
    }
}

/// The names of every tensor in `file` that some reader takes for an RNN weight, whichever RNN
/// it belongs to: a fixture may carry the weights it was made with beside its inputs.
pub fn weight_names(file: &TensorFile) -> Vec<String> {
    let found = naming::detect(&Names::of_file(file, &file.names()), None);
    let mut names: Vec<String> = found
        .plans
        .iter()
        .flat_map(|p| p.layers.iter().flatten())
        .flat_map(|c| {
            [
                Some(&c.w_ih),
                Some(&c.w_hh),
                c.b_ih.as_ref(),
                c.b_hh.as_ref(),
            ]
        })
        .flatten()
        .map(|s| s.name.clone())
        .filter(|n| file.contains(n))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The plan `selection` picks from `file`.
pub(crate) fn choose(file: &TensorFile, selection: &Selection) -> Result<Plan> {
    let names = file.names();
    if selection.stack.is_empty() {
        return one_plan(file, &names, selection.naming, selection.prefix.as_deref());
    }
    for (i, prefix) in selection.stack.iter().enumerate() {
        if let Some(other) = selection.stack[..i]
            .iter()
            .find(|p| p.starts_with(prefix.as_str()) || prefix.starts_with(p.as_str()))
        {
            return Err(unrecognised(
                file,
                format!("--stack: `{other}` and `{prefix}` overlap; each names one RNN"),
            ));
        }
    }
    let mut stacked: Option<Plan> = None;
    for prefix in &selection.stack {
        let plan = one_plan(file, &names, selection.naming, Some(prefix))?;
        stacked = Some(match stacked {
            None => plan,
            Some(below) if below.naming != plan.naming => {
                return Err(unrecognised(
                    file,
                    format!(
                        "--stack: `{prefix}` holds {} weights, the layers below {}",
                        plan.naming.as_str(),
                        below.naming.as_str()
                    ),
                ))
            }
            Some(mut below) => {
                below.prefix = format!("{},{prefix}", below.prefix);
                below.layers.extend(plan.layers);
                below
            }
        });
    }
    // The stack has at least one prefix, so at least one plan.
    stacked.ok_or_else(|| unrecognised(file, "--stack names no prefix".into()))
}

/// The one plan the names under `prefix` (all names without one) prove.
fn one_plan(
    file: &TensorFile,
    names: &[String],
    format: Option<Naming>,
    prefix: Option<&str>,
) -> Result<Plan> {
    let under: Vec<String> = names
        .iter()
        .filter(|n| prefix.is_none_or(|p| n.starts_with(p)))
        .cloned()
        .collect();
    let found = naming::detect(&Names::of_file(file, &under), format);
    let flag = |p: &str| format!("--prefix {p}");
    if !found.refusals.is_empty() {
        let mut what = found.refusals.join("; ");
        if !found.plans.is_empty() {
            let others: Vec<String> = found.plans.iter().map(|p| flag(&p.prefix)).collect();
            what.push_str(&format!(
                " (to run another RNN of the file, pick it: {})",
                others.join(" or ")
            ));
        }
        return Err(unrecognised(file, what));
    }
    let mut plans = found.plans;
    // `--prefix P` picks the RNN whose names start right at P over those nested deeper: the
    // way to pick one whose names have no prefix of their own (`--prefix ''`).
    if let Some(p) = prefix {
        if plans.len() > 1 && plans.iter().filter(|plan| plan.prefix == p).count() == 1 {
            plans.retain(|plan| plan.prefix == p);
        }
    }
    match plans.len() {
        1 => Ok(plans.remove(0)),
        0 => {
            let looked_for = match (format, prefix) {
                (Some(f), Some(p)) => format!("no {} RNN weights under `{p}`", f.as_str()),
                (None, Some(p)) => format!("no RNN weights under `{p}`"),
                (Some(f), None) => format!("no {} RNN weights found", f.as_str()),
                (None, None) => "no RNN weights recognised: expected PyTorch nn.RNN names \
                                 (weight_ih_l0, weight_hh_l0, …), Keras SimpleRNN \
                                 (<layer>/simple_rnn_cell/kernel, recurrent_kernel, bias), TF1 \
                                 BasicRNNCell (rnn/basic_rnn_cell/kernel, bias) or the article's \
                                 (Wx, Wy, b)"
                    .into(),
            };
            Err(WeightsError::Unrecognised {
                path: file.path().to_owned(),
                what: looked_for,
                found: file.names(),
            })
        }
        _ => Err(ambiguous(file, &plans, prefix)),
    }
}

/// The error for several readings: each with the flags that pick it, and how to stack them.
fn ambiguous(file: &TensorFile, plans: &[Plan], prefix: Option<&str>) -> WeightsError {
    let mut prefixes: Vec<&str> = plans.iter().map(|p| p.prefix.as_str()).collect();
    prefixes.dedup();
    let by_prefix = prefixes.len() == plans.len();
    let readings = plans
        .iter()
        .map(|plan| {
            let flags = if by_prefix && plan.prefix.is_empty() {
                "--prefix ''".to_string()
            } else if by_prefix {
                format!("--prefix {}", plan.prefix)
            } else {
                let mut flags = format!("--weights-format {}", plan.naming.as_str());
                if let Some(p) = prefix.filter(|p| !p.is_empty()) {
                    flags.push_str(&format!(" --prefix {p}"));
                }
                flags
            };
            format!("{} ({flags})", describe(plan))
        })
        .collect();
    let same_format = plans.iter().all(|p| p.naming == plans[0].naming);
    // Orders in which the candidates stack by their shapes: both of two, else the file's.
    let orders: Vec<Vec<&Plan>> = match plans {
        [a, b] => vec![vec![a, b], vec![b, a]],
        _ => vec![plans.iter().collect()],
    };
    let stackable: Vec<String> = orders
        .into_iter()
        .filter(|order| same_format && by_prefix && !prefixes.contains(&"") && stacks(file, order))
        .map(|order| {
            let prefixes: Vec<&str> = order.iter().map(|p| p.prefix.as_str()).collect();
            format!("--stack {}", prefixes.join(","))
        })
        .collect();
    let hint = if stackable.is_empty() {
        String::new()
    } else {
        format!(
            "; if they are the layers of one stack, say its order, bottom layer first: {}",
            stackable.join(" or ")
        )
    };
    WeightsError::Ambiguous {
        path: file.path().to_owned(),
        readings,
        hint,
    }
}

/// Whether the candidates' shapes chain when stacked in this order.
fn stacks(file: &TensorFile, order: &[&Plan]) -> bool {
    let stacked = Plan {
        naming: order[0].naming,
        prefix: String::new(),
        layers: order.iter().flat_map(|p| p.layers.clone()).collect(),
    };
    let Ok(loaded) = crate::load_plan::load_plan(file, &stacked, candle_core::DType::F32) else {
        return false;
    };
    // Each layer takes what the one below gives under some merge mode (the user names it).
    loaded.weights.windows(2).all(|pair| {
        let (below, above) = (&pair[0], &pair[1]);
        let hidden = below[0].w_hh.dims()[0];
        above.iter().all(|cell| {
            rnn_core::MergeMode::ALL.into_iter().any(|merge_mode| {
                let options = rnn_core::LayerOptions {
                    merge_mode,
                    ..Default::default()
                };
                cell.w_ih.dims()[1] == options.output_size(below.len(), hidden)
            })
        })
    })
}

/// `keras, 2 layers (bidirectional, one-direction), under "rnn_a/"`.
fn describe(plan: &Plan) -> String {
    let directions: Vec<&str> = plan
        .layers
        .iter()
        .map(|l| {
            if l.len() == 2 {
                "bidirectional"
            } else {
                "one-direction"
            }
        })
        .collect();
    let mut kinds = directions.clone();
    kinds.dedup();
    let layers = match plan.layers.len() {
        1 => format!("1 {} layer", kinds.join("")),
        n if kinds.len() == 1 => format!("{n} {} layers", kinds[0]),
        n => format!("{n} layers ({})", directions.join(", ")),
    };
    if plan.prefix.is_empty() {
        format!("{} RNN, {layers}", plan.naming.as_str())
    } else {
        format!(
            "{} RNN under `{}`, {layers}",
            plan.naming.as_str(),
            plan.prefix
        )
    }
}

fn unrecognised(file: &TensorFile, what: String) -> WeightsError {
    WeightsError::Unrecognised {
        path: file.path().to_owned(),
        what,
        found: file.names(),
    }
}

#[cfg(test)]
mod tests;
