use super::*;

#[test]
fn parses_every_form_and_rejects_the_rest() {
    assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
    assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
    assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
    assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
    assert!("cuda:x".parse::<DeviceChoice>().is_err());
    assert!("tpu".parse::<DeviceChoice>().is_err());
}
