//! Splitting a command line into words the way `sh` would, for the plain commands the built-in `hey`
//! runs itself. Anything that needs a shell to mean what it says (pipes, redirections, variables,
//! command substitution, `;`, `&&`, comments, `~`, a newline) is left to `sh -c`.

/// The words of `command`, or `None` when only a shell can run it.
pub fn split(command: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether the current word exists (an empty quoted string is a word).
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\') => word.push(c),
                            '$' | '`' | '\n' => return None,
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next()? {
                    '\n' => return None,
                    c => word.push(c),
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' | '\r' => return None,
            '#' | '~' if !in_word => return None,
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    fn words(s: &str) -> Vec<String> {
        split(s).unwrap_or_else(|| panic!("{s:?} needs a shell"))
    }

    #[test]
    fn quoting() {
        assert_eq!(
            words("hey -z 1m  -q 10 http://x/"),
            ["hey", "-z", "1m", "-q", "10", "http://x/"]
        );
        assert_eq!(
            words(r#"hey -H "Accept: text/html" -H 'X-A: "b"' -d '' http://x/?a=b"#),
            [
                "hey",
                "-H",
                "Accept: text/html",
                "-H",
                "X-A: \"b\"",
                "-d",
                "",
                "http://x/?a=b"
            ]
        );
        assert_eq!(words(r#"a\ b "c\"d\e" e#f"#), ["a b", "c\"d\\e", "e#f"]);
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn shell_features_are_left_to_sh() {
        for s in [
            "hey http://x/ | tee out",
            "hey http://x/ > out",
            "hey $URL",
            "hey \"$URL\"",
            "hey `cat url`",
            "hey http://x/; echo done",
            "hey http://x/ && echo",
            "hey http://x/ # comment",
            "hey ~/x",
            "hey 'unterminated",
            "hey a\nb",
        ] {
            assert_eq!(split(s), None, "{s:?}");
        }
    }
}
