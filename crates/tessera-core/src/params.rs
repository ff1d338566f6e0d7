//! Request parameters of the token, introspection and revocation endpoints.

use crate::Error;

/// Parameters from an `application/x-www-form-urlencoded` body.
#[derive(Debug, Default, Clone)]
pub struct Params {
    // A handful of parameters per request: a vector scans faster than a map hashes.
    single: Vec<(String, String)>,
    resources: Vec<String>,
}

impl Params {
    /// Parses a form body. Parameters must not be repeated (RFC 6749 §3.1 and
    /// §3.2), except `resource`, which RFC 8707 §2 allows several times. A
    /// parameter sent without a value is treated as omitted (RFC 6749 §3.1).
    pub fn from_form(body: &[u8]) -> Result<Self, Error> {
        let mut params = Params::default();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if name == "resource" {
                params.resources.push(value.into_owned());
            } else if params.get(&name).is_some() {
                return Err(Error::invalid_request(format!(
                    "parameter {name:?} is repeated"
                )));
            } else {
                params.single.push((name.into_owned(), value.into_owned()));
            }
        }
        Ok(params)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.single
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &'static str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::invalid_request(format!("parameter {name:?} is missing")))
    }

    /// RFC 8707 resource indicators, in request order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        let ok = Params::from_form(b"grant_type=client_credentials&resource=a&resource=b&scope=")
            .expect("valid");
        assert_eq!(ok.get("grant_type"), Some("client_credentials"));
        assert_eq!(ok.resources(), ["a", "b"]);
        assert_eq!(ok.get("scope"), None);
        let err = Params::from_form(b"scope=a&scope=b").expect_err("repeated");
        assert_eq!(err.code, crate::ErrorCode::InvalidRequest);
    }
}
