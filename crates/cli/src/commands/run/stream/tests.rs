use super::*;

fn parsed(text: &str) -> Result<Vec<f64>> {
    let mut values = Vec::new();
    parse_step(text, &mut values).map(|()| values)
}

#[test]
fn a_step_is_a_json_array_or_comma_separated() {
    assert_eq!(parsed("[1, 2.5, -3e-2]").unwrap(), [1.0, 2.5, -0.03]);
    assert_eq!(parsed("1,2.5 , -3e-2").unwrap(), [1.0, 2.5, -0.03]);
    assert_eq!(parsed("[]").unwrap(), Vec::<f64>::new());
}

#[test]
fn what_is_not_a_step_says_which_value() {
    let err = parsed("1, x, 3").unwrap_err().to_string();
    assert_eq!(err, "value 2: `x` is not a number");
    let err = parsed("[[1, 2]]").unwrap_err().to_string();
    assert_eq!(err, "value 1: `[1` is not a number");
    let err = parsed("[1, 2").unwrap_err().to_string();
    assert!(err.contains("must end with `]`"), "{err}");
}
