//! The LevelDB table format (an SSTable) as TensorFlow's `tensorflow/core/lib/io/table*.cc`
//! writes it for a checkpoint's `.index` file: data blocks of prefix-compressed keys with
//! restart points, an index block of block handles, and a 48-byte footer ending in the magic
//! number. Every block is followed by a compression byte and a masked CRC-32C.
//!
//! Every offset and length is checked against the bytes before it is used; errors say what
//! was expected and what was found, and where.

/// The last 8 bytes of every table (little-endian).
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Two block handles (at most 10 + 10 bytes each, padded to 40) and the magic number.
const FOOTER_LEN: usize = 48;
/// A block's trailer: the compression type byte and the masked CRC-32C.
const TRAILER_LEN: usize = 5;

/// A key and its value.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// Every key and value of the table, in the table's (sorted) order.
pub(crate) fn entries(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    if bytes.len() < FOOTER_LEN {
        return Err(format!(
            "expected at least {FOOTER_LEN} bytes (a table footer), found {}",
            bytes.len()
        ));
    }
    let footer = &bytes[bytes.len() - FOOTER_LEN..];
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&footer[40..]);
    let magic = u64::from_le_bytes(magic);
    if magic != MAGIC {
        return Err(format!(
            "expected the table magic number {MAGIC:#018x} in the last 8 bytes, found \
             {magic:#018x}"
        ));
    }
    let mut pos = 0;
    let _metaindex = BlockHandle::decode(footer, &mut pos)?;
    let index = BlockHandle::decode(footer, &mut pos)?;
    // What the entries may hold in all: keys are rebuilt whole from shared prefixes, so a
    // small index could otherwise claim gigabytes of keys.
    let mut budget = bytes.len().saturating_mul(4).saturating_add(64 << 20);
    let index_block = block(bytes, index, "the index block")?;
    let mut out = Vec::new();
    let mut previous_end = 0u64;
    for (key, value) in block_entries(index_block, "the index block", &mut budget)? {
        let mut pos = 0;
        let handle = BlockHandle::decode(&value, &mut pos)?;
        let what = format!(
            "the data block for keys up to {:?}",
            crate::error::clip(&String::from_utf8_lossy(&key), crate::error::QUOTED_CHARS)
        );
        // TensorFlow writes the data blocks one after another; a handle that points back
        // would have one block decoded once per handle.
        if handle.offset < previous_end {
            return Err(format!(
                "{what}: expected a block after offset {previous_end} (each block once, in \
                 order), found one at {}",
                handle.offset
            ));
        }
        previous_end = handle.offset.saturating_add(handle.size);
        let data = block(bytes, handle, &what)?;
        out.extend(block_entries(data, &what, &mut budget)?);
    }
    for pair in out.windows(2) {
        if pair[0].0 >= pair[1].0 {
            return Err(format!(
                "expected keys in increasing order, found {:?} before {:?}",
                crate::error::clip(&String::from_utf8_lossy(&pair[0].0), 200),
                crate::error::clip(&String::from_utf8_lossy(&pair[1].0), 200)
            ));
        }
    }
    Ok(out)
}

/// Where a block lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHandle {
    offset: u64,
    size: u64,
}

impl BlockHandle {
    fn decode(bytes: &[u8], pos: &mut usize) -> Result<Self, String> {
        let offset = varint64(bytes, pos).ok_or("a block handle's offset is cut short")?;
        let size = varint64(bytes, pos).ok_or("a block handle's size is cut short")?;
        Ok(Self { offset, size })
    }
}

