use super::*;

fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend([1, 0]);
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn reads_a_float32_matrix() {
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bytes = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
        &data,
    );
    let t = parse(&bytes).unwrap();
    assert_eq!(
        t.to_vec2::<f32>().unwrap(),
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    );
}

#[test]
fn rejects_fortran_order_objects_and_short_data() {
    let f = npy(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
        &[0; 4],
    );
    assert!(parse(&f).unwrap_err().contains("Fortran"));
    let o = npy(
        "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
        &[0; 8],
    );
    assert!(parse(&o).unwrap_err().contains("unsupported dtype '|O'"));
    let short = npy(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
        &[0; 8],
    );
    assert!(parse(&short)
        .unwrap_err()
        .contains("needs 16 data bytes, found 8"));
    assert!(parse(b"PK\x03\x04 zip file").unwrap_err().contains("magic"));
    // Found by fuzzing: an empty array whose other dims overflow the strides.
    let huge = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1, 2222222222222222221, 222222222222222223), }", &[]);
    assert!(parse(&huge).unwrap_err().contains("too large"));
}
