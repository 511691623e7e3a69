"""POSIX ACLs in the kernel's binary form (the ``system.posix_acl_*`` extended attributes).

Pure: what ``setfacl`` would write, built from a mode and one named group, so the runner can
set it with ``fsetxattr`` on a descriptor it holds (no path, no helper program).
Layout (linux/posix_acl_xattr.h): u32 version 2, then entries of u16 tag, u16 perm, u32 id,
little-endian, sorted by tag then id; the ``*_OBJ``, mask and other entries have no id.
"""

from __future__ import annotations

import struct

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"

VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF

Entry = tuple[int, int, int]  # tag, perm (rwx bits), id


def encode(entries: list[Entry]) -> bytes:
    """The xattr value of ``entries`` (in the kernel's order whatever the given one)."""
    body = b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in sorted(entries))
    return struct.pack("<I", VERSION) + body


def with_group(mode: int, gid: int, perm: int) -> bytes:
    """The ACL equal to ``mode``'s permission bits plus group ``gid`` with ``perm`` (0-7).

    The mask is the owning group's bits or ``perm``: the owning group keeps exactly what it
    had, so the mode ``stat`` shows does not change unless ``perm`` adds to the group bits."""
    group = (mode >> 3) & 7
    return encode([(USER_OBJ, (mode >> 6) & 7, UNDEFINED_ID), (GROUP_OBJ, group, UNDEFINED_ID),
                   (GROUP, perm & 7, gid), (MASK, group | (perm & 7), UNDEFINED_ID),
                   (OTHER, mode & 7, UNDEFINED_ID)])


def decode(value: bytes) -> list[Entry]:
    """The entries of an xattr value (for tests and checks); ValueError if malformed."""
    if len(value) < 4 or (len(value) - 4) % 8 or struct.unpack_from("<I", value)[0] != VERSION:
        raise ValueError("not a POSIX ACL")
    return [struct.unpack_from("<HHI", value, offset) for offset in range(4, len(value), 8)]
