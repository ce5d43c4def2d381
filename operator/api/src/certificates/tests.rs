//! `spec.certificates`: defaults, floors, and the test-only override.

use std::time::Duration;

use super::*;
use crate::cluster::CertificatesSpec;

fn spec(pairs: &[(&str, &str)]) -> CertificatesSpec {
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        let value = match *v {
            "true" | "false" => serde_json::Value::Bool(*v == "true"),
            text => serde_json::Value::String(text.into()),
        };
        map.insert((*k).into(), value);
    }
    serde_json::from_value(serde_json::Value::Object(map)).unwrap()
}

const HOUR: u64 = 3600;

#[test]
fn no_spec_means_the_documented_defaults() {
    let p = policy(None, false).unwrap();
    assert_eq!(
        p,
        CertificatePolicy {
            validity: Duration::from_secs(8760 * HOUR),
            ca_validity: Duration::from_secs(87600 * HOUR),
            renew_before: Duration::from_secs(720 * HOUR),
            warn_before: Duration::from_secs(2880 * HOUR),
            auto_renew: true,
            check_interval: Duration::from_secs(24 * HOUR),
        }
    );
    let off = spec(&[("autoRenew", "false"), ("checkInterval", "10m")]);
    let p = policy(Some(&off), false).unwrap();
    assert!(!p.auto_renew);
    assert_eq!(p.check_interval, Duration::from_secs(600));
}

#[test]
fn values_below_a_floor_are_refused_naming_field_value_floor_and_the_test_override() {
    let short = spec(&[
        ("validity", "5m"),
        ("caValidity", "1h"),
        ("renewBefore", "4m"),
        ("checkInterval", "10s"),
    ]);
    let problems = policy(Some(&short), false).unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.certificates.validity",
            "spec.certificates.caValidity",
            "spec.certificates.renewBefore",
            "spec.certificates.checkInterval",
        ]
    );
    let validity = problems[0].to_string();
    for part in [
        "`5m`",
        "floor of 24h",
        "for tests only",
        SHORT_CERTIFICATES_ENV,
    ] {
        assert!(validity.contains(part), "{part} missing from: {validity}");
    }
    assert!(
        problems[2].seen.contains("floor of 168h"),
        "{:?}",
        problems[2]
    );
    assert!(
        problems[3].seen.contains("floor of 1m"),
        "{:?}",
        problems[3]
    );
}

#[test]
fn the_test_override_lowers_the_floors_but_not_to_nothing() {
    let short = spec(&[
        ("validity", "5m"),
        ("caValidity", "10m"),
        ("renewBefore", "4m"),
        ("checkInterval", "10s"),
    ]);
    let p = policy(Some(&short), true).unwrap();
    assert_eq!(p.validity, Duration::from_secs(300));
    assert_eq!(p.renew_before, Duration::from_secs(240));
    assert_eq!(p.check_interval, Duration::from_secs(10));
    let too_short = spec(&[("validity", "30s"), ("checkInterval", "1s")]);
    let problems = policy(Some(&too_short), true).unwrap_err();
    assert_eq!(problems[0].field, "spec.certificates.validity");
    assert!(
        problems[0].seen.contains("floor of 1m"),
        "{:?}",
        problems[0]
    );
    assert!(problems[0].expected.contains("for tests only"));
    assert_eq!(
        problems.last().unwrap().field,
        "spec.certificates.checkInterval"
    );
}

#[test]
fn renew_before_must_be_shorter_than_validity_and_durations_must_parse() {
    let p = policy(
        Some(&spec(&[("validity", "240h"), ("renewBefore", "240h")])),
        false,
    )
    .unwrap_err();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].field, "spec.certificates.renewBefore");
    assert!(
        p[0].seen.contains("not shorter than validity 240h"),
        "{:?}",
        p[0]
    );
    let p = policy(Some(&spec(&[("warnBefore", "soon")])), false).unwrap_err();
    assert_eq!(p[0].field, "spec.certificates.warnBefore");
    assert_eq!(p[0].seen, "`soon`, which is not a duration");
}
