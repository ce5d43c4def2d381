//! The model URI grammar.

use kubegrid_serving::ModelUri;

#[test]
fn each_scheme_parses_into_its_parts() {
    assert_eq!(
        ModelUri::parse(
            "hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659"
        )
        .unwrap(),
        ModelUri::HuggingFace {
            org: "meta-llama".into(),
            name: "Llama-3.1-8B-Instruct".into(),
            revision: "0e9e39f249a16976918f6564b8830bc894c89659".into(),
        }
    );
    let ModelUri::HuggingFace { revision, .. } = ModelUri::parse("hf://Qwen/Qwen2.5-7B").unwrap()
    else {
        panic!("not hf");
    };
    assert_eq!(
        revision, "main",
        "an omitted revision is main, resolved to a commit later"
    );
    assert_eq!(
        ModelUri::parse("s3://models.example/llama/8b/").unwrap(),
        ModelUri::S3 {
            bucket: "models.example".into(),
            prefix: "llama/8b".into()
        }
    );
    assert_eq!(
        ModelUri::parse("pvc://weights/llama").unwrap(),
        ModelUri::Pvc {
            claim: "weights".into(),
            path: "llama".into()
        }
    );
    assert!(matches!(
        ModelUri::parse("https://cdn.example/m/"),
        Ok(ModelUri::Https { .. })
    ));
    assert!(ModelUri::parse("hf://a/b").unwrap().lists_hashes());
    assert!(!ModelUri::parse("s3://bucket").unwrap().lists_hashes());
}

#[test]
fn bad_uris_are_refused_saying_why_and_listing_the_forms() {
    for (uri, why) in [
        ("meta-llama/Llama-3.1-8B", "no scheme"),
        ("ftp://host/model", "unknown scheme \"ftp\""),
        ("http://host/model", "plain http is refused"),
        ("hf://llama", "ORG/NAME"),
        ("hf://meta-llama/Llama@", "revision"),
        ("hf://meta-llama/Llama@a..b", "revision"),
        ("hf://-org/name", "not starting with"),
        ("s3://Bucket/x", "bucket"),
        ("s3://bucket/a/../b", "'..'"),
        ("https:///path", "needs a host"),
        ("https://user@host/m", "no user info"),
        ("pvc://Claim/x", "DNS subdomain"),
        ("pvc://claim/../etc", "'..'"),
    ] {
        let err = ModelUri::parse(uri).expect_err(uri).to_string();
        assert!(err.contains(why), "{uri}: {err}");
        assert!(
            err.contains(&format!("{uri:?}")),
            "{uri}: names the uri: {err}"
        );
        assert!(
            err.contains("hf://ORG/NAME[@REVISION]"),
            "{uri}: lists the forms: {err}"
        );
    }
}
