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
    let mut archive = zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes))?;
    refuse_overlaps(&mut archive)?;
    Ok(archive)
}

/// The entry `name`, which may declare at most `most` bytes unpacked and is read to at most
/// that many (a deflated entry cannot unpack to more than it declares, checked here); the
/// error says what is wrong, in words.
pub(crate) fn read_entry(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    most: u64,
) -> Result<Vec<u8>, String> {
    let file = archive
        .by_name(name)
        .map_err(|e| format!("expected an entry `{name}`, found none ({e})"))?;
    if file.size() > most {
        return Err(format!(
            "expected `{name}` of at most {most} bytes, found {}",
            file.size()
        ));
    }
    let mut out = Vec::new();
    file.take(most)
        .read_to_end(&mut out)
        .map_err(|e| format!("`{name}` does not unpack: {e}"))?;
    Ok(out)
}

/// Refuses an archive whose entries share bytes: a central directory whose entries all point
/// at one stored entry would have each reader decode the same data once per name (a small file
/// read as many copies). Zip writers lay entries end to end; each entry's local header, name
/// and data must end before the next one starts.
fn refuse_overlaps(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
) -> zip::result::ZipResult<()> {
    let mut spans = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i)?;
        let start = entry.header_start();
        let end = entry
            .data_start()
            .and_then(|d| d.checked_add(entry.compressed_size()))
            .unwrap_or(u64::MAX);
        spans.push((start, end, i));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return Err(zip::result::ZipError::InvalidArchive(
                format!("entries {a} and {b} share bytes (an archive built to repeat its data)")
                    .into(),
            ));
        }
    }
    Ok(())
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
        let tensor = crate::npy::read(&mut entry, declared)
            .map_err(|reason| format!("array `{array}`: {reason}"))?;
        // Reading to the entry's end checks its CRC; an entry that holds more than its
        // header and data is caught.
        let mut past = Vec::new();
        entry
            .by_ref()
            .take(1)
            .read_to_end(&mut past)
            .map_err(|e| format!("array `{array}` cannot be decompressed ({e})"))?;
        if !past.is_empty() {
            return Err(format!(
                "array `{array}` holds more bytes than its header and data"
            ));
        }
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
