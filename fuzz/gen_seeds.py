#!/usr/bin/env python3
"""Writes the committed seed corpora in fuzz/corpus/<target>/.

Each seed is a small program in the byte format the target decodes (see the target's doc
comment and fuzz/src/lib.rs `Input`): scenarios that reach deep paths at once instead of
waiting for the fuzzer to find them. Run from anywhere: `python3 fuzz/gen_seeds.py`.
"""

import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# Input.chance(p) is true for byte 0 and false for byte 0xff.
YES, NO = 0x00, 0xFF


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(bytes(data))


# --- encodings shared with the library (bincode 2 standard config, format.rs) -------------

def varint(n):
    if n < 251:
        return [n]
    if n < 1 << 16:
        return [251] + list(struct.pack("<H", n))
    if n < 1 << 32:
        return [252] + list(struct.pack("<I", n))
    return [253] + list(struct.pack("<Q", n))


def enc_bytes(b):
    return varint(len(b)) + list(b)


def enc_put(key, value):
    return [0] + enc_bytes(key) + enc_bytes(value)


def enc_state(pairs):
    out = varint(len(pairs))
    for k, v in sorted(pairs):
        out += enc_bytes(k) + enc_bytes(v)
    return out


def crc(data):
    return zlib.crc32(bytes(data)) & 0xFFFFFFFF


def enc_record(lsn, kind, flags, payload):
    header = list(struct.pack("<I", len(payload))) + [0] * 4
    header += list(struct.pack("<Q", lsn)) + [kind, flags, 0, 0]
    header[4:8] = list(struct.pack("<I", crc(header[0:4] + header[8:20] + list(payload))))
    return header + list(payload)


def enc_segment_header(seq, first_lsn, window=(4 << 20) + 20, payload_max=4 << 20, flags=0):
    out = list(b"WALSTSEG") + list(struct.pack("<IIQQQI", 1, flags, seq, first_lsn, window, payload_max))
    return out + list(struct.pack("<I", crc(out)))


def enc_checkpoint(lsn, state):
    out = list(b"WALSTCKP") + list(struct.pack("<IIQQ", 1, 0, lsn, len(state))) + list(state)
    return out + list(struct.pack("<I", crc(out)))


# --- frame_decode: 4 bytes of payload limit, then the bytes ---------------------------------

def frame_decode():
    limit = list(struct.pack("<I", 1 << 20))
    write("frame_decode", "record", limit + enc_record(7, 1, 0, enc_put(b"k", b"v")))
    write("frame_decode", "group", limit + enc_record(8, 1, 1, enc_put(b"a", b"1")) + enc_record(9, 1, 0, [1] + enc_bytes(b"a")))
    write("frame_decode", "segment-header", limit + enc_segment_header(3, 100, flags=1))
    write("frame_decode", "checkpoint", limit + enc_checkpoint(42, enc_state([(b"a", b"1"), (b"b", b"22")])))
    write("frame_decode", "kv-command", limit + [4] + enc_bytes(b"key") + [1] + enc_bytes(b"old") + [0])
    write("frame_decode", "kv-state", limit + enc_state([(b"", b"x"), (b"\xff", b"y")]))


# --- recover: a program of files (see fuzz_targets/recover.rs `build`) ---------------------

def key(k):
    """A key from the alphabet a, b, NUL, 0xFF (at most 2 bytes)."""
    letters = {ord("a"): 0, ord("b"): 1, 0: 2, 0xFF: 3}
    return [len(k)] + [letters[c] for c in k]


def short_value(length, fill):
    return [0, length, fill]


def cmd_put(k, length=3, fill=0x61):
    return [0] + key(k) + short_value(length, fill)


def cmd_delete(k):
    return [4] + key(k)


def cmd_cas(k, expected, new):
    out = [6] + key(k)
    for v in (expected, new):
        out += [YES] if v is None else [NO] + short_value(*v)
    return out


