//! Rendering of metric queries: Flagger's Go `text/template` calls, reimplemented for the subset that
//! metric queries use (see `docs/metrics.md`).
//!
//! Supported inside `{{ }}`:
//! - the model functions `name`, `namespace`, `target`, `service`, `ingress`, `route`, `interval`;
//! - `variables.<key>` and `index variables "<key>"` (a key that is not set is an error naming it, as Go's
//!   `missingkey=error`);
//! - `printf "<format>" <args>...` with the verbs `%s`, `%v` and `%%`;
//! - string literals (`"..."` with Go escapes, or `` `raw` ``);
//! - `$var := <expr>` declarations and `$var` references (the skipper observer's prelude);
//! - `{{/* comments */}}` and the trim markers `{{- ` / ` -}}`.
//!
//! Everything else (pipelines, `if`/`range`/`with`, `.Field`, other functions) is rejected with an error that
//! says what is supported. Unlike a Jinja engine, `{#` and `{%` in PromQL are plain text.

use std::collections::BTreeMap;

use flagger_api::{Canary, CanaryMetric};

/// The values a query template can use: Flagger's `MetricTemplateModel`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricModel {
    /// `{{ name }}`: the Canary's name.
    pub name: String,
    /// `{{ namespace }}`: the Canary's namespace.
    pub namespace: String,
    /// `{{ target }}`: `spec.targetRef.name`.
    pub target: String,
    /// `{{ service }}`: `spec.service.name`, or the target's name.
    pub service: String,
    /// `{{ ingress }}`: `spec.ingressRef.name`, or the target's name.
    pub ingress: String,
    /// `{{ route }}`: `spec.routeRef.name`, or the target's name; for Knative the latest created revision.
    pub route: String,
    /// `{{ interval }}`: the metric's interval.
    pub interval: String,
    /// `{{ variables.<key> }}`: the metric's `templateVariables`.
    pub variables: BTreeMap<String, String>,
}

impl MetricModel {
    /// The model of `metric` on `canary`, as Flagger's `toMetricModel` builds it, except that the interval is
    /// always the metric's effective one (`1m` when unset): Flagger leaves it empty for MetricTemplate
    /// metrics, which makes providers that parse it fail.
    pub fn new(canary: &Canary, metric: &CanaryMetric) -> Self {
        let spec = &canary.spec;
        let target = spec.target_ref.name.clone();
        let or_target = |name: Option<&String>| {
            name.filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| target.clone())
        };
        Self {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            service: or_target(spec.service.name.as_ref()),
            ingress: or_target(spec.ingress_ref.as_ref().map(|r| &r.name)),
            route: or_target(spec.route_ref.as_ref().map(|r| &r.name)),
            interval: metric.interval().to_owned(),
            variables: metric.template_variables.clone().unwrap_or_default(),
            target,
        }
    }

    /// The same model with the latest created revision of a Knative Service as `{{ route }}`.
    #[must_use]
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = route.into();
        self
    }

    fn function(&self, name: &str) -> Option<&str> {
        Some(match name {
            "name" => &self.name,
            "namespace" => &self.namespace,
            "target" => &self.target,
            "service" => &self.service,
            "ingress" => &self.ingress,
            "route" => &self.route,
            "interval" => &self.interval,
            _ => return None,
        })
    }
}

