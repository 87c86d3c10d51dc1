import pytest

from lumozbatch.core.chunks import chunked


def test_chunks_of_a_stream() -> None:
    assert list(chunked(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []
    assert list(chunked(range(3), 3)) == [[0, 1, 2]]
    with pytest.raises(ValueError):
        list(chunked([1], 0))