def cmd_delete_prefix(k):
    return [9] + key(k)


def rec_command(cmd):
    # record_payload: below(20) < 15 -> a command; then group-flag toggle no, LSN as expected,
    # no bad header field.
    return [0] + cmd + [NO, YES, NO]


def rec_restore(snapshot_lsn, state_pairs):
    # kind 15 -> restore marker; restore file written (chance 85 -> YES); its LSN as usual.
    return [15, snapshot_lsn, YES] + state(state_pairs) + [0] + [NO, YES, NO]


def state(pairs):
    out = [NO, len(pairs)]
    for k, (length, fill) in pairs:
        out += key(k) + short_value(length, fill)
    return out


def segment(records, mutations=(), prealloc=False, groups=None):
    """A coherent segment: next seq, next LSN, default options."""
    out = [0, 0, 3, 3, YES if prealloc else NO, NO, YES, 0, len(records)]
    for i, rec in enumerate(records):
        out += [NO] + rec  # no atomic group: single record
    out += [NO]  # no zeros appended (preallocated segments get their zeros regardless)
    if prealloc:
        out = out[:-1] + [1]  # below(5) * 512 zero bytes
    out += [len(mutations)]
    for m in mutations:
        out += m
    return out


def group_segment(group_cmds):
    out = [0, 0, 3, 3, NO, NO, YES, 0, len(group_cmds)]
    out += [YES, len(group_cmds) - 2]  # one atomic group of n records
    for cmd in group_cmds:
        out += rec_command(cmd)
    return out + [NO, 0]


def checkpoint(pairs, kind=7, mutations=()):
    out = [kind, 0, YES] + state(pairs) + [len(mutations)]
    for m in mutations:
        out += m
    return out


def truncate(at):
    return list(struct.pack("<H", at)) + [0]


def flip(at, bit):
    return list(struct.pack("<H", at)) + [1, bit]


def garbage(data):
    return [0, 0, 2, len(data)] + list(data)


def recover():
    puts = [rec_command(cmd_put(b"a")), rec_command(cmd_put(b"b", 5, 0x62)), rec_command(cmd_delete(b"a"))]
    write("recover", "clean-segment", segment(puts))
    write("recover", "torn-tail", segment(puts, [truncate(48 + 30 + 20 + 10)]))
    write("recover", "two-segments-checkpoint", segment(puts) + checkpoint([(b"b", (5, 0x62))]) + segment(puts[:2]))
    write("recover", "bit-flip-mid-log", segment(puts, [flip(60, 3)]) + segment(puts))
    write("recover", "restore-record", segment([rec_command(cmd_put(b"ab")), rec_restore(1, [(b"a", (1, 0x31))]), rec_command(cmd_cas(b"a", (1, 0x31), None))]))
    write("recover", "atomic-group", group_segment([cmd_put(b"a"), cmd_put(b"b"), cmd_delete_prefix(b"")]))
    write("recover", "preallocated", segment(puts, prealloc=True))
    leftovers = [13, 0, 0, 4] + list(b"junk") + [15, 0, 1, 2] + list(b"pi") + [14, 0, YES] + state([(b"a", (2, 0x41))]) + [0, 0]
    write("recover", "leftovers", segment(puts) + leftovers)
    write("recover", "damaged-checkpoint-fallback", segment(puts) + checkpoint([(b"b", (5, 0x62))]) + segment(puts[:1]) + checkpoint([], mutations=[flip(40, 0)]))


# --- store_ops: a program of operations (see fuzz_targets/store_ops.rs `step`) -------------

def op_apply(cmd):
    return [0] + cmd


def op_batch(cmds):
    out = [7, len(cmds)]
    for c in cmds:
        out += c
    return out


CHECKPOINT, REOPEN, CLOSE, CLEAR = [9], [16], [17], [20]


def op_snapshot(i):
    return [10, i]


def op_restore(i):
    return [12, i]


