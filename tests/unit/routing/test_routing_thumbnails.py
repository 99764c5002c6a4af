"""The inbox's thumbnail cache: a photo is decoded once per process, the cache stays within its
byte budget (least recently used dropped first), and what is not an image is refused, never
cached."""

import io

import pytest
from PIL import Image
from support.evidence_files import jpeg_with_gps

from services.routing.attachments import ThumbnailCache


class Blobs:
    """Counts the reads of each blob (the cache must not read a blob it has a thumbnail of)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.reads: list[str] = []

    def loader(self, sha256: str):
        def load():
            self.reads.append(sha256)
            return self.files[sha256]
        return load


@pytest.fixture
def blobs():
    return Blobs({name: jpeg_with_gps(size=size) for name, size in
                  (("a" * 64, (1600, 1200)), ("b" * 64, (1200, 1600)), ("c" * 64, (800, 600)))})


def test_a_photo_is_read_and_decoded_once_then_served_from_the_cache(blobs):
    cache = ThumbnailCache()
    first = cache.get("a" * 64, "image/jpeg", blobs.loader("a" * 64))
    again = cache.get("a" * 64, "image/jpeg", blobs.loader("a" * 64))
    assert again == first and blobs.reads == ["a" * 64]
    data, media_type = first
    assert media_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(data)).size) == 240


def test_the_cache_keeps_within_its_budget_dropping_the_least_recently_used(blobs):
    sizes = {sha: len(ThumbnailCache().get(sha, "image/jpeg", blobs.loader(sha))[0])
             for sha in blobs.files}
    blobs.reads.clear()
    a, b, c = sorted(blobs.files)
    cache = ThumbnailCache(max_bytes=sizes[a] + sizes[b] + sizes[c] - 1)  # two of three fit
    for sha in (a, b, a, c):  # a used again after b: b is the least recently used when c comes
        cache.get(sha, "image/jpeg", blobs.loader(sha))
    assert blobs.reads == [a, b, c]
    cache.get(a, "image/jpeg", blobs.loader(a))
    cache.get(c, "image/jpeg", blobs.loader(c))
    assert blobs.reads == [a, b, c]  # both still cached
    cache.get(b, "image/jpeg", blobs.loader(b))
    assert blobs.reads == [a, b, c, b]  # b had been dropped


def test_what_is_not_a_decodable_image_is_refused_and_not_cached():
    broken = Blobs({"d" * 64: b"\xff\xd8\xff not really a jpeg"})
    cache = ThumbnailCache()
    for _ in range(2):
        with pytest.raises((ValueError, OSError)):
            cache.get("d" * 64, "image/jpeg", broken.loader("d" * 64))
    assert broken.reads == ["d" * 64, "d" * 64]
    with pytest.raises(ValueError):
        cache.get("e" * 64, "application/pdf", lambda: b"%PDF-1.4")
