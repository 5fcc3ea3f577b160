//! `rnn.RnnError`, what a bad file, shape or option raises, with the CLI's message.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

create_exception!(
    rnn,
    RnnError,
    PyValueError,
    "A file, a shape or an option rnn cannot use; the message is the rnn CLI's."
);

/// The error's message, bounded as the CLI bounds it ([`rnn_weights::MESSAGE_CHARS`]).
pub(crate) fn rnn_error(error: impl std::fmt::Display) -> PyErr {
    let message = error.to_string();
    RnnError::new_err(rnn_weights::clip(&message, rnn_weights::MESSAGE_CHARS).into_owned())
}

/// A library error in the module's words: an option that does not fit the model is named by
/// its keyword (`load(merge_mode=…)`), where the CLI names its flag.
pub(crate) fn message(error: &rnn_weights::WeightsError) -> String {
    match error {
        rnn_weights::WeightsError::Option { option, reason } => keyword(option, reason),
        other => other.to_string(),
    }
}

/// `load(option=…): reason`, how the module names a keyword in its errors.
pub(crate) fn keyword(option: &str, reason: impl std::fmt::Display) -> String {
    format!("load({option}=…): {reason}")
}
