#!/usr/bin/env python3
"""Writes vectors.json: BSP ids and records computed from the byte recipes of
/work/shared/specs/datasync.md §2.3 (ids) and §2.4-2.5 (records), with
Python's hashlib.blake2b and struct, independently of the Go code.
Run: python3 gen.py > vectors.json"""
import hashlib, json, struct

def th(label, *xs):
    h = hashlib.blake2b(digest_size=32)
    lb = label.encode()
    h.update(struct.pack('>I', len(lb)) + lb)
    for x in xs:
        h.update(struct.pack('>I', len(x)) + x)
    return h.digest()

def root(body):
    return th('org.briarproject.bramble/MESSAGE_BLOCK', b'\x01', body)

def mid(group, ts, body):
    return th('org.briarproject.bramble/MESSAGE_ID', b'\x01', group, struct.pack('>Q', ts), root(body))

def gid(client, major, desc):
    return th('org.briarproject.bramble/GROUP_ID', b'\x01', client.encode(), struct.pack('>I', major), desc)

def rec(t, payload, version=0):
    return bytes([version, t]) + struct.pack('>H', len(payload)) + payload

ids = []
for name, g, ts, body in [
    ('digest §2.3 worked example', b'\x01' * 32, 1, b'hello'),
    ('zero group, timestamp 0, one-byte body', b'\x00' * 32, 0, b'\x00'),
    ('largest timestamp, 2026-12-06 in ms', bytes(range(32)), 1796515200000, b'strata bsp vector'),
    ('top timestamp 2^63-1', b'\xff' * 32, 2**63 - 1, b'x'),
    ('body of MAX_MESSAGE_BODY_LENGTH bytes', b'\x02' * 32, 1234567890123, b'\xab' * 32768),
]:
    v = {'name': name, 'group': g.hex(), 'timestamp': ts, 'body': body.hex(),
         'root': root(body).hex(), 'id': mid(g, ts, body).hex()}
    if len(body) > 64:  # a long body is one byte repeated: body_byte, body_len
        del v['body']
        v['body_byte'], v['body_len'] = body[:1].hex(), len(body)
    ids.append(v)

groups = []
for client, major, desc in [
    ('org.briarproject.briar.messaging', 0, b''),
    ('org.strata-msg.sync', 0, b'conversation-1'),
]:
    groups.append({'client': client, 'major': major, 'descriptor': desc.hex(), 'id': gid(client, major, desc).hex()})

m0 = ids[0]
msg_payload = bytes.fromhex(m0['group']) + struct.pack('>Q', m0['timestamp']) + bytes.fromhex(m0['body'])
id_a, id_b = bytes.fromhex(ids[0]['id']), bytes.fromhex(ids[1]['id'])
records = [
    {'name': 'ACK of one id', 'type': 0, 'ids': [id_a.hex()], 'bytes': rec(0, id_a).hex()},
    {'name': 'OFFER of two ids', 'type': 2, 'ids': [id_a.hex(), id_b.hex()], 'bytes': rec(2, id_a + id_b).hex()},
    {'name': 'REQUEST of one id', 'type': 3, 'ids': [id_b.hex()], 'bytes': rec(3, id_b).hex()},
    {'name': 'MESSAGE of the §2.3 example', 'type': 1, 'group': m0['group'], 'timestamp': m0['timestamp'],
     'body': m0['body'], 'id': m0['id'], 'bytes': rec(1, msg_payload).hex()},
    {'name': 'VERSIONS [0]', 'type': 4, 'versions': '00', 'bytes': rec(4, b'\x00').hex()},
    {'name': 'PRIORITY', 'type': 5, 'nonce': bytes(range(16)).hex(), 'bytes': rec(5, bytes(range(16))).hex()},
]
bad = [
    {'name': 'protocol version 1', 'bytes': rec(0, id_a, version=1).hex(), 'error': 'version'},
    {'name': 'payload length 49153', 'bytes': (bytes([0, 0]) + struct.pack('>H', 49153)).hex(), 'error': 'too_large'},
    {'name': 'header cut short', 'bytes': '000000', 'error': 'truncated'},
    {'name': 'payload cut short', 'bytes': rec(0, id_a)[:-1].hex(), 'error': 'truncated'},
    {'name': 'empty ACK', 'bytes': rec(0, b'').hex(), 'error': 'ids'},
    {'name': 'OFFER of 33 bytes', 'bytes': rec(2, id_a + b'\x00').hex(), 'error': 'ids'},
    {'name': 'MESSAGE with an empty body', 'bytes': rec(1, msg_payload[:40]).hex(), 'error': 'message'},
    {'name': 'MESSAGE with the timestamp top bit set', 'bytes': rec(1, b'\x01' * 32 + struct.pack('>Q', 2**63) + b'x').hex(), 'error': 'message'},
    {'name': 'MESSAGE body of 32769 bytes (header only; the test appends 32769 zero bytes)',
     'bytes': (bytes([0, 1]) + struct.pack('>H', 40 + 32769) + b'\x01' * 40).hex(), 'pad': 32769, 'error': 'message'},
    {'name': 'empty VERSIONS', 'bytes': rec(4, b'').hex(), 'error': 'versions'},
    {'name': 'VERSIONS of 11 bytes', 'bytes': rec(4, bytes(11)).hex(), 'error': 'versions'},
    {'name': 'PRIORITY of 15 bytes', 'bytes': rec(5, bytes(15)).hex(), 'error': 'priority'},
]
skipped = [{'name': 'unknown record type 9 between two known records',
            'bytes': (rec(4, b'\x00') + rec(9, b'future') + rec(0, id_a)).hex(), 'types': [4, 9, 0]}]
print(json.dumps({'ids': ids, 'groups': groups, 'records': records, 'bad': bad, 'stream': skipped}, indent=1))
