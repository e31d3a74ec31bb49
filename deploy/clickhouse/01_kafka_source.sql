-- naap-loadtest results pipeline, step 1 of 3: the Kafka source.
--
-- The gateway publishes every event to one topic, each message value one JSON object in
-- go-livepeer's envelope: {"id", "type", "timestamp" (unix ms as text), "gateway", "data"}.
-- This table only consumes: it stores nothing. The materialized views of 03_views.sql read
-- each consumed block and write it to the tables of 02_tables.sql.
--
-- PLACEHOLDERS to edit before applying (see README.md):
--   kafka_broker_list  'kafka:9092'                 the brokers, comma-separated host:port
--   kafka_topic_list   'naap_synthetic_events'      the gateway's topic (its --kafka-topic)
--   kafka_group_name   'naap-synthetic-clickhouse'  the consumer group; one per ClickHouse
--                                                   cluster, so each event is read once
-- SASL/TLS brokers: put the librdkafka settings in the server's <kafka> configuration
-- (security_protocol, sasl_mechanism, sasl_username, sasl_password), which keeps the
-- password out of the DDL, or add kafka_security_protocol, kafka_sasl_mechanism,
-- kafka_sasl_username and kafka_sasl_password to the SETTINGS below.

CREATE DATABASE IF NOT EXISTS naap_synthetic;

CREATE TABLE IF NOT EXISTS naap_synthetic.kafka_events
(
    id        String,
    type      String,
    timestamp String,
    gateway   String,
    data      String
)
ENGINE = Kafka
SETTINGS
    kafka_broker_list = 'kafka:9092',
    kafka_topic_list = 'naap_synthetic_events',
    kafka_group_name = 'naap-synthetic-clickhouse',
    kafka_format = 'JSONEachRow',
    kafka_num_consumers = 1,
    -- A message that is not a JSON object is skipped (up to this many per block) instead
    -- of stopping the consumer.
    kafka_skip_broken_messages = 100,
    -- `data` is a JSON object (or array) on the wire: keep its text in the String column.
    -- These are ClickHouse's defaults; they are spelled out because the views depend on them.
    input_format_json_read_objects_as_strings = 1,
    input_format_json_read_arrays_as_strings = 1,
    input_format_json_read_numbers_as_strings = 1,
    -- Extra top-level keys a future producer may add must not break the consumer.
    input_format_skip_unknown_fields = 1;
