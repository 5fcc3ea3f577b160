//! numpy's `.npz` archives (`numpy.savez`, `numpy.savez_compressed`): a zip file holding one
//! `.npy` file per array, named `NAME.npy`.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use candle_core::Tensor;

/// A zip archive that starts at the first byte, as torch.save's, numpy's and Keras's do. The zip
/// crate's default guesses an offset for data prepended to the archive, and guessed wrong for
/// torch.save files whose name makes its alignment padding leave an empty extra-field record
/// (a 21-character stem, `model_checkpoint_best.pt`): "Invalid Central Directory header".
pub(crate) fn zip_archive(
    bytes: &[u8],
) -> zip::result::ZipResult<zip::ZipArchive<std::io::Cursor<&[u8]>>> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes))
}

/// The arrays of an archive, by name (without `.npy`); the error says what is wrong, in words.
pub(crate) fn read(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, String> {
    let mut archive = zip_archive(bytes).map_err(|e| format!("not a zip archive ({e})"))?;
    let mut arrays = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("entry {i} cannot be read ({e})"))?;
        let name = entry
            .name()
            .map_err(|e| format!("entry {i} has an unreadable name ({e})"))?
            .into_owned();
        let Some(array) = name.strip_suffix(".npy") else {
            return Err(format!("entry `{name}` is not a .npy array"));
        };
        let declared = entry.size();
        let mut data = Vec::new();
        usize::try_from(declared)
            .ok()
            .and_then(|n| data.try_reserve_exact(n).ok())
            .ok_or_else(|| {
                format!("array `{array}` declares {declared} bytes, more than memory can hold")
            })?;
        // One byte past the declared size: reaching the entry's end checks its CRC, and an
        // entry that inflates to more than it declared is caught.
        entry
            .by_ref()
            .take(declared.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| format!("array `{array}` cannot be decompressed ({e})"))?;
        if data.len() as u64 != declared {
            return Err(format!(
                "array `{array}` declares {declared} bytes but holds {}",
                data.len()
            ));
        }
        let tensor =
            crate::npy::parse(&data).map_err(|reason| format!("array `{array}`: {reason}"))?;
        if arrays.insert(array.to_string(), tensor).is_some() {
            return Err(format!("the archive holds array `{array}` twice"));
        }
    }
    Ok(arrays)
}

/// An archive of the tensors, uncompressed, as `numpy.savez` writes it.
pub(crate) fn write(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, tensor) in tensors {
        let npy = crate::npy::write(tensor).map_err(|e| format!("array `{name}`: {e}"))?;
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(npy.len() as u64 >= u64::from(u32::MAX));
        zip.start_file(format!("{name}.npy"), options)
            .and_then(|()| zip.write_all(&npy).map_err(Into::into))
            .map_err(|e| format!("array `{name}`: {e}"))?;
    }
    let cursor = zip.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests;
