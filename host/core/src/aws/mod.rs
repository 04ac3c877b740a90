//! AWS as the host reaches it: credentials found the way every AWS SDK
//! finds them ([`credentials`]), requests signed with SigV4 ([`sigv4`]) and
//! sent as the JSON (Secrets Manager) or query (STS) protocols with typed
//! errors and bounded retries ([`client`]).
//!
//! Why not the AWS SDK for Rust: `aws-config` and `aws-sdk-secretsmanager`
//! bring their own HTTP stack and code generated for every operation of the
//! service, while the host needs six operations and already has reqwest and
//! the SDK's own signer (`aws-sigv4`, shared with plugins' signed requests).
//! `docs/aws.md` has the build-time figures behind this choice.

pub mod client;
pub mod credentials;
pub mod sigv4;
pub mod xml;

pub use client::{AwsClient, AwsError, Service};
pub use credentials::{AwsEnv, Credentials, CredentialsError, CredentialsProvider};

/// An AWS region name as AWS spells them (`eu-west-1`, `us-gov-west-1`,
/// `cn-north-1`): lowercase letters, digits and dashes, 1 to 32 characters.
/// Checked because the region becomes part of a host name.
pub fn valid_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::valid_region;

    #[test]
    fn regions_as_aws_spells_them_are_valid() {
        for r in ["eu-west-1", "us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-4"] {
            assert!(valid_region(r), "{r}");
        }
        for r in ["", "EU-west-1", "eu west 1", "eu-west-1.evil.com", "-eu", "eu-", "a".repeat(33).as_str()] {
            assert!(!valid_region(r), "{r}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// Whatever passes can only be a DNS label run: it never brings a
        /// dot, slash, colon, `@` or space into the endpoint's host name.
        #[test]
        fn a_valid_region_never_changes_the_host_structure(s in "\\PC{0,40}") {
            if valid_region(&s) {
                prop_assert!(!s.contains(['.', '/', ':', '@', ' ', '?', '#']));
                let url = format!("https://secretsmanager.{s}.amazonaws.com");
                let parsed = reqwest::Url::parse(&url).unwrap();
                let host = format!("secretsmanager.{s}.amazonaws.com");
                prop_assert_eq!(parsed.host_str(), Some(host.as_str()));
            }
        }
    }
}
