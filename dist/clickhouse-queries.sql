-- Example queries over the tables `nfstitch collect --clickhouse ... --clickhouse-rollups`
-- makes (default --clickhouse-table nfstitch_flows). Each statement ends with ';' on its
-- own line. CI runs every one against ClickHouse 18.16 (legacy schema) with data in it
-- (tests/integration/clickhouse.rs). On the native schema (ClickHouse 20.3+) addresses are
-- IPv6: write toString(src_addr) (or IPv6NumToString) instead of IPv4NumToString(src_addr).

-- Traffic per exporter per minute over the last hour, in bits per second (the rollup).
SELECT time, IPv6NumToString(exporter) AS exporter, sum(octets) * 8 / 60 AS bps
FROM nfstitch_flows_1m
WHERE time >= now() - 3600
GROUP BY time, exporter
ORDER BY time, exporter
;
-- Protocol mix per hour over the last day (the rollup).
SELECT time, proto, sum(flows) AS flows, sum(packets) AS packets, sum(octets) AS octets
FROM nfstitch_flows_1h
WHERE time >= now() - 86400
GROUP BY time, proto
ORDER BY time, octets DESC
;
-- Top 10 address pairs by octets over the last hour (the rollup).
SELECT IPv4NumToString(src_addr) AS src, IPv4NumToString(dst_addr) AS dst, sum(octets) AS octets
FROM nfstitch_flows_1m
WHERE time >= now() - 3600
GROUP BY src, dst
ORDER BY octets DESC
LIMIT 10
;
-- Why flows ended, per exporter, today (the flow table).
SELECT IPv6NumToString(exporter) AS exporter, end_reason, count() AS flows
FROM nfstitch_flows
WHERE time >= toStartOfDay(now())
GROUP BY exporter, end_reason
ORDER BY exporter, end_reason
;
-- The longest flows of the last hour (the flow table; durations from the exporter's clock).
SELECT IPv6NumToString(exporter) AS exporter, IPv4NumToString(src_addr) AS src, src_port,
       IPv4NumToString(dst_addr) AS dst, dst_port, proto, (last - first) / 1e9 AS seconds, octets
FROM nfstitch_flows
WHERE time >= now() - 3600
ORDER BY seconds DESC
LIMIT 10
;
