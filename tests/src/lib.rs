//! Workspace tests live in `tests/*.rs`; fixtures in `tests/fixtures/`.
