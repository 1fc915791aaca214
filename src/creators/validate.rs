//! Input rules of creator profiles. Each function names the field it checks in its error.

use serde_json::Value;

use crate::{
    error::{AppError, AppResult},
    graphql::inputs::no_controls,
};

pub const MAX_NAME: usize = 100;
pub const MAX_SLUG: usize = 64;
pub const MAX_BIO: usize = 5000;
pub const MAX_GENRES: usize = 20;
pub const MAX_GENRE: usize = 50;
pub const MAX_URL: usize = 2048;
pub const MAX_LINKS: usize = 20;
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
pub const MAX_PROFILE_BYTES: usize = 16 * 1024;
/// Deepest nesting of a stored JSON value. The database driver reads JSON back with
/// serde_json's limit of 128 levels, and a GraphQL literal is not bound by it: a profile
/// nested 150 deep was stored, and every read of the creator failed from then on.
pub const MAX_JSON_DEPTH: usize = 32;

/// A creator's display name: unique, so written the way it reads. Every run of spaces (a
/// no-break or an em space among them) is one plain space, and invisible characters (a
/// zero-width space, direction marks) are refused: "Alice\u{a0}Studio" and
/// "Alice Studio\u{200b}" were other names than "Alice Studio" beside it in the directory.
pub fn name(field: &str, name: &str) -> AppResult<String> {
    use unicode_normalization::UnicodeNormalization;
    // Composed (NFC): "Café" typed with a combining accent is the same name. Spaces only are
    // joined: a line break or a tab is refused below, as before.
    let name: String = name.nfc().collect();
    let name = name
        .split(|c: char| c.is_whitespace() && !c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = name.trim();
    let len = name.chars().count();
    if crate::graphql::inputs::shows_nothing(name) || len > MAX_NAME {
        return Err(AppError::bad_input(
            field,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    no_controls(field, name, false)?;
    // Zero-width (non-)joiners shape Persian and Indic letters and join emoji: kept between
    // two such characters, not beside a plain (ASCII) one, where "Ali\u{200d}ce" reads as
    // "Alice".
    let chars: Vec<char> = name.chars().collect();
    let invisible = |(i, c): (usize, &char)| {
        let joins = |at: Option<usize>| {
            at.and_then(|at| chars.get(at))
                .is_some_and(|n| !n.is_ascii())
        };
        crate::graphql::inputs::draws_nothing(*c)
            && !(matches!(c, '\u{200c}' | '\u{200d}')
                && joins(i.checked_sub(1))
                && joins(Some(i + 1)))
    };
    if chars.iter().enumerate().any(invisible) {
        return Err(AppError::bad_input(
            field,
            "must not contain invisible characters (zero-width spaces, direction marks)",
        ));
    }
    Ok(name.to_owned())
}

/// Lower-case letters and digits in words joined by single hyphens.
pub fn slug(field: &str, slug: &str) -> AppResult<String> {
    let slug = slug.trim();
    let valid = !slug.is_empty()
        && slug.len() <= MAX_SLUG
        && slug.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !valid {
        return Err(AppError::bad_input(
            field,
            format!(
                "must be 1 to {MAX_SLUG} lower-case letters and digits, words joined by single hyphens (e.g. `my-channel`)"
            ),
        ));
    }
    Ok(slug.to_owned())
}

/// A slug made from a name: `Café Beats 2!` → `caf-beats-2` (non-ASCII letters are dropped).
pub fn slug_from_name(field: &str, name: &str) -> AppResult<String> {
    let mut slug = String::new();
    // Letters beyond ASCII become their closest ASCII spelling (`Émile` → `emile`, `Straße` →
    // `strasse`) instead of vanishing.
    for c in deunicode::deunicode(name).chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(MAX_SLUG).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        return Err(AppError::bad_input(
            field,
            "cannot derive a slug from this name; pass `slug` explicitly",
        ));
    }
    Ok(slug)
}

pub fn bio(field: &str, bio: &str) -> AppResult<Option<String>> {
    let bio = bio.trim();
    if bio.chars().count() > MAX_BIO {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_BIO} characters"),
        ));
    }
    no_controls(field, bio, true)?;
    Ok((!bio.is_empty()).then(|| bio.to_owned()))
}

pub fn genres(field: &str, genres: &[String]) -> AppResult<Value> {
    if genres.len() > MAX_GENRES {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_GENRES} genres"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(genres.len());
    for (i, genre) in genres.iter().enumerate() {
        let genre = genre.trim();
        let len = genre.chars().count();
        if len == 0 || len > MAX_GENRE {
            return Err(AppError::bad_input(
                format!("{field}.{i}"),
                format!("must be 1 to {MAX_GENRE} characters"),
            ));
        }
        no_controls(&format!("{field}.{i}"), genre, false)?;
        if !out.iter().any(|g| g.eq_ignore_ascii_case(genre)) {
            out.push(genre.to_owned());
        }
    }
    Ok(Value::from(out))
}

