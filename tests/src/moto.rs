//! A throwaway AWS for tests: moto's server mode (`moto_server`, from
//! `pip install 'moto[server]'`) on a free loopback port, with request
//! authentication ON, stopped and its temp dir deleted on drop or when the
//! test process dies.
//!
//! Authentication: moto checks signatures and IAM policies once it has
//! served `INITIAL_NO_AUTH_ACTION_COUNT` requests. The fixture starts it
//! with [`BOOTSTRAP_CALLS`] and spends exactly those on creating an admin
//! user ([`ADMIN_USER`]) with an allow-all inline policy and an access key
//! ([`Moto::admin`]). From then on an unknown key gets
//! `InvalidClientTokenId`, a wrong secret `SignatureDoesNotMatch`, and an
//! action the caller's policies do not allow `AccessDenied`, as in AWS.
//!
//! Where moto (5.2) differs from AWS, measured here; tests must not rely on
//! the AWS behaviour in these points:
//! - An *Inactive* access key still signs requests that moto accepts; only
//!   a deleted key is refused. A test proves deactivation by the key's
//!   status ([`Moto::access_keys`]), not by a refused call.
//! - `UpdateSecretVersionStage` does not check `RemoveFromVersionId`
//!   (AWS refuses a move whose `RemoveFromVersionId` is not the version
//!   holding the stage).
//! - `PutSecretValue` with an existing `ClientRequestToken` and a different
//!   value overwrites that version if it is labelled `AWSPENDING` (AWS
//!   refuses with `ResourceExistsException`, as moto does for the others).
//! - An unsigned `AssumeRoleWithWebIdentity` is answered 500 once
//!   authentication is on ([`Moto::start_with_free_calls`]).
//! - IAM is strongly consistent: a new key works at once (in AWS it may be
//!   refused for seconds).
//!
//! The process group: a watchdog shell leads it ([`crate::watchdog`]);
//! when the test process closes its pipe it SIGTERMs the group, deletes the
//! temp dir and SIGKILLs what is left.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use quick_xml::events::Event;
use serde_json::Value;

use crate::watchdog::{Watchdog, block_on, client, free_port};

/// The admin user the fixture creates.
pub const ADMIN_USER: &str = "rotator-test-admin";
/// The requests moto serves without authentication: the admin's bootstrap.
pub const BOOTSTRAP_CALLS: u32 = 3;
/// The region every fixture call signs for unless told otherwise.
pub const REGION: &str = "us-east-1";
/// A policy that allows everything.
pub const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// What a user needs to rotate its own access key with the
/// `aws-iam-access-key` plugin (`sts:GetCallerIdentity` needs no
/// permission, in AWS as in moto). moto matches a statement's `Resource`
/// only against `*`, so it is `*` here; in AWS scope it to the user
/// (`arn:aws:iam::<account>:user/${aws:username}`, docs/http.md).
pub const SELF_SERVICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:ListAccessKeys","iam:CreateAccessKey","iam:UpdateAccessKey","iam:DeleteAccessKey","iam:GetAccessKeyLastUsed"],"Resource":"*"}]}"#;

/// A server slower than this to answer has failed.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long drop waits for the watchdog.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// The watchdog (`$1` is the temp dir): blocks until the test process
/// closes its stdin, then stops the group it leads, ignoring its own TERM.
const WATCHDOG: &str = r#"trap '' TERM
while read -r _; do :; done
kill -TERM 0
sleep 1
rm -rf "$1"
kill -KILL 0
"#;

