-- Example queries over the tables `nfstitch collect --clickhouse ... --clickhouse-rollups`
-- makes (default --clickhouse-table nfstitch_flows). Each statement ends with ';' on its
-- own line. CI runs every one against ClickHouse 18.16 (legacy schema) with IPv4 and IPv6
-- flows in it (tests/integration/clickhouse.rs).
-- Addresses, legacy schema (ClickHouse 18.16 to 20.2): src_addr6/dst_addr6/nexthop6 hold
-- every address (FixedString(16), IPv4 mapped: IPv6NumToString prints ::ffff:a.b.c.d, cut
-- below); src_addr/dst_addr/nexthop (UInt32) hold IPv4 only, 0 for an IPv6 address. On the
-- native schema (ClickHouse 20.3+) src_addr/dst_addr/nexthop are IPv6 and hold both:
-- write toString(src_addr) where these say IPv6NumToString(src_addr6). Rollup views made
-- by a release before IPv6 lack src_addr6/dst_addr6 (see README: migration).

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
-- Top 10 address pairs by octets over the last hour, IPv4 and IPv6 (the rollup).
SELECT replaceOne(IPv6NumToString(src_addr6), '::ffff:', '') AS src,
       replaceOne(IPv6NumToString(dst_addr6), '::ffff:', '') AS dst, sum(octets) AS octets
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
-- What the exporters said about the end of their flows (IPFIX flowEndReason; '' for
-- NetFlow v5 and v9), per exporter, today (the flow table).
SELECT IPv6NumToString(exporter) AS exporter, exporter_end_reason, count() AS flows
FROM nfstitch_flows
WHERE time >= toStartOfDay(now())
GROUP BY exporter, exporter_end_reason
ORDER BY exporter, exporter_end_reason
;
-- The longest flows of the last hour (the flow table; durations from the exporter's clock).
SELECT IPv6NumToString(exporter) AS exporter,
       replaceOne(IPv6NumToString(src_addr6), '::ffff:', '') AS src, src_port,
       replaceOne(IPv6NumToString(dst_addr6), '::ffff:', '') AS dst, dst_port, proto,
       input, output, (last - first) / 1e9 AS seconds, octets
FROM nfstitch_flows
WHERE time >= now() - 3600
ORDER BY seconds DESC
LIMIT 10
;
