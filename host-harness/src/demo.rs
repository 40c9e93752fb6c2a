//! `callroute demo`: the whole product on one screen, with no setup and no network beyond
//! loopback. A local CRM answers like the examples in Ringostat's help article, and a sample
//! call is routed through every submission × import combination of the real component.

use crate::Call;
use crate::crm::{CrmReply, CrmRequest, TestCrm};
use crate::router::Router;
use std::io::Write;

const SUBMISSIONS: [&str; 4] = ["http", "form", "json", "json-rpc"];
const IMPORTS: [&str; 3] = ["http", "json", "json-rpc"];
const CELL: usize = 64;

/// The sample call: the fields of the seed's example request.
pub fn sample_call() -> Call {
    Call {
        call_id: "pkv".into(),
        caller: "+380501112233".into(),
        callee: "380441234567".into(),
        vars: vec![
            ("step_forward".into(), "webhookNumber:120".into()),
            ("uuid".into(), "842d921d-5334-4eca-812d-9a478dc8c884".into()),
            ("google_id".into(), "UA-38222689-2".into()),
        ],
    }
}

/// How the demo CRM answers: by the import type in the path, like the seed's examples.
pub fn demo_answer(request: &CrmRequest) -> CrmReply {
    match request.path.as_str() {
        "/http" => CrmReply::html("380123456789"),
        "/json" => CrmReply::json(serde_json::json!({"number_01": "3 80123456789"})),
        _ => {
            let id = request
                .json()
                .get("id")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            CrmReply::json(serde_json::json!({
                "jsonrpc": "2.0",
                "result": {"number_01": "sip:manager_7@pbx.example.com"},
                "id": id,
            }))
        }
    }
}

/// The demo scheme for one combination: the seed's parameters, `GET` asked for (JSON and
/// forms are sent as POST regardless).
pub fn demo_scheme(crm: &TestCrm, submission: &str, import: &str) -> Vec<(String, String)> {
    [
        ("name", format!("demo-{submission}-{import}")),
        ("url", crm.url(&format!("/{import}"))),
        ("method", "GET".into()),
        ("submission", submission.into()),
        ("import", import.into()),
        ("destination_field", "number_01".into()),
        ("jsonrpc_method", "route".into()),
        ("ring_timeout_secs", "30".into()),
        ("response_timeout_secs", "2".into()),
        ("params.call_id", "{call_id}".into()),
        ("params.step_forward", "{step_forward}".into()),
        ("params.uuid", "{uuid}".into()),
        ("params.google_id", "{google_id}".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Run the demo, writing the table to `out`. Returns whether every combination routed.
pub async fn run(router: &Router, out: &mut impl Write) -> std::io::Result<bool> {
    let crm = TestCrm::start(demo_answer)?;
    let call = sample_call();
    writeln!(
        out,
        "callroute demo: a sample call routed through the real component against a CRM on {}",
        crm.addr()
    )?;
    writeln!(
        out,
        "call: call_id={} caller={} callee={} step_forward, uuid, google_id\n",
        call.call_id, call.caller, call.callee
    )?;
    let mut rows = vec![[
        "submission".to_owned(),
        "import".to_owned(),
        "sent to the CRM".to_owned(),
        "CRM answered".to_owned(),
        "routed to".to_owned(),
        "ms".to_owned(),
    ]];
    let mut all_routed = true;
    for submission in SUBMISSIONS {
        for import in IMPORTS {
            let seen = crm.requests().len();
            let scheme = router.prepare(demo_scheme(&crm, submission, import));
            let report = router.route(&scheme, &call).await;
            let request = crm.requests().into_iter().nth(seen);
            let sent = request
                .as_ref()
                .map(CrmRequest::summary)
                .unwrap_or_else(|| "(nothing)".into());
            let answered = request
                .as_ref()
                .map(|r| demo_answer(r).body_text())
                .unwrap_or_default();
            let routed = match &report.result {
                Ok(r) => format!("{} {}", r.first().target.kind(), r.first().target.value()),
                Err(e) => {
                    all_routed = false;
                    format!("FAILED {e}")
                }
            };
            rows.push([
                submission.into(),
                import.into(),
                sent,
                answered,
                routed,
                report.elapsed.as_millis().to_string(),
            ]);
        }
    }
    print_table(out, &rows)?;
    writeln!(
        out,
        "\nJSON and forms are always POSTed; the `http` submission keeps the scheme's GET and puts the parameters in the query."
    )?;
    Ok(all_routed)
}

fn print_table(out: &mut impl Write, rows: &[[String; 6]]) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| callroute_plugin::error::excerpt(c, CELL))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", line.join(" | ").trim_end())?;
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            writeln!(out, "{}", rule.join("-+-"))?;
        }
    }
    Ok(())
}