/// Why a query template did not render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `{{ variables.<key> }}` names a key the metric's `templateVariables` does not set.
    #[error(
        "map has no entry for key {key:?}: the query uses `variables.{key}` but the metric's templateVariables \
         do not set {key:?}"
    )]
    MissingVariable {
        /// The key.
        key: String,
    },
    /// A `{{` without its `}}`, or an unterminated string or comment.
    #[error("unclosed action at byte {offset}: {detail}")]
    Unclosed {
        /// Where the action starts.
        offset: usize,
        /// What is unterminated.
        detail: &'static str,
    },
    /// Syntax outside the supported subset of Go templates.
    #[error(
        "unsupported template syntax `{{{{{action}}}}}`: {detail}; flagger-rs supports name, namespace, target, \
         service, ingress, route, interval, variables.<key>, index variables \"<key>\", printf with %s/%v, \
         string literals, $variables and comments"
    )]
    Unsupported {
        /// The action's text.
        action: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Renders `template` with `model`.
pub fn render(template: &str, model: &MetricModel) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    let mut locals: BTreeMap<String, String> = BTreeMap::new();
    let mut rest = template;
    let mut offset = 0;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start_matches(is_go_space);
        }
        let after = &rest[start + 2..];
        // `{{- ` trims the text before; the dash must be followed by a space (`{{-3}}` is a number).
        let (trim_before, inner_start) = match after.as_bytes() {
            [b'-', c, ..] if is_go_space(char::from(*c)) => (true, 1),
            _ => (false, 0),
        };
        if trim_before {
            text = text.trim_end_matches(is_go_space);
        }
        out.push_str(text);
        let body = &after[inner_start..];
        let (action, consumed, trim_after) = split_action(body).ok_or(RenderError::Unclosed {
            offset: offset + start,
            detail: "missing }}",
        })?;
        trim_next = trim_after;
        let consumed_total = start + 2 + inner_start + consumed;
        offset += consumed_total;
        rest = &rest[consumed_total..];
        let action = action.trim_matches(is_go_space);
        if action.starts_with("/*") {
            if !action.ends_with("*/") {
                return Err(RenderError::Unclosed {
                    offset,
                    detail: "comment without */",
                });
            }
            continue;
        }
        if let Some(value) = eval_action(action, model, &mut locals)? {
            out.push_str(&value);
        }
    }
    let tail = if trim_next {
        rest.trim_start_matches(is_go_space)
    } else {
        rest
    };
    out.push_str(tail);
    Ok(out)
}

/// Go's template whitespace: space, tab, carriage return, newline.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Finds the end of an action starting at `body` (after `{{` and any trim marker), skipping over string
/// literals and comments: `(action text, bytes consumed including }}, whether it ends with -}})`.
fn split_action(body: &str) -> Option<(&str, usize, bool)> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = body[i + 2..].find("*/")?;
                i += 2 + end + 1;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                // ` -}}` trims the text after.
                if i >= 2 && bytes[i - 1] == b'-' && is_go_space(char::from(bytes[i - 2])) {
                    return Some((&body[..i - 1], i + 2, true));
                }
                return Some((&body[..i], i + 2, false));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
}

