//! The host's AWS credentials and region, found the standard way, in the
//! order the AWS SDKs and CLI use, never written in rotator's config:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!    optionally `AWS_SESSION_TOKEN`;
//! 2. the shared files: the profile `AWS_PROFILE` (default `default`) in
//!    `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`), then in
//!    `AWS_CONFIG_FILE` (`~/.aws/config`, sections `[profile NAME]`);
//! 3. web identity (EKS IRSA and the like): `AWS_WEB_IDENTITY_TOKEN_FILE`
//!    with `AWS_ROLE_ARN` (or the profile's `web_identity_token_file` and
//!    `role_arn`), exchanged with STS `AssumeRoleWithWebIdentity` for
//!    temporary credentials, renewed five minutes before they expire. The
//!    token file is read at each exchange, as Kubernetes rotates it.
//!
//! Not implemented: the ECS container and EC2 instance metadata endpoints,
//! `credential_process`, SSO and `source_profile` role chaining
//! (`docs/aws.md`). The region comes from the job, else `AWS_REGION`, else
//! `AWS_DEFAULT_REGION`, else the profile's `region`.
//!
//! The environment is read once into an [`AwsEnv`], so tests hand one in
//! instead of changing the process's environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Shared files larger than this are refused, not read.
const MAX_FILE: u64 = 256 * 1024;
/// Temporary credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The environment variables the AWS chain looks at, read once.
#[derive(Debug, Clone, Default)]
pub struct AwsEnv {
    vars: HashMap<String, String>,
}

impl AwsEnv {
    /// The process's environment (the variables named `AWS_*` and `HOME`).
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars().filter(|(k, _)| k.starts_with("AWS_") || k == "HOME"))
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { vars: pairs.into_iter().collect() }
    }

    /// A variable's value; unset and empty are the same, as in the SDKs.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn home_file(&self, var: &str, default: &str) -> Option<PathBuf> {
        match self.get(var) {
            Some(p) => Some(PathBuf::from(p)),
            None => self.get("HOME").map(|h| Path::new(h).join(".aws").join(default)),
        }
    }

    fn profile_name(&self) -> &str {
        self.get("AWS_PROFILE").unwrap_or("default")
    }
}

/// A key pair (and session token) to sign with. `Debug` shows the key id
/// and where it came from, never the secret half or the token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
    /// `environment`, `profile NAME`, `web identity`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &crate::secret::REDACTED)
            .field("session_token", &self.session_token.as_ref().map(|_| crate::secret::REDACTED))
            .field("source", &self.source)
            .finish()
    }
}

/// Why no credentials could be had. Names variables, files and profiles,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in the shared \
         credentials or config file, or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN"
    )]
    Missing,
    #[error("AWS credentials: {0}")]
    Invalid(String),
    /// STS refused or could not be reached (see `transient`).
    #[error("AWS web identity: {message}")]
    Exchange { message: String, transient: bool },
}

impl CredentialsError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Exchange { transient: true, .. })
    }
}

/// Where credentials come from, once the chain has been walked.
#[derive(Debug, Clone)]
enum Source {
    Static(Credentials),
    WebIdentity { token_file: PathBuf, role_arn: String, session_name: String },
}

/// Hands out credentials: fixed ones as they are, temporary ones renewed
/// before they expire (one exchange at a time).
#[derive(Debug)]
pub struct CredentialsProvider {
    source: Source,
    cached: Mutex<Option<Credentials>>,
}

/// What the host asks STS for web-identity credentials with.
pub(super) struct WebIdentityRequest<'a> {
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub token: &'a str,
}

impl CredentialsProvider {
    /// Walk the chain in `env` (reading the shared files it names).
    pub fn from_env(env: &AwsEnv) -> Result<Self, CredentialsError> {
        Ok(Self { source: chain(env)?, cached: Mutex::new(None) })
    }

    /// Fixed credentials (tests, and callers with their own source).
    pub fn fixed(credentials: Credentials) -> Self {
        Self { source: Source::Static(credentials), cached: Mutex::new(None) }
    }

