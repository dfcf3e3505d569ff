//! `--token-auth-file`: kube's static token file (k8s.io/apiserver
//! `pkg/authentication/token/tokenfile/tokenfile.go` `NewCSV`), read as Go's `encoding/csv`
//! reads it: `token,user,uid[,"group1,group2"]` per record, quoted fields (`""` is a quote,
//! newlines allowed inside quotes), blank lines skipped, spaces kept.
//!
//! Fewer than 3 columns is an error; an empty token is skipped; of duplicate tokens the last
//! wins; columns after the 4th are ignored.

use std::collections::HashMap;
use std::path::Path;

use super::UserInfo;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("token file '{path}': {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A CSV syntax error (Go's `csv.ParseError` wording).
    #[error("token file '{path}': parse error on line {line}, column {column}: {what}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based byte column of the error.
        column: usize,
        /// `bare " in non-quoted-field` or `extraneous or missing " in quoted-field`.
        what: &'static str,
    },
    /// A record with fewer than three columns (kube's message).
    #[error("token file '{path}' must have at least 3 columns (token, user name, user uid), found {found}")]
    Columns {
        /// The file.
        path: String,
        /// The columns of the record.
        found: usize,
    },
}

/// The users of a token file by token.
#[derive(Clone, Debug, Default)]
pub struct TokenAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

impl TokenAuthenticator {
    /// Reads and parses `path`.
    ///
    /// Errors: an unreadable file, a CSV syntax error, a record of fewer than 3 columns.
    pub fn load(path: &Path) -> Result<TokenAuthenticator, TokenFileError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read(path).map_err(|e| TokenFileError::Read { path: shown.clone(), message: e.to_string() })?;
        let text = String::from_utf8_lossy(&text);
        TokenAuthenticator::parse(&text, &shown)
    }

    /// Parses the text of a token file (`path` names it in errors).
    ///
    /// Errors: as [`TokenAuthenticator::load`].
    pub fn parse(text: &str, path: &str) -> Result<TokenAuthenticator, TokenFileError> {
        let records = read_csv(text).map_err(|(line, column, what)| TokenFileError::Syntax {
            path: path.to_owned(),
            line,
            column,
            what,
        })?;
        let mut tokens = HashMap::new();
        for (number, record) in records.into_iter().enumerate() {
            if record.len() < 3 {
                return Err(TokenFileError::Columns { path: path.to_owned(), found: record.len() });
            }
            if record[0].is_empty() {
                tracing::warn!("empty token has been found in token file '{path}', record number '{}'", number + 1);
                continue;
            }
            let groups = match record.get(3) {
                Some(groups) => groups.split(',').map(str::to_owned).collect(),
                None => Vec::new(),
            };
            let user = UserInfo { name: record[1].clone(), uid: record[2].clone(), groups };
            if tokens.insert(record[0].clone(), user).is_some() {
                tracing::warn!("duplicate token has been found in token file '{path}', record number '{}'", number + 1);
            }
        }
        Ok(TokenAuthenticator { tokens })
    }

    /// The user of `token`, if the file has it.
    pub fn authenticate(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }

    /// How many tokens the file holds.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
}

const BARE_QUOTE: &str = "bare \" in non-quoted-field";
const QUOTE: &str = "extraneous or missing \" in quoted-field";

/// Go's `encoding/csv` with `FieldsPerRecord = -1`: the records of `text`, or the
/// (line, column, message) of the first syntax error.
fn read_csv(text: &str) -> Result<Vec<Vec<String>>, (usize, usize, &'static str)> {
    let text = text.replace("\r\n", "\n");
    let bytes = text.as_bytes();
    let mut records = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            // A blank line is no record.
            line += 1;
            i += 1;
            continue;
        }
        let mut record = Vec::new();
        let mut line_start = i;
        loop {
            let mut field = Vec::new();
            if bytes.get(i) == Some(&b'"') {
                let quote_line = line;
                let quote_column = i - line_start + 1;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err((quote_line, quote_column, QUOTE)),
                        Some(b'"') => match bytes.get(i + 1) {
                            Some(b'"') => {
                                field.push(b'"');
                                i += 2;
                            }
                            Some(b',') | Some(b'\n') | None => {
                                i += 1;
                                break;
                            }
                            Some(_) => return Err((line, i - line_start + 2, QUOTE)),
                        },
                        Some(b'\n') => {
                            field.push(b'\n');
                            i += 1;
                            line += 1;
                            line_start = i;
                        }
                        Some(b) => {
                            field.push(*b);
                            i += 1;
                        }
                    }
                }
            } else {
                while let Some(b) = bytes.get(i) {
                    match b {
                        b',' | b'\n' => break,
                        b'"' => return Err((line, i - line_start + 1, BARE_QUOTE)),
                        b => {
                            field.push(*b);
                            i += 1;
                        }
                    }
                }
            }
            record.push(String::from_utf8_lossy(&field).into_owned());
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'\n') => {
                    i += 1;
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TokenAuthenticator, TokenFileError> {
        TokenAuthenticator::parse(text, "tokens.csv")
    }

    fn user(name: &str, uid: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.into(), uid: uid.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    #[test]
    fn kube_token_file_rules() {
        let file = parse(
            "token1,user1,uid1,\"group1,group2\"\r\n\n\
             token2,user2,uid2\n\
             ,nobody,uid0\n\
             token3,user3,uid3,g3,ignored,columns\n\
             token2,user2b,uid2b,\"\"\n\
             \"tok\"\"en4\",\" spaced \",uid4,\"multi\nline\"",
        )
        .expect("valid file");
        assert_eq!(file.authenticate("token1"), Some(&user("user1", "uid1", &["group1", "group2"])));
        // Duplicate: the last wins; an empty 4th column is one empty group (strings.Split).
        assert_eq!(file.authenticate("token2"), Some(&user("user2b", "uid2b", &[""])));
        assert_eq!(file.authenticate("token3"), Some(&user("user3", "uid3", &["g3"])));
        assert_eq!(file.authenticate("tok\"en4"), Some(&user(" spaced ", "uid4", &["multi\nline"])));
        assert_eq!(file.authenticate(""), None);
        assert_eq!(file.authenticate("nope"), None);
        assert_eq!(file.len(), 4);
        assert_eq!(parse("").expect("empty").len(), 0);
    }

    #[test]
    fn bad_files_are_refused_with_kube_and_go_wording() {
        let columns = parse("a,b,c\nonly,two\n").expect_err("2 columns");
        assert_eq!(
            columns.to_string(),
            "token file 'tokens.csv' must have at least 3 columns (token, user name, user uid), found 2"
        );
        let bare = parse("tok\"en,u,1\n").expect_err("bare quote");
        assert_eq!(
            bare.to_string(),
            "token file 'tokens.csv': parse error on line 1, column 4: bare \" in non-quoted-field"
        );
        let open = parse("a,b,c\n\"open,u,1\n").expect_err("unterminated");
        assert_eq!(open, TokenFileError::Syntax { path: "tokens.csv".into(), line: 2, column: 1, what: QUOTE });
        let extra = parse("\"a\"b,u,1").expect_err("extraneous quote");
        assert!(matches!(extra, TokenFileError::Syntax { line: 1, column: 4, .. }), "{extra:?}");
        let missing = TokenAuthenticator::load(Path::new("/nonexistent/tokens.csv")).expect_err("missing");
        assert!(missing.to_string().starts_with("token file '/nonexistent/tokens.csv': "), "{missing}");
    }
}
