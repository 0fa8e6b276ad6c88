//! Writing a report: every table as CSV and Parquet, and `report.html`, a self-contained
//! tearsheet with SVG charts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::metrics::ReportTables;
use crate::options::ReportOptions;
use crate::svg::{Series, chart};

/// A column of `batches` as text cells (empty for NULL).
pub fn text_column(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut out = vec![];
    for batch in batches {
        let Some(column) = batch.column_by_name(name) else {
            continue;
        };
        let options = FormatOptions::default().with_null("");
        let Ok(formatter) = ArrayFormatter::try_new(column.as_ref(), &options) else {
            continue;
        };
        for row in 0..batch.num_rows() {
            out.push(formatter.value(row).to_string());
        }
    }
    out
}

/// A numeric column of `batches` as `f64` (NULL and non-finite → `None`).
pub fn number_column(batches: &[RecordBatch], name: &str) -> Vec<Option<f64>> {
    let mut out = vec![];
    for batch in batches {
        let Some(column) = batch.column_by_name(name) else {
            continue;
        };
        for row in 0..column.len() {
            let value = if column.is_null(row) {
                None
            } else {
                match column.data_type() {
                    DataType::Float64 => Some(column.as_primitive::<Float64Type>().value(row)),
                    DataType::Int64 => Some(column.as_primitive::<Int64Type>().value(row) as f64),
                    DataType::Int32 => {
                        Some(f64::from(column.as_primitive::<Int32Type>().value(row)))
                    }
                    _ => None,
                }
            };
            out.push(value.filter(|v| v.is_finite()));
        }
    }
    out
}

fn write_csv(path: &Path, batches: &[RecordBatch]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(file);
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<(), String> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    writer
        .close()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// Write every table (CSV and Parquet) and `report.html` into `dir`; returns the HTML path.
pub fn write_report(
    dir: &Path,
    options: &ReportOptions,
    tables: &ReportTables,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut named: Vec<(&str, &[RecordBatch])> = vec![
        ("summary", &tables.summary),
        ("series", &tables.series),
        ("quantile_returns", &tables.quantile_returns),
        ("quantile_means", &tables.quantile_means),
    ];
    if let Some(r) = &tables.regimes {
        named.push(("regimes", r));
    }
    if let Some(s) = &tables.sizes {
        named.push(("sizes", s));
    }
    if let Some(v) = &tables.squeeze_validation {
        named.push(("squeeze_validation", v));
    }
    if let Some(v) = &tables.squeeze_spread {
        named.push(("squeeze_spread", v));
    }
    for (name, batches) in &named {
        write_csv(&dir.join(format!("{name}.csv")), batches)?;
        write_parquet(&dir.join(format!("{name}.parquet")), batches)?;
    }
    // One row per name and date: Parquet only.
    write_parquet(&dir.join("assignments.parquet"), &tables.assignments)?;
    let html = render_html(options, tables);
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Rows of `batches` where column `sample` equals `sample`.
fn sample_rows(batches: &[RecordBatch], sample: &str) -> Vec<usize> {
    text_column(batches, "sample")
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_str() == sample)
        .map(|(i, _)| i)
        .collect()
}

fn pick<T: Clone>(values: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter()
        .filter_map(|&i| values.get(i).cloned())
        .collect()
}

/// Compounded growth and drawdown of a return series (gaps carry the last level).
pub fn cumulative(returns: &[Option<f64>]) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let (mut level, mut peak) = (1.0_f64, 1.0_f64);
    let mut cum = vec![];
    let mut dd = vec![];
    for r in returns {
        if let Some(r) = r {
            level *= 1.0 + r;
            peak = peak.max(level);
        }
        cum.push(Some(level - 1.0));
        dd.push(Some(level / peak - 1.0));
    }
    (cum, dd)
}

fn rolling_mean(values: &[Option<f64>], window: usize) -> Vec<Option<f64>> {
    (0..values.len())
        .map(|i| {
            let from = (i + 1).saturating_sub(window);
            let valid: Vec<f64> = values[from..=i].iter().flatten().copied().collect();
            (valid.len() * 2 >= window.min(i + 1))
                .then(|| valid.iter().sum::<f64>() / valid.len().max(1) as f64)
        })
        .collect()
}

