//! Any bytes as a `ROIERGASIAS_ENV` file: an error names a line of the text, and what is read
//! are valid names whose values came from the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roiergasias_engine::run::parse_env_bytes;
use roiergasias_engine::substitute::is_valid_name;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|b| *b == b'\n').count();
    match parse_env_bytes(data) {
        Ok(vars) => {
            for var in &vars {
                assert!(is_valid_name(&var.name), "{:?}", var.name);
                assert!(var.value.len() <= data.len());
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= lines.max(1), "{e:?} of {lines}"),
    }
});
