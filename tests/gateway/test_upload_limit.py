"""The upload limit holds while the body streams, whether or not the client announces its length."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.uploads import MULTIPART_OVERHEAD_BYTES
from tests.gateway.fakes import LIMIT_BYTES, FakeTorchServe

pytestmark = pytest.mark.anyio

CHUNK_BYTES = 64 * 1024
BOUNDARY = "gateway-test-boundary"
TOO_LARGE = {"detail": f"The upload exceeds the limit of {LIMIT_BYTES} bytes (1 MiB)."}


class CountingBody:
    """A multipart body of `file_bytes` zeros, produced chunk by chunk, that counts what was read."""

    def __init__(self, file_bytes: int) -> None:
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.file_bytes = file_bytes
        self.chunks_read = 0

    @property
    def size(self) -> int:
        return len(self.head) + self.file_bytes + len(self.tail)

    @property
    def total_chunks(self) -> int:
        return 2 + -(-self.file_bytes // CHUNK_BYTES)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.chunks_read += 1
        yield self.head
        for start in range(0, self.file_bytes, CHUNK_BYTES):
            self.chunks_read += 1
            yield bytes(min(CHUNK_BYTES, self.file_bytes - start))
        self.chunks_read += 1
        yield self.tail


def headers(body: CountingBody, *, announce_length: bool) -> dict[str, str]:
    announced = {"Content-Length": str(body.size)} if announce_length else {}
    return {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **announced}


async def test_announced_oversized_body_is_refused_before_reading_it(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    body = CountingBody(4 * LIMIT_BYTES)

    response = await client.post("/predict-file/", content=body, headers=headers(body, announce_length=True))

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert body.chunks_read == 0
    assert fake_torchserve.requests == []


async def test_unannounced_oversized_body_is_cut_off_while_streaming(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    body = CountingBody(4 * LIMIT_BYTES)

    response = await client.post("/predict-file/", content=body, headers=headers(body, announce_length=False))

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    chunks_within_limit = 1 + (LIMIT_BYTES + MULTIPART_OVERHEAD_BYTES) // CHUNK_BYTES
    assert body.chunks_read <= chunks_within_limit + 1 < body.total_chunks
    assert fake_torchserve.requests == []


@pytest.mark.parametrize("announce_length", [True, False])
async def test_file_just_over_the_limit_is_refused(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe, announce_length: bool
) -> None:
    body = CountingBody(LIMIT_BYTES + 1)

    response = await client.post("/predict-file/", content=body, headers=headers(body, announce_length=announce_length))

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert fake_torchserve.requests == []


@pytest.mark.parametrize("announce_length", [True, False])
async def test_file_at_the_limit_is_scored(client: httpx.AsyncClient, announce_length: bool) -> None:
    body = CountingBody(LIMIT_BYTES)

    response = await client.post("/predict-file/", content=body, headers=headers(body, announce_length=announce_length))

    assert response.status_code == 200
    assert response.json()["filename"] == "big.wav"
