-- Example queries over the naap-loadtest results (tables of 02_tables.sql).
--
-- Each query starts with a `-- name:` line; tests/clickhouse/test_clickhouse_ddl.py runs
-- every named query against a fixture and checks its numbers.
--
-- Conventions:
-- * FINAL collapses the copies of an event that at-least-once delivery may have written
--   twice; without it a redelivered session would count twice until its parts merge.
-- * Outcomes (METRICS.md): `excused_no_capacity` is not a failure and not a success;
--   `gateway_error` (our side) and `aborted` (shutdown) are never charged to the
--   orchestrator. Those three are left out of the failure-rate denominator:
--       failure rate = failed / (attempted - excused - gateway_error - aborted)
--   where failed = every other outcome except `ok`. A rate whose denominator is 0 is NULL
--   ("no data" is not zero).
-- * Quantiles are quantileExactInclusive (linear interpolation between the sorted values,
--   as Excel's PERCENTILE.INC and numpy's default): one row per session keeps the input small.
--   Aggregates skip NULL (not measured) values; all-NULL gives NULL.
-- * To restrict to a window, add a condition such as `started_at >= now() - INTERVAL 7 DAY`.


-- name: sla_by_orchestrator_hour
-- The RFC metrics per orchestrator x pipeline x region x hour (hour of the session start).
--   sessions             sessions attempted (with a known outcome)
--   excused              outcome excused_no_capacity (the orchestrator had no capacity)
--   not_charged          excused + gateway_error + aborted
--   failed, charged      failure_rate = failed / charged
--   swap_rate            sessions with swap_count >= 1 / sessions
--   startup_p50/p95_ms   over the sessions' startup_ms
--   e2e_frames           matched frames behind the e2e figures (sum of the sessions' counts)
--   e2e_merged_p50/p95/p99_ms
--                        over every matched frame of every session, from the sessions'
--                        merged histograms (e2e_buckets_us: counts added per bucket bound,
--                        then the nearest-rank quantile), as METRICS.md requires: never an
--                        average or a percentile of per-session percentiles. 3 significant
--                        figures (a bucket's upper bound); NULL without frames.
--                        e2e_q / ptff_q hold the same quantiles (µs) as one array
--   e2e_p50_median_ms    median of the per-session e2e p50s (the typical session's
--                        typical latency; less sensitive to one bad session)
--   ptff_switches, ptff_merged_p50/p95_ms
--                        prompt switches measured, and prompt-to-first-frame over all of them
--                        (merged ptff_buckets_us, as for e2e)
--   output_fps_mean/p10  over the sessions' output_fps (p10: the slow tail)
--   jitter_fps_cv_mean   mean of the sessions' sigma(fps)/mu(fps)
--   sla_pass_rate        sessions passing their SLA / charged sessions
-- A row with a NULL outcome comes from a malformed event; it is left out here.
WITH
    arrayMap(b -> b.upper_us, e2e_buckets_us) AS e2e_bounds,
    arrayMap(b -> b.count, e2e_buckets_us) AS e2e_counts,
    arrayMap(b -> b.upper_us, ptff_buckets_us) AS ptff_bounds,
    arrayMap(b -> b.count, ptff_buckets_us) AS ptff_counts
SELECT
    orchestrator_url,
    pipeline,
    region,
    toStartOfHour(started_at) AS hour,
    count() AS sessions,
    countIf(outcome = 'excused_no_capacity') AS excused,
    countIf(outcome IN ('excused_no_capacity', 'aborted', 'gateway_error')) AS not_charged,
    countIf(outcome NOT IN ('ok', 'excused_no_capacity', 'aborted', 'gateway_error')) AS failed,
    sessions - not_charged AS charged,
    failed / nullIf(charged, 0) AS failure_rate,
    countIf(swap_count >= 1) / sessions AS swap_rate,
    count(startup_ms) AS startup_samples,
    quantileExactInclusive(0.5)(startup_ms) AS startup_p50_ms,
    quantileExactInclusive(0.95)(startup_ms) AS startup_p95_ms,
    count(e2e_p95_ms) AS e2e_samples,
    sum(arraySum(e2e_counts)) AS e2e_frames,
    quantilesExactWeightedArray(0.5, 0.95, 0.99)(e2e_bounds, e2e_counts) AS e2e_q,
    if(e2e_frames = 0, NULL, e2e_q[1] / 1000) AS e2e_merged_p50_ms,
    if(e2e_frames = 0, NULL, e2e_q[2] / 1000) AS e2e_merged_p95_ms,
    if(e2e_frames = 0, NULL, e2e_q[3] / 1000) AS e2e_merged_p99_ms,
    quantileExactInclusive(0.5)(e2e_p50_ms) AS e2e_p50_median_ms,
    sum(arraySum(ptff_counts)) AS ptff_switches,
    quantilesExactWeightedArray(0.5, 0.95)(ptff_bounds, ptff_counts) AS ptff_q,
    if(ptff_switches = 0, NULL, ptff_q[1] / 1000) AS ptff_merged_p50_ms,
    if(ptff_switches = 0, NULL, ptff_q[2] / 1000) AS ptff_merged_p95_ms,
    avg(output_fps) AS output_fps_mean,
    quantileExactInclusive(0.1)(output_fps) AS output_fps_p10,
    avg(jitter_fps_cv) AS jitter_fps_cv_mean,
    countIf(sla_pass AND outcome NOT IN ('excused_no_capacity', 'aborted', 'gateway_error'))
        / nullIf(charged, 0) AS sla_pass_rate
FROM naap_synthetic.session_results FINAL
WHERE outcome IS NOT NULL
GROUP BY orchestrator_url, pipeline, region, hour
ORDER BY hour, orchestrator_url, pipeline, region;


-- name: outcomes_by_orchestrator
-- How each orchestrator's sessions ended, all hours together (a failure breakdown).
SELECT
    orchestrator_url,
    ifNull(outcome, '(malformed)') AS outcome,
    count() AS sessions
FROM naap_synthetic.session_results FINAL
GROUP BY orchestrator_url, outcome
ORDER BY orchestrator_url, sessions DESC, outcome;


-- name: latest_test_per_orchestrator
-- Coverage: when each orchestrator was last tested, with what result, and how many sessions
-- it has had in all. Orchestrators tested least recently come first.
SELECT
    orchestrator_url,
    max(started_at) AS last_tested_at,
    argMax(outcome, started_at) AS last_outcome,
    argMax(pipeline, started_at) AS last_pipeline,
    argMax(region, started_at) AS last_region,
    argMax(test_run_id, started_at) AS last_test_run_id,
    count() AS sessions_total,
    dateDiff('hour', last_tested_at, now64(3, 'UTC')) AS hours_since_last_test
FROM naap_synthetic.session_results FINAL
WHERE orchestrator_url != ''
GROUP BY orchestrator_url
ORDER BY last_tested_at, orchestrator_url;


-- name: discovered_never_tested
-- Coverage gaps: orchestrators that a discovery round (discovery_results events) returned
-- but that no session result names.
SELECT
    JSONExtractString(item, 'url') AS discovered_url,
    max(event_ts) AS last_discovered_at
FROM naap_synthetic.raw_events FINAL
ARRAY JOIN JSONExtractArrayRaw(data) AS item
WHERE type = 'discovery_results'
  AND discovered_url != ''
  AND discovered_url NOT IN (SELECT orchestrator_url FROM naap_synthetic.session_results)
GROUP BY discovered_url
ORDER BY discovered_url;


-- name: run_summaries
-- The test runs: how long, how many sessions, how they ended.
SELECT
    test_run_id,
    gateway_id,
    region,
    run_started_at,
    run_ended_at,
    sessions_planned,
    sessions_started,
    outcomes,
    orchestrators_tested,
    orchestrators_excused
FROM naap_synthetic.run_summaries FINAL
ORDER BY run_started_at, test_run_id;


-- name: duplicate_ids
-- Delivery check: ids seen more than once in raw_events, read WITHOUT FINAL. Redelivery
-- (at least once) writes such copies; merges collapse them later, so a non-zero count is
-- normal right after a resend but should stay small. extra_rows = the copies beyond the first.
SELECT
    count() AS duplicated_ids,
    ifNull(sum(copies - 1), 0) AS extra_rows
FROM
(
    SELECT id, count() AS copies
    FROM naap_synthetic.raw_events
    GROUP BY id
    HAVING copies > 1
);
