//! `junit.xml`: the thresholds as JUnit test cases, so CI systems list each
//! one and show the failing ones with the value that broke them.
//!
//! One `<testsuite>` per run, named after the scenario, and one
//! `<testcase>` per threshold, named `metric: expression`. A failing
//! threshold carries `<failure message="…">` with the observed value and
//! its unit. A distributed run that failed (a lost worker under
//! `on_worker_lost = "fail"`, its last worker lost) adds a test case
//! `distributed run` with an `<error>` saying why. quick-xml does the
//! escaping.

use std::io::Write;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::metrics::summary::{RunSummary, Unit};

pub fn write(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    let run = &summary.run;
    let failed_run = summary
        .distribution
        .as_ref()
        .and_then(|d| d.failed.as_deref());
    let tests = (summary.thresholds.len() + usize::from(failed_run.is_some())).to_string();
    let errors = usize::from(failed_run.is_some()).to_string();
    let failures = summary
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .count()
        .to_string();
    let time = format!("{:.3}", run.elapsed_s);
    let classname = format!("loadctl.{}", run.name);
    let mut xml = Writer::new_with_indent(out, b' ', 2);
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    xml.create_element("testsuites")
        .with_attributes([
            ("name", "loadctl"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|xml| {
            xml.create_element("testsuite")
                .with_attributes([
                    ("name", run.name.as_str()),
                    ("tests", tests.as_str()),
                    ("failures", failures.as_str()),
                    ("errors", errors.as_str()),
                    ("skipped", "0"),
                    ("time", time.as_str()),
                    ("timestamp", run.started_at.as_str()),
                ])
                .write_inner_content(|xml| {
                    xml.create_element("properties")
                        .write_inner_content(|xml| {
                            let properties = [
                                ("target", run.target.as_str()),
                                ("model", run.model.as_str()),
                                ("pattern", run.pattern.as_str()),
                                (
                                    "interrupted",
                                    if run.interrupted { "true" } else { "false" },
                                ),
                            ];
                            for (name, value) in properties {
                                xml.create_element("property")
                                    .with_attributes([("name", name), ("value", value)])
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                    if let Some(why) = failed_run {
                        xml.create_element("testcase")
                            .with_attributes([
                                ("name", "distributed run"),
                                ("classname", classname.as_str()),
                                ("time", time.as_str()),
                            ])
                            .write_inner_content(|xml| {
                                xml.create_element("error")
                                    .with_attributes([("message", why), ("type", "failed")])
                                    .write_empty()?;
                                Ok(())
                            })?;
                    }
                    for t in &summary.thresholds {
                        let name = format!("{}: {}", t.metric, t.expression);
                        let case = xml.create_element("testcase").with_attributes([
                            ("name", name.as_str()),
                            ("classname", classname.as_str()),
                            ("time", "0"),
                        ]);
                        if t.passed {
                            case.write_empty()?;
                            continue;
                        }
                        let message = match super::no_data(t) {
                            Some(why) => format!("not evaluated, {why}"),
                            None => format!(
                                "observed {}, expected {}",
                                super::observed(t),
                                t.expression
                            ),
                        };
                        // The exact value too, for whoever wants more than
                        // the rounded one in the message.
                        let detail = match t.observed {
                            Some(v) => format!("{name}\nobserved: {v} ({})\n", unit_name(t.unit)),
                            None => format!(
                                "{name}\nobserved: no data (nothing was measured, so the threshold \
                                 was not evaluated and fails)\n"
                            ),
                        };
                        case.write_inner_content(|xml| {
                            xml.create_element("failure")
                                .with_attributes([
                                    ("message", message.as_str()),
                                    ("type", "threshold"),
                                ])
                                .write_text_content(BytesText::new(&detail))?;
                            Ok(())
                        })?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    xml.into_inner().write_all(b"\n")
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Ms => "milliseconds",
        Unit::Ratio => "ratio",
        Unit::PerSecond => "per second",
        Unit::Count => "count",
    }
}

#[cfg(test)]
mod tests {
    use quick_xml::events::Event;
    use quick_xml::{Reader, XmlVersion};

    use crate::report::test_summary;

    /// (test case name, failure message) for every test case.
    fn cases(xml: &str) -> Vec<(String, Option<String>)> {
        let mut reader = Reader::from_str(xml);
        let mut cases = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                    let name = e.try_get_attribute("name").unwrap().unwrap();
                    let name = name.normalized_value(XmlVersion::Implicit1_0).unwrap();
                    cases.push((name.into_owned(), None));
                }
                Event::Start(e) if e.name().as_ref() == b"failure" => {
                    let m = e.try_get_attribute("message").unwrap().unwrap();
                    let m = m.normalized_value(XmlVersion::Implicit1_0).unwrap();
                    cases.last_mut().unwrap().1 = Some(m.into_owned());
                }
                Event::Eof => break,
                _ => {}
            }
        }
        cases
    }

    #[test]
    fn one_case_per_threshold_and_a_failure_with_the_observed_value() {
        let mut out = Vec::new();
        super::write(&test_summary(), &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(r#"<testsuite name="checkout &lt;flow&gt;" tests="2" failures="1""#),
            "{xml}"
        );
        assert_eq!(
            cases(&xml),
            vec![
                ("http_req_duration: p(95) < 500ms".to_string(), None),
                (
                    "step:list: error_rate < 0.01".to_string(),
                    Some("observed 2%, expected error_rate < 0.01".to_string())
                ),
            ]
        );
    }

    #[test]
    fn a_threshold_without_data_fails_as_not_evaluated() {
        let summary = crate::report::no_data_summary();
        let mut out = Vec::new();
        super::write(&summary, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains(r#"tests="2" failures="2""#), "{xml}");
        assert_eq!(
            cases(&xml)[0].1.as_deref(),
            Some("not evaluated, no data: step `create, new` sent no request")
        );
        assert!(xml.contains("observed: no data"), "{xml}");
    }

    #[test]
    fn a_failed_distributed_run_is_an_error() {
        let mut summary = crate::report::test_summary();
        summary.distribution = Some(crate::metrics::summary::DistributionReport {
            failed: Some("worker w1 was lost at 3.0s, and on_worker_lost = \"fail\"".into()),
            ..Default::default()
        });
        let mut out = Vec::new();
        super::write(&summary, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains(r#"errors="1""#), "{xml}");
        assert!(xml.contains(r#"<testcase name="distributed run""#), "{xml}");
        assert!(xml.contains("on_worker_lost = &quot;fail&quot;"), "{xml}");
    }

    #[test]
    fn no_thresholds_is_an_empty_passing_suite() {
        let mut summary = test_summary();
        summary.thresholds.clear();
        let mut out = Vec::new();
        super::write(&summary, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains(r#"tests="0" failures="0""#), "{xml}");
        assert!(cases(&xml).is_empty());
    }
}
