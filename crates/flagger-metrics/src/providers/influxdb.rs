//! The InfluxDB provider: InfluxDB v2 Flux queries over HTTP, `POST /api/v2/query?org=<org>`.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/influxdb.go`, which uses influxdb-client-go v2): the
//! address is required; with a `secretRef`, the Secret keys `token` (sent as `Authorization: Token <token>`)
//! and `org` (the `org` query parameter) are both required; the body is the JSON query
//! `{"query": <flux>, "type": "flux", "dialect": {"annotations": ["datatype", "group", "default"],
//! "delimiter": ",", "header": true}}`; 15 s timeout; the response is annotated CSV and the value is the
//! `_value` of the first record, which must be a float. `is_online` runs
//! `from(bucket: "default") |> range(start: -2h)` and only needs it to succeed.
//!
//! Differences from Flagger: a result without records is no data (Flagger returns 0 with no error, so an
//! empty result passes any `max` threshold); a `long` or `unsignedLong` `_value` is accepted as a number.
//! An error table in the response (`error,reference` columns) is an error with InfluxDB's message.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use url::Url;

use super::{
    base_url, config_error, credential, fetch, http_client, join_path, no_values, not_nan, parse_error,
    secret_header,
};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "influxdb";

/// The client's request timeout (influxdb-client-go's context in Flagger).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The query of the online check.
pub const ONLINE_QUERY: &str = r#"from(bucket: "default") |> range(start: -2h)"#;

/// An InfluxDB v2 query API client.
#[derive(Clone, Debug)]
pub struct InfluxdbProvider {
    http: reqwest::Client,
    query_url: Url,
    headers: HeaderMap,
}

impl InfluxdbProvider {
    /// Reads the address and, with a `secretRef`, the token and organisation of `init`.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let address = init.provider.address.as_deref().unwrap_or_default();
        let base = base_url(KIND, address)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut org = String::new();
        if init.provider.secret_ref.is_some() {
            let token = credential(init.credentials, "token").ok_or_else(|| {
                config_error(
                    KIND,
                    "influxdb credentials does not contain an authentication token",
                )
            })?;
            org = credential(init.credentials, "org")
                .ok_or_else(|| config_error(KIND, "influxdb credentials does not contain an organisation"))?;
            headers.insert(
                AUTHORIZATION,
                secret_header(KIND, "Authorization", &format!("Token {token}"))?,
            );
        }
        let mut query_url = join_path(&base, "/api/v2/query");
        query_url.query_pairs_mut().append_pair("org", &org);
        Ok(Self {
            http: http_client(KIND, TIMEOUT, init.provider.insecure_skip_verify())?,
            query_url,
            headers,
        })
    }

    /// The URL queries are posted to, with the `org` parameter.
    pub fn query_url(&self) -> &Url {
        &self.query_url
    }

    async fn post(&self, flux: &str) -> Result<String, ProviderError> {
        let body = serde_json::json!({
            "query": flux,
            "type": "flux",
            "dialect": {
                "annotations": ["datatype", "group", "default"],
                "delimiter": ",",
                "header": true,
            },
        });
        let request = self
            .http
            .post(self.query_url.clone())
            .headers(self.headers.clone())
            .body(body.to_string());
        fetch(KIND, request, &self.query_url, |status| {
            (200..300).contains(&status)
        })
        .await
    }

    async fn query(&self, flux: &str) -> Result<f64, ProviderError> {
        let body = self.post(flux).await?;
        parse_response(&body)
    }
}

impl MetricProvider for InfluxdbProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let body = self.post(ONLINE_QUERY).await?;
        // Only errors matter: with records or without, the server ran the query.
        first_value(&body).map(drop)
    }
}

/// The value of an annotated-CSV query response: the `_value` of the first record. No record, an empty
/// `_value` or NaN is no data.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    match first_value(body)? {
        None => Err(no_values(KIND, NoDataReason::Empty)),
        Some((_, value)) if value.is_empty() => Err(no_values(KIND, NoDataReason::Empty)),
        Some((datatype, value)) => {
            let number = match datatype.as_str() {
                "double" => parse_double(&value),
                "long" => value.parse::<i64>().ok().map(|v| v as f64),
                "unsignedLong" => value.parse::<u64>().ok().map(|v| v as f64),
                other => {
                    return Err(parse_error(
                        KIND,
                        format!("_value {value:?} has datatype {other:?}, not a number"),
                        body,
                    ));
                }
            };
            let number = number
                .ok_or_else(|| parse_error(KIND, format!("_value {value:?} is not a {datatype}"), body))?;
            not_nan(KIND, number)
        }
    }
}

