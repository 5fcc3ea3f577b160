use super::*;

/// A whole `.npy` file in memory, read as a file is.
fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    read(&mut &bytes[..], bytes.len() as u64)
}

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
fn reads_fortran_order_as_its_values_in_c_order() {
    // numpy.save(np.asfortranarray([[1, 2, 3], [4, 5, 6]], dtype='<f4')) stores the columns
    // one after another: 1 4 2 5 3 6.
    let data: Vec<u8> = [1f32, 4., 2., 5., 3., 6.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = npy(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
        &data,
    );
    let t = parse(&f).unwrap();
    assert_eq!(
        t.to_vec2::<f32>().unwrap(),
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    );
    // Three axes: element [i, j, k] lies at i + 2j + 2·3k.
    let data: Vec<u8> = (0..24u32)
        .map(|n| {
            let (i, j, k) = (n % 2, n / 2 % 3, n / 6);
            (100 * i + 10 * j + k) as f64
        })
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = npy(
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3, 4), }",
        &data,
    );
    let t = parse(&f).unwrap().to_vec3::<f64>().unwrap();
    for (i, plane) in t.iter().enumerate() {
        for (j, row) in plane.iter().enumerate() {
            for (k, v) in row.iter().enumerate() {
                assert_eq!(*v, (100 * i + 10 * j + k) as f64);
            }
        }
    }
}

#[test]
fn rejects_a_bad_fortran_flag_objects_and_short_data() {
    let f = npy(
        "{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }",
        &[0; 4],
    );
    assert!(parse(&f).unwrap_err().contains("fortran_order"));
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
