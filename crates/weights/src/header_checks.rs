//! Checks on the headers of untrusted safetensors and .npy files, made before anything is
//! allocated or laid out, shared by the whole-file readers and the chunked ones.

/// The longest safetensors header read, in bytes: the safetensors crate's own limit (private
/// there), checked before anything is allocated for the header.
pub(crate) const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// The header length a safetensors file of `file_len` bytes gives in its `first` 8 bytes
/// (`None`: the file is shorter), checked against the file and the crate's limit before anything
/// is read; the error says what is wrong in the file's terms. Both readers (whole and a batch
/// at a time) start here.
pub(crate) fn safetensors_header_len(
    first: Option<&[u8]>,
    file_len: u64,
) -> std::result::Result<usize, String> {
    if file_len == 0 {
        return Err("the file is empty".into());
    }
    let Some(&[a, b, c, d, e, f, g, h]) = first else {
        return Err(format!(
            "{file_len} bytes, shorter than the 8-byte header length that starts every safetensors file"
        ));
    };
    let header_len = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
    let after = file_len - 8;
    if header_len > after {
        return Err(format!(
            "its first 8 bytes give a header of {header_len} bytes, but only {after} follow \
             (not a safetensors file, or truncated)"
        ));
    }
    if header_len > MAX_SAFETENSORS_HEADER {
        return Err(format!(
            "{} (its first 8 bytes give {header_len} bytes, over the {MAX_SAFETENSORS_HEADER} \
             the safetensors format allows)",
            safetensors::SafeTensorError::HeaderTooLarge
        ));
    }
    usize::try_from(header_len)
        .map_err(|_| safetensors::SafeTensorError::HeaderTooLarge.to_string())
}

/// Whether a tensor of `dims` can be laid out: its strides (products of trailing dims) must fit
/// in an `isize`, even when another dim is 0 and the tensor is empty.
pub(crate) fn strides_fit(dims: &[usize]) -> bool {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .is_some_and(|n| n <= isize::MAX as usize / 16)
}

/// The first key that a JSON object names twice. JSON parsers keep the last of duplicates
/// silently; a file that names a tensor twice is ambiguous, so it is refused.
pub(crate) fn duplicate_key(json: &[u8]) -> Option<String> {
    struct FirstDuplicate(Option<String>);

    impl<'de> serde::Deserialize<'de> for FirstDuplicate {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            d.deserialize_map(FirstDuplicate(None))
        }
    }

    impl<'de> serde::de::Visitor<'de> for FirstDuplicate {
        type Value = FirstDuplicate;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    return Ok(FirstDuplicate(Some(key)));
                }
            }
            Ok(FirstDuplicate(None))
        }
    }

    serde_json::from_slice::<FirstDuplicate>(json).ok()?.0
}
