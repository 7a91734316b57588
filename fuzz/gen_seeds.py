#!/usr/bin/env python3
"""Regenerate the crafted seed corpus in fuzz/seeds/{decode,replay}/.

Every seed is built here from scratch (no public capture is copied):
NetFlow v5 datagrams (valid and broken), v9/IPFIX headers, and the
containers `replay` detects (pcap, pcapng, hex text, raw streams).
Run from anywhere: `python3 fuzz/gen_seeds.py`.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def header(count, uptime=3_600_000, secs=1_430_591_884, nsecs=898_328_000, seq=100,
           engine_type=0, engine_id=0, sampling=0, version=5):
    return struct.pack(">HHIIIIBBH", version, count, uptime, secs, nsecs, seq,
                       engine_type, engine_id, sampling)


def record(i=0, proto=6, flags=0x1b, packets=10, octets=1500, first=3_500_000,
           last=3_599_000, sport=None, dport=80):
    src = 0x0A000001 + i
    dst = 0xC0A80001
    sport = 40000 + i if sport is None else sport
    return struct.pack(">IIIHHIIIIHHBBBBHHBBH", src, dst, 0x0A0000FE, 1, 2, packets,
                       octets, first, last, sport, dport, 0, flags, proto, 0, 64512,
                       64513, 24, 16, 0)


def datagram(n, seq=100, **kw):
    return header(n, seq=seq, **kw) + b"".join(record(i) for i in range(n))


def eth_ipv4_udp(payload, sport=40000, dport=2055, vlan=None):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])) + udp
    eth = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb"
    if vlan is not None:
        eth += struct.pack(">HH", 0x8100, vlan)
    return eth + b"\x08\x00" + ip


def eth_ipv6_udp(payload, sport=40000, dport=2055):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    ip = struct.pack(">IHBB", 0x60000000, len(udp), 17, 64) + src + dst + udp
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x86\xdd" + ip


def sll_ipv4_udp(payload):
    # Linux cooked v1: packet type, ARPHRD, addr len, addr(8), protocol
    frame = eth_ipv4_udp(payload)[14:]
    return struct.pack(">HHH8sH", 0, 1, 6, b"\x00\x11\x22\x33\x44\x55\x00\x00", 0x0800) + frame


def pcap(frames, linktype=1, nano=False):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1_430_591_884 + i, 500_000, len(f), len(f)) + f
    return out


def pad4(b):
    return b + b"\x00" * (-len(b) % 4)


def ng_block(btype, body):
    body = pad4(body)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng(frames, linktype=1):
    shb = ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    # if_tsresol = 9 (ns) option, then opt_endofopt
    opts = struct.pack("<HH", 9, 1) + b"\x09\x00\x00\x00" + struct.pack("<HH", 0, 0)
    idb = ng_block(1, struct.pack("<HHI", linktype, 0, 65535) + opts)
    out = shb + idb
    for i, f in enumerate(frames):
        ts = (1_430_591_884 + i) * 1_000_000_000
        epb = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f
        out += ng_block(6, epb)
    # one simple packet block too
    f = frames[0]
    out += ng_block(3, struct.pack("<I", len(f)) + f)
    return out


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    one = datagram(1)
    thirty = datagram(30, seq=101)
    v5 = {
        "v5-1rec": one,
        "v5-30rec": thirty,
        "v5-count0": header(0),
        "v5-count31": header(31) + b"".join(record(i) for i in range(31)),
        "v5-count65535": header(65535) + record(0),
        "v5-truncated": thirty[:24 + 48 * 5 + 17],
        "v5-header-only-short": one[:23],
        "v5-trailing-bytes": one + b"\x00" * 7,
        "v5-sampled-uptime-wrap": header(2, uptime=5_000, sampling=(1 << 14) | 100)
        + record(0, first=0xFFFF_F000, last=4_000) + record(1, proto=17, flags=0),
        "v9-header": struct.pack(">HHIIII", 9, 1, 3_600_000, 1_430_591_884, 7, 0)
        + struct.pack(">HH", 0, 12) + struct.pack(">HHHH", 256, 1, 8, 4),
        "ipfix-header": struct.pack(">HHIII", 10, 16 + 8, 1_430_591_884, 7, 0)
        + struct.pack(">HHHH", 2, 8, 256, 0),
    }
    for name, data in v5.items():
        write("decode", name, data)

    fin = header(2, seq=131) + record(0, flags=0x11) + record(1, proto=1, dport=0x0800, flags=0)
    stream = one + fin
    replay = {
        "raw-1rec": one,
        "raw-30rec": thirty,
        "raw-stream-2": stream,
        "raw-bad-then-good": header(31) + one,
        "pcap-eth-2": pcap([eth_ipv4_udp(one), eth_ipv4_udp(fin)]),
        "pcap-nano-vlan-ipv6": pcap([eth_ipv4_udp(one, vlan=10), eth_ipv6_udp(fin)], nano=True),
        "pcap-sll": pcap([sll_ipv4_udp(one)], linktype=113),
        "pcap-raw-ip": pcap([eth_ipv4_udp(one)[14:]], linktype=101),
        "pcap-truncated": pcap([eth_ipv4_udp(thirty)])[:-100],
        "pcapng-eth": pcapng([eth_ipv4_udp(one), eth_ipv4_udp(fin)]),
        "hex-frame.txt": (eth_ipv4_udp(one).hex() + "\n").encode(),
    }
    for name, data in replay.items():
        write("replay", name, data)


if __name__ == "__main__":
    main()
