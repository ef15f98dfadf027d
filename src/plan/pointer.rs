//! JSON pointers (RFC 6901) for `expect.json` and `extract`, split into
//! their unescaped tokens once, when the plan is made.
//!
//! `serde_json::Value::pointer` splits and unescapes the pointer text on
//! every call, two allocations per token; a step that extracts a value
//! from every response would pay that on every request.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

impl JsonPointer {
    /// Parses a pointer: empty (the whole document) or `/`-separated
    /// tokens, with `~1` standing for `/` and `~0` for `~`.
    pub fn parse(text: &str) -> Result<JsonPointer, String> {
        let tokens = match text.strip_prefix('/') {
            Some(rest) => rest
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect(),
            None if text.is_empty() => Vec::new(),
            None => {
                return Err(format!(
                    "JSON pointer `{text}` must be empty or start with `/`, e.g. \"/items/0/id\""
                ))
            }
        };
        Ok(JsonPointer {
            text: text.to_string(),
            tokens,
        })
    }

    /// The value the pointer points at, if there is one.
    pub fn find<'a>(&self, document: &'a Value) -> Option<&'a Value> {
        self.tokens
            .iter()
            .try_fold(document, |value, token| match value {
                Value::Object(map) => map.get(token),
                Value::Array(items) => items.get(array_index(token)?),
                _ => None,
            })
    }
}

/// An array index as RFC 6901 writes it: digits, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_serde_json_finds() {
        let doc = serde_json::json!({
            "items": [{"id": 7}, {"id": 8}],
            "a/b": 1, "m~n": 2, "": 3, "01": 4,
        });
        for text in [
            "",
            "/items",
            "/items/0/id",
            "/items/1/id",
            "/items/2",
            "/items/01",
            "/items/-",
            "/items/+1",
            "/a~1b",
            "/m~0n",
            "/",
            "/01",
            "/items/0/id/x",
            "/missing",
        ] {
            let pointer = JsonPointer::parse(text).unwrap();
            assert_eq!(pointer.find(&doc), doc.pointer(text), "{text}");
            assert_eq!(pointer.to_string(), text);
        }
    }

    #[test]
    fn a_pointer_starts_with_a_slash() {
        let message = JsonPointer::parse("items/0").unwrap_err();
        assert!(
            message.contains("must be empty or start with `/`"),
            "{message}"
        );
    }
}
