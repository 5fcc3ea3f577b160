//! A node's attributes, checked against what `rnn` runs: directions, `clip`, and the
//! activations with their parameters as ONNX Runtime computes them.

use std::path::Path;

use rnn_core::{Nonlinearity, Param};

use super::proto::{self, Node};
use super::EXPORT_RNN_ALONE;
use super::{node_name, refuse};
use crate::error::{Result, WeightsError};

/// A node's attributes, checked against what `rnn` runs.
pub(super) struct Attributes<'n> {
    path: &'n Path,
    node: &'n Node,
}

impl<'n> Attributes<'n> {
    pub(super) fn new(path: &'n Path, node: &'n Node) -> Result<Self> {
        let known = [
            "activations",
            "activation_alpha",
            "activation_beta",
            "clip",
            "direction",
            "hidden_size",
            "layout",
        ];
        if let Some(a) = node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            return Err(refuse(
                path,
                format!(
                    "an ONNX {} with attribute {}, which the RNN op does not define",
                    node_name(node),
                    a.name
                ),
                EXPORT_RNN_ALONE,
            ));
        }
        Ok(Self { path, node })
    }

    fn find(&self, name: &str) -> Option<&'n proto::Attribute> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub(super) fn int(&self, name: &str, default: i64) -> i64 {
        self.find(name).map_or(default, |a| a.i)
    }

    pub(super) fn ints_of(node: &Node, name: &str) -> Vec<i64> {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.clone())
            .unwrap_or_default()
    }

    fn refuse(&self, name: &str, value: &str, advice: &str) -> WeightsError {
        refuse(
            self.path,
            format!("an ONNX {} with {name}={value}", node_name(self.node)),
            advice,
        )
    }

    /// The node's directions, and whether its one direction is ONNX's `reverse` (read from
    /// the end, outputs indexed by time: rnn's `reverse` layer option).
    pub(super) fn directions(&self) -> Result<(usize, bool)> {
        let direction = self.find("direction").map_or("forward".into(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        });
        match direction.as_str() {
            "forward" => Ok((1, false)),
            "reverse" => Ok((1, true)),
            "bidirectional" => Ok((2, false)),
            other => Err(self.refuse(
                "direction",
                other,
                "rnn runs forward, reverse and bidirectional nodes",
            )),
        }
    }

    /// ONNX's `clip`, a positive bound on the pre-activation, if the node has one.
    pub(super) fn clip(&self) -> Result<Option<f64>> {
        match self.find("clip") {
            None => Ok(None),
            Some(a) if a.f > 0.0 => Ok(Some(f64::from(a.f))),
            Some(a) => Err(self.refuse(
                "clip",
                &a.f.to_string(),
                "the spec's clip is a positive bound",
            )),
        }
    }

    /// The activation of each direction, as ONNX Runtime computes it. `activation_alpha` and
    /// `activation_beta` are consumed in order by the activations that take them (ONNX
    /// Runtime's reading of the spec's "in the order of activation functions"; the reference
    /// implementation indexes them by direction instead): a list of another length than the
    /// activations that take it is refused, since the two readings differ there. A parameter
    /// left out takes the spec's default where ONNX Runtime agrees with it (LeakyRelu 0.01,
    /// HardSigmoid 0.2 and 0.5, Elu 1) and is refused where it does not (ThresholdedRelu,
    /// ScaledTanh and Affine, which ONNX Runtime runs with 0).
    pub(super) fn nonlinearities(&self, directions: usize) -> Result<Vec<Nonlinearity>> {
        let names: Vec<String> = match self.find("activations") {
            Some(a) => a
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            None => vec!["Tanh".into(); directions],
        };
        if names.len() != directions {
            return Err(self.refuse(
                "activations",
                &format!("{names:?} ({directions} direction(s), one activation each)"),
                "give one activation per direction",
            ));
        }
        const ALPHA: [&str; 6] = [
            "LeakyRelu",
            "ThresholdedRelu",
            "ScaledTanh",
            "HardSigmoid",
            "Elu",
            "Affine",
        ];
        const BETA: [&str; 3] = ["ScaledTanh", "HardSigmoid", "Affine"];
        let params = |attr: &str, takers: &[&str]| -> Result<Vec<Option<f64>>> {
            let taking = names
                .iter()
                .filter(|n| takers.contains(&n.as_str()))
                .count();
            let Some(values) = self.find(attr).map(|a| a.floats.clone()) else {
                return Ok(vec![None; directions]);
            };
            if values.len() != taking {
                return Err(self.refuse(
                    attr,
                    &format!(
                        "{values:?} for activations {names:?}, of which {taking} take one (ONNX \
                         Runtime gives them in order to those that take one, the spec's \
                         reference by direction)"
                    ),
                    "give one value per activation that takes one",
                ));
            }
            let mut values = values.into_iter().map(f64::from);
            Ok(names
                .iter()
                .map(|n| {
                    takers
                        .contains(&n.as_str())
                        .then(|| values.next())
                        .flatten()
                })
                .collect())
        };
        let alphas = params("activation_alpha", &ALPHA)?;
        let betas = params("activation_beta", &BETA)?;
        names
            .iter()
            .zip(alphas.into_iter().zip(betas))
            .map(|(name, (alpha, beta))| {
                let given = |p: Option<f64>, what: &str| {
                    p.map(Param::new).ok_or_else(|| {
                        self.refuse(
                            "activations",
                            &format!(
                                "{name} without {what} (ONNX Runtime runs it with 0, not the \
                                 spec's default)"
                            ),
                            "give its parameters explicitly",
                        )
                    })
                };
                let or = |p: Option<f64>, default: f64| Param::new(p.unwrap_or(default));
                Ok(match name.as_str() {
                    "Tanh" => Nonlinearity::Tanh,
                    "Relu" => Nonlinearity::Relu,
                    "Sigmoid" => Nonlinearity::Sigmoid,
                    "Softsign" => Nonlinearity::Softsign,
                    "Softplus" => Nonlinearity::Softplus,
                    "Elu" if alpha.is_none_or(|a| a == 1.0) => Nonlinearity::Elu,
                    "Elu" => Nonlinearity::ScaledElu {
                        alpha: or(alpha, 1.0),
                    },
                    "LeakyRelu" => Nonlinearity::LeakyRelu {
                        alpha: or(alpha, 0.01f32.into()),
                    },
                    "HardSigmoid" => Nonlinearity::LinearHardSigmoid {
                        alpha: or(alpha, 0.2f32.into()),
                        beta: or(beta, 0.5),
                    },
                    "ThresholdedRelu" => Nonlinearity::ThresholdedRelu {
                        alpha: given(alpha, "activation_alpha")?,
                    },
                    "ScaledTanh" => Nonlinearity::ScaledTanh {
                        alpha: given(alpha, "activation_alpha")?,
                        beta: given(beta, "activation_beta")?,
                    },
                    "Affine" => Nonlinearity::Affine {
                        alpha: given(alpha, "activation_alpha")?,
                        beta: given(beta, "activation_beta")?,
                    },
                    other => {
                        return Err(self.refuse(
                            "activations",
                            other,
                            "the RNN op's activations are Relu, Tanh, Sigmoid, Affine, \
                             LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, \
                             Softsign and Softplus",
                        ))
                    }
                })
            })
            .collect()
    }
}