def op_delete_snapshot(i):
    return [13, i]


def op_crash(mode):
    return [14] + mode


DROP, KEEP = [0], [1]


def random_mode(seed):
    return [2] + list(struct.pack("<Q", seed))


def fates(list_):
    return [4, len(list_)] + list_


def op_inject(op, nth, kind, persistent=False):
    ops = ["write", "sync", "setlen", "rename", "remove", "syncdir", "create", "read", "any"]
    kinds = ["enospc", "eio", "short"]
    return [18, ops.index(op), nth, kinds.index(kind), YES if persistent else NO]


def op_space(limit_units):
    return [21, YES, limit_units] if limit_units is not None else [21, NO]


def op_arm(n):
    return [22, n]


def big_put(k, fill):
    # value mode 13 -> 100 + below(256) * 4 bytes
    return [0] + key(k) + [13, 200, fill]


def store_ops():
    basic = [0x02]
    basic += op_apply(cmd_put(b"a")) + op_apply(cmd_put(b"b", 4, 0x62)) + op_apply(cmd_cas(b"a", (3, 0x61), (2, 0x7A)))
    basic += op_batch([cmd_put(b"ab"), cmd_delete(b"b"), [8] + key(b"a") + key(b"b")]) + CHECKPOINT
    basic += op_apply(cmd_put(b"\xff")) + op_crash(random_mode(7)) + op_apply(cmd_delete_prefix(b"a")) + REOPEN
    write("store_ops", "basic", basic)

    snaps = [0x00] + op_apply(cmd_put(b"a")) + op_snapshot(0) + op_apply(cmd_put(b"b")) + op_restore(0)
    snaps += op_apply(cmd_put(b"ba")) + op_crash(KEEP) + op_restore(0) + op_delete_snapshot(0) + op_restore(0) + CLOSE
    write("store_ops", "snapshots", snaps)

    faults = [0x02] + op_apply(cmd_put(b"a")) + op_inject("write", 0, "eio") + op_apply(cmd_put(b"b"))
    faults += op_apply(cmd_put(b"b")) + op_inject("sync", 0, "eio") + op_apply(cmd_put(b"ab"))
    faults += op_apply(cmd_put(b"bb")) + REOPEN + op_apply(cmd_put(b"ba")) + op_crash(DROP)
    write("store_ops", "faults-poison", faults)

    crash_point = [0x04] + op_apply(cmd_put(b"a")) + op_arm(3)
    crash_point += op_apply(cmd_put(b"b")) + random_mode(11) + op_apply(cmd_put(b"b")) + op_apply(cmd_put(b"ab"))
    write("store_ops", "crash-point", crash_point)

    space = [0x00] + op_apply(cmd_put(b"a")) + op_space(2) + op_apply(big_put(b"b", 0x42)) + op_space(None)
    space += op_apply(big_put(b"b", 0x43)) + op_inject("create", 0, "enospc", True) + CHECKPOINT + CLEAR + CHECKPOINT
    write("store_ops", "disk-full", space)

    rotate = [0x03]
    for i in range(12):
        rotate += op_apply(big_put([b"a", b"b", b"ab", b"ba"][i % 4], 0x41 + i))
        if i % 5 == 4:
            rotate += CHECKPOINT
    rotate += op_crash(fates([0, 1, 2] * 6)) + op_batch([big_put(b"a", 1), big_put(b"b", 2), big_put(b"\xff", 3)])
    write("store_ops", "rotation-checkpoints", rotate)


# --- codec_decode: one `Doc` (fuzz_targets/codec_decode.rs) per codec ----------------------

def zigzag(n):
    return varint((n << 1) ^ (n >> 63) if n < 0 else n << 1)


def cbor_head(major, n):
    if n < 24:
        return [(major << 5) | n]
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return [(major << 5) | info] + list(n.to_bytes(width, "big"))
    raise ValueError(n)