/// InfluxDB's spellings of a double (`1.5`, `NaN`, `+Inf`, `-Inf`).
fn parse_double(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// One table's annotations and column names, while reading annotated CSV.
#[derive(Default)]
struct Table {
    datatypes: Vec<String>,
    defaults: Vec<String>,
    names: Vec<String>,
}

/// The datatype and text of the first record's `_value` (its default when empty), or `None` without
/// records. An error table is returned as an error.
fn first_value(body: &str) -> Result<Option<(String, String)>, ProviderError> {
    let error = |detail: String| parse_error(KIND, detail, body);
    let rows = parse_csv(body).map_err(error)?;
    let mut table: Option<Table> = None;
    let mut in_annotations = false;
    let mut error_table = false;
    for row in rows {
        // Blank lines separate tables; a one-field row carries nothing.
        if row.len() <= 1 {
            continue;
        }
        let first = row[0].as_str();
        if first.starts_with('#') {
            if !in_annotations {
                table = Some(Table::default());
                in_annotations = true;
                error_table = false;
            }
            let Some(t) = table.as_mut() else { continue };
            match first {
                "#datatype" => t.datatypes = row[1..].to_vec(),
                "#default" => t.defaults = row[1..].to_vec(),
                _ => {}
            }
            continue;
        }
        let Some(t) = table.as_mut() else {
            return Err(error(
                "annotations not found: the response is not annotated CSV".to_owned(),
            ));
        };
        if in_annotations {
            // The header row follows the annotations.
            in_annotations = false;
            if t.datatypes.is_empty() {
                return Err(error("datatype annotation not found".to_owned()));
            }
            if row.get(1).is_some_and(|c| c == "error") {
                error_table = true;
            } else {
                t.names = row[1..].to_vec();
            }
            continue;
        }
        if error_table {
            let message = row
                .get(1)
                .filter(|m| !m.is_empty())
                .map_or("unknown query error", String::as_str);
            let reference = row.get(2).filter(|r| !r.is_empty());
            let detail = match reference {
                Some(r) => format!("query error: {message},{r}"),
                None => format!("query error: {message}"),
            };
            return Err(error(detail));
        }
        let Some(index) = t.names.iter().position(|n| n == "_value") else {
            return Err(error("the result has no _value column".to_owned()));
        };
        let mut value = row.get(index + 1).cloned().unwrap_or_default();
        if value.is_empty() {
            value = t.defaults.get(index).cloned().unwrap_or_default();
        }
        let datatype = t.datatypes.get(index).cloned().unwrap_or_default();
        return Ok(Some((datatype, value)));
    }
    Ok(None)
}

/// RFC 4180 CSV: rows of fields, `"`-quoted fields with `""` escapes, CRLF or LF line ends. Blank lines are
/// rows with one empty field.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_line_ends() {
        let rows = parse_csv("a,\"b,c\",\"d\"\"e\"\r\n\r\nx,y\n").unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["a".to_owned(), "b,c".to_owned(), "d\"e".to_owned()],
                vec![String::new()],
                vec!["x".to_owned(), "y".to_owned()],
            ]
        );
        assert!(parse_csv("\"open").is_err());
    }

    #[test]
    fn second_table_after_blank_line_is_not_read() {
        let body = "#datatype,string,long,double\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,2.5\n\n#datatype,string,long,double\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,1,9\n";
        assert_eq!(parse_response(body).unwrap(), 2.5);
    }

    #[test]
    fn defaults_fill_empty_values() {
        let body = "#datatype,string,long,double\n#group,false,false,false\n#default,_result,,7\n,result,table,_value\n,,0,\n";
        assert_eq!(parse_response(body).unwrap(), 7.0);
    }
}
