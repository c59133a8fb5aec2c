//! What shape a chat answer takes: prose, JSON (`response_format`, vLLM's structured outputs) or a tool call
//! (`tools`, `tool_choice`), decided from the request as vLLM's server validates it.
//!
//! The simulator's "model" calls a tool when it may and the conversation waits on it: with `tool_choice`
//! `required` or a named function always; with `auto` (the default when `tools` are given) when the last message
//! is the user's, and in prose once a tool's result came back (the last message is `tool`), so an agent loop of
//! call, result, answer plays out. Which tool: the named one, else one drawn from the prompt.

use serde_json::Value;

use crate::error::ApiError;
use crate::openai::types::ChatRequest;
use crate::rng::SplitMix64;

/// A function the request offers.
#[derive(Debug, Clone)]
pub struct Tool {
    /// `function.name`.
    pub name: String,
    /// `function.parameters` (a JSON Schema; an object with no properties when absent).
    pub parameters: Value,
}

/// How the request lets the model use its tools.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    None,
    Auto,
    Required,
    Named(String),
}

/// The answer's shape for one choice.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Generated sentences.
    Text,
    /// A JSON instance of this schema (`None`: any JSON object).
    Json(Option<Value>),
    /// One of these strings.
    OneOf(Vec<String>),
    /// A call of this tool with arguments from its schema; `forced`: a named `tool_choice` (whose finish
    /// reason is `stop`, as OpenAI's and vLLM's are; otherwise `tool_calls`).
    Call {
        name: String,
        parameters: Value,
        forced: bool,
    },
}

/// The output rules of one chat request.
#[derive(Debug, Clone)]
pub struct Rules {
    tools: Vec<Tool>,
    choice: Choice,
    format: Shape,
    /// The last message is the user's (a tool may be called for it).
    user_waits: bool,
}

impl Rules {
    /// Rules from their parts (the Messages and Responses APIs spell them their own way): a tool choice that
    /// names a missing tool, or asks for a tool with none given, is refused.
    pub fn new(
        tools: Vec<Tool>,
        choice: Choice,
        format: Shape,
        user_waits: bool,
    ) -> Result<Self, ApiError> {
        if tools.is_empty() && matches!(choice, Choice::Required | Choice::Named(_)) {
            return Err(bad(
                "When using `tool_choice`, `tools` must be set.",
                "tool_choice",
            ));
        }
        if let Choice::Named(name) = &choice {
            if !tools.iter().any(|t| &t.name == name) {
                return Err(bad(
                    format!("Tool '{name}' has not been passed in `tools`."),
                    "tool_choice",
                ));
            }
        }
        Ok(Self {
            tools,
            choice,
            format,
            user_waits,
        })
    }

    /// Reads and checks `tools`, `tool_choice`, `response_format` and the structured-output fields.
    pub fn of(req: &ChatRequest) -> Result<Self, ApiError> {
        let tools = req
            .tools
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(tool)
            .collect::<Result<Vec<_>, _>>()?;
        let choice = match &req.tool_choice {
            None | Some(Value::Null) if tools.is_empty() => Choice::None,
            None | Some(Value::Null) => Choice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "none" => Choice::None,
                "auto" => Choice::Auto,
                "required" => Choice::Required,
                other => {
                    return Err(bad(
                        format!("Invalid tool_choice: '{other}'. Use 'none', 'auto', 'required' or a named function."),
                        "tool_choice",
                    ))
                }
            },
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => Choice::Named(name.to_string()),
                None => return Err(bad("tool_choice must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice")),
            },
        };
        let user_waits = req.messages.last().is_some_and(|m| m.role == "user");
        Self::new(tools, choice, format(req)?, user_waits)
    }

    /// The shape of the choice whose generator seed is `seed`.
    pub fn shape(&self, seed: u64) -> Shape {
        let call = |t: &Tool, forced| Shape::Call {
            name: t.name.clone(),
            parameters: t.parameters.clone(),
            forced,
        };
        match &self.choice {
            Choice::Named(name) => match self.tools.iter().find(|t| &t.name == name) {
                Some(t) => call(t, true),
                None => self.format.clone(),
            },
            Choice::Required => self.drawn(seed).map_or(Shape::Text, |t| call(t, false)),
            Choice::Auto if self.user_waits => {
                self.drawn(seed).map_or(Shape::Text, |t| call(t, false))
            }
            Choice::Auto | Choice::None => self.format.clone(),
        }
    }

    fn drawn(&self, seed: u64) -> Option<&Tool> {
        if self.tools.is_empty() {
            return None;
        }
        let i = SplitMix64::new(seed).below(self.tools.len() as u64) as usize;
        self.tools.get(i)
    }
}

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message, Some(param))
}

fn tool(v: &Value) -> Result<Tool, ApiError> {
    tool_with(v.get("function").unwrap_or(v), "parameters")
}

/// A tool named by `f.name` whose schema is `f[schema_field]` (OpenAI's `parameters`, Anthropic's `input_schema`).
pub fn tool_with(f: &Value, schema_field: &str) -> Result<Tool, ApiError> {
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("Each tool needs a function with a name.", "tools"))?;
    let parameters = match f.get(schema_field) {
        Some(p @ Value::Object(_)) => p.clone(),
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(_) => {
            return Err(bad(
                format!("The parameters of tool '{name}' must be a JSON Schema object."),
                "tools",
            ))
        }
    };
    Ok(Tool {
        name: name.to_string(),
        parameters,
    })
}

