//! The configuration reference, generated from the configuration structs: every key, its
//! environment variable, type, default and meaning (the field's doc comment), as the Markdown
//! table of `docs/operations.md` and `lendfusion config --reference`.

use serde_json::{Map, Value};

use crate::config::{ENV_PREFIX, LendfusionConfig, TOP_LEVEL_KEYS};

/// The Markdown table of every configuration key.
pub fn configuration_reference() -> String {
    let schema =
        serde_json::to_value(schemars::schema_for!(LendfusionConfig)).unwrap_or(Value::Null);
    let empty = Map::new();
    let defs = schema["$defs"].as_object().unwrap_or(&empty);
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    let mut out = String::from(
        "| key | environment variable | type | default | meaning |\n|---|---|---|---|---|\n",
    );
    for key in TOP_LEVEL_KEYS {
        let Some(field) = properties.get(key) else {
            continue;
        };
        match definition(field, defs).and_then(|d| d["properties"].as_object()) {
            // A section: one row per key.
            Some(section) => {
                for (name, sub) in section {
                    match definition(&sub["items"], defs).and_then(|d| d["properties"].as_object())
                    {
                        // An array of tables: one row per key of its entries.
                        Some(entry) => {
                            for (entry_name, entry_field) in entry {
                                let path = format!("[[{key}.{name}]] {entry_name}");
                                out.push_str(&row(&path, None, entry_field, defs, false));
                            }
                        }
                        None => {
                            let path = format!("{key}.{name}");
                            let env = format!("{ENV_PREFIX}{}__{}", key, name).to_uppercase();
                            out.push_str(&row(&path, Some(&env), sub, defs, true));
                        }
                    }
                }
            }
            None => {
                let env = format!("{ENV_PREFIX}{key}").to_uppercase();
                out.push_str(&row(key, Some(&env), field, defs, true));
            }
        }
    }
    out
}

/// The definition `field` refers to (`$ref`), if any.
fn definition<'a>(field: &Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let name = field["$ref"].as_str()?.strip_prefix("#/$defs/")?;
    defs.get(name)
}

/// One table row (keys of array entries have no default of their own).
fn row(
    path: &str,
    env: Option<&str>,
    field: &Value,
    defs: &Map<String, Value>,
    with_default: bool,
) -> String {
    let meaning = field["description"]
        .as_str()
        .or_else(|| definition(field, defs).and_then(|d| d["description"].as_str()))
        .unwrap_or_default();
    let default = if with_default {
        default_text(&field["default"])
    } else {
        "—".to_string()
    };
    format!(
        "| `{path}` | {} | {} | {} | {} |\n",
        env.map_or("—".to_string(), |e| format!("`{e}`")),
        type_text(field, defs),
        default,
        cell(meaning)
    )
}

fn type_text(field: &Value, defs: &Map<String, Value>) -> String {
    if let Some(choices) = definition(field, defs).and_then(|d| d["oneOf"].as_array()) {
        let values: Vec<String> = choices
            .iter()
            .filter_map(|c| c["const"].as_str().map(|v| format!("`{v}`")))
            .collect();
        return format!("one of {}", values.join(", "));
    }
    let types: Vec<&str> = match &field["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let main: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    match main.as_slice() {
        ["boolean"] => "bool".into(),
        ["integer"] => "integer".into(),
        ["string"] => "string".into(),
        ["array"] => "list".into(),
        other => other.join(" or "),
    }
}

fn default_text(default: &Value) -> String {
    match default {
        Value::Null => "—".into(),
        Value::String(s) => format!("`\"{s}\"`"),
        Value::Array(a) if a.is_empty() => "none".into(),
        other => format!("`{other}`"),
    }
}

/// A description as one table cell: one line, no unescaped pipes.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_the_reference_with_its_default() {
        let reference = configuration_reference();
        for key in [
            "`data`",
            "`s3.endpoint`",
            "`cluster.worker_timeout_seconds`",
            "`server.query_timeout_seconds`",
            "`[[auth.users]] password_hash`",
            "`ops.shutdown_grace_seconds`",
            "`LENDFUSION_OPS__LOG_FORMAT`",
        ] {
            assert!(reference.contains(key), "{key} missing:\n{reference}");
        }
        assert!(
            reference.contains(
                "| `layout` | `LENDFUSION_LAYOUT` | one of `month`, `day`, `flat` | `\"month\"` |"
            ),
            "{reference}"
        );
        assert!(
            reference
                .contains("| `ops.http_port` | `LENDFUSION_OPS__HTTP_PORT` | integer | `50060` |"),
            "{reference}"
        );
        // Every row has a meaning.
        for line in reference.lines().skip(2) {
            assert!(!line.ends_with("|  |"), "undocumented key: {line}");
        }
    }

    #[test]
    fn docs_operations_md_has_the_current_reference() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
        let text = std::fs::read_to_string(&path).expect("docs/operations.md");
        assert!(
            text.contains(&configuration_reference()),
            "docs/operations.md is stale: paste the output of `lendfusion config --reference` \
             into its configuration reference"
        );
    }
}
