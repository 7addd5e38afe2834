"""The sorted key-value table (LevelDB's SSTable) that a TensorFlow checkpoint's .index file is,
with the few pieces of protobuf and CRC-32C it needs, in plain Python.

A table file is a run of blocks and a fixed 48-byte footer:

    footer   = metaindex handle, index handle (each two varints: offset, size), zero padding
               to 40 bytes, then the 8-byte magic number 0xdb4775248b80fb57 (little-endian)
    block    = entries, then the restart offsets (uint32 each) and their count (uint32),
               followed on disk by a 5-byte trailer: compression type (0 = none) and the
               masked CRC-32C of the block and that type byte
    entry    = varint shared, varint unshared, varint value length, the key's unshared
               bytes, the value; the key is the previous key's first `shared` bytes plus them

The index block's values are the handles of the data blocks, whose entries are the table's
keys and values in order. Protobuf messages (the values of a checkpoint's table) are fields
of a number and a wire type: varint (0), 64-bit (1), length-delimited (2), 32-bit (5).
"""

import struct

from ..errors import CheckpointError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type byte + masked crc32c


# --- varints and protobuf ---------------------------------------------------------------------
def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it): 7 bits a byte, least significant first, high bit = more."""
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CheckpointError("a varint runs past the end of its data")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def parse_message(data: bytes) -> dict:
    """{field number: [values]} of a protobuf message: ints for varint and fixed fields, bytes
    for length-delimited ones (sub-messages, strings, packed arrays), parsed by the caller."""
    fields, pos = {}, 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = read_varint(data, pos)
        elif wire_type == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire_type == 2:
            length, pos = read_varint(data, pos)
            value, pos = bytes(data[pos : pos + length]), pos + length
        elif wire_type == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise CheckpointError(f"protobuf wire type {wire_type} is not one a checkpoint uses")
        if pos > len(data):
            raise CheckpointError("a protobuf field runs past the end of its message")
        fields.setdefault(number, []).append(value)
    return fields


def as_signed(value: int) -> int:
    """A varint holding a negative int64 is its two's complement in 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


# --- CRC-32C (Castagnoli), as LevelDB and TensorFlow checksum their data ----------------------
def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):  # reflected polynomial 0x82F63B78
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C of data: a byte at a time through the table (about 10 MB/s in plain Python)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """LevelDB stores CRCs rotated and offset, so that the CRC of data holding CRCs is not
    trivially related to them: rotate right by 15 bits and add 0xa282ead8."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- the table --------------------------------------------------------------------------------
def read_table(data: bytes, name: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in `data`, in key order; `name` is for errors."""
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(f"{name} is too short to be a table ({len(data)} bytes)")
    footer = data[-FOOTER_SIZE:]
    magic = struct.unpack("<Q", footer[-8:])[0]
    if magic != TABLE_MAGIC:
        raise CheckpointError(f"{name} is not a TensorFlow checkpoint index (bad magic number)")
    _, pos = _read_handle(footer, 0)  # the metaindex block: empty in checkpoints
    index_handle, _ = _read_handle(footer, pos)
    entries = []
    for _, handle_bytes in _read_block(data, index_handle, name):
        handle, _ = _read_handle(handle_bytes, 0)
        entries.extend(_read_block(data, handle, name))
    return entries


def _read_handle(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(data, pos)
    size, pos = read_varint(data, pos)
    return (offset, size), pos


def _read_block(data: bytes, handle: tuple[int, int], name: str) -> list[tuple[bytes, bytes]]:
    offset, size = handle
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise CheckpointError(f"{name}: a block runs past the end of the file")
    block, compression = data[offset:end], data[end]
    if compression != 0:
        raise CheckpointError(
            f"{name}: block compressed with type {compression}; only uncompressed tables "
            f"(what TensorFlow writes for checkpoints) are read"
        )
    stored_crc = struct.unpack("<I", data[end + 1 : end + 5])[0]
    if masked_crc32c(data[offset : end + 1]) != stored_crc:
        raise CheckpointError(f"{name}: a block's checksum does not match (the file is damaged)")
    if size < 4:
        raise CheckpointError(f"{name}: a block of {size} bytes has no restart count")
    num_restarts = struct.unpack("<I", block[-4:])[0]
    entries_end = size - 4 - 4 * num_restarts
    if entries_end < 0:
        raise CheckpointError(f"{name}: a block's restart array does not fit in it")
    entries, key, pos = [], b"", 0
    while pos < entries_end:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        value_length, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_length > entries_end:
            raise CheckpointError(f"{name}: a block entry runs past its block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_length]))
        pos += value_length
    return entries
