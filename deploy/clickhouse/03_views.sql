-- naap-loadtest results pipeline, step 3 of 3: materialized views from the Kafka source
-- (01_kafka_source.sql) into the tables (02_tables.sql). Apply after both.
--
-- Each view runs on every block the Kafka table consumes. They use only JSONExtract*
-- functions and the *OrNull / *OrZero conversions, none of which throws: a missing key or a
-- `data` that is not JSON at all gives NULL / '' / [], a value of the wrong type NULL in a
-- numeric or boolean column. A malformed event therefore lands with empty columns instead
-- of failing the block (which would stall the consumer).
--
-- event_ts: the envelope `timestamp` is unix milliseconds as decimal text
-- ("1767830402655"), which parseDateTime64BestEffort would misread, so 12 or 13 digits are
-- read as milliseconds; anything else is parsed as a date-time (ISO 8601, unix seconds),
-- and an unreadable timestamp becomes the time of ingestion.

-- Every envelope, whatever its family.
CREATE MATERIALIZED VIEW IF NOT EXISTS naap_synthetic.raw_events_mv
TO naap_synthetic.raw_events
AS
WITH JSONType(data) = 'Array' AS is_array
SELECT
    id,
    type,
    if(match(timestamp, '^[0-9]{12,13}$'),
       fromUnixTimestamp64Milli(toInt64OrZero(timestamp), 'UTC'),
       ifNull(parseDateTime64BestEffortOrNull(timestamp, 3, 'UTC'), now64(3, 'UTC'))) AS event_ts,
    gateway,
    JSONExtractString(data, 'type') AS subtype,
    JSONExtractString(data, 'stream_id') AS stream_id,
    JSONExtractString(data, 'request_id') AS request_id,
    -- Array payloads (discovery_results, network_capabilities) carry the tags in each
    -- element: take them from the first one.
    if(is_array, JSONExtractString(data, 1, 'test_run_id'),
       JSONExtractString(data, 'test_run_id')) AS test_run_id,
    if(is_array, JSONExtractString(data, 1, 'region'),
       JSONExtractString(data, 'region')) AS region,
    multiIf(is_array, JSONExtractString(data, 1, 'orch_uri'),
            JSONExtractString(data, 'orchestrator_info', 'url') != '',
            JSONExtractString(data, 'orchestrator_info', 'url'),
            JSONExtractString(data, 'target_orchestrator_url')) AS orchestrator_url,
    data
FROM naap_synthetic.kafka_events;

