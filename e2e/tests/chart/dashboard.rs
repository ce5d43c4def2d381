//! The Grafana dashboard `charts/kubegrid/dashboards/kubegrid-serving.json`: every query
//! names only metrics that kubegrid's model cache or vLLM exports (a misspelt or renamed
//! metric is an empty panel that nobody notices), it covers what an operator of the serving
//! layer watches, and the chart ships it in a ConfigMap for Grafana's sidecar.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::render::{Render, chart_dir};

/// PromQL words that are not metric names where they stand outside `(...)`.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
];

/// The metric names a PromQL expression (or Grafana's `label_values(metric, label)`) reads:
/// label matchers, ranges, strings, grouping clauses, functions and `$variables` removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '{' || c == '[' {
            // Matchers or a range, whose strings may hold braces of their own.
            let close = if c == '{' { '}' } else { ']' };
            let mut quoted = false;
            while i < chars.len() && (quoted || chars[i] != close) {
                match chars[i] {
                    '\\' if quoted => i += 1,
                    '"' => quoted = !quoted,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A variable, or a number such as 0.95 or 1e3: skip the whole word.
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.:".contains(chars[i])) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let rest: String = chars[i..].iter().collect();
            let rest = rest.trim_start();
            let next = rest.chars().next();
            // `sum by (le) (...)`: an aggregation whose grouping comes first.
            let grouped = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '('))
            });
            if KEYWORDS.contains(&word.as_str()) {
                // `by (le, model)` and friends: the parenthesis holds label names.
                if next == Some('(') {
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                }
            } else if next == Some('(') || grouped {
                // A function (rate, sum, histogram_quantile, label_values): its argument
                // list is read on, word by word; label_values' second argument is a label.
                if word == "label_values" {
                    let args: String = chars[i..].iter().collect();
                    let inner = args
                        .trim_start()
                        .trim_start_matches('(')
                        .split([',', ')'])
                        .next()
                        .unwrap_or_default();
                    names.extend(metric_names(inner));
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                }
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every sample name kubegrid's model cache, its router and vLLM export.
fn exported() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = kubegrid_serving::vllm::sample_names().into_iter().collect();
    known.extend(
        kubegrid_modelcache::daemon::METRIC_NAMES
            .iter()
            .map(|n| (*n).to_string()),
    );
    // The router's; its wait histogram also as the series a histogram has.
    for name in kubegrid_router::METRIC_NAMES {
        known.insert((*name).to_string());
        if name.ends_with("_seconds") {
            for suffix in ["_bucket", "_sum", "_count"] {
                known.insert(format!("{name}{suffix}"));
            }
        }
    }
    known
}

fn dashboard() -> Value {
    let path = chart_dir().join("dashboards/kubegrid-serving.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every (where, expression) of the dashboard: panel targets and query variables.
fn queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a panel title").to_string();
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a target without expr"));
            out.push((format!("panel {title:?} {}", t["refId"]), expr.to_string()));
        }
    }
    for var in dash["templating"]["list"].as_array().expect("templating") {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().expect("a variable query");
            out.push((format!("variable {}", var["name"]), q.to_string()));
        }
    }
    out
}

#[test]
fn the_metric_extractor_reads_names_and_skips_everything_else() {
    let expr = r#"histogram_quantile(0.95, sum by (le, model_name) (rate(vllm:e2e_request_latency_secnds_bucket{namespace=~"$namespace",x="a{b}"}[5m]))) / on (model, node) foo_total > 0"#;
    assert_eq!(
        metric_names(expr),
        ["foo_total", "vllm:e2e_request_latency_secnds_bucket"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        metric_names(r#"label_values(kubegrid_model_cache_ready{a="b"}, model)"#),
        ["kubegrid_model_cache_ready".to_string()].into()
    );
    // The misspelt name above is not exported, so the dashboard test would name it.
    assert!(!exported().contains("vllm:e2e_request_latency_secnds_bucket"));
}

#[test]
fn every_dashboard_query_names_a_metric_kubegrid_or_vllm_exports() {
    let dash = dashboard();
    let known = exported();
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (place, expr) in queries(&dash) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place} reads no metric: {expr}");
        for n in names {
            if !known.contains(&n) {
                unknown.push(format!("{place}: {n} (in {expr})"));
            }
            used.insert(n);
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics neither kubegrid nor vLLM exports:\n{}\nknown: {known:?}",
        unknown.join("\n")
    );
    // What an operator of the serving layer watches: requests, queue, latency and replicas
    // (vLLM), and the cache's progress, peer share and time to ready.
    for needed in [
        "vllm:request_success_total",
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "kubegrid_model_cache_cached_bytes",
        "kubegrid_model_cache_model_size_bytes",
        "kubegrid_model_cache_peer_bytes_total",
        "kubegrid_model_cache_source_bytes_total",
        "kubegrid_model_cache_time_to_ready_seconds",
        "kubegrid_model_cache_coordinator_epoch",
    ] {
        assert!(used.contains(needed), "no panel reads {needed}");
    }
    // Panel ids are unique (Grafana links and edits panels by id).
    let ids: Vec<_> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "panel ids repeat"
    );
    assert_eq!(dash["uid"], "kubegrid-serving");
}

#[test]
fn the_chart_ships_the_dashboard_for_grafanas_sidecar_when_asked() {
    assert!(
        !Render::valid(json!({})).kinds().contains("ConfigMap"),
        "no dashboard ConfigMap unless asked"
    );
    let values = json!({"metrics": {"dashboards": {"enabled": true,
                                                   "labels": {"team": "ml"}}}});
    let r = Render::valid(values);
    let cm = r.one("ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["labels"]["team"], "ml");
    let shipped: Value = serde_json::from_str(
        cm["data"]["kubegrid-serving.json"]
            .as_str()
            .expect("the dashboard in the ConfigMap"),
    )
    .expect("the shipped dashboard is JSON");
    assert_eq!(shipped, dashboard());
}
