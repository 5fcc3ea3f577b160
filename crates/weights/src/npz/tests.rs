use super::*;
use candle_core::{DType, Device};

fn arrays() -> Vec<(String, Tensor)> {
    let dev = Device::Cpu;
    vec![
        (
            "input".to_string(),
            Tensor::new(&[[[0.1f32, -2.5e-8, 3.0]], [[4.0, 5.5, f32::MAX]]], &dev).unwrap(),
        ),
        ("lengths".to_string(), Tensor::new(&[2i64], &dev).unwrap()),
        (
            "h0".to_string(),
            Tensor::new(&[[[1.0f64, -0.1]]], &dev).unwrap(),
        ),
    ]
}

#[test]
fn what_is_written_reads_back_bit_for_bit() {
    let written = arrays();
    let read = read(&write(&written).unwrap()).unwrap();
    assert_eq!(read.len(), written.len());
    for (name, t) in &written {
        let back = &read[name];
        assert_eq!(back.dtype(), t.dtype(), "{name}");
        assert_eq!(back.dims(), t.dims(), "{name}");
        let diff = (back.to_dtype(DType::F64).unwrap() - t.to_dtype(DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
}

#[test]
fn damage_is_reported_not_panicked_on() {
    let bytes = write(&arrays()).unwrap();
    assert!(read(b"not a zip")
        .unwrap_err()
        .contains("not a zip archive"));
    assert!(read(&bytes[..bytes.len() / 2]).is_err());
    // Flip a byte of the first array's data: its CRC no longer matches.
    let mut flipped = bytes.clone();
    let at = flipped.windows(6).position(|w| w == b"\x93NUMPY").unwrap() + 100;
    flipped[at] ^= 0xff;
    let err = read(&flipped).unwrap_err();
    assert!(
        err.contains("cannot be decompressed") || err.contains("array"),
        "{err}"
    );
}

#[test]
fn entries_that_are_not_arrays_are_named() {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("notes.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"hello").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    assert_eq!(
        read(&bytes).unwrap_err(),
        "entry `notes.txt` is not a .npy array"
    );
}