-- synthetic_test_result / session_result -> session_results.
CREATE MATERIALIZED VIEW IF NOT EXISTS naap_synthetic.session_results_mv
TO naap_synthetic.session_results
AS
SELECT
    id,
    if(match(timestamp, '^[0-9]{12,13}$'),
       fromUnixTimestamp64Milli(toInt64OrZero(timestamp), 'UTC'),
       ifNull(parseDateTime64BestEffortOrNull(timestamp, 3, 'UTC'), now64(3, 'UTC'))) AS event_ts,
    gateway,

    JSONExtract(data, 'synthetic', 'Nullable(Bool)') AS synthetic,
    JSONExtractString(data, 'client_source') AS client_source,
    JSONExtractString(data, 'schema_version') AS schema_version,
    JSONExtractString(data, 'test_run_id') AS test_run_id,
    JSONExtractString(data, 'scenario') AS scenario,
    JSONExtractString(data, 'dataset_id') AS dataset_id,
    JSONExtractString(data, 'dataset_version') AS dataset_version,
    JSONExtract(data, 'dataset_sha256', 'Nullable(String)') AS dataset_sha256,
    JSONExtractString(data, 'gateway_id') AS gateway_id,
    JSONExtractString(data, 'region') AS region,
    JSONExtractString(data, 'workflow') AS workflow,
    JSONExtractString(data, 'pipeline') AS pipeline,
    JSONExtractString(data, 'model_id') AS model_id,
    JSONExtractString(data, 'pipeline_id') AS pipeline_id,
    JSONExtractString(data, 'target_orchestrator_url') AS target_orchestrator_url,

    JSONExtractString(data, 'stream_id') AS stream_id,
    JSONExtractString(data, 'request_id') AS request_id,
    JSONExtractString(data, 'orchestrator_info', 'address') AS orchestrator_address,
    JSONExtractString(data, 'orchestrator_info', 'url') AS orchestrator_info_url,
    if(orchestrator_info_url != '', orchestrator_info_url, target_orchestrator_url)
        AS orchestrator_url,

    JSONExtract(data, 'outcome', 'Nullable(String)') AS outcome,
    JSONExtract(data, 'failure_category', 'Nullable(String)') AS failure_category,
    JSONExtract(data, 'failure_reason', 'Nullable(String)') AS failure_reason,
    JSONExtract(data, 'excused', 'Nullable(Bool)') AS excused,
    ifNull(parseDateTime64BestEffortOrNull(JSONExtractString(data, 'started_at'), 3, 'UTC'),
           event_ts) AS started_at,
    parseDateTime64BestEffortOrNull(JSONExtractString(data, 'ended_at'), 3, 'UTC') AS ended_at,

    JSONExtract(data, 'measure_window_ms', 'Nullable(Float64)') AS measure_window_ms,
    JSONExtract(data, 'job_accept_ms', 'Nullable(Float64)') AS job_accept_ms,
    JSONExtract(data, 'first_output_byte_ms', 'Nullable(Float64)') AS first_output_byte_ms,
    JSONExtract(data, 'startup_ms', 'Nullable(Float64)') AS startup_ms,
    JSONExtract(data, 'prompt_to_first_frame_ms', 'count', 'Nullable(UInt64)') AS ptff_count,
    JSONExtract(data, 'prompt_to_first_frame_ms', 'p50', 'Nullable(Float64)') AS ptff_p50_ms,
    JSONExtract(data, 'prompt_to_first_frame_ms', 'p95', 'Nullable(Float64)') AS ptff_p95_ms,
    JSONExtract(data, 'prompt_to_first_frame_ms', 'max', 'Nullable(Float64)') AS ptff_max_ms,
    -- Malformed pairs read as (value, 0) and are dropped with the empty buckets.
    arrayFilter(b -> b.2 > 0, JSONExtract(data, 'prompt_to_first_frame_ms', 'buckets_us',
                                          'Array(Tuple(UInt64, UInt64))')) AS ptff_buckets_us,
    JSONExtract(data, 'e2e_latency_ms', 'count', 'Nullable(UInt64)') AS e2e_count,
    JSONExtract(data, 'e2e_latency_ms', 'p50', 'Nullable(Float64)') AS e2e_p50_ms,
    JSONExtract(data, 'e2e_latency_ms', 'p90', 'Nullable(Float64)') AS e2e_p90_ms,
    JSONExtract(data, 'e2e_latency_ms', 'p95', 'Nullable(Float64)') AS e2e_p95_ms,
    JSONExtract(data, 'e2e_latency_ms', 'p99', 'Nullable(Float64)') AS e2e_p99_ms,
    JSONExtract(data, 'e2e_latency_ms', 'max', 'Nullable(Float64)') AS e2e_max_ms,
    arrayFilter(b -> b.2 > 0, JSONExtract(data, 'e2e_latency_ms', 'buckets_us',
                                          'Array(Tuple(UInt64, UInt64))')) AS e2e_buckets_us,
    JSONExtract(data, 'pts_offset_ms', 'Nullable(Float64)') AS pts_offset_ms,

    JSONExtract(data, 'output_fps', 'Nullable(Float64)') AS output_fps,
    JSONExtract(data, 'runner_output_fps', 'Nullable(Float64)') AS runner_output_fps,
    JSONExtract(data, 'jitter_fps_cv', 'Nullable(Float64)') AS jitter_fps_cv,
    JSONExtract(data, 'frame_interval_cv', 'Nullable(Float64)') AS frame_interval_cv,
    JSONExtract(data, 'freeze_count', 'Nullable(UInt64)') AS freeze_count,
    JSONExtract(data, 'freeze_ms', 'Nullable(Float64)') AS freeze_ms,
    JSONExtract(data, 'frames_sent', 'Nullable(UInt64)') AS frames_sent,
    JSONExtract(data, 'frames_expected', 'Nullable(UInt64)') AS frames_expected,
    JSONExtract(data, 'frames_returned', 'Nullable(UInt64)') AS frames_returned,
    JSONExtract(data, 'frames_dropped', 'Nullable(UInt64)') AS frames_dropped,
    JSONExtract(data, 'loading_frames', 'Nullable(UInt64)') AS loading_frames,
    JSONExtract(data, 'send_lag_p95_ms', 'Nullable(Float64)') AS send_lag_p95_ms,
    JSONExtract(data, 'up_mbps', 'Nullable(Float64)') AS up_mbps,
    JSONExtract(data, 'down_mbps', 'Nullable(Float64)') AS down_mbps,
    JSONExtract(data, 'swap_count', 'Nullable(UInt64)') AS swap_count,
    JSONExtract(data, 'swap_triggers', 'Array(String)') AS swap_triggers,
    JSONExtract(data, 'runner_states_seen', 'Array(String)') AS runner_states_seen,

    JSONExtract(data, 'sla_pass', 'Nullable(Bool)') AS sla_pass,
    JSONExtractString(data, 'decode_backend') AS decode_backend,
    JSONExtractString(data, 'software_version') AS software_version,
    JSONExtractRaw(data, 'record') AS record
