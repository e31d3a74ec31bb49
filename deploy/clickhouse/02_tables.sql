-- naap-loadtest results pipeline, step 2 of 3: the tables the views of 03_views.sql fill.
--
-- Delivery from the gateway is at least once: an event whose delivery report was lost is
-- sent again with the same `id` and `timestamp`. Every table here is a ReplacingMergeTree
-- whose sorting key ends in `id` and whose other key columns are derived from the event
-- itself, so the copies of one event share the whole key and collapse into one row when
-- parts merge. Until then they are separate rows: read with FINAL (or GROUP BY id) where a
-- count matters, as queries.sql does.

-- Every event of every family, one row per envelope, kept 90 days. Same layout as the NaaP
-- backend's raw table (ordered by type, event_ts, id), plus the keys used to find a session.
CREATE TABLE IF NOT EXISTS naap_synthetic.raw_events
(
    id               String,
    type             LowCardinality(String),               -- event family
    event_ts         DateTime64(3, 'UTC'),                 -- envelope timestamp
    gateway          LowCardinality(String),               -- envelope gateway
    subtype          LowCardinality(String),               -- data.type ('' for arrays)
    stream_id        String,
    request_id       String,
    test_run_id      String,
    region           LowCardinality(String),
    orchestrator_url String,  -- data.orchestrator_info.url, else data.target_orchestrator_url
    data             String,                               -- the payload's JSON text
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_ts)
ORDER BY (type, event_ts, id)
TTL toDateTime(event_ts) + INTERVAL 90 DAY;

-- One row per tested session: data of `synthetic_test_result` events whose data.type is
-- `session_result`, one typed column per field. A field that is null or missing reads as
-- NULL in a Nullable column, '' in another String column, [] in an array. A value of the
-- wrong type never fails the view: a number or boolean column reads NULL for a string, an
-- array or an object; a string column keeps the value's JSON text (recent ClickHouse; ''
-- in older versions). The key columns are never NULL.
CREATE TABLE IF NOT EXISTS naap_synthetic.session_results
(
    id                        String,
    event_ts                  DateTime64(3, 'UTC'),
    gateway                   LowCardinality(String),

    -- tags
    synthetic                 Nullable(Bool),
    client_source             LowCardinality(String),
    schema_version            LowCardinality(String),
    test_run_id               String,
    scenario                  LowCardinality(String),
    dataset_id                LowCardinality(String),
    dataset_version           LowCardinality(String),
    dataset_sha256            Nullable(String),
    gateway_id                LowCardinality(String),
    region                    LowCardinality(String),
    workflow                  LowCardinality(String),
    pipeline                  LowCardinality(String),     -- model id, as go-livepeer uses it
    model_id                  LowCardinality(String),
    pipeline_id               LowCardinality(String),
    target_orchestrator_url   String,

    -- session identity
    stream_id                 String,
    request_id                String,
    orchestrator_address      String,                     -- data.orchestrator_info.address
    orchestrator_info_url     String,                     -- data.orchestrator_info.url
    -- The orchestrator the session is about: orchestrator_info.url, or the target when that
    -- is empty (an excused session never names the orchestrator in orchestrator_info).
    orchestrator_url          String,

    -- outcome
    outcome                   LowCardinality(Nullable(String)),
    failure_category          LowCardinality(Nullable(String)),
    failure_reason            Nullable(String),
    excused                   Nullable(Bool),
    started_at                DateTime64(3, 'UTC'),       -- event_ts when missing
    ended_at                  Nullable(DateTime64(3, 'UTC')),

    -- timings (ms)
    measure_window_ms         Nullable(Float64),
    job_accept_ms             Nullable(Float64),
    first_output_byte_ms      Nullable(Float64),
    startup_ms                Nullable(Float64),
    ptff_count                Nullable(UInt64),           -- prompt_to_first_frame_ms.*
    ptff_p50_ms               Nullable(Float64),
    ptff_p95_ms               Nullable(Float64),
    ptff_max_ms               Nullable(Float64),
    -- prompt_to_first_frame_ms.buckets_us: the session's histogram, (bucket upper bound in µs,
    -- count) pairs; add sessions' counts per bound to merge them (queries.sql)
    ptff_buckets_us           Array(Tuple(upper_us UInt64, count UInt64)),
    e2e_count                 Nullable(UInt64),           -- e2e_latency_ms.*
    e2e_p50_ms                Nullable(Float64),
    e2e_p90_ms                Nullable(Float64),
    e2e_p95_ms                Nullable(Float64),
    e2e_p99_ms                Nullable(Float64),
    e2e_max_ms                Nullable(Float64),
    e2e_buckets_us            Array(Tuple(upper_us UInt64, count UInt64)),  -- e2e_latency_ms.buckets_us
    pts_offset_ms             Nullable(Float64),

    -- output and transport
    output_fps                Nullable(Float64),
    runner_output_fps         Nullable(Float64),
    jitter_fps_cv             Nullable(Float64),
    frame_interval_cv         Nullable(Float64),
    freeze_count              Nullable(UInt64),
    freeze_ms                 Nullable(Float64),
    frames_sent               Nullable(UInt64),
    frames_expected           Nullable(UInt64),
    frames_returned           Nullable(UInt64),
    frames_dropped            Nullable(UInt64),
    loading_frames            Nullable(UInt64),
    send_lag_p95_ms           Nullable(Float64),
    up_mbps                   Nullable(Float64),
    down_mbps                 Nullable(Float64),
    swap_count                Nullable(UInt64),
    swap_triggers             Array(String),
    runner_states_seen        Array(String),

    sla_pass                  Nullable(Bool),
    decode_backend            LowCardinality(String),     -- software, nvdec or none
    software_version          LowCardinality(String),
    record                    String,                     -- the full run record (JSON text)
    ingested_at               DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (orchestrator_url, pipeline, region, started_at, id);

-- One row per test run: data of `synthetic_test_result` events whose data.type is
-- `run_summary`.
CREATE TABLE IF NOT EXISTS naap_synthetic.run_summaries
(
    id                        String,
    event_ts                  DateTime64(3, 'UTC'),
    gateway                   LowCardinality(String),

    -- tags
    synthetic                 Nullable(Bool),
    client_source             LowCardinality(String),
    schema_version            LowCardinality(String),
    test_run_id               String,
    scenario                  LowCardinality(String),
    dataset_id                LowCardinality(String),
    dataset_version           LowCardinality(String),
    dataset_sha256            Nullable(String),
    gateway_id                LowCardinality(String),
    region                    LowCardinality(String),
    workflow                  LowCardinality(String),
    pipeline                  LowCardinality(String),
    model_id                  LowCardinality(String),
    pipeline_id               LowCardinality(String),
    target_orchestrator_url   String,

    run_started_ms            Nullable(Int64),            -- unix ms, as sent
    run_ended_ms              Nullable(Int64),
    run_started_at            DateTime64(3, 'UTC'),       -- event_ts when missing
    run_ended_at              Nullable(DateTime64(3, 'UTC')),
    sessions_planned          Nullable(UInt64),
    sessions_started          Nullable(UInt64),
    outcomes                  Map(String, UInt64),        -- outcome -> sessions
    orchestrators_tested      Nullable(UInt64),
    orchestrators_excused     Nullable(UInt64),
    config_sha256             Nullable(String),
    datasets                  Array(Tuple(id String, version String)),
    software_version          LowCardinality(String),
    data                      String,                     -- the whole summary (JSON text)
    ingested_at               DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(run_started_at)
ORDER BY (gateway_id, run_started_at, id);