    /// Where the credentials come from, for startup logs.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Static(c) => format!("{} (key {})", c.source, c.access_key_id),
            Source::WebIdentity { role_arn, .. } => format!("web identity (role {role_arn})"),
        }
    }

    /// Credentials to sign with now. `exchange` trades a web-identity token
    /// for temporary credentials (the client does it through STS).
    pub(super) async fn get<F, Fut>(&self, exchange: F) -> Result<Credentials, CredentialsError>
    where
        F: FnOnce(WebIdentityRequest<'_>) -> Fut,
        Fut: std::future::Future<Output = Result<Credentials, CredentialsError>>,
    {
        let (token_file, role_arn, session_name) = match &self.source {
            Source::Static(c) => return Ok(c.clone()),
            Source::WebIdentity { token_file, role_arn, session_name } => (token_file, role_arn, session_name),
        };
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| fresh(c, SystemTime::now())) {
            return Ok(c.clone());
        }
        let token = Zeroizing::new(read_bounded(token_file)?);
        let request = WebIdentityRequest { role_arn, session_name, token: token.trim() };
        let fresh = exchange(request).await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

/// Still good for at least [`RENEW_BEFORE`].
fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expires.is_none_or(|at| at > now + RENEW_BEFORE)
}

fn chain(env: &AwsEnv) -> Result<Source, CredentialsError> {
    match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(Source::Static(Credentials {
                access_key_id: id.to_owned(),
                secret_access_key: Zeroizing::new(secret.to_owned()),
                session_token: env.get("AWS_SESSION_TOKEN").map(|t| Zeroizing::new(t.to_owned())),
                expires: None,
                source: "environment".into(),
            }));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(CredentialsError::Invalid(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into(),
            ));
        }
        (None, None) => {}
    }
    let profile = Profile::load(env)?;
    if let Some(c) = profile.credentials()? {
        return Ok(Source::Static(c));
    }
    let token_file = env.get("AWS_WEB_IDENTITY_TOKEN_FILE").or(profile.get("web_identity_token_file"));
    let role_arn = env.get("AWS_ROLE_ARN").or(profile.get("role_arn"));
    match (token_file, role_arn) {
        (Some(file), Some(role)) => Ok(Source::WebIdentity {
            token_file: PathBuf::from(file),
            role_arn: role.to_owned(),
            session_name: env
                .get("AWS_ROLE_SESSION_NAME")
                .or(profile.get("role_session_name"))
                .unwrap_or("rotator")
                .to_owned(),
        }),
        (Some(_), None) => {
            Err(CredentialsError::Invalid("a web identity token file is set without AWS_ROLE_ARN".into()))
        }
        _ => Err(CredentialsError::Missing),
    }
}

/// The region: the job's, else the environment's, else the profile's.
pub fn region(env: &AwsEnv, explicit: Option<&str>) -> Result<String, CredentialsError> {
    let found = match explicit.or(env.get("AWS_REGION")).or(env.get("AWS_DEFAULT_REGION")) {
        Some(r) => r.to_owned(),
        None => Profile::load(env)?.get("region").map(str::to_owned).ok_or_else(|| {
            CredentialsError::Invalid(
                "no AWS region: set the job's `region`, AWS_REGION or the profile's region".into(),
            )
        })?,
    };
    if !super::valid_region(&found) {
        return Err(CredentialsError::Invalid(format!("`{found}` is not an AWS region name")));
    }
    Ok(found)
}

/// The keys of one profile: the credentials file's section first, then the
/// config file's.
struct Profile {
    name: String,
    from_credentials: HashMap<String, String>,
    from_config: HashMap<String, String>,
}

impl Profile {
    fn load(env: &AwsEnv) -> Result<Self, CredentialsError> {
        let name = env.profile_name().to_owned();
        let section = |file: Option<PathBuf>, header: &str| -> Result<HashMap<String, String>, CredentialsError> {
            match file {
                Some(path) if path.exists() => Ok(ini_section(&read_bounded(&path)?, header)),
                _ => Ok(HashMap::new()),
            }
        };
        let config_header = if name == "default" { "default".to_owned() } else { format!("profile {name}") };
        Ok(Self {
            from_credentials: section(env.home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), &name)?,
            from_config: section(env.home_file("AWS_CONFIG_FILE", "config"), &config_header)?,
            name,
        })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.from_credentials
            .get(key)
            .or_else(|| self.from_config.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn credentials(&self) -> Result<Option<Credentials>, CredentialsError> {
        match (self.get("aws_access_key_id"), self.get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => Ok(Some(Credentials {
                access_key_id: id.to_owned(),
                secret_access_key: Zeroizing::new(secret.to_owned()),
                session_token: self.get("aws_session_token").map(|t| Zeroizing::new(t.to_owned())),
                expires: None,
                source: format!("profile {}", self.name),
            })),
            (None, None) => Ok(None),
            _ => Err(CredentialsError::Invalid(format!(
                "profile `{}` has only one of aws_access_key_id and aws_secret_access_key",
                self.name
            ))),
        }
    }
}

/// A file the chain names, under a size cap.
fn read_bounded(path: &Path) -> Result<String, CredentialsError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| CredentialsError::Invalid(format!("cannot read {shown}: {e}")))?;
    if meta.len() > MAX_FILE {
        return Err(CredentialsError::Invalid(format!("{shown} is larger than {MAX_FILE} bytes")));
    }
    std::fs::read_to_string(path).map_err(|e| CredentialsError::Invalid(format!("cannot read {shown}: {e}")))
}

