use super::*;
use crate::file::TensorFile;

fn sample(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
}

#[test]
fn slices_written_along_axis_1_make_the_whole_array_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let output = sample(&[4, 7, 3]);
    let h_n = sample(&[2, 7, 3]);
    for (name, format) in [
        ("y.safetensors", FileFormat::Safetensors),
        ("y.npy", FileFormat::Npy),
    ] {
        let path = dir.path().join(name);
        let mut arrays = vec![("output".to_string(), DType::F32, vec![4, 7, 3])];
        if format == FileFormat::Safetensors {
            arrays.push(("h_n".to_string(), DType::F32, vec![2, 7, 3]));
        }
        let mut writer = ArrayWriter::create(&path, format, &arrays).unwrap();
        for start in (0..7).step_by(3) {
            let len = 3.min(7 - start);
            writer
                .write("output", 1, start, &output.narrow(1, start, len).unwrap())
                .unwrap();
            if format == FileFormat::Safetensors {
                writer
                    .write("h_n", 1, start, &h_n.narrow(1, start, len).unwrap())
                    .unwrap();
            }
        }
        assert!(!path.exists(), "visible before finish");
        writer.finish().unwrap();
        // Read whole by the ordinary reader (the safetensors crate checks the layout).
        let file = TensorFile::read(&path).unwrap();
        let whole_name = if format == FileFormat::Npy {
            "input"
        } else {
            "output"
        };
        same(file.raw(whole_name).unwrap(), &output);
        if format == FileFormat::Safetensors {
            same(file.raw("h_n").unwrap(), &h_n);
        }
        // And a slice at a time.
        let mut reader = ArrayFile::open(&path, format).unwrap();
        same(
            &reader.read(whole_name, 1, 2..6).unwrap(),
            &output.narrow(1, 2, 4).unwrap(),
        );
        same(
            &reader.read(whole_name, 0, 1..3).unwrap(),
            &output.narrow(0, 1, 2).unwrap(),
        );
    }
}

#[test]
fn an_unfinished_writer_leaves_nothing_and_bad_slices_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.npy");
    let mut writer = ArrayWriter::create(
        &path,
        FileFormat::Npy,
        &[("output".into(), DType::F32, vec![2, 3])],
    )
    .unwrap();
    let wrong = sample(&[2, 4]);
    assert!(writer.write("output", 1, 0, &wrong).is_err());
    assert!(writer.write("output", 1, 2, &sample(&[2, 2])).is_err());
    assert!(writer.write("h_n", 0, 0, &sample(&[2, 3])).is_err());
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn reading_past_the_end_or_a_damaged_header_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    std::fs::write(&path, crate::npy::write(&sample(&[3, 2])).unwrap()).unwrap();
    let mut reader = ArrayFile::open(&path, FileFormat::Npy).unwrap();
    assert_eq!(
        reader.describe("input"),
        Some((&[3usize, 2][..], DType::F32))
    );
    let past = reader.read("input", 0, 2..4).unwrap_err().to_string();
    assert!(
        past.ends_with(
            "tensor `input`: expected shape an axis 0 with at least 4 entries, found [3, 2]"
        ),
        "{past}"
    );
    assert!(reader.read("input", 2, 0..1).is_err());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    let short = ArrayFile::open(&path, FileFormat::Npy)
        .unwrap_err()
        .to_string();
    assert!(
        short.contains(
            "x.npy: not a valid .npy file: shape [3, 2] of '<f4' needs 24 data bytes, found 20"
        ),
        "{short}"
    );
    let st = dir.path().join("x.safetensors");
    std::fs::write(&st, [&200u64.to_le_bytes()[..], b"{}"].concat()).unwrap();
    let header = ArrayFile::open(&st, FileFormat::Safetensors)
        .unwrap_err()
        .to_string();
    assert!(
        header.contains("a header of 200 bytes, but only 2 follow"),
        "{header}"
    );
    let twice = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (twice.len() as u64).to_le_bytes().to_vec();
    bytes.extend(twice);
    bytes.extend([0u8; 4]);
    std::fs::write(&st, bytes).unwrap();
    let dup = ArrayFile::open(&st, FileFormat::Safetensors)
        .unwrap_err()
        .to_string();
    assert!(dup.contains("names tensor `a` twice"), "{dup}");
    // Not a regular file: a directory here, a pipe for a user.
    let dir_err = ArrayFile::open(dir.path(), FileFormat::Npy)
        .unwrap_err()
        .to_string();
    assert!(dir_err.contains("not a regular file"), "{dir_err}");
}