/// An AWS access key pair. `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for AwsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// A running moto server.
pub struct Moto {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`: every service answers here.
    pub endpoint: String,
    /// The admin's key (allowed everything).
    pub admin: AwsKey,
    http: reqwest::Client,
    /// Stops the server (see the module doc).
    watchdog: Watchdog,
    server: Child,
}

impl Moto {
    /// Start a server, wait until it answers and create the admin. Panics
    /// with the server's log on failure.
    pub fn start() -> Self {
        Self::start_with_free_calls(0)
    }

    /// [`Self::start`], with `extra` more requests after the admin's that
    /// moto answers without checking. For web identity: moto answers an
    /// unsigned `AssumeRoleWithWebIdentity` (which AWS takes unsigned) with
    /// 500 once it checks, so a test spends the last free request on it.
    pub fn start_with_free_calls(extra: u32) -> Self {
        let found = Command::new("sh").args(["-c", "command -v moto_server"]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "moto_server not found on PATH; ./scripts/test.sh installs it (python3 -m pip install 'moto[server]')"
        );
        let mut moto = Self::spawn(BOOTSTRAP_CALLS + extra);
        if let Err(why) = block_on(moto.bootstrap()) {
            let log = moto.log_tail();
            panic!("moto did not start: {why}\n{log}");
        }
        moto
    }

    /// Launch the watchdog and the server; nothing waits yet.
    fn spawn(free_calls: u32) -> Self {
        let dir = tempfile::Builder::new().prefix("rotator-moto-").tempdir().unwrap();
        let port = free_port();
        let root = dir.path().to_path_buf();
        let command = |program: &str, group: u32| {
            let mut c = Command::new(program);
            c.current_dir(&root).env_remove("NOTIFY_SOCKET").process_group(group as i32).stdin(Stdio::null());
            let out = std::fs::OpenOptions::new().create(true).append(true).open(root.join("moto.log")).unwrap();
            c.stdout(out.try_clone().unwrap()).stderr(out);
            c
        };
        let watchdog = Watchdog::start(command("sh", 0), WATCHDOG, &root);
        let server = command("moto_server", watchdog.group())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free_calls.to_string())
            // Fake credentials in the environment must not leak into moto.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto_server: {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let admin = AwsKey { id: String::new(), secret: String::new() };
        Self { dir, endpoint, admin, http: client(), watchdog, server }
    }

    /// Wait for the port, then spend the unauthenticated calls on the admin
    /// (any key signs them: moto does not check yet).
    async fn bootstrap(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        while TcpStream::connect(&addr).is_err() {
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(format!("moto_server exited ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!("not listening within {READY_WITHIN:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let anyone = AwsKey { id: "AKIABOOTSTRAP0000000".into(), secret: "bootstrap".into() };
        let fail = |what: &str, (status, body): (u16, String)| format!("{what}: {status} {body}");
        self.call(&anyone, "iam", REGION, &[("Action", "CreateUser"), ("UserName", ADMIN_USER)])
            .await
            .map_err(|e| fail("CreateUser", e))?;
        let policy = [
            ("Action", "PutUserPolicy"),
            ("UserName", ADMIN_USER),
            ("PolicyName", "allow-all"),
            ("PolicyDocument", ALLOW_ALL),
        ];
        self.call(&anyone, "iam", REGION, &policy).await.map_err(|e| fail("PutUserPolicy", e))?;
        let created = self
            .call(&anyone, "iam", REGION, &[("Action", "CreateAccessKey"), ("UserName", ADMIN_USER)])
            .await
            .map_err(|e| fail("CreateAccessKey", e))?;
        self.admin = key_of(&created);
        Ok(())
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default();
        let mut lines: Vec<&str> = text.lines().rev().take(40).collect();
        lines.reverse();
        format!("--- moto.log (last 40 lines)\n{}\n", lines.join("\n"))
    }

    /// The server's temp dir (deleted when it stops).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A query-protocol call (IAM, STS): `POST /` with `form` (which names
    /// the `Action`) and the service's `Version`, signed with `key` for
    /// `service` in `region`. The XML answer, or the status and body of an
    /// error.
    pub async fn call(
        &self,
        key: &AwsKey,
        service: &str,
        region: &str,
        form: &[(&str, &str)],
    ) -> Result<String, (u16, String)> {
        let version = match service {
            "iam" => "2010-05-08",
            "sts" => "2011-06-15",
            other => panic!("no query-protocol API version known for `{other}`"),
        };
        let pairs = form.iter().copied().chain([("Version", version)]);
        let body: Vec<String> = pairs.map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        let body = body.join("&");
        let headers = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
        self.send(key, service, region, &headers, body.into_bytes()).await
    }

    /// A JSON 1.1 call (Secrets Manager): `POST /` with `X-Amz-Target:
    /// target` (`secretsmanager.CreateSecret`) and `body`, signed with `key`.
    pub async fn json_call(
        &self,
        key: &AwsKey,
        service: &str,
        region: &str,
        target: &str,
        body: &Value,
    ) -> Result<Value, (u16, String)> {
        let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)];
        let text = self.send(key, service, region, &headers, body.to_string().into_bytes()).await?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| (200, format!("not JSON ({e}): {text}")))
    }

    /// Sign and send `POST /`; a transport failure panics.
    async fn send(
        &self,
        key: &AwsKey,
        service: &str,
        region: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<String, (u16, String)> {
        let url = format!("{}/", self.endpoint);
        let host = self.endpoint.trim_start_matches("http://");
        let mut all: Vec<(&str, &str)> = vec![("host", host)];
        all.extend_from_slice(headers);
        let signed = signature_headers(key, service, region, &url, &all, &body);
        let mut req = self.http.post(&url).body(body);
        for (name, value) in headers.iter().copied().chain(signed.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
            req = req.header(name, value);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("moto did not answer: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) { Ok(text) } else { Err((status, text)) }
    }

    /// Create IAM user `name` with the inline policy `policy_json` and an
    /// access key: the key.
    pub async fn create_user(&self, name: &str, policy_json: &str) -> AwsKey {
        let admin = &self.admin;
        let ok = |what: &str, r: Result<String, (u16, String)>| r.unwrap_or_else(|e| panic!("{what} {name}: {e:?}"));
        ok("CreateUser", self.call(admin, "iam", REGION, &[("Action", "CreateUser"), ("UserName", name)]).await);
        let policy =
            [("Action", "PutUserPolicy"), ("UserName", name), ("PolicyName", "test"), ("PolicyDocument", policy_json)];
        ok("PutUserPolicy", self.call(admin, "iam", REGION, &policy).await);
        self.create_key(name).await
    }

    /// A new access key for user `name`, made by the admin.
    pub async fn create_key(&self, name: &str) -> AwsKey {
        let form = [("Action", "CreateAccessKey"), ("UserName", name)];
        let created = self.call(&self.admin, "iam", REGION, &form).await;
        key_of(&created.unwrap_or_else(|e| panic!("CreateAccessKey {name}: {e:?}")))
    }

    /// The ARN `key` authenticates as (`sts:GetCallerIdentity`).
    pub async fn caller_identity(&self, key: &AwsKey) -> Result<String, (u16, String)> {
        let xml = self.call(key, "sts", REGION, &[("Action", "GetCallerIdentity")]).await?;
        xml_field(&xml, "Arn").ok_or_else(|| (200, format!("no Arn in {xml}")))
    }

    /// User `name`'s access keys as (id, status), in IAM's order.
    pub async fn access_keys(&self, name: &str) -> Vec<(String, String)> {
        let xml = self.call(&self.admin, "iam", REGION, &[("Action", "ListAccessKeys"), ("UserName", name)]).await;
        let xml = xml.unwrap_or_else(|e| panic!("ListAccessKeys {name}: {e:?}"));
        xml_fields(&xml, "AccessKeyId").into_iter().zip(xml_fields(&xml, "Status")).collect()
    }

    /// Config for an hourly `aws-iam-access-key` job `id` that rotates IAM
    /// user `user`'s key in `secret/<path>` (which must hold its current
    /// key), with IAM and STS at this server and an HTTP grant for exactly
    /// the calls it makes (`POST /`).
    pub fn access_key_job(&self, id: &str, path: &str, user: &str) -> String {
        format!(
            r#"[[jobs]]
id = "{id}"
plugin = "aws-iam-access-key"
secret = {{ path = "{path}" }}
interval = "1h"
settings = {{ user_name = "{user}", iam_endpoint = "{url}", sts_endpoint = "{url}", region = "{REGION}" }}

[[jobs.grants]]
http = "{url}"
paths = ["/"]
methods = ["POST"]
"#,
            url = self.endpoint,
        )
    }

    /// The secret an `aws-iam-access-key` job holds for `key`.
    pub fn secret_of(key: &AwsKey) -> Value {
        serde_json::json!({"access_key_id": key.id, "secret_access_key": key.secret})
    }

    /// A host AWS client for this server, signing with `key`, retrying as `retry` says.
    pub fn client(&self, key: &AwsKey, retry: rotator_core::vault::RequestRetry) -> rotator_core::aws::AwsClient {
        client_at(&self.endpoint, key, retry)
    }

    /// The environment a process uses to reach this server as the admin.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.admin.id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.admin.secret.clone()),
            ("AWS_REGION".into(), REGION.into()),
        ]
    }
}