/// `response_format`, or vLLM's `structured_outputs` / `guided_json` / `guided_choice`.
fn format(req: &ChatRequest) -> Result<Shape, ApiError> {
    if let Some(so) = &req.structured_outputs {
        if let Some(schema) = so.get("json") {
            return Ok(Shape::Json(json_schema(schema)));
        }
        if let Some(Value::Array(c)) = so.get("choice") {
            return Ok(Shape::OneOf(strings(c)));
        }
    }
    if let Some(schema) = &req.guided_json {
        return Ok(Shape::Json(json_schema(schema)));
    }
    if let Some(c) = &req.guided_choice {
        return Ok(Shape::OneOf(c.clone()));
    }
    let Some(rf) = &req.response_format else {
        return Ok(Shape::Text);
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Shape::Text),
        Some("json_object") => Ok(Shape::Json(None)),
        Some("json_schema") => match rf
            .pointer("/json_schema/schema")
            .or_else(|| rf.pointer("/json_schema/json_schema"))
        {
            Some(schema @ (Value::Object(_) | Value::Bool(true))) => {
                Ok(Shape::Json(Some(schema.clone())))
            }
            _ => Err(bad(
                "response_format json_schema needs json_schema.schema, a JSON Schema object.",
                "response_format",
            )),
        },
        _ => Err(bad(
            "response_format.type must be 'text', 'json_object' or 'json_schema'.",
            "response_format",
        )),
    }
}

/// A schema given as an object or as its JSON text (vLLM takes both).
pub fn json_schema(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => serde_json::from_str(s).ok(),
        Value::Object(_) => Some(v.clone()),
        _ => None,
    }
}

fn strings(v: &[Value]) -> Vec<String> {
    v.iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::types::parse_body;

    fn rules(body: &str) -> Result<Rules, ApiError> {
        Rules::of(&parse_body::<ChatRequest>(body.as_bytes()).expect("a request"))
    }

    const TOOLS: &str = r#"[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
                           {"type":"function","function":{"name":"time"}}]"#;

    #[test]
    fn auto_calls_for_the_user_and_answers_after_the_result() {
        let asked = rules(&format!(
            r#"{{"messages":[{{"role":"user","content":"Weather?"}}],"tools":{TOOLS}}}"#
        ))
        .expect("ok");
        assert!(matches!(asked.shape(1), Shape::Call { forced: false, .. }));
        let names: std::collections::HashSet<String> = (0..40)
            .filter_map(|s| match asked.shape(s) {
                Shape::Call { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(names.len(), 2, "both tools get drawn: {names:?}");
        let answered = rules(&format!(
            r#"{{"messages":[{{"role":"user","content":"Weather?"}},{{"role":"assistant","content":null,"tool_calls":[]}},
                {{"role":"tool","content":"sunny","tool_call_id":"x"}}],"tools":{TOOLS}}}"#
        ))
        .expect("ok");
        assert_eq!(answered.shape(1), Shape::Text);
        let none = rules(&format!(r#"{{"messages":[{{"role":"user","content":"x"}}],"tools":{TOOLS},"tool_choice":"none"}}"#)).expect("ok");
        assert_eq!(none.shape(1), Shape::Text);
    }

    #[test]
    fn named_and_required_choices() {
        let named = rules(&format!(
            r#"{{"messages":[{{"role":"tool","content":"x"}}],"tools":{TOOLS},"tool_choice":{{"type":"function","function":{{"name":"time"}}}}}}"#
        ))
        .expect("ok");
        match named.shape(5) {
            Shape::Call {
                name,
                parameters,
                forced,
            } => {
                assert_eq!(name, "time");
                assert!(forced);
                assert_eq!(parameters["type"], "object");
            }
            other => panic!("{other:?}"),
        }
        let required = rules(&format!(r#"{{"messages":[{{"role":"tool","content":"x"}}],"tools":{TOOLS},"tool_choice":"required"}}"#)).expect("ok");
        assert!(matches!(
            required.shape(2),
            Shape::Call { forced: false, .. }
        ));
    }

    #[test]
    fn bad_tool_requests_are_400() {
        for body in [
            r#"{"messages":[],"tool_choice":"required"}"#.to_string(),
            format!(
                r#"{{"messages":[],"tools":{TOOLS},"tool_choice":{{"type":"function","function":{{"name":"nope"}}}}}}"#
            ),
            format!(r#"{{"messages":[],"tools":{TOOLS},"tool_choice":"sometimes"}}"#),
            r#"{"messages":[],"tools":[{"type":"function","function":{}}]}"#.to_string(),
            r#"{"messages":[],"response_format":{"type":"json_schema"}}"#.to_string(),
            r#"{"messages":[],"response_format":{"type":"yaml"}}"#.to_string(),
        ] {
            let e = rules(&body).expect_err(&body);
            assert_eq!(e.status.as_u16(), 400, "{body}");
        }
    }

    #[test]
    fn formats() {
        let f = |b: &str| rules(b).expect("ok").shape(0);
        assert_eq!(
            f(r#"{"messages":[],"response_format":{"type":"json_object"}}"#),
            Shape::Json(None)
        );
        assert_eq!(
            f(
                r#"{"messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"integer"}}}}"#
            ),
            Shape::Json(Some(serde_json::json!({"type":"integer"})))
        );
        assert_eq!(
            f(r#"{"messages":[],"guided_json":"{\"type\":\"boolean\"}"}"#),
            Shape::Json(Some(serde_json::json!({"type":"boolean"})))
        );
        assert_eq!(
            f(r#"{"messages":[],"structured_outputs":{"choice":["yes","no"]}}"#),
            Shape::OneOf(vec!["yes".into(), "no".into()])
        );
        assert_eq!(
            f(r#"{"messages":[],"response_format":{"type":"text"}}"#),
            Shape::Text
        );
    }
}
