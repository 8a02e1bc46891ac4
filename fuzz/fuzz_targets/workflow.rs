//! Any bytes as a workflow: parse and validate never panic; a valid workflow's YAML reads back
//! equal, and its plan, each split alone and the split stream agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roiergasias_engine::{parse, plan, split_at, split_count, splits, workflow_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = workflow_text(data) else {
        return;
    };
    let workflow = match parse(text) {
        Ok(w) => w,
        Err(e) => {
            assert!(e.total() > 0);
            let _ = e.display_for("fuzz.yaml");
            return;
        }
    };
    let yaml = workflow.to_yaml();
    assert_eq!(parse(&yaml).as_ref(), Ok(&workflow), "to_yaml round trip:\n{yaml}");
    let planned = plan(&workflow);
    assert_eq!(planned.len(), split_count(&workflow));
    for (p, s) in planned.iter().zip(splits(&workflow)) {
        assert_eq!((p.index, &p.node), (s.index, &s.node));
        assert_eq!(split_at(&workflow, p.index).as_ref(), Some(&s));
        // Each split is a workflow `run` accepts on its own.
        let again = parse(&s.workflow.to_yaml()).expect("a split parses");
        assert_eq!(again, s.workflow);
    }
    assert_eq!(split_at(&workflow, planned.len() + 1), None);
});
