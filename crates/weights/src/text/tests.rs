use super::*;

#[test]
fn json_reads_a_bare_array_as_input_and_objects_by_name() {
    let bare = read_json(b"[[1, 2.5], [3, -4e-3]]").unwrap();
    assert_eq!(
        bare["input"].to_vec2::<f64>().unwrap(),
        [[1.0, 2.5], [3.0, -4e-3]]
    );
    let named = read_json(br#"{"input": [[[0.5]], [[1]]], "lengths": [2]}"#).unwrap();
    assert_eq!(named["input"].dims(), [2, 1, 1]);
    assert_eq!(named["lengths"].dtype(), DType::I64);
    assert_eq!(named["lengths"].to_vec1::<i64>().unwrap(), [2]);
}

#[test]
fn json_says_where_an_array_is_ragged_or_not_numbers() {
    let ragged = read_json(b"[[1, 2], [3]]").unwrap_err();
    assert_eq!(
        ragged,
        "`input`: ragged: the array at [1] has 1 elements where its first sibling has 2"
    );
    let text = read_json(br#"{"input": [[1, "a"]]}"#).unwrap_err();
    assert!(text.contains("found a string at [0, 1]"), "{text}");
    let fraction = read_json(br#"{"lengths": [1.5]}"#).unwrap_err();
    assert!(fraction.contains("not an integer"), "{fraction}");
    assert!(read_json(b"3").unwrap_err().contains("found a number"));
    assert!(read_json(b"[1, 2").is_err());
}

#[test]
fn float32_values_survive_json_and_csv_bit_for_bit() {
    // Values whose shortest float32 form is far from their float64 one, and extremes.
    let values = [
        0.1f32,
        1.0 / 3.0,
        -2.5e-8,
        f32::MAX,
        f32::MIN_POSITIVE,
        16777217.0,
        0.0,
    ];
    let t = Tensor::from_slice(&values, (7, 1), &Device::Cpu).unwrap();
    let json = write_json(&[("output".into(), t.clone())]).unwrap();
    let back = read_json(json.as_bytes()).unwrap()["output"]
        .to_dtype(DType::F32)
        .unwrap();
    let csv = read_csv(write_csv(&t).unwrap().as_bytes())
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    for got in [back, csv] {
        let got: Vec<u32> = got
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn json_is_one_versioned_document_of_named_tensors() {
    let t = Tensor::new(&[[[1f32, 2.0]], [[3.0, 4.5]]], &Device::Cpu).unwrap();
    let h = Tensor::new(&[0.25f64], &Device::Cpu).unwrap();
    let json = write_json(&[("output".into(), t), ("h_n".into(), h)]).unwrap();
    assert_eq!(
        json,
        "{\"schema_version\":1,\"outputs\":[\
         {\"name\":\"output\",\"shape\":[2,1,2],\"dtype\":\"f32\",\"values\":[1.0,2.0,3.0,4.5]},\
         {\"name\":\"h_n\",\"shape\":[1],\"dtype\":\"f64\",\"values\":[0.25]}]}\n"
    );
    let back = read_json(json.as_bytes()).unwrap();
    assert_eq!(back["output"].dims(), [2, 1, 2]);
    assert_eq!(back["h_n"].to_vec1::<f64>().unwrap(), [0.25]);
}

#[test]
fn json_writes_nan_and_infinities_as_null_read_back_as_nan() {
    let t = Tensor::new(&[1f32, f32::NAN, f32::INFINITY], &Device::Cpu).unwrap();
    let json = write_json(&[("output".into(), t)]).unwrap();
    assert!(json.contains("\"values\":[1.0,null,null]"), "{json}");
    let back = read_json(json.as_bytes()).unwrap()["output"]
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(back[0], 1.0);
    assert!(back[1].is_nan() && back[2].is_nan());
}

#[test]
fn json_documents_are_checked_when_read() {
    let read = |text: &str| read_json(text.as_bytes()).unwrap_err();
    let err = read(r#"{"schema_version": 2, "outputs": []}"#);
    assert!(
        err.contains("schema_version 2: this rnn reads version 1"),
        "{err}"
    );
    let err = read(
        r#"{"schema_version": 1, "outputs": [{"name": "input", "shape": [2, 2], "dtype": "f32", "values": [1, 2, 3]}]}"#,
    );
    assert!(
        err.contains("`input`: shape [2, 2] holds 4 values, found 3"),
        "{err}"
    );
    let err = read(
        r#"{"schema_version": 1, "outputs": [{"name": "lengths", "shape": [1], "dtype": "i64", "values": [1.5]}]}"#,
    );
    assert!(
        err.contains("`lengths`: element 0 is 1.5, not an integer"),
        "{err}"
    );
}

#[test]
fn csv_skips_comments_and_a_header_and_names_bad_cells() {
    let t = read_csv(b"# written by numpy\nx0,x1\n1,2\n3, 4\n\n").unwrap();
    assert_eq!(t.to_vec2::<f64>().unwrap(), [[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(
        read_csv(b"1,2\n3,x\n").unwrap_err(),
        "line 2, column 2: `x` is not a number"
    );
    assert_eq!(
        read_csv(b"1,2\n3\n").unwrap_err(),
        "line 2 has 1 values where the rows before have 2"
    );
    assert_eq!(read_csv(b"a,b\n").unwrap_err(), "no rows of numbers");
    // A typo in the first row is an error, not a header.
    assert_eq!(
        read_csv(b"0.5,O.3\n1,2\n").unwrap_err(),
        "line 1, column 2: `O.3` is not a number"
    );
    assert_eq!(read_csv(b"").unwrap_err(), "no rows of numbers");
}

#[test]
fn csv_writes_one_sequence_only() {
    let t = Tensor::zeros((2, 1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(write_csv(&t).unwrap_err().contains("[2, 1, 3]"));
    let t = Tensor::new(&[[1f32, -0.5], [2.0, 3.0]], &Device::Cpu).unwrap();
    assert_eq!(write_csv(&t).unwrap(), "1.0,-0.5\n2.0,3.0\n");
}