fn html_table(batches: &[RecordBatch]) -> String {
    let Some(first) = batches.first() else {
        return "<p>(no rows)</p>".into();
    };
    let mut out = String::from("<table><thead><tr>");
    for field in first.schema().fields() {
        let _ = write!(out, "<th>{}</th>", field.name());
    }
    out.push_str("</tr></thead><tbody>");
    let names: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns: Vec<Vec<String>> = names
        .iter()
        .map(|n| {
            let numbers = number_column(batches, n);
            let texts = text_column(batches, n);
            texts
                .into_iter()
                .zip(numbers)
                .map(|(t, v)| match v {
                    Some(v) if t.contains('.') || t.contains('e') => format!("{v:.4}"),
                    _ => t,
                })
                .collect()
        })
        .collect();
    let rows = columns.first().map_or(0, Vec::len);
    for row in 0..rows {
        out.push_str("<tr>");
        for column in &columns {
            let _ = write!(
                out,
                "<td>{}</td>",
                column.get(row).map_or("", String::as_str)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn render_html(options: &ReportOptions, tables: &ReportTables) -> String {
    let series = &tables.series;
    let dates = text_column(series, "date");
    let full = sample_rows(series, "full");
    let ex = sample_rows(series, "ex_htb");
    let labels = pick(&dates, &full);
    let ls = number_column(series, "long_short");
    let ic = number_column(series, "ic");
    let ls_full = pick(&ls, &full);
    // Align the ex-HTB series to the full sample's dates.
    let ex_by_date: std::collections::HashMap<String, Option<f64>> =
        ex.iter().map(|&i| (dates[i].clone(), ls[i])).collect();
    let ls_ex: Vec<Option<f64>> = labels
        .iter()
        .map(|d| ex_by_date.get(d).copied().flatten())
        .collect();
    let (cum_full, dd_full) = cumulative(&ls_full);
    let (cum_ex, _) = cumulative(&ls_ex);
    let ic_full = pick(&ic, &full);
    let ic_roll = rolling_mean(&ic_full, 12);

    let means = &tables.quantile_means;
    let q_full = sample_rows(means, "full");
    let q_ex = sample_rows(means, "ex_htb");
    let buckets = pick(&text_column(means, "bucket"), &q_full);
    let q_mean = number_column(means, "mean_return");
    let q_ex_map: std::collections::HashMap<String, Option<f64>> = q_ex
        .iter()
        .map(|&i| (text_column(means, "bucket")[i].clone(), q_mean[i]))
        .collect();
    let q_ex_values: Vec<Option<f64>> = buckets
        .iter()
        .map(|b| q_ex_map.get(b).copied().flatten())
        .collect();

    let charts = [
        chart(
            "Cumulative long/short return",
            &labels,
            &[
                Series {
                    name: "full universe".into(),
                    color: "#1f77b4",
                    values: cum_full,
                    bars: false,
                },
                Series {
                    name: "ex hard-to-borrow".into(),
                    color: "#ff7f0e",
                    values: cum_ex,
                    bars: false,
                },
            ],
            true,
        ),
        chart(
            "Rank IC per rebalance date (12-period rolling mean)",
            &labels,
            &[
                Series {
                    name: "IC".into(),
                    color: "#9ecae1",
                    values: ic_full,
                    bars: true,
                },
                Series {
                    name: "rolling mean".into(),
                    color: "#08519c",
                    values: ic_roll,
                    bars: false,
                },
            ],
            false,
        ),
        chart(
            &format!("Mean {}-day forward return by bucket", options.horizon),
            &buckets,
            &[
                Series {
                    name: "full universe".into(),
                    color: "#1f77b4",
                    values: pick(&q_mean, &q_full),
                    bars: true,
                },
                Series {
                    name: "ex hard-to-borrow".into(),
                    color: "#ff7f0e",
                    values: q_ex_values,
                    bars: true,
                },
            ],
            true,
        ),
        chart(
            "Drawdown of the long/short portfolio",
            &labels,
            &[Series {
                name: "full universe".into(),
                color: "#d62728",
                values: dd_full,
                bars: false,
            }],
            true,
        ),
    ];
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>lendfusion factor report: {title}</title>\
         <style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0 20px}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;font-size:12px;text-align:right}}th{{background:#f3f3f3}}\
         .charts svg{{display:block;margin:8px 0}}code{{background:#f3f3f3;padding:1px 4px}}</style></head><body>\
         <h1>Factor report</h1><p>Factor <code>{title}</code>; universe {universe}; {start} to {end}; {rebalance} \
         rebalance; {horizon}-day forward returns; {q} buckets{zero}; {direction} (long bucket {long}, short bucket {short}); \
         ex-HTB excludes fees above {thr} bps{neutral}.</p>",
        title = escape(&options.factor),
        universe = escape(options.universe.as_deref().unwrap_or("all securities")),
        start = options.start.map_or("first date".into(), |d| d.to_string()),
        end = options.end.map_or("last date".into(), |d| d.to_string()),
        rebalance = options.rebalance.name(),
        horizon = options.horizon,
        q = options.quantiles,
        zero = if options.zero_bucket {
            " (zeros in bucket 0)"
        } else {
            ""
        },
        direction = options.direction.name(),
        long = if matches!(options.direction, crate::options::Direction::Bearish) {
            "lowest"
        } else {
            "highest"
        },
        short = if matches!(options.direction, crate::options::Direction::Bearish) {
            "highest"
        } else {
            "lowest"
        },
        thr = options.htb_threshold_bps,
        neutral = if options.neutralize {
            "; factor neutralised on ln(market cap), book-to-market, 12-1 momentum and 252-day beta"
        } else {
            ""
        },
    );
    html.push_str("<h2>Summary (full universe and ex hard-to-borrow)</h2>");
    html.push_str(&html_table(&tables.summary));
    html.push_str("<div class=\"charts\">");
    for c in &charts {
        html.push_str(c);
    }
    html.push_str("</div><h2>Mean forward return per bucket</h2>");
    html.push_str(&html_table(&tables.quantile_means));
    if let Some(r) = &tables.regimes {
        html.push_str("<h2>By market regime</h2>");
        html.push_str(&html_table(r));
    }
    if let Some(s) = &tables.sizes {
        html.push_str("<h2>IC within market-cap quintiles (1 = smallest)</h2>");
        html.push_str(&html_table(s));
    }
    if let Some(v) = &tables.squeeze_validation {
        html.push_str(&format!(
            "<h2>Squeeze validation: share of names with a squeeze event in the next {} days, \
             and excess forward return over the universe, per bucket</h2>",
            options.horizon
        ));
        html.push_str(&html_table(v));
    }
    if let Some(v) = &tables.squeeze_spread {
        html.push_str(
            "<h2>Lowest bucket by holding period: excess return and spread to the highest</h2>",
        );
        html.push_str(&html_table(v));
    }
    html.push_str(
        "<p>Series: summary, series (per date: IC, long/short, turnover), quantile_returns and \
         quantile_means as CSV and Parquet next to this file.</p></body></html>",
    );
    html
}