/// The `key = value` lines of section `[header]` of an INI text, as the
/// AWS shared files are written (`#` and `;` comments, keys lowercased).
fn ini_section(text: &str, header: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == header;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> AwsEnv {
        AwsEnv::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn static_of(env: &AwsEnv) -> Credentials {
        match chain(env).unwrap() {
            Source::Static(c) => c,
            other => panic!("expected fixed credentials, got {other:?}"),
        }
    }

    #[test]
    fn the_environment_comes_first_and_debug_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = f\n",
        )
        .unwrap();
        let file = dir.path().join("credentials").display().to_string();
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret-value"),
            ("AWS_SHARED_CREDENTIALS_FILE", &file),
        ]);
        let c = static_of(&e);
        assert_eq!((c.access_key_id.as_str(), c.source.as_str()), ("AKIAENV", "environment"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("env-secret-value") && shown.contains("AKIAENV"), "{shown}");
        let half = env(&[("AWS_ACCESS_KEY_ID", "AKIAENV")]);
        assert!(matches!(chain(&half), Err(CredentialsError::Invalid(_))));
    }

    #[test]
    fn profiles_come_from_the_credentials_file_then_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "# comment\n[default]\naws_access_key_id=DEF\naws_secret_access_key=d\n\n[ops]\n AWS_Access_Key_Id = OPS \n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile ops]\naws_secret_access_key = o\nregion = us-east-2\n\
             [profile web]\nweb_identity_token_file = /var/run/token\nrole_arn = arn:aws:iam::1:role/r\n",
        )
        .unwrap();
        let (creds, config) = (creds.display().to_string(), config.display().to_string());
        let base = [("AWS_SHARED_CREDENTIALS_FILE", creds.as_str()), ("AWS_CONFIG_FILE", config.as_str())];
        assert_eq!(static_of(&env(&base)).access_key_id, "DEF");
        assert_eq!(region(&env(&base), None).unwrap(), "eu-west-1");
        let ops = env(&[base[0], base[1], ("AWS_PROFILE", "ops")]);
        let c = static_of(&ops);
        assert_eq!((c.access_key_id.as_str(), c.source.as_str()), ("OPS", "profile ops"));
        assert_eq!(region(&ops, None).unwrap(), "us-east-2");
        assert_eq!(region(&ops, Some("ap-south-1")).unwrap(), "ap-south-1");
        match chain(&env(&[base[0], base[1], ("AWS_PROFILE", "web")])).unwrap() {
            Source::WebIdentity { role_arn, session_name, .. } => {
                assert_eq!((role_arn.as_str(), session_name.as_str()), ("arn:aws:iam::1:role/r", "rotator"));
            }
            other => panic!("{other:?}"),
        }
        let nothing = env(&[base[0], base[1], ("AWS_PROFILE", "absent")]);
        assert_eq!(chain(&nothing).unwrap_err(), CredentialsError::Missing);
        assert!(region(&env(&[("AWS_REGION", "eu-west-1.evil.com")]), None).is_err());
    }

    #[tokio::test]
    async fn web_identity_reads_the_token_at_each_exchange_and_reuses_fresh_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "jwt-one\n").unwrap();
        let file = token.display().to_string();
        let e = env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", &file), ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")]);
        let provider = CredentialsProvider::from_env(&e).unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let exchange = |expires_in: u64| {
            let seen = &seen;
            move |r: WebIdentityRequest<'_>| {
                seen.lock().unwrap().push(r.token.to_owned());
                let c = Credentials {
                    access_key_id: "ASIATEMP".into(),
                    secret_access_key: Zeroizing::new("t".into()),
                    session_token: Some(Zeroizing::new("s".into())),
                    expires: Some(SystemTime::now() + Duration::from_secs(expires_in)),
                    source: "web identity".into(),
                };
                async move { Ok(c) }
            }
        };
        provider.get(exchange(3600)).await.unwrap();
        provider.get(exchange(3600)).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["jwt-one"], "fresh credentials are reused");
        std::fs::write(&token, "jwt-two").unwrap();
        // Expiring inside the renewal margin: exchanged again, with the new token.
        provider.cached.lock().await.as_mut().unwrap().expires = Some(SystemTime::now() + Duration::from_secs(60));
        provider.get(exchange(3600)).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["jwt-one", "jwt-two"]);
    }
}