fn tokenize(action: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = action.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if is_go_space(c) {
            chars.next();
            continue;
        }
        match c {
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    let Some((_, c)) = chars.next() else {
                        return Err("unterminated string".to_owned());
                    };
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('\\') => s.push('\\'),
                            Some('"') => s.push('"'),
                            Some(other) => return Err(format!("unsupported escape \\{other} in string")),
                            None => return Err("unterminated string".to_owned()),
                        },
                        c => s.push(c),
                    }
                }
                tokens.push(Token::Str(s));
            }
            '`' => {
                chars.next();
                let rest = &action[i + 1..];
                let end = rest.find('`').ok_or("unterminated raw string")?;
                tokens.push(Token::Str(rest[..end].to_owned()));
                while chars.peek().is_some_and(|&(j, _)| j <= i + 1 + end) {
                    chars.next();
                }
            }
            '(' | ')' | '|' => {
                return Err(format!("`{c}` (parentheses and pipelines) is not supported"));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if is_go_space(c) || matches!(c, '"' | '`' | '(' | ')' | '|') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn eval_action(
    action: &str,
    model: &MetricModel,
    locals: &mut BTreeMap<String, String>,
) -> Result<Option<String>, RenderError> {
    let unsupported = |detail: String| RenderError::Unsupported {
        action: action.to_owned(),
        detail,
    };
    let tokens = tokenize(action).map_err(unsupported)?;
    match tokens.as_slice() {
        [] => Err(unsupported("empty action".to_owned())),
        [Token::Word(var), Token::Word(op), expr @ ..]
            if var.starts_with('$') && (op == ":=" || op == "=") =>
        {
            if op == "=" && !locals.contains_key(var) {
                return Err(unsupported(format!("undefined variable {var}")));
            }
            let value = eval_expr(expr, model, locals).map_err(|e| e.into_render(action))?;
            locals.insert(var.clone(), value);
            Ok(None)
        }
        expr => eval_expr(expr, model, locals)
            .map(Some)
            .map_err(|e| e.into_render(action)),
    }
}

enum ExprError {
    Missing(String),
    Unsupported(String),
}

impl ExprError {
    fn into_render(self, action: &str) -> RenderError {
        match self {
            Self::Missing(key) => RenderError::MissingVariable { key },
            Self::Unsupported(detail) => RenderError::Unsupported {
                action: action.to_owned(),
                detail,
            },
        }
    }
}

fn eval_expr(
    tokens: &[Token],
    model: &MetricModel,
    locals: &BTreeMap<String, String>,
) -> Result<String, ExprError> {
    match tokens {
        [Token::Word(f), Token::Str(format), args @ ..] if f == "printf" => {
            let args = args
                .iter()
                .map(|a| eval_term(a, model, locals))
                .collect::<Result<Vec<_>, _>>()?;
            printf(format, &args)
        }
        [Token::Word(f), Token::Word(map), Token::Str(key)] if f == "index" && map == "variables" => model
            .variables
            .get(key)
            .cloned()
            .ok_or_else(|| ExprError::Missing(key.clone())),
        [term] => eval_term(term, model, locals),
        [Token::Word(f), ..] => Err(ExprError::Unsupported(format!(
            "`{f}` with arguments is not supported"
        ))),
        [Token::Str(_), ..] => Err(ExprError::Unsupported(
            "a string literal cannot take arguments".to_owned(),
        )),
        [] => Err(ExprError::Unsupported("missing value".to_owned())),
    }
}

fn eval_term(
    token: &Token,
    model: &MetricModel,
    locals: &BTreeMap<String, String>,
) -> Result<String, ExprError> {
    let word = match token {
        Token::Str(s) => return Ok(s.clone()),
        Token::Word(w) => w.as_str(),
    };
    if let Some(value) = model.function(word) {
        return Ok(value.to_owned());
    }
    if let Some(key) = word.strip_prefix("variables.") {
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(ExprError::Unsupported(format!(
                "`{word}` is not a valid key; use index variables \"<key>\" for keys with other characters"
            )));
        }
        return model
            .variables
            .get(key)
            .cloned()
            .ok_or_else(|| ExprError::Missing(key.to_owned()));
    }
    if word.starts_with('$') {
        return locals
            .get(word)
            .cloned()
            .ok_or_else(|| ExprError::Unsupported(format!("undefined variable {word}")));
    }
    if word.starts_with('.') {
        return Err(ExprError::Unsupported(format!(
            "`{word}`: Flagger executes templates without data, so fields fail there too; use the functions \
             (e.g. namespace, not .Namespace)"
        )));
    }
    Err(ExprError::Unsupported(format!("function {word:?} not defined")))
}

