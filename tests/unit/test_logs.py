from autobuild.domain.logs import decode_chunk


def test_whole_ascii_chunk():
    assert decode_chunk(b"hello\n", 10, at_end=False) == ("hello\n", 16)


def test_split_multibyte_character_is_left_for_the_next_read():
    data = "é€😀".encode()
    for cut in range(len(data) + 1):
        first, offset = decode_chunk(data[:cut], 0, at_end=False)
        second, end = decode_chunk(data[offset:], offset, at_end=True)
        assert first + second == "é€😀"
        assert end == len(data)


def test_at_end_an_unfinished_character_becomes_a_replacement():
    text, offset = decode_chunk("€".encode()[:2], 0, at_end=True)
    assert text == "\ufffd" and offset == 2


def test_invalid_bytes_do_not_stall_the_reader():
    text, offset = decode_chunk(b"ok\xff\xfeok", 0, at_end=False)
    assert offset == 6 and text.startswith("ok") and text.endswith("ok")
