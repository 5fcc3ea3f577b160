//! NaN and Inf in weights, inputs and outputs: a warning on stderr, or with `--strict` an
//! error. The padding of sequences shorter than the batch's longest is left out.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use rnn_weights::non_finite;

/// The padding of a batch of sequences: the time steps at and past `lengths[b]` of sequence
/// `b`, which no run reads and whose values mean nothing.
#[derive(Debug, Clone, Copy)]
pub struct Padding<'a> {
    pub lengths: &'a [usize],
    /// `[batch, seq, ...]`; otherwise `[seq, batch, ...]`.
    pub batch_first: bool,
}

impl<'a> Padding<'a> {
    /// The padding of `lengths`, if there are any.
    pub fn of(lengths: Option<&'a [usize]>, batch_first: bool) -> Option<Self> {
        lengths.map(|lengths| Self {
            lengths,
            batch_first,
        })
    }

    /// `t` with its padding set to 0, so that only what is read is screened; `t` as it is when
    /// its shape is not a batch of these sequences (`[seq, features]` is one unbatched one).
    fn cleared(self, t: &Tensor) -> Result<Tensor> {
        let dims = t.dims();
        let (time_axis, batch_axis) = match (dims.len(), self.batch_first) {
            (3, false) => (0, Some(1)),
            (3, true) => (1, Some(0)),
            (2, _) if self.lengths.len() == 1 => (0, None),
            _ => return Ok(t.clone()),
        };
        if batch_axis.is_some_and(|b| dims[b] != self.lengths.len()) {
            return Ok(t.clone());
        }
        let mut values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let features = dims[dims.len() - 1].max(1);
        for (i, chunk) in values.chunks_mut(features).enumerate() {
            // The index of this row in the leading (time and batch) dims.
            let (time, batch) = match batch_axis {
                None => (i, 0),
                Some(_) if time_axis == 0 => (i / dims[1], i % dims[1]),
                Some(_) => (i % dims[1], i / dims[1]),
            };
            if self.lengths.get(batch).is_some_and(|&len| time >= len) {
                chunk.fill(0.0);
            }
        }
        Ok(Tensor::from_vec(values, dims, t.device())?)
    }
}

/// Warns on stderr about NaN and infinite values in `tensors` (name, tensor, the padding of a
/// batch of sequences, which is left out), or, with `strict`, fails. `what` says where they
/// are (`model.safetensors: weight`).
pub fn screen<'a>(
    what: &str,
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor, Option<Padding<'a>>)>,
    strict: bool,
) -> Result<()> {
    for (name, t, padding) in tensors {
        if !t.dtype().is_float() {
            continue;
        }
        let read = match padding {
            Some(padding) => padding.cleared(t)?,
            None => t.clone(),
        };
        if let Some(n) = non_finite(&read)? {
            let message = format!(
                "{what} `{name}` has {} NaN/Inf value{} (first at {:?}: {})",
                n.count,
                if n.count == 1 { "" } else { "s" },
                n.first_index,
                n.first_value
            );
            if strict {
                bail!("{message} (--strict)");
            }
            eprintln!(
                "warning: {}",
                rnn_weights::clip(&message, rnn_weights::MESSAGE_CHARS)
            );
        }
    }
    Ok(())
}