#[test]
fn slices_written_along_axis_0_land_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.npy");
    let whole = sample(&[5, 2, 3]);
    let arrays = [("output".to_string(), DType::F32, vec![5, 2, 3])];
    let mut writer = ArrayWriter::create(&path, FileFormat::Npy, &arrays).unwrap();
    for (start, len) in [(3, 2), (0, 3)] {
        let slice = whole.narrow(0, start, len).unwrap();
        writer.write("output", 0, start, &slice).unwrap();
    }
    writer.finish().unwrap();
    same(
        TensorFile::read(&path).unwrap().raw("input").unwrap(),
        &whole,
    );
}

#[test]
fn a_writer_that_cannot_be_renamed_into_place_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.npy");
    let arrays = [("output".to_string(), DType::F32, vec![2, 3])];
    let mut writer = ArrayWriter::create(&path, FileFormat::Npy, &arrays).unwrap();
    writer.write("output", 0, 0, &sample(&[2, 3])).unwrap();
    // The target turns into a directory that is not empty: the rename fails.
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), b"").unwrap();
    assert!(writer.finish().is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["y.npy"]);
}

#[test]
fn a_writer_dropped_unfinished_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.safetensors");
    let arrays = [("output".to_string(), DType::F32, vec![2, 3])];
    drop(ArrayWriter::create(&path, FileFormat::Safetensors, &arrays).unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A valid magic, then a version 2 header length of almost 4 GiB, in a sparse 5 GiB file: the
/// length is refused before anything is allocated for it.
#[test]
fn an_npy_header_length_past_numpys_limit_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(0xFFFF_FF00u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(5 << 30).unwrap();
    let error = ArrayFile::open(&path, FileFormat::Npy)
        .unwrap_err()
        .to_string();
    assert!(error.contains("x.npy"), "{error}");
    assert!(error.contains("header length 4294967040 bytes"), "{error}");
    assert!(error.contains("10000"), "{error}");
}

#[test]
fn a_safetensors_header_over_the_crates_limit_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    std::fs::write(&path, 150_000_000u64.to_le_bytes()).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(200_000_000).unwrap();
    let error = ArrayFile::open(&path, FileFormat::Safetensors)
        .unwrap_err()
        .to_string();
    assert!(error.contains("header too large"), "{error}");
}

/// The two readers agree on every dtype: the same arrays load, the others are refused where
/// used with the same message.
#[test]
fn the_batch_reader_takes_and_refuses_the_dtypes_the_whole_file_reader_does() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [
        "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "U32", "U8", "BOOL", "I8",
    ] {
        let size = match dtype {
            "F64" | "I64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" => 2,
            _ => 1,
        };
        let header = format!(
            "{{\"input\":{{\"dtype\":\"{dtype}\",\"shape\":[2,1,3],\"data_offsets\":[0,{}]}}}}",
            6 * size
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(vec![0u8; 6 * size]);
        let path = dir.path().join(format!("{dtype}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let whole = TensorFile::read(&path).unwrap();
        let batch = ArrayFile::open(&path, FileFormat::Safetensors).unwrap();
        assert_eq!(batch.names(), whole.names(), "{dtype}");
        match (whole.float("input", DType::F32), batch.float_shape("input")) {
            (Ok(t), Ok(Some(shape))) => assert_eq!(t.dims(), shape, "{dtype}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{dtype}"),
            (a, b) => panic!("{dtype}: the readers disagree: {a:?} / {b:?}"),
        }
    }
}

/// Any header the safetensors crate refuses, the batch reader refuses too.
#[test]
fn the_batch_reader_refuses_what_the_safetensors_crate_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [&[u8]; 5] = [
        b"",
        b"\x02\x00\x00\x00",
        b"\x02\x00\x00\x00\x00\x00\x00\x00{}\x00\x00\x00\x00",
        b"\x2a\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}\x00\x00\x00\x00",
        b"\x2a\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}\x00\x00\x00\x00\x00\x00\x00\x00",
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        assert!(TensorFile::read(&path).is_err(), "case {i}");
        let error = ArrayFile::open(&path, FileFormat::Safetensors).unwrap_err();
        assert!(
            matches!(error, WeightsError::Safetensors { .. }),
            "case {i}: {error}"
        );
    }
}
