//! The job's settings, parsed and checked: which IAM user, which endpoints,
//! which signing region. Kept apart from the calls so each reads on its own;
//! every problem here is the operator's (`invalid-config`).

use rotator_plugin_sdk::{Context, RotateError, http, settings};
use serde::Deserialize;

/// IAM's own endpoint (global; it signs for `us-east-1`).
pub const DEFAULT_IAM: &str = "https://iam.amazonaws.com";
/// STS's global endpoint.
pub const DEFAULT_STS: &str = "https://sts.amazonaws.com";
/// The region IAM and the global STS endpoint sign for.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The job's `settings` table, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    user_name: String,
    #[serde(default)]
    iam_endpoint: Option<String>,
    #[serde(default)]
    sts_endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// The settings, checked.
pub struct Job {
    /// The IAM user whose key is rotated.
    pub user: String,
    /// IAM's origin, without a trailing `/`.
    pub iam: String,
    /// STS's origin, without a trailing `/`.
    pub sts: String,
    /// The signing region.
    pub region: String,
}

impl Job {
    /// Parse and check the job's settings.
    pub fn load(ctx: &Context) -> Result<Self, RotateError> {
        let raw: Raw = settings(ctx)?;
        Self::check(raw).map_err(RotateError::InvalidConfig)
    }

    fn check(raw: Raw) -> Result<Self, String> {
        // IAM's user-name rule: 1 to 64 of letters, digits and `+=,.@_-`.
        let user = raw.user_name;
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if user.is_empty() || user.len() > 64 || !user.chars().all(allowed) {
            return Err(format!("user_name `{}` is not an IAM user name", user.escape_debug()));
        }
        let endpoint = |name: &str, given: Option<String>, default: &str| {
            let url = given.unwrap_or_else(|| default.to_owned());
            http::origin(&url)
                .ok_or_else(|| format!("{name} `{}` is not an http(s) origin like `{default}`", url.escape_debug()))
        };
        let iam = endpoint("iam_endpoint", raw.iam_endpoint, DEFAULT_IAM)?;
        let sts = endpoint("sts_endpoint", raw.sts_endpoint, DEFAULT_STS)?;
        let region = raw.region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let region_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if region.is_empty() || region.len() > 32 || !region.chars().all(region_ok) {
            return Err(format!("region `{}` is not an AWS region like `eu-west-1`", region.escape_debug()));
        }
        Ok(Self { user, iam, sts, region })
    }

    /// Does `arn` (from `GetCallerIdentity`) name this job's user? An IAM
    /// user's ARN is `arn:<partition>:iam::<account>:user/<path/>name`.
    pub fn is_user_arn(&self, arn: &str) -> bool {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_), Some("iam"), Some(""), Some(_), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        resource.strip_prefix("user/").and_then(|p| p.rsplit('/').next()) == Some(self.user.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(settings: serde_json::Value) -> Result<Job, String> {
        Job::check(serde_json::from_value(settings).map_err(|e| e.to_string())?)
    }

    #[test]
    fn defaults_are_aws_global_endpoints_in_us_east_1() {
        let j = job(json!({"user_name": "orders-app"})).unwrap();
        assert_eq!((j.iam.as_str(), j.sts.as_str(), j.region.as_str()), (DEFAULT_IAM, DEFAULT_STS, DEFAULT_REGION));
        let j = job(json!({"user_name": "a@b.c", "iam_endpoint": "http://127.0.0.1:5000/", "sts_endpoint": "http://127.0.0.1:5000", "region": "eu-west-1"}))
            .unwrap();
        assert_eq!(
            (j.iam.as_str(), j.sts.as_str(), j.region.as_str()),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000", "eu-west-1")
        );
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let long = "u".repeat(65);
        let cases = [
            (json!({}), "missing field `user_name`"),
            (json!({"user_name": ""}), "not an IAM user name"),
            (json!({"user_name": long}), "not an IAM user name"),
            (json!({"user_name": "a/b"}), "not an IAM user name"),
            (json!({"user_name": "a b"}), "not an IAM user name"),
            (json!({"user_name": "a", "iam_endpoint": "http://h/path"}), "iam_endpoint `http://h/path` is not"),
            (json!({"user_name": "a", "sts_endpoint": "ftp://h"}), "sts_endpoint"),
            (json!({"user_name": "a", "iam_endpoint": "http://u:p@h"}), "not an http(s) origin"),
            (json!({"user_name": "a", "region": "EU"}), "not an AWS region"),
            (json!({"user_name": "a", "region": ""}), "not an AWS region"),
            (json!({"user_name": "a", "extra": 1}), "unknown field"),
        ];
        for (settings, want) in cases {
            let err = job(settings.clone()).err().unwrap_or_else(|| panic!("accepted {settings}"));
            assert!(err.contains(want), "{settings}: {err}");
        }
    }

    #[test]
    fn only_the_users_own_arn_matches() {
        let j = job(json!({"user_name": "app"})).unwrap();
        for good in ["arn:aws:iam::123456789012:user/app", "arn:aws-cn:iam::1:user/team/sub/app"] {
            assert!(j.is_user_arn(good), "{good}");
        }
        for bad in [
            "arn:aws:iam::123456789012:user/app2",
            "arn:aws:iam::123456789012:user/other/app-x",
            "arn:aws:iam::123456789012:role/app",
            "arn:aws:sts::123456789012:assumed-role/app/app",
            "arn:aws:iam::123456789012:user/",
            "app",
            "",
        ] {
            assert!(!j.is_user_arn(bad), "{bad}");
        }
    }
}
