//! The outputs codec: whatever `parse_outputs` accepts encodes and reads back the same
//! (later entries win), and `fit_message` always fits a termination message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roiergasias_engine::outputs::{
    TERMINATION_MESSAGE_LIMIT, encode_outputs, fit_message, parse_outputs,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fitted = fit_message(text);
    assert!(fitted.len() <= TERMINATION_MESSAGE_LIMIT, "{}", fitted.len());
    if text.len() <= TERMINATION_MESSAGE_LIMIT {
        assert_eq!(fitted, text);
    }
    let Ok(vars) = parse_outputs(text) else {
        return;
    };
    if let Ok(json) = encode_outputs(&vars) {
        let again = parse_outputs(&json).expect("encoded outputs parse");
        assert_eq!(encode_outputs(&again).as_ref(), Ok(&json));
    }
});
