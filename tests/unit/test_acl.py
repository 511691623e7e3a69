"""The POSIX ACL encoder: the kernel's xattr layout, built from a mode and one named group."""

import struct

import pytest

from autobuild.runner import acl


def test_a_group_grant_on_a_0640_file_keeps_the_mode_and_reads_back():
    value = acl.with_group(0o100640, 1234, 0o4)

    assert struct.unpack_from("<I", value)[0] == 2
    assert acl.decode(value) == [
        (acl.USER_OBJ, 6, acl.UNDEFINED_ID), (acl.GROUP_OBJ, 4, acl.UNDEFINED_ID),
        (acl.GROUP, 4, 1234), (acl.MASK, 4, acl.UNDEFINED_ID), (acl.OTHER, 0, acl.UNDEFINED_ID)]


def test_the_mask_is_the_owning_groups_bits_or_the_grant_never_more():
    entries = dict((tag, perm) for tag, perm, _ in acl.decode(acl.with_group(0o42750, 7, 0o1)))
    assert entries[acl.MASK] == 0o5  # r-x: the owning group keeps r-x, the grant --x
    assert entries[acl.OTHER] == 0
    assert dict((t, p) for t, p, _ in acl.decode(acl.with_group(0o100600, 7, 0o4)))[acl.MASK] == 4


def test_entries_are_sorted_by_tag_then_id_whatever_the_order_given():
    value = acl.encode([(acl.OTHER, 0, acl.UNDEFINED_ID), (acl.GROUP, 1, 9), (acl.GROUP, 1, 3),
                        (acl.USER_OBJ, 7, acl.UNDEFINED_ID)])
    assert [(tag, ident) for tag, _, ident in acl.decode(value)] == [
        (acl.USER_OBJ, acl.UNDEFINED_ID), (acl.GROUP, 3), (acl.GROUP, 9),
        (acl.OTHER, acl.UNDEFINED_ID)]
    assert len(value) == 4 + 4 * 8


@pytest.mark.parametrize("value", [b"", b"\x02\x00\x00", b"\x01\x00\x00\x00", b"\x02\0\0\0\1"])
def test_decode_refuses_what_is_not_an_acl(value):
    with pytest.raises(ValueError):
        acl.decode(value)
