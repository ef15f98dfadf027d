//! The values of the allowed environment variables, kept out of whatever
//! the agent returns or writes: tool results, the resources it serves and
//! the audit log.
//!
//! `--allow-env` lets a scenario's templates read a variable, typically a
//! token, so that it reaches the target; a target that echoes its input
//! (a 404 page quoting the path, a JSON check quoting a value) would hand
//! it back to the agent in a failure message. The runner redacts secret
//! variables from failure messages (the agent marks every allowed variable
//! secret, see `Agent::check`); this is the second line, over the text that
//! leaves the server. A value is replaced as written and as JSON, HTML and
//! CSV escape it (its forms in `summary.json`, `report.html`, the CSVs).

/// What a redacted value becomes.
const REDACTED: &str = "[redacted]";

/// The secret values, longest first so a value containing another goes
/// whole.
#[derive(Debug, Clone, Default)]
pub struct SecretValues {
    values: Vec<String>,
}

impl SecretValues {
    /// The current values of the variables `names` (unset or empty ones
    /// are skipped: there is nothing to leak).
    pub fn of_env(names: &[String]) -> SecretValues {
        SecretValues::new(names.iter().filter_map(|n| std::env::var(n).ok()))
    }

    pub fn new(values: impl IntoIterator<Item = String>) -> SecretValues {
        let mut all: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            // The escaped forms differ when the value has quotes,
            // backslashes, markup or control characters.
            let json = serde_json::to_string(&value)
                .map(|q| q[1..q.len() - 1].to_string())
                .unwrap_or_default();
            let html = minijinja::HtmlEscape(&value).to_string();
            let csv = value.replace('"', "\"\"");
            for form in [json, html, csv] {
                if !form.is_empty() && form != value {
                    all.push(form);
                }
            }
            all.push(value);
        }
        all.sort_by_key(|v| std::cmp::Reverse(v.len()));
        all.dedup();
        SecretValues { values: all }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced by `[redacted]`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        self.in_place(&mut out);
        out
    }

    fn in_place(&self, text: &mut String) {
        for value in &self.values {
            if text.contains(value.as_str()) {
                *text = text.replace(value.as_str(), REDACTED);
            }
        }
    }

    /// Every string (and object key) in `value`, redacted.
    pub fn json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut key, mut v) in entries {
                    self.in_place(&mut key);
                    self.json(&mut v);
                    map.insert(key, v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_as_written_and_as_json_escapes_them() {
        let secrets = SecretValues::new(["s3cret".to_string(), "a\"b".to_string(), String::new()]);
        assert_eq!(secrets.text("/x/s3cret/y"), "/x/[redacted]/y");
        let mut value = serde_json::json!({
            "path /s3cret": ["got s3cret", 3, {"q": "a\"b"}],
        });
        secrets.json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"path /[redacted]": ["got [redacted]", 3, {"q": "[redacted]"}]})
        );
        let file = serde_json::to_string(&serde_json::json!({"m": "a\"b"})).unwrap();
        assert_eq!(secrets.text(&file), r#"{"m":"[redacted]"}"#);
        assert_eq!(secrets.text("<p>a&quot;b</p>"), "<p>[redacted]</p>");
        assert!(SecretValues::new([String::new()]).is_empty());
    }
}
