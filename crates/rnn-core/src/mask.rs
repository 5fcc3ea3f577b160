//! Keras's `Masking` layer as sequence lengths.

use candle_core::{DType, Result, Tensor};

/// Each sequence's length under Keras's `Masking(mask_value)`: a step is masked where every
/// feature equals `mask_value`, and a sequence's length is its steps before the first masked
/// one. `rnn` runs masks that end each sequence (as `lengths` does); Keras skips masked steps
/// anywhere, so a mask with holes is an error rather than another number.
///
/// The comparison is in the input's dtype, `mask_value` rounded to it, as Keras compares in
/// the layer's (float32: a mask value of 0.1 masks float32 0.1). A float64 input must give the
/// same lengths compared in float32 too, since Keras models compute in float32: where the two
/// differ (a mask value float32 does not hold, or inputs that differ from it below float32's
/// precision) the mask is refused, not guessed.
///
/// # Shapes
/// `input`: `[seq_len, batch, features]` (`[batch, seq_len, features]` when `batch_first`),
/// or unbatched `[seq_len, features]`; returns `batch` lengths (one when unbatched).
///
/// # Errors
/// When a sequence has a masked step before one that is not (the message names the sequence
/// and both steps), when float64 and float32 comparisons disagree, or `input` is not of rank 2
/// or 3.
pub fn lengths_from_mask(input: &Tensor, mask_value: f64, batch_first: bool) -> Result<Vec<usize>> {
    let lengths = lengths_in(input, mask_value, batch_first)?;
    if input.dtype() == DType::F64 {
        let narrow = lengths_in(&input.to_dtype(DType::F32)?, mask_value, batch_first);
        if narrow.as_ref().ok() != Some(&lengths) {
            return Err(candle_core::Error::Msg(format!(
                "the mask (every feature {mask_value}) gives other lengths in float32, Keras's \
                 precision, than in float64 ({lengths:?}); run in float32, or give a mask value \
                 and inputs that float32 holds exactly"
            )));
        }
    }
    Ok(lengths)
}

/// [`lengths_from_mask`] compared in `input`'s own dtype.
fn lengths_in(input: &Tensor, mask_value: f64, batch_first: bool) -> Result<Vec<usize>> {
    let valid = valid_steps(input, mask_value, batch_first)?;
    let mut lengths = Vec::with_capacity(valid.len());
    for (b, steps) in valid.iter().enumerate() {
        let length = steps.iter().take_while(|&&v| v).count();
        if let Some(t) = (length..steps.len()).find(|&t| steps[t]) {
            return Err(candle_core::Error::Msg(format!(
                "sequence {b} is masked (every feature {mask_value}) at step {length} but not \
                 at step {t}: rnn skips only the masked steps that end a sequence, as `lengths` \
                 does, where Keras skips them anywhere"
            )));
        }
        lengths.push(length);
    }
    Ok(lengths)
}

/// Keras's `Masking(mask_value)` as a step mask, `[batch][steps]`, `true` where a step holds
/// any feature other than `mask_value`; compared in the input's dtype, and a float64 input
/// must give the same mask in float32, as [`lengths_from_mask`] says.
///
/// # Shapes
/// `input`: `[batch, seq_len, features]`.
///
/// # Errors
/// When float64 and float32 comparisons disagree, or `input` is not of rank 3.
pub fn step_mask(input: &Tensor, mask_value: f64) -> Result<Vec<Vec<bool>>> {
    if input.rank() != 3 {
        return Err(candle_core::Error::Msg(format!(
            "expected an input [batch, steps, features] to mask, found shape {:?}",
            input.dims()
        )));
    }
    let valid = valid_steps(input, mask_value, true)?;
    if input.dtype() == DType::F64
        && valid_steps(&input.to_dtype(DType::F32)?, mask_value, true)? != valid
    {
        return Err(candle_core::Error::Msg(format!(
            "the mask (every feature {mask_value}) masks other steps in float32, Keras's \
             precision, than in float64; run in float32, or give a mask value and inputs that \
             float32 holds exactly"
        )));
    }
    Ok(valid)
}

/// `[batch][steps]`: whether each step holds any feature other than `mask_value` (which `ne`
/// rounds to the input's dtype).
fn valid_steps(input: &Tensor, mask_value: f64, batch_first: bool) -> Result<Vec<Vec<bool>>> {
    let x = match input.rank() {
        2 => input.unsqueeze(1)?,
        _ if batch_first => input.transpose(0, 1)?,
        _ => input.clone(),
    };
    let valid: Vec<Vec<u8>> = x.ne(mask_value)?.max(2)?.t()?.to_vec2()?;
    Ok(valid
        .into_iter()
        .map(|steps| steps.into_iter().map(|v| v > 0).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use candle_core::Device;

    /// A mask value float32 does not hold masks float32 inputs as Keras does (in float32), and a
    /// float64 input whose float32 reading masks otherwise is refused.
    #[test]
    fn the_mask_is_compared_in_the_input_s_dtype() {
        let tenth = 0.1f32;
        let x = Tensor::new(&[[[1.0f32, 2.0]], [[tenth, tenth]]], &Device::Cpu).unwrap();
        assert_eq!(lengths_from_mask(&x, 0.1, false).unwrap(), [1]);
        let wide = x.to_dtype(DType::F64).unwrap();
        let e = lengths_from_mask(&wide, 0.1, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gives other lengths in float32"), "{e}");
        assert_eq!(
            lengths_from_mask(&wide, f64::from(tenth), false).unwrap(),
            [1]
        );
    }

    /// Batch-first [2, 3, 2]: sequence 0 masked from step 2, sequence 1 not at all; then a hole.
    #[test]
    fn trailing_masks_are_lengths_and_holes_are_refused() {
        let x = Tensor::new(
            &[
                [[1.0f32, 0.0], [0.5, 2.0], [0.0, 0.0]],
                [[1.0, 1.0], [0.0, 3.0], [4.0, 0.0]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(lengths_from_mask(&x, 0.0, true).unwrap(), [2, 3]);
        let time_major = x.transpose(0, 1).unwrap();
        assert_eq!(lengths_from_mask(&time_major, 0.0, false).unwrap(), [2, 3]);
        let hole = Tensor::new(&[[1.0f32], [0.0], [2.0]], &Device::Cpu).unwrap();
        let err = lengths_from_mask(&hole, 0.0, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at step 1 but not at step 2"), "{err}");
    }
}
