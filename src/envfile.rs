//! Env files (`up --env-file`, the `env-file=` header key), read by
//! compose's `env_file` rules: `KEY=VALUE` lines, `#` comments and blank
//! lines, an optional `export ` in front, optional matching single or
//! double quotes around the value, and no expansion of any kind (`$HOME`
//! stays `$HOME`, `\n` stays two characters). A line that is none of these
//! is an error naming the file and the line, so that a typo never starts a
//! script without its variables.
//!
//! [`parse`] is pure; [`load`] only reads the file.

use std::fs;
use std::path::Path;

/// The variables of an env file, in order (a later one of the same name
/// wins when they are set), or what is wrong: `FILE:LINE: problem`.
pub fn load(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|(line, problem)| format!("{}:{line}: {problem}", path.display()))
}

/// The variables of an env file's text, or the first bad line's number
/// (from 1) and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        vars.push(variable(line).map_err(|problem| (i + 1, problem))?);
    }
    Ok(vars)
}

/// One `KEY=VALUE` line, trimmed.
fn variable(line: &str) -> Result<(String, String), String> {
    let line = line.strip_prefix("export ").map_or(line, str::trim_start);
    let Some((key, value)) = line.split_once('=') else {
        return Err(format!("{line:?} is not KEY=VALUE"));
    };
    let key = key.trim_end();
    if !is_name(key) {
        return Err(format!(
            "{key:?} is not a variable name (letters, digits and _, not first a digit)"
        ));
    }
    let value = value.trim_start();
    let value = match value.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let inner = &value[1..];
            let Some(close) = inner.find(quote) else {
                return Err(format!("{key}= has no closing {quote} (a value is one line)"));
            };
            let rest = inner[close + 1..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                return Err(format!("{key}= has {rest:?} after its closing {quote}"));
            }
            &inner[..close]
        }
        // A comment after an unquoted value needs a space before its `#`:
        // `a#b` is a value.
        _ => value
            .find(" #")
            .or_else(|| value.find("\t#"))
            .map_or(value, |at| &value[..at])
            .trim_end(),
    };
    if value.contains('\0') {
        return Err(format!("{key}= holds a NUL byte, which no variable can"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables as `KEY=VALUE` words, `|`-separated, or the error.
    fn check(text: &str, expected: &str) {
        let found = match parse(text) {
            Ok(vars) => vars.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("|"),
            Err((line, problem)) => format!("line {line}: {problem}"),
        };
        assert_eq!(found, expected, "{text:?}");
    }

    #[test]
    fn lines_comments_and_blanks() {
        check("", "");
        check("A=1\n\n# a comment\n  # indented\nB=two words\n", "A=1|B=two words");
        check("A=\nB= \n", "A=|B=");
        check("A = 1\n", "A=1");
        check("export PATH_X=/bin\n", "PATH_X=/bin");
        check("A=1\r\nB=2\r\n", "A=1|B=2");
        check("A=1\nA=2\n", "A=1|A=2");
        check("URL=http://h/a=b\n", "URL=http://h/a=b");
    }

    #[test]
    fn quotes_are_stripped_when_they_match_and_nothing_is_expanded() {
        check("A=\"x y\"\nB='x y'\n", "A=x y|B=x y");
        check("A=\"it's\"\nB='say \"hi\"'\n", "A=it's|B=say \"hi\"");
        check("A=$HOME\nB=\"$HOME\\n\"\nC='${X:-y}'\n", "A=$HOME|B=$HOME\\n|C=${X:-y}");
        check("A=\"\"\n", "A=");
        check("A=\"x # y\" # comment\n", "A=x # y");
        // Quotes inside a value are the value's.
        check("A=x\"y\"\n", "A=x\"y\"");
    }

    #[test]
    fn a_comment_after_a_value_needs_a_space() {
        check("A=1 # one\nB=a#b\nC=x\t# tab\n", "A=1|B=a#b|C=x");
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        check("A=1\nB\n", "line 2: \"B\" is not KEY=VALUE");
        check(
            "\n\n1A=x\n",
            "line 3: \"1A\" is not a variable name (letters, digits and _, not first a digit)",
        );
        check(
            "A-B=x\n",
            "line 1: \"A-B\" is not a variable name (letters, digits and _, not first a digit)",
        );
        check(
            "=x\n",
            "line 1: \"\" is not a variable name (letters, digits and _, not first a digit)",
        );
        check("A=\"x\n", "line 1: A= has no closing \" (a value is one line)");
        check("A='x\"\n", "line 1: A= has no closing ' (a value is one line)");
        check("A=\"x\" y\n", "line 1: A= has \"y\" after its closing \"");
        check("A=x\0y\n", "line 1: A= holds a NUL byte, which no variable can");
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("unitsync-envfile-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let file = dir.join("app.env");
        fs::write(&file, "A=1\nnope\n").unwrap();
        assert_eq!(
            load(&file).unwrap_err(),
            format!("{}:2: \"nope\" is not KEY=VALUE", file.display())
        );
        let missing = dir.join("missing.env");
        assert!(load(&missing).unwrap_err().starts_with(&format!("{}: ", missing.display())));
        let _ = fs::remove_dir_all(&dir);
    }
}
