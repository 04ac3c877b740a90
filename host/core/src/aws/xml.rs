//! The text of one element of an XML document, by its path: what AWS's
//! query protocols (IAM, STS) answer in, and what a plugin's HTTP capture
//! may name. Streaming (quick-xml), so a document is never built in memory.

use quick_xml::events::Event;

/// Why no text came out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The parser's reason; never a piece of the document.
    #[error("not XML ({0})")]
    NotXml(String),
    #[error("no such element")]
    NotFound,
}

/// The text of the first element at `path` (local names from the root,
/// `/`-separated; namespaces ignored) in an XML body.
pub fn text_at(body: &[u8], path: &str) -> Result<String, XmlError> {
    let want: Vec<&str> = path.trim_matches('/').split('/').collect();
    let bad = |e: &dyn std::fmt::Display| XmlError::NotXml(e.to_string());
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<String> = Vec::new();
    // Text collected while inside the wanted element.
    let mut found: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| bad(&e))?;
        match event {
            Event::Start(e) => {
                stack.push(e.local_name().as_ref().to_owned());
                if found.is_none() && stack.iter().map(String::as_str).eq(want.iter().copied()) {
                    found = Some(String::new());
                }
            }
            Event::Empty(e) => {
                let mut at = stack.clone();
                at.push(e.local_name().as_ref().to_owned());
                if at.iter().map(String::as_str).eq(want.iter().copied()) {
                    return Err(XmlError::NotFound);
                }
            }
            Event::Text(t) if found.is_some() && stack.len() == want.len() => {
                found.as_mut().expect("checked").push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if found.is_some() && stack.len() == want.len() => {
                let ch = r.resolve_char_ref().map_err(|e| bad(&e))?;
                let text = match ch {
                    Some(c) => c.to_string(),
                    None => predefined(&r).ok_or_else(|| bad(&"an undefined entity"))?.to_owned(),
                };
                found.as_mut().expect("checked").push_str(&text);
            }
            Event::CData(c) if found.is_some() && stack.len() == want.len() => {
                found.as_mut().expect("checked").push_str(&c);
            }
            Event::End(_) => {
                if found.is_some() && stack.len() == want.len() {
                    return Ok(found.take().expect("checked"));
                }
                stack.pop();
            }
            Event::Eof => return Err(XmlError::NotFound),
            _ => {}
        }
        buf.clear();
    }
}

/// The five entities XML predefines.
fn predefined(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}