FROM naap_synthetic.kafka_events
WHERE type = 'synthetic_test_result' AND JSONExtractString(data, 'type') = 'session_result';

-- synthetic_test_result / run_summary -> run_summaries.
CREATE MATERIALIZED VIEW IF NOT EXISTS naap_synthetic.run_summaries_mv
TO naap_synthetic.run_summaries
AS
SELECT
    id,
    if(match(timestamp, '^[0-9]{12,13}$'),
       fromUnixTimestamp64Milli(toInt64OrZero(timestamp), 'UTC'),
       ifNull(parseDateTime64BestEffortOrNull(timestamp, 3, 'UTC'), now64(3, 'UTC'))) AS event_ts,
    gateway,

    JSONExtract(data, 'synthetic', 'Nullable(Bool)') AS synthetic,
    JSONExtractString(data, 'client_source') AS client_source,
    JSONExtractString(data, 'schema_version') AS schema_version,
    JSONExtractString(data, 'test_run_id') AS test_run_id,
    JSONExtractString(data, 'scenario') AS scenario,
    JSONExtractString(data, 'dataset_id') AS dataset_id,
    JSONExtractString(data, 'dataset_version') AS dataset_version,
    JSONExtract(data, 'dataset_sha256', 'Nullable(String)') AS dataset_sha256,
    JSONExtractString(data, 'gateway_id') AS gateway_id,
    JSONExtractString(data, 'region') AS region,
    JSONExtractString(data, 'workflow') AS workflow,
    JSONExtractString(data, 'pipeline') AS pipeline,
    JSONExtractString(data, 'model_id') AS model_id,
    JSONExtractString(data, 'pipeline_id') AS pipeline_id,
    JSONExtractString(data, 'target_orchestrator_url') AS target_orchestrator_url,

    JSONExtract(data, 'run_started_ms', 'Nullable(Int64)') AS run_started_ms,
    JSONExtract(data, 'run_ended_ms', 'Nullable(Int64)') AS run_ended_ms,
    ifNull(fromUnixTimestamp64Milli(run_started_ms, 'UTC'), event_ts) AS run_started_at,
    fromUnixTimestamp64Milli(run_ended_ms, 'UTC') AS run_ended_at,
    JSONExtract(data, 'sessions_planned', 'Nullable(UInt64)') AS sessions_planned,
    JSONExtract(data, 'sessions_started', 'Nullable(UInt64)') AS sessions_started,
    JSONExtract(data, 'outcomes', 'Map(String, UInt64)') AS outcomes,
    JSONExtract(data, 'orchestrators_tested', 'Nullable(UInt64)') AS orchestrators_tested,
    JSONExtract(data, 'orchestrators_excused', 'Nullable(UInt64)') AS orchestrators_excused,
    JSONExtract(data, 'config_sha256', 'Nullable(String)') AS config_sha256,
    JSONExtract(data, 'datasets', 'Array(Tuple(id String, version String))') AS datasets,
    JSONExtractString(data, 'software_version') AS software_version,
    data
FROM naap_synthetic.kafka_events
WHERE type = 'synthetic_test_result' AND JSONExtractString(data, 'type') = 'run_summary';
