//! TensorFlow checkpoints (tensor bundles): TF1 `tf.train.Saver` and TF2
//! `tf.train.Checkpoint`, a `NAME.index` table beside `NAME.data-*` shards.
//!
//! The index is an SSTable (`sstable.rs`) whose `""` key holds a `BundleHeaderProto` and
//! every other key a variable's `BundleEntryProto`: where its bytes lie in which shard. Names
//! are brought to what `naming.rs` reads: TF1 names as they are; TF2's object-graph names of
//! a Keras model (`model/layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE`) to
//! Keras variable paths in layer order; the article's unnamed `Variable`, `Variable_1`,
//! `Variable_2` to `Wx`, `Wy`, `b` when their shapes say which is which; a tf-keras
//! SavedModel's numbered `variables/`, and a Keras model's variables keyed under a
//! checkpoint's optimizer, through the object graph (`saved_model.rs`). TensorFlow's
//! bookkeeping (the object graph, step counters, optimizer slots) is left out and listed in
//! the metadata key `skipped`.

mod bundle;
mod meta_graph;
mod names;
mod saved_model;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

use bundle::{
    dtype_name, dtype_of, BundleEntryProto, BundleHeaderProto, Shards, BUNDLE_VERSION, MAX_SHARDS,
};
pub(crate) use names::SAVE_KERAS;
use names::{is_bookkeeping, rename};

/// Reads the checkpoint with this prefix.
pub(crate) fn read(prefix: &Path) -> Result<TensorFile> {
    let index_path = with_suffix(prefix, ".index");
    let bytes =
        crate::readers::read_regular_file(&index_path).map_err(|error| WeightsError::Io {
            path: index_path.clone(),
            error,
        })?;
    let malformed = |reason: String| WeightsError::Malformed {
        path: index_path.clone(),
        kind: "TensorFlow checkpoint index",
        reason,
    };
    let entries = super::sstable::entries(&bytes).map_err(malformed)?;
    let mut header = None;
    let mut variables = Vec::new();
    for (key, value) in entries {
        let name = String::from_utf8(key)
            .map_err(|_| malformed("expected UTF-8 variable names, found other bytes".into()))?;
        if name.is_empty() {
            let h = <BundleHeaderProto as prost::Message>::decode(value.as_slice())
                .map_err(|e| malformed(format!("the header (key \"\") does not decode: {e}")))?;
            header = Some(h);
            continue;
        }
        let entry = <BundleEntryProto as prost::Message>::decode(value.as_slice())
            .map_err(|e| malformed(format!("the entry of `{name}` does not decode: {e}")))?;
        variables.push((name, entry));
    }
    let header =
        header.ok_or_else(|| malformed("expected a header (the key \"\"), found none".into()))?;
    if header.endianness != 0 {
        return Err(malformed(
            "the tensors are stored big-endian, which rnn does not read".into(),
        ));
    }
    if let Some(version) = &header.version {
        if version.min_consumer > BUNDLE_VERSION || version.bad_consumers.contains(&BUNDLE_VERSION)
        {
            return Err(malformed(format!(
                "expected a bundle readable by version {BUNDLE_VERSION}, found one for version \
                 {} and later",
                version.min_consumer
            )));
        }
    }
    if !(1..=MAX_SHARDS).contains(&header.num_shards) {
        return Err(malformed(format!(
            "expected 1 to {MAX_SHARDS} data shards, found {}",
            header.num_shards
        )));
    }
    let mut shards = Shards {
        prefix,
        index: &index_path,
        count: header.num_shards,
        loaded: HashMap::new(),
        used: HashMap::new(),
    };
    let mut tensors = BTreeMap::new();
    let mut unloadable = BTreeMap::new();
    let mut skipped = Vec::new();
    let object_graph = variables
        .iter()
        .find(|(name, _)| name == "_CHECKPOINTABLE_OBJECT_GRAPH")
        .map(|(_, entry)| entry.clone());
    let saved_model = saved_model::keras_metadata_beside(prefix);
    // A tf.train.Checkpoint's variables keyed under its optimizer that the object graph ties
    // to the model's layers are read under the model's keys.
    let mut model_keys = HashMap::new();
    if let (Some(entry), None) = (&object_graph, &saved_model) {
        if variables
            .iter()
            .any(|(name, _)| name.starts_with("optimizer/"))
        {
            let graph = object_graph_bytes(&mut shards, entry, &malformed)?;
            model_keys = saved_model::model_keys(&index_path, &graph)?;
        }
    }
    for (name, entry) in variables {
        let name = model_keys.remove(&name).unwrap_or(name);
        if is_bookkeeping(&name) {
            skipped.push(name);
            continue;
        }
        if !entry.slices.is_empty() {
            return Err(malformed(format!(
                "`{name}` is a partitioned variable ({} slices), which rnn does not read; save \
                 the variable unpartitioned",
                entry.slices.len()
            )));
        }
        match dtype_of(entry.dtype) {
            Some((dtype, width)) => {
                let tensor = shards.tensor(&name, &entry, dtype, width)?;
                tensors.insert(name, tensor);
            }
            None => {
                unloadable.insert(name, dtype_name(entry.dtype));
            }
        }
    }
    // A tf-keras SavedModel (`DIR/variables/variables` with `DIR/keras_metadata.pb`): its
    // variables, mostly numbered, named by the object graph and the Keras metadata.
    if let (Some(entry), Some(keras)) = (&object_graph, saved_model) {
        if !tensors.is_empty() {
            let graph = object_graph_bytes(&mut shards, entry, &malformed)?;
            let (tensors, metadata, recorded, whole) =
                saved_model::keras_names(&index_path, &graph, &keras, tensors)?;
            return Ok(TensorFile::from_tensors(&index_path, tensors, metadata)
                .with_recorded(recorded)
                .with_graph(whole)
                .with_unloadable(unloadable));
        }
    }
    let (tensors, not_run) = rename(&index_path, tensors)?;
    let mut metadata = HashMap::new();
    if !not_run.is_empty() {
        metadata.insert(super::keras::NOT_RUN.to_string(), not_run.join(", "));
    }
    if !skipped.is_empty() {
        metadata.insert("skipped".to_string(), skipped.join(","));
    }
    // A TF1 BasicRNNCell's activation, where the graph saved beside records one not tanh.
    if let Some(activation) = meta_graph::cell_activation(prefix)? {
        metadata.insert(
            crate::config::key::NONLINEARITY.to_string(),
            activation.to_string(),
        );
    }
    Ok(TensorFile::from_tensors(&index_path, tensors, metadata).with_unloadable(unloadable))
}

/// The bytes of the checkpoint's object graph, at most [`saved_model::MAX_OBJECT_GRAPH`].
fn object_graph_bytes(
    shards: &mut Shards,
    entry: &BundleEntryProto,
    malformed: &dyn Fn(String) -> WeightsError,
) -> Result<Vec<u8>> {
    if usize::try_from(entry.size).map_or(true, |n| n > saved_model::MAX_OBJECT_GRAPH) {
        return Err(malformed(format!(
            "expected an object graph of at most {} bytes, found {}",
            saved_model::MAX_OBJECT_GRAPH,
            entry.size
        )));
    }
    shards.string("_CHECKPOINTABLE_OBJECT_GRAPH", entry)
}

/// `prefix` with `suffix` appended to its last component.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