/// A block's contents, its trailer checked: uncompressed, and the CRC-32C matching.
fn block<'a>(bytes: &'a [u8], handle: BlockHandle, what: &str) -> Result<&'a [u8], String> {
    let end = handle
        .offset
        .checked_add(handle.size)
        .and_then(|e| e.checked_add(TRAILER_LEN as u64))
        .filter(|&e| e <= (bytes.len() - FOOTER_LEN) as u64)
        .ok_or_else(|| {
            format!(
                "{what}: expected {} bytes at offset {} before the footer, but the file has {}",
                handle.size.saturating_add(TRAILER_LEN as u64),
                handle.offset,
                bytes.len()
            )
        })?;
    // end fits in the file, so these casts do not truncate.
    let start = handle.offset as usize;
    let contents_end = start + handle.size as usize;
    let contents = &bytes[start..contents_end];
    let kind = bytes[contents_end];
    if kind != 0 {
        // TensorFlow's BundleWriter always writes table::kNoCompression.
        return Err(format!(
            "{what}: expected an uncompressed block (type 0, which TensorFlow's checkpoints \
             always use), found compression type {kind}{}",
            if kind == 1 { " (snappy)" } else { "" }
        ));
    }
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[contents_end + 1..end as usize]);
    let stored = u32::from_le_bytes(stored);
    let actual = mask(crc32c_extend(crc32c(contents), &[kind]));
    if stored != actual {
        return Err(format!(
            "{what}: the checksum does not match (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    Ok(contents)
}

/// The entries of one block: keys rebuilt from their shared prefixes, their bytes taken from
/// `budget`.
fn block_entries(block: &[u8], what: &str, budget: &mut usize) -> Result<Vec<Entry>, String> {
    let fail = |why: String| format!("{what}: {why}");
    if block.len() < 4 {
        return Err(fail(format!(
            "expected at least 4 bytes (the restart count), found {}",
            block.len()
        )));
    }
    let count = read_u32(block, block.len() - 4) as usize;
    let restarts_len = count
        .checked_mul(4)
        .and_then(|n| n.checked_add(4))
        .filter(|&n| n <= block.len())
        .ok_or_else(|| {
            fail(format!(
                "{count} restart points do not fit in a block of {} bytes",
                block.len()
            ))
        })?;
    let limit = block.len() - restarts_len;
    if count == 0 && limit > 0 {
        return Err(fail(format!(
            "expected a restart point for the {limit} bytes of entries, found none"
        )));
    }
    let restarts: Vec<usize> = (0..count)
        .map(|k| read_u32(block, limit + 4 * k) as usize)
        .collect();
    if let Some(bad) = restarts.iter().find(|&&r| r > limit) {
        return Err(fail(format!(
            "restart point {bad} lies past the entries, which end at {limit}"
        )));
    }
    if restarts.windows(2).any(|w| w[0] >= w[1]) {
        return Err(fail("expected restart points in increasing order".into()));
    }
    // The restart points not yet passed: the entries are walked in order, so each point is
    // looked at once.
    let mut next_restart = restarts.iter().peekable();
    let mut entries: Vec<Entry> = Vec::new();
    let mut pos = 0;
    let mut key: Vec<u8> = Vec::new();
    while pos < limit {
        let at = pos;
        let cut = || fail(format!("the entry at offset {at} is cut short"));
        let shared = varint32(&block[..limit], &mut pos).ok_or_else(cut)? as usize;
        let unshared = varint32(&block[..limit], &mut pos).ok_or_else(cut)? as usize;
        let value_len = varint32(&block[..limit], &mut pos).ok_or_else(cut)? as usize;
        if shared > key.len() {
            return Err(fail(format!(
                "the entry at offset {at} shares {shared} bytes with the previous key, which has {}",
                key.len()
            )));
        }
        while next_restart.next_if(|&&r| r < at).is_some() {}
        if next_restart.next_if_eq(&&at).is_some() && shared != 0 {
            return Err(fail(format!(
                "the entry at restart point {at} shares {shared} bytes with the previous key; a \
                 restart point's key is whole"
            )));
        }
        let key_end = pos
            .checked_add(unshared)
            .filter(|&e| e <= limit)
            .ok_or_else(cut)?;
        let value_end = key_end
            .checked_add(value_len)
            .filter(|&e| e <= limit)
            .ok_or_else(cut)?;
        *budget = budget
            .checked_sub(shared + unshared + value_len)
            .ok_or_else(|| {
                fail(format!(
                    "the entry at offset {at}: the keys and values rebuilt so far exceed 4 \
                     bytes per byte of the file plus 64 MiB (keys that share ever longer \
                     prefixes)"
                ))
            })?;
        key.truncate(shared);
        key.extend_from_slice(&block[pos..key_end]);
        entries.push((key.clone(), block[key_end..value_end].to_vec()));
        pos = value_end;
    }
    Ok(entries)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn varint64(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn varint32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    varint64(bytes, pos).and_then(|v| u32::try_from(v).ok())
}

/// The CRC-32C (Castagnoli) of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_extend(0, bytes)
}

fn crc32c_extend(crc: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !crc;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// LevelDB's masked CRC (a CRC stored beside the data it covers is masked, so that a CRC of
/// data holding CRCs stays well distributed).
pub(crate) fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries of a block, without a budget.
    fn all(block: &[u8]) -> Result<Vec<Entry>, String> {
        {
            let mut budget = usize::MAX;
            block_entries(block, "b", &mut budget)
        }
    }

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A block of `entries` with a restart point every `interval` entries.
    fn encode_block(entries: &[(&[u8], &[u8])], interval: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut restarts = Vec::new();
        let mut last: &[u8] = &[];
        for (k, (key, value)) in entries.iter().enumerate() {
            let shared = if k % interval == 0 {
                restarts.push(out.len() as u32);
                0
            } else {
                key.iter().zip(last).take_while(|(a, b)| a == b).count()
            };
            varint(shared as u64, &mut out);
            varint((key.len() - shared) as u64, &mut out);
            varint(value.len() as u64, &mut out);
            out.extend_from_slice(&key[shared..]);
            out.extend_from_slice(value);
            last = key;
        }
        // LevelDB's BlockBuilder starts every block, even an empty one, with restart point 0.
        if restarts.is_empty() {
            restarts.push(0);
        }
        for r in &restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        out
    }

    fn push_block(file: &mut Vec<u8>, block: &[u8], kind: u8) -> Vec<u8> {
        let mut handle = Vec::new();
        varint(file.len() as u64, &mut handle);
        varint(block.len() as u64, &mut handle);
        file.extend_from_slice(block);
        file.push(kind);
        let crc = mask(crc32c_extend(crc32c(block), &[kind]));
        file.extend_from_slice(&crc.to_le_bytes());
        handle
    }

    /// A table with the entries split into data blocks of `per_block` entries.
    fn table(entries: &[(&[u8], &[u8])], per_block: usize, interval: usize) -> Vec<u8> {
        let mut file = Vec::new();
        let mut index = Vec::new();
        let mut handles = Vec::new();
        for chunk in entries.chunks(per_block) {
            let handle = push_block(&mut file, &encode_block(chunk, interval), 0);
            handles.push((chunk[chunk.len() - 1].0.to_vec(), handle));
        }
        for (key, handle) in &handles {
            index.push((key.as_slice(), handle.as_slice()));
        }
        let meta = push_block(&mut file, &encode_block(&[], 1), 0);
        let index_handle = push_block(&mut file, &encode_block(&index, 1), 0);
        let mut footer = meta;
        footer.extend_from_slice(&index_handle);
        footer.resize(40, 0);
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        file.extend_from_slice(&footer);
        file
    }

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // The check value of CRC-32C ("123456789"), from the CRC catalogue.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn reads_keys_shared_across_restarts_and_blocks() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"", b"header"),
            (b"rnn/basic_rnn_cell/bias", b"1"),
            (b"rnn/basic_rnn_cell/kernel", b"22"),
            (b"rnn/basic_rnn_cell/kernel_1", b""),
            (b"rnn/other", b"333"),
        ];
        for per_block in 1..=5 {
            for interval in 1..=3 {
                let got = entries(&table(&pairs, per_block, interval)).unwrap();
                let want: Vec<(Vec<u8>, Vec<u8>)> = pairs
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                assert_eq!(got, want, "{per_block} per block, restart every {interval}");
            }
        }
    }

    #[test]
    fn an_empty_table_has_no_entries() {
        assert_eq!(entries(&table(&[], 1, 1)).unwrap(), Vec::new());
    }

    #[test]
    fn refuses_a_bad_magic_number_and_a_short_file() {
        let mut file = table(&[(b"a", b"b")], 1, 1);
        let len = file.len();
        file[len - 1] ^= 1;
        assert!(entries(&file).unwrap_err().contains("magic number"));
        assert!(entries(&file[..20])
            .unwrap_err()
            .contains("at least 48 bytes"));
    }

    #[test]
    fn refuses_a_compressed_block_and_a_bad_checksum() {
        let mut file = Vec::new();
        let data = push_block(&mut file, &encode_block(&[(b"a", b"b")], 1), 1);
        let index = push_block(&mut file, &encode_block(&[(b"a", &data)], 1), 0);
        let mut footer = index.clone();
        footer.extend_from_slice(&index);
        footer.resize(40, 0);
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        file.extend_from_slice(&footer);
        assert!(entries(&file)
            .unwrap_err()
            .contains("compression type 1 (snappy)"));

        let mut file = table(&[(b"a", b"b")], 1, 1);
        file[1] ^= 0x40;
        assert!(entries(&file)
            .unwrap_err()
            .contains("checksum does not match"));
    }

    #[test]
    fn refuses_entries_that_reach_past_their_block() {
        // A value length of 100 in a block of a few bytes, checksummed as if valid.
        let mut block = Vec::new();
        varint(0, &mut block);
        varint(1, &mut block);
        varint(100, &mut block);
        block.extend_from_slice(b"ab");
        block.extend_from_slice(&0u32.to_le_bytes());
        block.extend_from_slice(&1u32.to_le_bytes());
        assert!(all(&block).unwrap_err().contains("cut short"));
    }

    #[test]
    fn refuses_a_shared_prefix_longer_than_the_previous_key_and_too_many_restarts() {
        let mut block = Vec::new();
        varint(3, &mut block);
        varint(1, &mut block);
        varint(0, &mut block);
        block.push(b'a');
        block.extend_from_slice(&4u32.to_le_bytes());
        block.extend_from_slice(&1u32.to_le_bytes());
        let err = all(&block).unwrap_err();
        assert!(err.contains("shares 3 bytes"), "{err}");

        let huge = u32::MAX.to_le_bytes();
        assert!(all(&huge).unwrap_err().contains("restart points"));
        assert_eq!(all(&[0, 0, 0, 0]).unwrap(), Vec::new());
        assert!(all(&[0, 0, 0, 0, 0]).unwrap_err().contains("found none"));
    }

    #[test]
    fn refuses_restart_points_out_of_order() {
        let mut block = encode_block(&[(b"a", b"1"), (b"b", b"2")], 1);
        // Both restart points say 0.
        let n = block.len();
        block[n - 8..n - 4].copy_from_slice(&0u32.to_le_bytes());
        let err = all(&block).unwrap_err();
        assert!(err.contains("increasing order"), "{err}");
    }

    #[test]
    fn refuses_keys_rebuilt_past_the_budget() {
        // Each key shares the whole previous key and adds one byte: n entries rebuild n²/2
        // bytes of keys from about 4n bytes of block.
        let keys: Vec<Vec<u8>> = (1..=200).map(|n| vec![b'k'; n]).collect();
        let entries: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), &b""[..])).collect();
        let block = encode_block(&entries, 1000);
        assert!(all(&block).is_ok());
        let mut budget = 10_000;
        let err = block_entries(&block, "b", &mut budget).unwrap_err();
        assert!(err.contains("rebuilt so far exceed"), "{err}");
    }

    #[test]
    fn refuses_index_handles_that_point_back() {
        // Two index entries naming the same data block: it would be decoded once per handle.
        let mut file = Vec::new();
        let data = encode_block(&[(b"a", b"1")], 16);
        let handle = push_block(&mut file, &data, 0);
        let index = encode_block(&[(b"a", &handle), (b"b", &handle)], 16);
        let index_handle = push_block(&mut file, &index, 0);
        let mut footer = Vec::new();
        footer.extend_from_slice(&index_handle);
        footer.extend_from_slice(&index_handle);
        footer.resize(40, 0);
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        file.extend_from_slice(&footer);
        let err = entries(&file).unwrap_err();
        assert!(err.contains("each block once"), "{err}");
    }

    #[test]
    fn refuses_keys_out_of_order() {
        let file = table(&[(b"b", b""), (b"a", b"")], 1, 1);
        assert!(entries(&file).unwrap_err().contains("increasing order"));
    }

    #[test]
    fn refuses_a_block_handle_past_the_end() {
        let mut file = table(&[(b"a", b"b")], 1, 1);
        // The index handle in the footer: point it far away.
        let len = file.len();
        let footer = &mut file[len - FOOTER_LEN..];
        let mut pos = 0;
        BlockHandle::decode(footer, &mut pos).unwrap();
        footer[pos] = 0xff;
        footer[pos + 1] = 0x7f;
        let err = entries(&file).unwrap_err();
        assert!(err.contains("the index block"), "{err}");
    }
}
