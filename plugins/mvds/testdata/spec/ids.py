"""Prints the 2/MVDS id of every message in the Payload files named.

One line per message: file, index of the message in the payload, id in hex,
where id = SHA-256("MESSAGE_ID" || group_id || timestamp as 8 bytes
little-endian two's complement || body), the byte recipe of status-im/mvds
(protobuf/messageid.go) and vacp2p/mvds. The protobuf wire is parsed here
by hand so that the ids do not depend on the Go code they check.
"""
import hashlib
import struct
import sys


def varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, typ = key >> 3, key & 7
        if typ == 0:
            v, i = varint(b, i)
        elif typ == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % typ)
        yield num, v


def message_id(msg):
    group, ts, body = b"", 0, b""
    for num, v in fields(msg):
        if num == 6001:
            group = v
        elif num == 6002:
            ts = v
        elif num == 6003:
            body = v
    return hashlib.sha256(b"MESSAGE_ID" + group + struct.pack("<Q", ts & (2**64 - 1)) + body).hexdigest()


for path in sys.argv[1:]:
    with open(path, "rb") as f:
        payload = f.read()
    k = 0
    for num, v in fields(payload):
        if num == 5004:
            print(path, k, message_id(v))
            k += 1