/// A host AWS client for the server at `endpoint` (moto, or a proxy in
/// front of it), signing with `key`.
pub fn client_at(
    endpoint: &str,
    key: &AwsKey,
    retry: rotator_core::vault::RequestRetry,
) -> rotator_core::aws::AwsClient {
    use rotator_core::aws::{AwsClient, AwsEnv, Credentials, CredentialsProvider};
    let env = AwsEnv::from_pairs([("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned())]);
    let credentials = CredentialsProvider::fixed(Credentials {
        access_key_id: key.id.clone(),
        secret_access_key: key.secret.clone().into(),
        session_token: None,
        expires: None,
        source: "test".into(),
    });
    AwsClient::new(env, credentials, Duration::from_secs(10), retry).unwrap()
}

/// `text` form-encoded as moto re-encodes it to check the signature
/// (Python's `quote_plus`: only `A-Z a-z 0-9 _ . - ~` stay, space is `+`);
/// the WHATWG encoding `url` uses keeps `*`, which moto's check would not.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The key in a `CreateAccessKey` answer.
fn key_of(xml: &str) -> AwsKey {
    match (xml_field(xml, "AccessKeyId"), xml_field(xml, "SecretAccessKey")) {
        (Some(id), Some(secret)) => AwsKey { id, secret },
        _ => panic!("no access key in the CreateAccessKey answer"),
    }
}

/// The SigV4 headers (`authorization`, `x-amz-date`) for `POST url`.
fn signature_headers(
    key: &AwsKey,
    service: &str,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    let identity = aws_credential_types::Credentials::new(&key.id, &key.secret, None, None, "moto-fixture").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.into_parts().0.into_iter().map(|h| (h.name().to_owned(), h.value().to_owned())).collect()
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.watchdog.stop(STOP_WITHIN);
        let _ = self.server.wait();
    }
}

/// The server of this test process, started on first use and stopped when
/// the process exits (see the module doc).
pub fn shared() -> &'static Moto {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    SERVER.get_or_init(Moto::start)
}

impl Moto {
    /// [`shared`], as the brief's callers name it.
    pub fn shared() -> &'static Moto {
        shared()
    }
}

/// The text of the first element named `name` (local name, at any depth).
pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    xml_fields(xml, name).into_iter().next()
}

/// The text of every element named `name` (local name, at any depth), in
/// document order, entities resolved. Stops at the first malformed part.
pub fn xml_fields(xml: &str, name: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut out, mut inside) = (Vec::new(), None::<String>);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == name => inside = Some(String::new()),
            Ok(Event::Empty(e)) if e.local_name().as_ref() == name => out.push(String::new()),
            Ok(Event::Text(t)) => {
                if let Some(text) = inside.as_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(text) = inside.as_mut() {
                    let entity = match r.resolve_char_ref().ok().flatten() {
                        Some(c) => c.to_string(),
                        None => match &*r {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            _ => String::new(),
                        },
                    };
                    text.push_str(&entity);
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == name => out.extend(inside.take()),
            Ok(Event::Eof) | Err(_) => return out,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
