//! Collecting per-repetition results and rendering them as Markdown tables.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::engines::Kind;

/// The `q` quantile of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Row {
    label: String,
    kind: Kind,
    rep: usize,
    metrics: Vec<(&'static str, f64)>,
}

#[derive(Default)]
pub struct Results {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Results {
    pub fn add(&mut self, label: &str, kind: Kind, rep: usize, metrics: Vec<(&'static str, f64)>) {
        eprintln!(
            "  {label:<55} {:<10} {}",
            kind.name(),
            metrics
                .iter()
                .map(|(n, v)| format!("{n}={}", fmt(*v)))
                .collect::<Vec<_>>()
                .join("  ")
        );
        self.rows.push(Row {
            label: label.to_owned(),
            kind,
            rep,
            metrics,
        });
    }

    pub fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = Vec::new();
        for row in &self.rows {
            if !labels.contains(&row.label) {
                labels.push(row.label.clone());
            }
        }
        labels
    }

    /// rep -> value of `metric` for `kind` under the label starting with `label`.
    fn per_rep(&self, label: &str, kind: Kind, metric: &str) -> BTreeMap<usize, f64> {
        self.rows
            .iter()
            .filter(|r| r.label.starts_with(label) && r.kind == kind)
            .filter_map(|r| {
                r.metrics
                    .iter()
                    .find(|(n, _)| *n == metric)
                    .map(|(_, v)| (r.rep, *v))
            })
            .collect()
    }