def cbor_int(n):
    return cbor_head(0, n) if n >= 0 else cbor_head(1, -1 - n)


def cbor_text(t):
    b = t.encode()
    return cbor_head(3, len(b)) + list(b)


def cbor_map(pairs):
    out = cbor_head(5, len(pairs))
    for key, value in pairs:
        out += cbor_text(key) + value
    return out


def cbor_array(items):
    return cbor_head(4, len(items)) + [b for item in items for b in item]


# Shapes as (variant index, name, bincode fields, CBOR content or None for a unit variant).
SHAPE_EMPTY = (0, "Empty", [], None)
SHAPE_COUNT = (1, "Count", varint(5), cbor_int(5))
SHAPE_PAIR = (2, "Pair", zigzag(-3) + enc_bytes(b"x"), cbor_array([cbor_int(-3), cbor_text("x")]))
SHAPE_NAMED = (3, "Named", varint(1 << 40) + varint(2) + enc_bytes(b"a") + enc_bytes(b"bc"),
               cbor_map([("id", cbor_int(1 << 40)), ("tags", cbor_array([cbor_text("a"), cbor_text("bc")]))]))


def shape_bincode(shape):
    return varint(shape[0]) + shape[2]


def shape_cbor(shape):
    return cbor_text(shape[1]) if shape[3] is None else cbor_map([(shape[1], shape[3])])


def doc(title, data, index, parent, shape, ratio):
    """A `Doc` as (bincode, CBOR) bytes; `parent` is another such pair or None."""
    bincode = enc_bytes(title) + varint(7) + varint(len(data)) + list(data) + varint(len(index))
    for key, sh in index:
        bincode += enc_bytes(key) + shape_bincode(sh)
    bincode += [0] if parent is None else [1] + parent[0]
    bincode += shape_bincode(shape)
    bincode += [0] if ratio is None else [1] + zigzag(ratio)
    cbor = cbor_map([
        ("title", cbor_text(title.decode())),
        ("version", cbor_int(7)),
        ("data", cbor_array([cbor_int(b) for b in data])),
        ("index", cbor_head(5, len(index)) + [b for key, sh in index for b in cbor_text(key.decode()) + shape_cbor(sh)]),
        ("parent", [0xF6] if parent is None else parent[1]),
        ("shape", shape_cbor(shape)),
        ("ratio", [0xF6] if ratio is None else cbor_int(ratio)),
    ])
    return bincode, cbor


def codec_decode():
    leaf = doc(b"leaf", b"", [], None, SHAPE_EMPTY, None)
    full = doc(b"config", b"\x00\x01\xff", [(b"a", SHAPE_COUNT), (b"b", SHAPE_PAIR), (b"c", SHAPE_NAMED)],
               leaf, SHAPE_NAMED, -42)
    for name, (bincode, cbor) in (("leaf", leaf), ("full", full)):
        write("codec_decode", name + ".bincode", bincode)
        write("codec_decode", name + ".cbor", cbor)
    # A CBOR doc without `version` (it defaults) and with an unknown field (ignored).
    old = cbor_map([("title", cbor_text("old")), ("data", cbor_array([])), ("index", cbor_map([])),
                    ("parent", [0xF6]), ("shape", cbor_text("Empty")), ("ratio", [0xF6]),
                    ("removed", cbor_array([cbor_int(1)]))])
    write("codec_decode", "evolved.cbor", old)
    # Hostile length prefixes: a title claiming 2^40 bytes, a data array claiming 2^32 elements.
    write("codec_decode", "hostile-text.cbor", cbor_head(5, 1) + cbor_text("title") + cbor_head(3, 1 << 40) + list(b"ab"))
    write("codec_decode", "hostile-array.cbor", cbor_head(5, 1) + cbor_text("data") + cbor_head(4, 1 << 32) + [0])


if __name__ == "__main__":
    frame_decode()
    codec_decode()
    recover()
    store_ops()
