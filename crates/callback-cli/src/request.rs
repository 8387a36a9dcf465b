//! A raw HTTP request, as a receiver developer saves one (`nc -l`, a
//! proxy's dump): request line, headers, blank line, body. `cbctl verify`
//! reads one on stdin.

/// The headers and body of a raw request.
#[derive(Debug, PartialEq, Eq)]
pub struct RawRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Reads `raw`; the request line is optional, lines may end in CRLF or
    /// LF.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let (head, body) = split_head(raw).ok_or(
            "no blank line between headers and body: give the whole request, headers first",
        )?;
        let head = std::str::from_utf8(head).map_err(|_| "the headers are not UTF-8")?;
        let mut headers = Vec::new();
        for (i, line) in head.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            match line.split_once(':') {
                Some((name, value)) if !name.contains(' ') => {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                }
                // The request line (`POST /hook HTTP/1.1`).
                _ if i == 0 => {}
                _ => return Err(format!("not a header: {line:?}")),
            }
        }
        Ok(Self {
            headers,
            body: body.to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn split_head(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    for separator in [&b"\r\n\r\n"[..], &b"\n\n"[..]] {
        if let Some(at) = raw.windows(separator.len()).position(|w| w == separator) {
            return Some((&raw[..at], &raw[at + separator.len()..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_crlf_and_a_request_line_parses() {
        let raw = b"POST /hook HTTP/1.1\r\nWebhook-Id: msg_1\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        let request = RawRequest::parse(raw).unwrap();
        assert_eq!(request.header("webhook-id"), Some("msg_1"));
        assert_eq!(request.body, b"{\"a\":1}");
    }

    #[test]
    fn headers_alone_with_lf_parse_and_a_request_without_a_blank_line_does_not() {
        let request = RawRequest::parse(b"webhook-id: m\n\nbody").unwrap();
        assert_eq!(request.header("Webhook-Id"), Some("m"));
        assert_eq!(request.body, b"body");
        assert!(RawRequest::parse(b"webhook-id: m\nbody").is_err());
    }
}