    /// Per-repetition ratios a/b (same repetition only).
    fn ratios(
        &self,
        (la, ka, ma): (&str, Kind, &str),
        (lb, kb, mb): (&str, Kind, &str),
    ) -> Vec<f64> {
        let a = self.per_rep(la, ka, ma);
        let b = self.per_rep(lb, kb, mb);
        a.iter()
            .filter_map(|(rep, va)| b.get(rep).map(|vb| va / vb))
            .collect()
    }
}

/// (median, min, max)
pub fn summary(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

pub fn fmt(v: f64) -> String {
    if v.is_nan() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let s = format!("{:.0}", v);
        // thousands separators
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(values: &[f64]) -> String {
    match summary(values) {
        None => "–".into(),
        Some((m, lo, hi)) if values.len() == 1 || lo == hi => fmt(m),
        Some((m, lo, hi)) => format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi)),
    }
}

fn ratio_cell(values: &[f64]) -> String {
    match summary(values) {
        None => "–".into(),
        Some((m, lo, hi)) if values.len() == 1 || lo == hi => format!("{m:.2}×"),
        Some((m, lo, hi)) => format!("{m:.2}× ({lo:.2}–{hi:.2})"),
    }
}

pub fn render(results: &Results, engines: &[Kind]) -> String {
    let mut out = String::new();
    // W7 has its own layout (rows per process count, engines as columns).
    for label in results
        .labels()
        .into_iter()
        .filter(|l| !l.starts_with("W7 "))
    {
        let rows: Vec<&Row> = results.rows.iter().filter(|r| r.label == label).collect();
        let metric_names: Vec<&'static str> = rows[0].metrics.iter().map(|(n, _)| *n).collect();
        let primary = metric_names[0];
        let refs: Vec<Kind> = [Kind::RawAppend, Kind::RawGroup]
            .into_iter()
            .filter(|k| rows.iter().any(|r| r.kind == *k))
            .collect();
        let _ = writeln!(out, "\n### {label}\n");
        let mut header = String::from("| engine |");
        let mut rule = String::from("| --- |");
        for name in &metric_names {
            let _ = write!(header, " {name} |");
            rule.push_str(" ---: |");
        }
        for r in &refs {
            let _ = write!(header, " {primary} ÷ {} |", r.name());
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for &kind in engines {
            if !rows.iter().any(|r| r.kind == kind) {
                continue;
            }
            let mut line = format!("| {} |", kind.name());
            for name in &metric_names {
                let values: Vec<f64> = results.per_rep(&label, kind, name).into_values().collect();
                let _ = write!(line, " {} |", cell(&values));
            }
            for &r in &refs {
                let ratios = results.ratios((&label, kind, primary), (&label, r, primary));
                let _ = write!(line, " {} |", ratio_cell(&ratios));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str(&w7_tables(results));
    let reps = results
        .rows
        .iter()
        .map(|r| r.rep)
        .max()
        .map_or(0, |m| m + 1);
    let _ = writeln!(
        out,
        "\nMedians over {reps} repetition(s), min–max in parentheses; ratios are taken within each repetition, then the median is shown."
    );
    for note in &results.notes {
        let _ = writeln!(out, "\n{note}");
    }
    out.push_str(&targets(results, engines));
    out
}

/// W7: one row per writer-process count, walstate and SQLite side by side; then the
/// single writer process under `Writers::Shared` against `Writers::Exclusive`.
fn w7_tables(results: &Results) -> String {
    let mut out = String::new();
    let labels: Vec<String> = results
        .labels()
        .into_iter()
        .filter(|l| l.starts_with("W7 shared store, "))
        .collect();
    let (w, s) = (Kind::Walstate, Kind::Sqlite);
    let values = |label: &str, kind: Kind, metric: &str| -> Vec<f64> {
        results.per_rep(label, kind, metric).into_values().collect()
    };
    if !labels.is_empty() {
        let _ = writeln!(
            out,
            "\n### W7 several processes write one store (durable single-put commits)\n\n\
             | writer processes | walstate commits/s | sqlite commits/s | walstate ÷ sqlite \
             | walstate commits/fdatasync | walstate p99 µs | sqlite p99 µs \
             | walstate slowest ÷ fastest process | sqlite slowest ÷ fastest process |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for label in &labels {
            let procs = label
                .trim_start_matches("W7 shared store, ")
                .split_whitespace()
                .next()
                .unwrap_or("?");
            let spread = "slowest ÷ fastest process";
            let _ = writeln!(
                out,
                "| {procs} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&values(label, w, "commits/s")),
                cell(&values(label, s, "commits/s")),
                ratio_cell(&results.ratios((label, w, "commits/s"), (label, s, "commits/s"))),
                cell(&values(label, w, "commits/fdatasync")),
                cell(&values(label, w, "p99 µs")),
                cell(&values(label, s, "p99 µs")),
                cell(&values(label, w, spread)),
                cell(&values(label, s, spread)),
            );
        }
    }
    let exclusive = crate::w7::EXCLUSIVE_LABEL;
    let shared = crate::w7::shared_label(1);
    if results.labels().iter().any(|l| l == exclusive) {
        let _ = writeln!(
            out,
            "\n### W7 one writer process: walstate Writers::Shared vs Writers::Exclusive\n\n\
             | writers | commits/s | p50 µs | p99 µs | commits/fdatasync | commits/s ÷ Exclusive |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for (name, label) in [
            ("Exclusive", exclusive),
            ("Shared (default)", shared.as_str()),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} |",
                cell(&values(label, w, "commits/s")),
                cell(&values(label, w, "p50 µs")),
                cell(&values(label, w, "p99 µs")),
                cell(&values(label, w, "commits/fdatasync")),
                ratio_cell(&results.ratios((label, w, "commits/s"), (exclusive, w, "commits/s"))),
            );
        }
    }
    out
}

fn verdict(values: &[f64], ok: impl Fn(f64) -> bool) -> (String, String) {
    match summary(values) {
        None => ("not run".into(), "–".into()),
        Some((m, _, _)) => (
            if ok(m) { "met" } else { "**missed**" }.into(),
            ratio_cell(values),
        ),
    }
}

fn target_row(out: &mut String, name: &str, values: &[f64], ok: impl Fn(f64) -> bool, what: &str) {
    let (v, r) = verdict(values, ok);
    let _ = writeln!(out, "| {name} | {v} | {r} {what} |");
}

fn targets(results: &Results, engines: &[Kind]) -> String {
    let w = Kind::Walstate;
    let mut out = String::from(
        "\n### Targets\n\n| target | result | measured (median of per-repetition values, min–max) |\n| --- | --- | --- |\n",
    );
    let w1 = "W1 durable";
    let w2_16 = "W2 durable commits, 16 threads";
    // "Ahead of every peer": per repetition, walstate ÷ the best peer of that repetition.
    let vs_best_peer =
        |label: &str, metric: &str, peers: &dyn Fn(Kind) -> bool| -> (Vec<f64>, String) {
            let ours = results.per_rep(label, w, metric);
            let peer_kinds: Vec<Kind> = engines.iter().copied().filter(|k| peers(*k)).collect();
            let mut ratios = Vec::new();
            let mut best_names = Vec::new();
            for (rep, v) in &ours {
                let best = peer_kinds
                    .iter()
                    .filter_map(|k| {
                        results
                            .per_rep(label, *k, metric)
                            .get(rep)
                            .map(|p| (*k, *p))
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((k, p)) = best {
                    ratios.push(v / p);
                    if !best_names.contains(&k.name()) {
                        best_names.push(k.name());
                    }
                }
            }
            (ratios, best_names.join("/"))
        };
    target_row(
        &mut out,
        "W1 ≥ 0.95× raw-group (pre-sized group-commit reference)",
        &results.ratios((w1, w, "commits/s"), (w1, Kind::RawGroup, "commits/s")),
        |m| m >= 0.95,
        "",
    );
    let (r, best) = vs_best_peer(w1, "commits/s", &|k: Kind| k.same_guarantee_peer());
    target_row(
        &mut out,
        "W1 ahead of every peer with the same guarantee (redb, fjall, okaywal, sqlite)",
        &r,
        |m| m > 1.0,
        &format!("÷ best peer ({best})"),
    );
    let (r, best) = vs_best_peer(w2_16, "commits/s", &|k: Kind| k.is_peer());
    target_row(
        &mut out,
        "W2 16 threads ahead of every peer",
        &r,
        |m| m > 1.0,
        &format!("÷ best peer ({best})"),
    );
    target_row(
        &mut out,
        "W2 16 threads ≥ 5× our own W1",
        &results.ratios((w2_16, w, "commits/s"), (w1, w, "commits/s")),
        |m| m >= 5.0,
        "",
    );
    let w3 = "W3";
    target_row(
        &mut out,
        "W3 ≥ 3× fjall",
        &results.ratios((w3, w, "puts/s"), (w3, Kind::Fjall, "puts/s")),
        |m| m >= 3.0,
        "",
    );
    let ours: Vec<f64> = results.per_rep(w3, w, "puts/s").into_values().collect();
    let (v, _) = verdict(&ours, |m| m >= 1e6);
    let _ = writeln!(
        out,
        "| W3 ≥ 1 M puts/s on this machine | {v} | {} puts/s |",
        cell(&ours)
    );
    for (label, what) in [
        ("W4 reopen after SIGKILL", "after SIGKILL"),
        ("W4 reopen after clean", "after clean close"),
    ] {
        target_row(
            &mut out,
            &format!("W4 replay {what} no slower than okaywal (time ÷ okaywal's)"),
            &results.ratios((label, w, "seconds"), (label, Kind::Okaywal, "seconds")),
            |m| m <= 1.0,
            "",
        );
    }
    for (w6, what) in [
        ("W6 walstate Options::default()", "default options"),
        (
            "W6 walstate checkpoint_after_bytes(None)",
            "checkpoint_after_bytes(None)",
        ),
    ] {
        let p99: Vec<f64> = results.per_rep(w6, w, "p99 ratio").into_values().collect();
        target_row(
            &mut out,
            &format!("W6 p99 during a checkpoint ≤ 2× p99 without ({what})"),
            &p99,
            |m| m <= 2.0,
            "",
        );
        let mem: Vec<f64> = results.per_rep(w6, w, "mem ratio").into_values().collect();
        target_row(
            &mut out,
            &format!("W6 peak memory during the checkpoint ≤ 1.25× before ({what})"),
            &mem,
            |m| m <= 1.25,
            "",
        );
    }
    out
}
