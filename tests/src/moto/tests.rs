//! The fixture's own checks: authentication is really on after the
//! bootstrap, the helpers read what moto answers, and nothing outlives a
//! dropped server.

use super::*;

/// The `Code` of an error answer.
fn code(e: &(u16, String)) -> String {
    xml_field(&e.1, "Code")
        .or_else(|| serde_json::from_str::<Value>(&e.1).ok()?["__type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn authentication_is_on_after_the_bootstrap_and_policies_are_enforced() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let admin_arn = moto.caller_identity(&moto.admin).await.unwrap();
    assert!(admin_arn.ends_with(&format!(":user/{ADMIN_USER}")), "{admin_arn}");

    let wrong = AwsKey { id: moto.admin.id.clone(), secret: format!("{}x", moto.admin.secret) };
    let e = moto.caller_identity(&wrong).await.unwrap_err();
    assert_eq!((e.0, code(&e).as_str()), (403, "SignatureDoesNotMatch"), "{e:?}");
    let unknown = AwsKey { id: "AKIAUNKNOWN000000000".into(), secret: "whatever".into() };
    let e = moto.caller_identity(&unknown).await.unwrap_err();
    assert_eq!(code(&e), "InvalidClientTokenId", "{e:?}");

    // A user whose policy allows only sts:GetCallerIdentity.
    let sts_only =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#;
    let key = moto.create_user("fixture-sts-only", sts_only).await;
    assert!(moto.caller_identity(&key).await.unwrap().ends_with(":user/fixture-sts-only"));
    let e = moto.call(&key, "iam", REGION, &[("Action", "CreateAccessKey"), ("UserName", "fixture-sts-only")]).await;
    assert_eq!(code(&e.unwrap_err()), "AccessDenied");
    assert_eq!(moto.access_keys("fixture-sts-only").await, vec![(key.id.clone(), "Active".to_owned())]);

    // JSON protocol, signed by the admin.
    let created = moto
        .json_call(
            &moto.admin,
            "secretsmanager",
            REGION,
            "secretsmanager.CreateSecret",
            &serde_json::json!({"Name": "fixture/s", "SecretString": "v"}),
        )
        .await
        .unwrap();
    assert!(created["ARN"].as_str().unwrap().contains("fixture/s"), "{created}");
    let env = moto.env();
    assert_eq!(env.iter().find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY").unwrap().1, moto.admin.secret);
    assert!(!format!("{:?}", moto.admin).contains(&moto.admin.secret), "Debug shows the secret");

    let dir = moto.dir().to_path_buf();
    let port = moto.endpoint.rsplit(':').next().unwrap().to_owned();
    drop(moto);
    assert!(!dir.exists(), "{} outlives the drop", dir.display());
    assert!(TcpStream::connect(format!("127.0.0.1:{port}")).is_err(), "moto still listens after the drop");
}

#[test]
fn xml_fields_resolve_entities_and_ignore_namespaces() {
    let xml = r#"<R xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><a:M xmlns:a="x"><K>A&amp;B&#65;</K></a:M><M><K>2</K><Empty/></M></R>"#;
    assert_eq!(xml_fields(xml, "K"), vec!["A&BA".to_owned(), "2".to_owned()]);
    assert_eq!(xml_field(xml, "M"), Some("A&BA".to_owned()), "an element's text includes its children's");
    assert_eq!(xml_field(xml, "Empty"), Some(String::new()));
    assert_eq!(xml_field(xml, "Nope"), None);
    assert_eq!(xml_fields("<R><K>unclosed", "K"), Vec::<String>::new());
}

#[test]
fn shared_server_stops_when_its_process_exits() {
    let test = "moto::tests::shared_server_stops_when_its_process_exits";
    let (words, mut child) = crate::watchdog::in_child_process(test, "ROTATOR_MOTO_SHARED_CHILD", || {
        let moto = Moto::shared();
        assert!(block_on(moto.caller_identity(&moto.admin)).is_ok());
        format!("{} {}", moto.endpoint.trim_start_matches("http://"), moto.dir().display())
    });
    let (addr, dir) = (words[0].clone(), std::path::PathBuf::from(&words[1]));
    assert!(TcpStream::connect(&addr).is_ok() && dir.exists(), "the child's server runs");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let gone =
        crate::watchdog::poll_until(Duration::from_secs(60), || TcpStream::connect(&addr).is_err() && !dir.exists());
    assert!(gone, "the server at {addr} or {} outlives its process", dir.display());
}

mod props {
    use proptest::prelude::*;

    use super::super::xml_fields;

    /// `text` as XML character data, every character that needs it escaped
    /// (some as entities, some as character references).
    fn escape(text: &str) -> String {
        text.chars()
            .map(|c| match c {
                '<' => "&lt;".to_owned(),
                '&' => "&amp;".to_owned(),
                '>' => "&#62;".to_owned(),
                '"' => "&quot;".to_owned(),
                '\'' => "&#x27;".to_owned(),
                c => c.to_string(),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(12), ..ProptestConfig::default() })]

        /// Whatever the values and the text around them, every element named
        /// `Id` comes back with its value, in order, and no other element does.
        #[test]
        fn every_named_value_comes_back_escaped_or_not(
            values in proptest::collection::vec("[^\u{0}-\u{1f}\u{fffe}\u{ffff}]{0,24}", 0..5),
            noise in "[a-zA-Z0-9 ]{0,12}",
        ) {
            let mut xml = String::from("<R xmlns=\"urn:x\">");
            for v in &values {
                xml.push_str(&format!("<Other>{}</Other><Id>{}</Id><IdNot>{noise}</IdNot>", escape(&noise), escape(v)));
            }
            xml.push_str("</R>");
            prop_assert_eq!(xml_fields(&xml, "Id"), values);
        }
    }
}
