//! A creator's `shortsTemplate`: the intro and outro cards `render.short` puts around every
//! short of the creator's. Only `intro` and `outro` are read; other top-level keys are kept
//! as the client stored them.
//!
//! ```json
//! { "intro": { "text": "Studio Ana presents", "durationSecs": 1.5,
//!              "background": "#101010", "color": "#FFFFFF" },
//!   "outro": { "text": "Follow @studio-ana" } }
//! ```

use serde_json::{Map, Value};

use crate::error::{AppError, AppResult};

/// Longest card text, in characters (lines included).
pub const MAX_CARD_TEXT: usize = 100;
/// Shortest and longest card, in seconds.
pub const CARD_SECONDS: (f64, f64) = (0.5, 10.0);
const DEFAULT_SECONDS: f64 = 2.0;
const KEYS: &str = "text, durationSecs, background, color";

/// A full-frame card: `text` centred on `background`.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub text: String,
    pub duration_secs: f64,
    /// `RRGGBB`, upper case.
    pub background: String,
    /// `RRGGBB`, upper case.
    pub color: String,
}

/// The cards of a template (none when it has none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template {
    pub intro: Option<Card>,
    pub outro: Option<Card>,
}

impl Template {
    /// Reads a stored or submitted template; errors name the offending field under `field`.
    pub fn parse(field: &str, value: &Value) -> AppResult<Self> {
        let Some(object) = value.as_object() else {
            return Err(AppError::bad_input(field, "must be an object"));
        };
        Ok(Self {
            intro: card(&format!("{field}.intro"), object.get("intro"))?,
            outro: card(&format!("{field}.outro"), object.get("outro"))?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.intro.is_none() && self.outro.is_none()
    }

    /// Seconds the cards add to a short.
    pub fn added_secs(&self) -> f64 {
        [&self.intro, &self.outro]
            .into_iter()
            .flatten()
            .map(|c| c.duration_secs)
            .sum()
    }
}

fn card(field: &str, value: Option<&Value>) -> AppResult<Option<Card>> {
    let object: &Map<String, Value> = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(AppError::bad_input(
                field,
                format!("must be an object with {KEYS}"),
            ));
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !KEYS.split(", ").any(|known| known == *k))
    {
        return Err(AppError::bad_input(
            format!("{field}.{unknown}"),
            format!("is not a card setting; use {KEYS}"),
        ));
    }
    let text = match object.get("text") {
        Some(Value::String(text)) => text.trim(),
        _ => {
            return Err(AppError::bad_input(
                format!("{field}.text"),
                "is required: the words on the card",
            ));
        }
    };
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_CARD_TEXT {
        return Err(AppError::bad_input(
            format!("{field}.text"),
            format!("must be 1–{MAX_CARD_TEXT} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad_input(
            format!("{field}.text"),
            "may hold line breaks but no other control characters",
        ));
    }
    let duration_secs = match object.get("durationSecs") {
        None | Some(Value::Null) => DEFAULT_SECONDS,
        Some(value) => match value.as_f64() {
            Some(secs) if (CARD_SECONDS.0..=CARD_SECONDS.1).contains(&secs) => secs,
            _ => {
                return Err(AppError::bad_input(
                    format!("{field}.durationSecs"),
                    format!(
                        "must be a number of seconds from {} to {}",
                        CARD_SECONDS.0, CARD_SECONDS.1
                    ),
                ));
            }
        },
    };
    Ok(Some(Card {
        text: text.to_owned(),
        duration_secs,
        background: color(
            &format!("{field}.background"),
            object.get("background"),
            "000000",
        )?,
        color: color(&format!("{field}.color"), object.get("color"), "FFFFFF")?,
    }))
}

fn color(field: &str, value: Option<&Value>, default: &str) -> AppResult<String> {
    match value {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(s))
            if s.len() == 7
                && s.starts_with('#')
                && s[1..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Ok(s[1..].to_ascii_uppercase())
        }
        Some(_) => Err(AppError::bad_input(
            field,
            "must be a colour like \"#1A2B3C\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(value: Value) -> String {
        match Template::parse("t", &value) {
            Err(AppError::BadInput { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn cards_take_defaults_and_other_keys_are_left_alone() {
        let template = Template::parse(
            "t",
            &json!({ "intro": { "text": " Hello \n world " }, "brandKit": { "any": 1 } }),
        )
        .expect("valid");
        assert_eq!(
            template.intro,
            Some(Card {
                text: "Hello \n world".to_owned(),
                duration_secs: 2.0,
                background: "000000".to_owned(),
                color: "FFFFFF".to_owned(),
            })
        );
        assert_eq!(template.outro, None);
        assert_eq!(template.added_secs(), 2.0);
        assert!(Template::parse("t", &json!({})).expect("valid").is_empty());
    }

    #[test]
    fn bad_cards_name_their_field() {
        assert_eq!(field_of(json!({ "intro": "hi" })), "t.intro");
        assert_eq!(field_of(json!({ "intro": {} })), "t.intro.text");
        assert_eq!(field_of(json!({ "outro": { "text": "" } })), "t.outro.text");
        assert_eq!(
            field_of(json!({ "outro": { "text": "x".repeat(101) } })),
            "t.outro.text"
        );
        assert_eq!(
            field_of(json!({ "intro": { "text": "a", "durationSecs": 0.1 } })),
            "t.intro.durationSecs"
        );
        assert_eq!(
            field_of(json!({ "intro": { "text": "a", "background": "red" } })),
            "t.intro.background"
        );
        assert_eq!(
            field_of(json!({ "intro": { "text": "a", "fontSize": 3 } })),
            "t.intro.fontSize"
        );
        assert_eq!(
            field_of(json!({ "intro": { "text": "a\u{7}b" } })),
            "t.intro.text"
        );
    }
}
