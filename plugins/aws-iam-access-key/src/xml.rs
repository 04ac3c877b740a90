//! Reading the few fields the plugin needs from IAM and STS answers. Those
//! answers are flat, machine-written XML (no CDATA, no comments inside the
//! elements read, names without prefixes), and the host caps a body at
//! 1 MiB, so a scan for named elements is enough and keeps the guest free
//! of an XML crate. Anything that does not scan is "not found", which the
//! callers turn into a permanent error: it never guesses.

/// The raw inner text of every element named `name`, in document order.
/// `<name/>` counts, with empty text. A start without its end ends the scan.
pub fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<nameX…>` is another element; only `>`, `/>` or attributes follow a name.
        match after.chars().next() {
            Some('>') => {}
            Some('/') if after.starts_with("/>") => {
                out.push("");
                rest = &after[2..];
                continue;
            }
            Some(c) if c.is_whitespace() => {}
            _ => {
                rest = after;
                continue;
            }
        }
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            out.push("");
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// The text of the first element named `name`, entities resolved.
pub fn field(xml: &str, name: &str) -> Option<String> {
    elements(xml, name).first().map(|raw| unescape(raw))
}

/// `raw` with the five predefined entities and character references
/// resolved; anything else (a nested tag included) is kept as it is.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let resolved = tail.find(';').filter(|&semi| semi <= 12).and_then(|semi| {
            let name = &tail[1..semi];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => name.strip_prefix('#').and_then(|d| d.parse().ok()),
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, semi))
        });
        match resolved {
            Some((c, semi)) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListAccessKeysResult><UserName>app</UserName><AccessKeyMetadata>
    <member><UserName>app</UserName><AccessKeyId>AKIA1</AccessKeyId><Status>Active</Status></member>
    <member><UserName>app</UserName><AccessKeyId>AKIA2</AccessKeyId><Status>Inactive</Status></member>
  </AccessKeyMetadata><IsTruncated>false</IsTruncated></ListAccessKeysResult>
</ListAccessKeysResponse>"#;

    #[test]
    fn named_elements_are_found_in_order_and_similar_names_are_not() {
        let members = elements(LIST, "member");
        assert_eq!(members.len(), 2);
        assert_eq!(field(members[1], "AccessKeyId").as_deref(), Some("AKIA2"));
        assert_eq!(elements(LIST, "Status"), vec!["Active", "Inactive"]);
        assert_eq!(elements(LIST, "UserName").len(), 3);
        assert_eq!(elements(LIST, "User"), Vec::<&str>::new(), "`<UserName>` is not `<User>`");
        assert_eq!(field(LIST, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(elements("<R><D/><D a='1'/><D x=\"y\">v</D></R>", "D"), vec!["", "", "v"]);
    }

    #[test]
    fn broken_documents_end_the_scan_without_guessing() {
        for broken in ["<Code>unclosed", "<Code", "<Code attr", "", "<<<>>>", "</Code><Code"] {
            assert_eq!(field(broken, "Code"), None, "{broken}");
        }
    }

    #[test]
    fn entities_resolve_and_unknown_ones_stay() {
        assert_eq!(unescape("a&amp;b &lt;c&gt; &quot;&apos; &#65;&#x42;"), "a&b <c> \"' AB");
        assert_eq!(unescape("&bogus; & &#xZZ; &#1114112; &amp"), "&bogus; & &#xZZ; &#1114112; &amp");
        assert_eq!(
            field("<Message>User: arn:aws:iam::1:user/a is not &quot;x&quot;</Message>", "Message").unwrap(),
            "User: arn:aws:iam::1:user/a is not \"x\""
        );
    }
}
