//! Splits a query into its statements, so `exec` can run them one by one and bind the
//! parameters to the last one.
//!
//! Statements end at a `;` outside string literals, quoted identifiers and comments. Inside
//! `CREATE TRIGGER ... BEGIN ... END` the body's own semicolons do not end the statement: the
//! trigger ends at the `END` that closes its `BEGIN` (a `CASE ... END` inside the body is
//! counted as nesting). Pieces with nothing but whitespace and comments are dropped. SQLite
//! compiles each piece as exactly one statement, so a mistake here shows up as an error,
//! never as a statement silently skipped.

/// The statements of `sql`, in order, each without its trailing `;`.
pub(crate) fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut has_token = false;
    // Keyword state for triggers: the first words of the statement, and BEGIN/CASE depth.
    let mut words: Vec<String> = Vec::new();
    let mut in_trigger = false;
    let mut depth: u32 = 0;

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' | b'`' => {
                has_token = true;
                i = skip_quoted(bytes, i, c);
            }
            b'[' => {
                has_token = true;
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b']')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
            }
            b';' => {
                if in_trigger && depth > 0 {
                    i += 1;
                    continue;
                }
                if has_token {
                    statements.push(&sql[start..i]);
                }
                i += 1;
                start = i;
                has_token = false;
                words.clear();
                in_trigger = false;
                depth = 0;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                has_token = true;
                let end = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
                    .map_or(bytes.len(), |p| i + p);
                let word = sql[i..end].to_ascii_uppercase();
                if words.len() < 4 {
                    words.push(word.clone());
                    in_trigger = is_create_trigger(&words);
                }
                if in_trigger {
                    match word.as_str() {
                        "BEGIN" | "CASE" => depth += 1,
                        "END" => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                i = end;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                has_token = true;
                i += 1;
            }
        }
    }
    if has_token {
        statements.push(&sql[start..]);
    }
    statements
}

fn is_create_trigger(words: &[String]) -> bool {
    match words {
        [create, trigger, ..] if create == "CREATE" && trigger == "TRIGGER" => true,
        [create, temp, trigger, ..]
            if create == "CREATE"
                && (temp == "TEMP" || temp == "TEMPORARY")
                && trigger == "TRIGGER" =>
        {
            true
        }
        _ => false,
    }
}

/// The index after the quoted token starting at `start` (a doubled quote is an escape).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    fn check(sql: &str, expected: &[&str]) {
        let got: Vec<&str> = split_statements(sql).into_iter().map(str::trim).collect();
        assert_eq!(got, expected, "{sql:?}");
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        check("SELECT 1", &["SELECT 1"]);
        check("SELECT 1;", &["SELECT 1"]);
        check("  ; ;; ", &[]);
        check("", &[]);
        check("-- just a comment", &[]);
        check("SELECT 1; /* trailing */", &["SELECT 1"]);
        check("SELECT 1; SELECT 2", &["SELECT 1", "SELECT 2"]);
        check(
            "SELECT 'a;b'; SELECT \"c;d\"",
            &["SELECT 'a;b'", "SELECT \"c;d\""],
        );
        check(
            "SELECT 'it''s;'; SELECT 2",
            &["SELECT 'it''s;'", "SELECT 2"],
        );
        check("SELECT [x;y], `z;w`", &["SELECT [x;y], `z;w`"]);
        check(
            "SELECT 1 -- c;\n; SELECT 2",
            &["SELECT 1 -- c;", "SELECT 2"],
        );
        check("SELECT /* ; */ 1", &["SELECT /* ; */ 1"]);
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN \
                       INSERT INTO b VALUES (1); \
                       UPDATE c SET x = CASE WHEN 1 THEN 2 ELSE 3 END; \
                       END";
        check(&format!("{trigger}; SELECT 1"), &[trigger, "SELECT 1"]);
        let temp = "CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END";
        check(temp, &[temp]);
        check(
            "CREATE TABLE trigger_log (x); INSERT INTO trigger_log VALUES (1)",
            &[
                "CREATE TABLE trigger_log (x)",
                "INSERT INTO trigger_log VALUES (1)",
            ],
        );
    }
}
