#!/usr/bin/env bash
# The main job, until `lendfusion demo` lands: generate a small global panel (once) and run
# a factor query on it with the embedded engine.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${LENDFUSION_DEMO_DATA:-demo-data}"
cargo build --locked -p lendfusion
bin=target/debug/lendfusion
if [ ! -f "$data/_truth.json" ]; then
  "$bin" generate --out "$data" --securities 1000 --start 2018-01-01 --end 2020-12-31 --seed 42
fi
echo
echo "== tables =="
"$bin" sql --data "$data" "SHOW TABLES"
echo
echo "== utilization deciles vs 21-day forward return, 2019 (planted: high utilization, low returns) =="
"$bin" sql --data "$data" "
WITH panel AS (
  SELECT l.date, l.security_id,
         utilization(l.on_loan_qty, l.lendable_qty) AS util,
         fwd_return(m.total_return, 21) OVER (PARTITION BY l.security_id ORDER BY l.date) AS fwd21
  FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
), buckets AS (
  SELECT date, util, fwd21, cs_bucket(util, 10) OVER (PARTITION BY date) AS decile
  FROM panel WHERE date BETWEEN '2019-01-01' AND '2019-12-31'
)
SELECT decile, count(*) AS observations, round(avg(fwd21) * 100, 3) AS mean_fwd21_pct
FROM buckets WHERE fwd21 IS NOT NULL GROUP BY decile ORDER BY decile"
echo
echo "== daily rank IC of utilization: mean, Newey-West t-stat =="
"$bin" sql --data "$data" "
WITH panel AS (
  SELECT l.date, utilization(l.on_loan_qty, l.lendable_qty) AS util,
         fwd_return(m.total_return, 21) OVER (PARTITION BY l.security_id ORDER BY l.date) AS fwd21
  FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
), ic AS (SELECT date, spearman_ic(util, fwd21) AS ic FROM panel GROUP BY date)
SELECT count(ic) AS dates, round(avg(ic), 4) AS mean_ic, round(nw_tstat(ic ORDER BY date), 2) AS nw_t
FROM ic"
echo
echo "Data is in $data (planted truth in $data/_truth.json). Try:"
echo "  $bin sql --data $data"