/// An absolute http(s) URL.
pub fn url(field: &str, url: &str) -> AppResult<String> {
    let url = url.trim();
    let has_host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !has_host || url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::bad_input(
            field,
            "must be an absolute http(s) URL",
        ));
    }
    Ok(url.to_owned())
}

/// An object of platform name → URL.
pub fn social_links(field: &str, links: &Value) -> AppResult<Value> {
    let Value::Object(map) = links else {
        return Err(AppError::bad_input(
            field,
            "must be an object of platform name to URL",
        ));
    };
    if map.len() > MAX_LINKS {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_LINKS} links"),
        ));
    }
    let mut out = serde_json::Map::new();
    for (platform, link) in map {
        let key_len = platform.trim().chars().count();
        if key_len == 0 || key_len > 50 {
            return Err(AppError::bad_input(
                field,
                "platform names must be 1 to 50 characters",
            ));
        }
        no_controls(field, platform, false)?;
        let Value::String(link) = link else {
            return Err(AppError::bad_input(
                format!("{field}.{platform}"),
                "must be a URL string",
            ));
        };
        out.insert(
            platform.trim().to_owned(),
            Value::String(url(&format!("{field}.{platform}"), link)?),
        );
    }
    Ok(Value::Object(out))
}

/// Refuses `value` when it nests deeper than [`MAX_JSON_DEPTH`].
fn shallow(field: &str, value: &Value) -> AppResult<()> {
    let mut stack = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        let inner: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth > MAX_JSON_DEPTH {
            return Err(AppError::bad_input(
                field,
                format!("must nest at most {MAX_JSON_DEPTH} levels of arrays and objects"),
            ));
        }
        stack.extend(inner.map(|v| (v, depth + 1)));
    }
    Ok(())
}

/// A JSON object of at most [`MAX_PROFILE_BYTES`], nested at most [`MAX_JSON_DEPTH`] deep.
pub fn personality_profile(field: &str, profile: &Value) -> AppResult<Value> {
    if !profile.is_object() {
        return Err(AppError::bad_input(field, "must be an object"));
    }
    shallow(field, profile)?;
    if profile.to_string().len() > MAX_PROFILE_BYTES {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_PROFILE_BYTES} bytes of JSON"),
        ));
    }
    Ok(profile.clone())
}

pub fn template(field: &str, template: &Value) -> AppResult<Value> {
    if !template.is_object() {
        return Err(AppError::bad_input(field, "must be an object"));
    }
    shallow(field, template)?;
    if template.to_string().len() > MAX_TEMPLATE_BYTES {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_TEMPLATE_BYTES} bytes of JSON"),
        ));
    }
    // Its cards must be ones `render.short` can draw; other keys are the client's own.
    crate::shorts::template::Template::parse(field, template)?;
    Ok(template.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_written_as_they_read() {
        let named = |n: &str| super::name("input.name", n).map_err(|e| e.public_message());
        assert_eq!(
            named(" Alice\u{a0}\u{2003} Studio ").as_deref(),
            Ok("Alice Studio")
        );
        assert_eq!(named("Cafe\u{301}").as_deref(), Ok("Caf\u{e9}"));
        for joined in [
            "👩\u{200d}💻 Studio",
            "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}",
        ] {
            assert_eq!(named(joined).as_deref(), Ok(joined));
        }
        for refused in [
            "Alice Studio\u{200b}",
            "\u{202e}oidutS",
            "Alice\nStudio",
            "\u{200b}",
            "Ali\u{200d}ce",
            "\u{200d}Alice",
        ] {
            assert!(named(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn slugs_are_derived_from_names() {
        assert_eq!(
            slug_from_name("n", "Café Beats 2!").ok().as_deref(),
            Some("cafe-beats-2")
        );
        assert_eq!(
            slug_from_name("n", "  --Hello   World--").ok().as_deref(),
            Some("hello-world")
        );
        assert!(slug_from_name("n", "!!!").is_err());
        assert_eq!(
            slug_from_name("n", "Émile Zola · Straße").ok().as_deref(),
            Some("emile-zola-strasse")
        );
    }

    #[test]
    fn profile_text_holds_no_control_characters() {
        assert!(name("n", "A\u{7}B").is_err());
        assert!(name("n", "A\nB").is_err());
        assert!(bio("b", "line one\nline two\ttab").is_ok());
        assert!(bio("b", "escape \u{1b}[31m").is_err());
        let refused = genres("g", &["jazz".into(), "lo\u{8}fi".into()]).expect_err("genre");
        assert!(matches!(refused, AppError::BadInput { field, .. } if field == "g.1"));
        assert!(social_links("l", &serde_json::json!({ "x\ny": "https://x.example" })).is_err());
    }

    #[test]
    fn slugs_reject_upper_case_and_double_hyphens() {
        assert!(slug("s", "ok-slug-1").is_ok());
        assert!(slug("s", "Bad").is_err());
        assert!(slug("s", "a--b").is_err());
        assert!(slug("s", "-a").is_err());
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(url("u", "https://example.com/x").is_ok());
        assert!(url("u", "javascript:alert(1)").is_err());
        assert!(url("u", "https:///nohost").is_err());
    }
}