/// Go's `fmt.Sprintf` for string arguments and the verbs `%s`, `%v`, `%%`.
fn printf(format: &str, args: &[String]) -> Result<String, ExprError> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'v') => match args.next() {
                Some(a) => out.push_str(a),
                None => out.push_str("%!s(MISSING)"),
            },
            Some(verb) => {
                return Err(ExprError::Unsupported(format!(
                    "printf verb %{verb} is not supported (only %s, %v and %%)"
                )));
            }
            None => out.push_str("%!(NOVERB)"),
        }
    }
    let extra: Vec<&str> = args.map(String::as_str).collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA string={})", extra.join(", string=")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> MetricModel {
        MetricModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo-deploy".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ing".into(),
            route: "podinfo-route".into(),
            interval: "2m".into(),
            variables: [("direction".to_owned(), "inbound".to_owned())].into(),
        }
    }

    #[test]
    fn every_variable_renders() {
        let t = "{{ name }}|{{namespace}}|{{ target }}|{{ service }}|{{ ingress }}|{{ route }}|{{ interval }}|\
                 {{ variables.direction }}|{{ index variables \"direction\" }}";
        assert_eq!(
            render(t, &model()),
            Ok(
                "podinfo|test|podinfo-deploy|podinfo-svc|podinfo-ing|podinfo-route|2m|inbound|inbound"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let err = render("rate(x{dir=\"{{ variables.direction2 }}\"}[1m])", &model()).unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingVariable {
                key: "direction2".into()
            }
        );
        assert!(err.to_string().contains("\"direction2\""), "{err}");
        let err = render("{{ index variables \"a-b\" }}", &MetricModel::default()).unwrap_err();
        assert_eq!(err, RenderError::MissingVariable { key: "a-b".into() });
    }

    #[test]
    fn promql_braces_and_jinja_markers_are_plain_text() {
        let t = r#"sum(rate(x{a="{#",b="{%"}[{{ interval }}])) {}"#;
        assert_eq!(
            render(t, &model()).unwrap(),
            r#"sum(rate(x{a="{#",b="{%"}[2m])) {}"#
        );
    }

    #[test]
    fn skipper_printf_prelude_and_trim_markers() {
        let t = "{{- $route := printf \"kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?\" namespace ingress service }}\n\
                 \tx{route=~\"{{ $route }}\"}";
        assert_eq!(
            render(t, &model()).unwrap(),
            "\n\tx{route=~\"kube(ew)?_test__podinfo-ing_canary__.*__podinfo-svc_canary(_[0-9]+)?\"}"
        );
        assert_eq!(render("a \n {{- name -}} \n b", &model()).unwrap(), "apodinfob");
        assert_eq!(render("a {{/* note */}} b", &model()).unwrap(), "a  b");
        assert_eq!(render("a {{- /* note */ -}} b", &model()).unwrap(), "ab");
        assert_eq!(
            render("{{ printf \"%s-%v%%\" target `raw` }}", &model()).unwrap(),
            "podinfo-deploy-raw%"
        );
        assert_eq!(render("{{ \"lit}}eral\" }}", &model()).unwrap(), "lit}}eral");
    }

    #[test]
    fn syntax_outside_the_subset_is_rejected_clearly() {
        for (t, needle) in [
            ("{{ .Namespace }}", "use the functions"),
            ("{{ namespace | printf \"%s\" }}", "pipelines"),
            ("{{ if namespace }}x{{ end }}", "`if` with arguments"),
            ("{{ end }}", "function \"end\" not defined"),
            ("{{ printf \"%d\" name }}", "%d is not supported"),
            ("{{ $x }}", "undefined variable $x"),
            ("{{ variables }}", "function \"variables\" not defined"),
            ("{{ }}", "empty action"),
        ] {
            let err = render(t, &model()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RenderError::Unsupported { .. }), "{t}: {err:?}");
            assert!(text.contains(needle), "{t}: {text}");
            assert!(text.contains("flagger-rs supports"), "{text}");
        }
        assert!(matches!(
            render("x {{ name ", &model()),
            Err(RenderError::Unclosed { offset: 2, .. })
        ));
    }

    #[test]
    fn model_from_a_canary_defaults_names_and_interval() {
        let canary: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "pi", "namespace": "ns"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80},
                "analysis": {"interval": "1m"}
            }
        }))
        .unwrap();
        let metric: CanaryMetric = serde_json::from_value(serde_json::json!({
            "name": "custom", "templateRef": {"name": "t"}, "templateVariables": {"k": "v"}
        }))
        .unwrap();
        let m = MetricModel::new(&canary, &metric);
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.target.as_str(),
                m.service.as_str()
            ),
            ("pi", "ns", "podinfo", "podinfo")
        );
        assert_eq!((m.ingress.as_str(), m.route.as_str()), ("podinfo", "podinfo"));
        // Flagger's bug fixed: no interval on a template metric renders the default, not "".
        assert_eq!(m.interval, "1m");
        assert_eq!(m.variables.get("k").map(String::as_str), Some("v"));
        assert_eq!(m.with_route("podinfo-00002").route, "podinfo-00002");
    }
}
