//! Bad scenario input never panics or hangs: random and mutated scenario
//! files go through the same parse and compile as `validate`, and every
//! problem they cause carries a location in the file.

use loadctl::diag::{Diagnostics, SourceFile, MAX_SHOWN};
use loadctl::plan::{self, Overrides};
use loadctl::scenario;
use proptest::prelude::*;

use crate::repo;

/// Parses and compiles like `validate` does; checks the invariants and
/// returns the problems.
fn check(text: &str) -> Diagnostics {
    let mut diags = Diagnostics::default();
    if let Some(s) = scenario::parse(text, &mut diags) {
        let inputs = plan::Inputs::for_cli(None, loadctl::diag::Severity::Warning);
        let plan = plan::compile(&s, None, &Overrides::default(), &inputs, &mut diags);
        if let Some(plan) = plan {
            assert!(!diags.has_errors());
            assert!(!plan.flows.is_empty());
            assert!(plan.load.users >= 1);
        } else {
            assert!(diags.has_errors(), "no plan, yet no error for:\n{text}");
        }
    } else {
        assert!(diags.has_errors(), "not TOML, yet no error for:\n{text}");
    }
    let source = SourceFile::new("fuzz.toml", text.to_string());
    for d in diags.items() {
        let span = d
            .span
            .clone()
            .unwrap_or_else(|| panic!("no location: {}\nfor:\n{text}", d.message));
        assert!(span.start <= text.len(), "{span:?} is outside the text");
        let at = source.line_col(span.start);
        assert!(at.line >= 1 && at.column >= 1);
        assert!(!d.message.is_empty());
    }
    diags
}

fn shipped() -> Vec<String> {
    let mut texts =
        vec![std::fs::read_to_string(repo().join("scenarios/quickstart.toml")).unwrap()];
    for entry in std::fs::read_dir(repo().join("scenarios/presets")).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    texts
}

/// Values that have broken parsers before: extremes, wrong types,
/// half-open templates, odd unicode.
const TRICKY: &[&str] = &[
    "0",
    "-1",
    "-0",
    "99999999999999999999",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "0.5",
    "\"\"",
    "\"-5s\"",
    "\"1ns\"",
    "\"2562047788015215h\"",
    "1e-300",
    "\"0s\"",
    "\"99999999999999999999h\"",
    "\"1.5.5s\"",
    "\"1s..0s\"",
    "[]",
    "{}",
    "[[]]",
    "{ a = { b = { c = 1 } } }",
    "true",
    "1979-05-27T07:32:00Z",
    "\"{{\"",
    "\"{% for x in y %}\"",
    "\"{{ nope }}\"",
    "\"p(95) <\"",
    "\"p(101) < 1s\"",
    "\"2xx\"",
    "\"9xx\"",
    "\"é🦀\\u0000\"",
    "\"\\u202e\"",
    "'''multi\nline'''",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        check(&text);
    }

    #[test]
    fn random_toml_like_lines_never_panic(lines in prop::collection::vec(
        prop_oneof![
            "\\[[a-z.]{0,12}\\]",
            "\\[\\[[a-z.]{0,12}\\]\\]",
            "[a-z_]{1,12} = [-0-9a-z\"{}\\[\\]., ]{0,20}",
        ],
        0..30,
    )) {
        check(&lines.join("\n"));
    }

    #[test]
    fn mutated_scenarios_never_panic(
        which in 0usize..16,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, 0usize..TRICKY.len(), 0usize..40), 1..6),
    ) {
        let texts = shipped();
        let mut text = texts[which % texts.len()].clone();
        for (at, kind, tricky, len) in edits {
            if text.is_empty() {
                break;
            }
            // Edit at a char boundary at or before the chosen byte.
            let mut i = at.index(text.len());
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let mut end = (i + len).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            match kind {
                // Replace the value after the next `=` with a tricky one.
                0 => if let Some(eq) = text[i..].find('=') {
                    let start = i + eq + 1;
                    let stop = text[start..].find('\n').map_or(text.len(), |n| start + n);
                    text.replace_range(start..stop, &format!(" {}", TRICKY[tricky]));
                },
                1 => text.replace_range(i..end, ""),
                2 => text.insert_str(i, TRICKY[tricky]),
                _ => {
                    let copy = text[i..end].to_string();
                    text.insert_str(end, &copy);
                }
            }
        }
        check(&text);
    }
}

#[test]
fn edge_cases_get_errors_with_locations() {
    for text in [
        String::new(),
        "\u{0}\u{1}\u{2}garbage\u{ff}".to_string(),
        format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("a = {}1{}", "{ b = ".repeat(20_000), " }".repeat(20_000)),
        "[load]\nusers = 99999999999999999999\nduration = \"99999999999999999999h\"\n".to_string(),
        "[load]\nusers = -5\nduration = \"-1s\"\niterations = 0\n".to_string(),
        "[[flow]]\n[[flow]]\n[[flow.step]]\n[[flow.step]]\n".to_string(),
        "名前 = \"負荷\"\n[目標]\n".to_string(),
    ] {
        check(&text);
    }
}

/// 50 MB, past the size `validate` and `run` accept: the parser and the
/// problem list must still cope with such text (an agent or a test may
/// hand it over directly), and `check_text` must refuse it.
#[test]
fn a_50_megabyte_file_is_handled() {
    let mut padded = String::with_capacity(50 << 20);
    padded.push_str("[target]\nbase_url = \"demo\"\n");
    while padded.len() < 50 << 20 {
        padded.push_str("# padding padding padding padding padding padding padding\n");
    }
    padded.push_str("[load]\nusers = \"x\"\n");
    let diags = check(&padded);
    let padding_lines = padded.matches('\n').count();
    let source = SourceFile::new("padded.toml", padded);
    let at = source.line_col(diags.items()[0].span.clone().unwrap().start);
    assert_eq!((at.line, at.column), (padding_lines, 9));

    // 50,000 duplicated keys: a problem on every line.
    let line = format!("name = \"{}\"\n", "x".repeat(990));
    let duplicated = line.repeat(50_000);
    assert_eq!(duplicated.len(), 50_000_000);
    let diags = check(&duplicated).sorted();
    assert_eq!(diags.items().len(), MAX_SHOWN + 1);
    assert_eq!(diags.omitted(), 49_999 - MAX_SHOWN);
    let source = SourceFile::new("duplicated.toml", duplicated.clone());
    for (i, d) in diags.items()[..MAX_SHOWN].iter().enumerate() {
        let at = source.line_col(d.span.clone().unwrap().start);
        assert_eq!((at.line, at.column), (i + 2, 1), "{}", d.message);
    }

    let checked = loadctl::validate::check_text(
        std::path::Path::new("duplicated.toml"),
        &duplicated,
        &Overrides::default(),
        &plan::Inputs::sealed(),
    );
    let problems = checked.problems();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].message.contains("over the limit"),
        "{problems:?}"
    );
}
