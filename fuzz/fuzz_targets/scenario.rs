//! Feeds arbitrary bytes to the scenario reader and the plan compiler, as
//! `loadctl validate` would: no input may panic, hang, or produce a
//! problem without a location in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loadctl::diag::{Diagnostics, SourceFile};
use loadctl::plan::{self, Overrides};
use loadctl::scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut diags = Diagnostics::default();
    if let Some(s) = scenario::parse(text, &mut diags) {
        let inputs = plan::Inputs::for_cli(None, loadctl::diag::Severity::Warning);
        let _ = plan::compile(&s, None, &Overrides::default(), &inputs, &mut diags);
    }
    let source = SourceFile::new("fuzz.toml", text.to_string());
    for d in diags.items() {
        let span = d.span.clone().expect("every problem in a file has a location");
        assert!(span.start <= text.len());
        let _ = source.render(d);
    }
});
