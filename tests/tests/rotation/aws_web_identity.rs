//! The host's AWS credentials from web identity (a Kubernetes service
//! account's token, `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`): the
//! token is exchanged with STS (`AssumeRoleWithWebIdentity`, unsigned, as
//! AWS takes it) for temporary credentials, which then sign every call and
//! carry the role's permissions, no more. Against moto with authentication
//! on, on a server of its own (see [`Moto::start_with_free_calls`]).

use std::time::Duration;

use rotator_core::aws::{AwsClient, AwsEnv, AwsError, Service};
use rotator_tests::moto::{Moto, REGION, xml_field};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn web_identity_is_exchanged_with_sts_and_its_role_signs_the_calls() {
    // Free requests: CreateRole, PutRoleInlinePolicy, then the exchange.
    let moto = tokio::task::spawn_blocking(|| Moto::start_with_free_calls(3)).await.unwrap();
    let admin = &moto.admin;
    let role = [("Action", "CreateRole"), ("RoleName", "rotator"), ("AssumeRolePolicyDocument", "{}")];
    let created = moto.call(admin, "iam", REGION, &role).await.unwrap();
    let arn = xml_field(&created, "Arn").expect("the role's ARN");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:CreateSecret","secretsmanager:GetSecretValue"],"Resource":"*"}]}"#;
    let put = [("Action", "PutRolePolicy"), ("RoleName", "rotator"), ("PolicyName", "sm"), ("PolicyDocument", policy)];
    moto.call(admin, "iam", REGION, &put).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.service-account.signature").unwrap();
    let env = AwsEnv::from_pairs([
        ("AWS_ENDPOINT_URL".to_owned(), moto.endpoint.clone()),
        ("AWS_REGION".to_owned(), REGION.to_owned()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(), token.display().to_string()),
        ("AWS_ROLE_ARN".to_owned(), arn.clone()),
        ("AWS_ROLE_SESSION_NAME".to_owned(), "rotator-test".to_owned()),
    ]);
    let aws = AwsClient::from_env(env, Duration::from_secs(10)).unwrap();
    assert!(aws.describe_credentials().contains("web identity"), "{}", aws.describe_credentials());

    // The first call exchanges the token; moto checks every call from here on.
    let name = "web-identity/secret";
    let body = json!({ "Name": name, "SecretString": "{}" });
    aws.json(Service::SECRETS_MANAGER, REGION, "CreateSecret", &body).await.unwrap_or_else(|e| panic!("{e}"));
    let read = aws.json(Service::SECRETS_MANAGER, REGION, "GetSecretValue", &json!({ "SecretId": name })).await;
    assert_eq!(read.unwrap()["SecretString"], "{}");
    // What the role does not allow is refused: the calls are the role's.
    let denied = aws.json(Service::SECRETS_MANAGER, REGION, "DeleteSecret", &json!({ "SecretId": name })).await;
    match denied {
        Err(AwsError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}
