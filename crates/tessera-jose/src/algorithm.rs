use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The JWS algorithms Tessera signs and verifies with (RFC 7518 §3, RFC 8037).
/// There is deliberately no `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    ES256,
    RS256,
    PS256,
    EdDSA,
    /// Symmetric; only for per-resource shared secrets, never published in a JWKS.
    HS256,
}

impl Algorithm {
    /// Every asymmetric algorithm, in the order keys are listed.
    pub const ASYMMETRIC: [Algorithm; 4] = [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
        }
    }

    /// The JWK `kty` a key for this algorithm must have (RFC 7518 §6.1, RFC 8037 §2).
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::ES256 => "EC",
            Algorithm::RS256 | Algorithm::PS256 => "RSA",
            Algorithm::EdDSA => "OKP",
            Algorithm::HS256 => "oct",
        }
    }

    pub fn is_symmetric(self) -> bool {
        self == Algorithm::HS256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Exact, case-sensitive names as registered by IANA: `rs256` is not `RS256`.
    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "ES256" => Ok(Algorithm::ES256),
            "RS256" => Ok(Algorithm::RS256),
            "PS256" => Ok(Algorithm::PS256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            "HS256" => Ok(Algorithm::HS256),
            other => Err(Error::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_rejected() {
        for alg in [Algorithm::HS256].into_iter().chain(Algorithm::ASYMMETRIC) {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
        assert!("none".parse::<Algorithm>().is_err());
        assert!("rs256".parse::<Algorithm>().is_err());
    }
}
