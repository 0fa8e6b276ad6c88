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
echo "== utilization deciles vs 21-day forward return, all securities, 2019 (planted: high utilization, low returns) =="
"$bin" sql --data "$data" "
WITH panel AS (
  SELECT l.date, l.security_id, l.on_loan_qty / l.lendable_qty AS utilization, m.total_return
  FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
), fwd AS (
  SELECT date, security_id, utilization,
         exp(sum(ln(1 + total_return)) OVER (PARTITION BY security_id ORDER BY date
             ROWS BETWEEN 1 FOLLOWING AND 21 FOLLOWING)) - 1 AS fwd21,
         count(*) OVER (PARTITION BY security_id ORDER BY date
             ROWS BETWEEN 1 FOLLOWING AND 21 FOLLOWING) AS ahead
  FROM panel
), buckets AS (
  SELECT date, ntile(10) OVER (PARTITION BY date ORDER BY utilization) AS decile, fwd21
  FROM fwd WHERE ahead = 21 AND date BETWEEN '2019-01-01' AND '2019-12-31'
)
SELECT decile, count(*) AS observations, round(avg(fwd21) * 100, 3) AS mean_fwd21_pct
FROM buckets GROUP BY decile ORDER BY decile"
echo
echo "Data is in $data (planted truth in $data/_truth.json). Try:"
echo "  $bin sql --data $data"
