//! JSON pointers (RFC 6901) for `expect.json` and `extract`, split into
//! their unescaped tokens once, when the plan is made.
//!
//! `serde_json::Value::pointer` splits and unescapes the pointer text on
//! every call, two allocations per token, and needs the whole document
//! built as a `Value` first. A step that extracts one id from every
//! response would pay for all of that on every request; [`JsonPointer`]
//! reads the document once and builds only the value it points at.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
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

    /// The value the pointer points at in a JSON document, if there is
    /// one, or the reason the document is not JSON. Only that value is
    /// built; the rest of the document is checked and skipped, so
    /// extracting one id from a response allocates nothing else.
    pub fn find_in(&self, document: &[u8]) -> Result<Option<Value>, serde_json::Error> {
        let mut reader = serde_json::Deserializer::from_slice(document);
        let found = At(&self.tokens).deserialize(&mut reader)?;
        reader.end()?;
        Ok(found)
    }
}

/// Deserializes the value at the end of a path of tokens.
struct At<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => Value::deserialize(d).map(Some),
            Some((token, rest)) => d.deserialize_any(Step { token, rest }),
        }
    }
}

/// One step down the path: into the member or element named `token`.
struct Step<'p> {
    token: &'p str,
    rest: &'p [String],
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.token))? {
            if matches {
                // The last of duplicate keys wins, as in serde_json's Value.
                found = map.next_value_seed(At(self.rest))?;
            } else {
                map.next_value_seed(Skip)?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = array_index(self.token);
        let mut found = None;
        let mut index = 0;
        loop {
            if Some(index) == wanted {
                match seq.next_element_seed(At(self.rest))? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element_seed(Skip)?.is_none() {
                break;
            }
            index += 1;
        }
        Ok(found)
    }

    // A scalar has nothing inside it for the rest of the path.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Skips a value while checking it as strictly as building it would:
/// strings are decoded (UTF-8, escapes, surrogates), numbers parsed (an
/// out-of-range one is an error) and serde_json's nesting limit holds.
/// serde's `IgnoredAny` skips without those checks. Nothing is allocated:
/// strings are only looked at.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads an object key and tells whether it is the token, without
/// copying it.
struct KeyIs<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
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
        let text = r#"{
            "items": [{"id": 7, "tags": ["a", "b"]}, {"id": 8}],
            "a/b": 1, "m~n": 2, "": 3, "01": 4, "s": "text", "n": null,
            "dup": 1, "dup": 2, "esc\"aped": 5
        }"#;
        let doc: Value = serde_json::from_str(text).unwrap();
        for pointer in [
            "",
            "/items",
            "/items/0/id",
            "/items/1/id",
            "/items/0/tags/1",
            "/items/2",
            "/items/01",
            "/items/-",
            "/items/+1",
            "/a~1b",
            "/m~0n",
            "/",
            "/01",
            "/s",
            "/s/0",
            "/n",
            "/n/x",
            "/dup",
            "/esc\"aped",
            "/items/0/id/x",
            "/missing",
        ] {
            let parsed = JsonPointer::parse(pointer).unwrap();
            let found = parsed.find_in(text.as_bytes()).unwrap();
            assert_eq!(found.as_ref(), doc.pointer(pointer), "{pointer}");
            assert_eq!(parsed.to_string(), pointer);
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error_even_past_the_value() {
        let pointer = JsonPointer::parse("/id").unwrap();
        let deep = format!(
            r#"{{"id": 1, "x": {}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let mut bodies: Vec<Vec<u8>> = [
            "",
            "not json",
            r#"{"id": 1"#,
            r#"{"id": 1} trailing"#,
            r#"{"id": 1, "x": [}"#,
            r#"{"id": 1, "s": "\ud800"}"#,
            r#"{"id": 1, "big": 1e400}"#,
            r#"{"id": 1, "x": [1,]}"#,
            &deep,
        ]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
        bodies.push(b"{\"id\": 1, \"s\": \"\xff\"}".to_vec());
        for body in bodies {
            // serde_json rejects each of them; so must the pointer.
            assert!(serde_json::from_slice::<Value>(&body).is_err());
            let text = String::from_utf8_lossy(&body);
            assert!(pointer.find_in(&body).is_err(), "{text}");
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
