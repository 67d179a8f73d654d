"""Blob storage behind one small interface: database rows now, object storage later.

A blob is a byte string split into chunks of ``CHUNK_BYTES`` so that large uploads and
outputs are written and read without holding them whole in memory.
"""

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from shared.models import Blob, BlobChunk

CHUNK_BYTES = 4 << 20


class BlobWriter:
    """Accumulates bytes into chunk rows; ``finish()`` records size and SHA-256."""

    def __init__(self, session: Session, blob: Blob) -> None:
        self._session = session
        self.blob = blob
        self._buffer = bytearray()
        self._seq = 0
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            self._flush(bytes(self._buffer[:CHUNK_BYTES]))
            del self._buffer[:CHUNK_BYTES]

    def _flush(self, data: bytes) -> None:
        # A Core insert: ORM objects would keep every chunk alive in the session.
        self._session.execute(
            insert(BlobChunk).values(blob_id=self.blob.id, seq=self._seq, data=data)
        )
        self._seq += 1

    def finish(self) -> Blob:
        if self._buffer or self._seq == 0:
            self._flush(bytes(self._buffer))
            self._buffer.clear()
        self.blob.size = self._size
        self.blob.sha256 = self._hash.hexdigest()
        self._session.flush()
        return self.blob


class BlobStore:
    """Create, read and delete blobs inside the caller's transaction (it commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def writer(
        self,
        *,
        owner: str,
        kind: str,
        job_id: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> BlobWriter:
        blob = Blob(owner=owner, kind=kind, job_id=job_id, meta=meta or {})
        self.session.add(blob)
        self.session.flush()
        return BlobWriter(self.session, blob)

    def put(
        self,
        data: bytes | Iterable[bytes],
        *,
        owner: str,
        kind: str,
        job_id: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Blob:
        writer = self.writer(owner=owner, kind=kind, job_id=job_id, meta=meta)
        for part in [data] if isinstance(data, bytes) else data:
            writer.write(part)
        return writer.finish()

    def iter_chunks(self, blob_id: str) -> Iterator[bytes]:
        """Yield the blob's chunks in order, one query per chunk (flat memory)."""
        seq = 0
        while True:
            data = self.session.scalar(
                select(BlobChunk.data).where(BlobChunk.blob_id == blob_id, BlobChunk.seq == seq)
            )
            if data is None:
                return
            yield bytes(data)
            seq += 1

    def read_range(self, blob_id: str, start: int, length: int) -> bytes:
        """``length`` bytes from byte offset ``start``, touching only the chunks needed."""
        out = bytearray()
        seq, skip = divmod(start, CHUNK_BYTES)
        while len(out) < length:
            data = self.session.scalar(
                select(BlobChunk.data).where(BlobChunk.blob_id == blob_id, BlobChunk.seq == seq)
            )
            if data is None:
                break
            out += bytes(data)[skip : skip + length - len(out)]
            seq, skip = seq + 1, 0
        return bytes(out)

    def read(self, blob_id: str) -> bytes:
        return b"".join(self.iter_chunks(blob_id))

    def find(self, job_id: str, kind: str) -> Blob | None:
        """The newest blob of ``kind`` attached to ``job_id``."""
        return self.session.scalars(
            select(Blob)
            .where(Blob.job_id == job_id, Blob.kind == kind)
            .order_by(Blob.created_at.desc())
        ).first()

    def delete(self, blob_id: str) -> None:
        self.session.execute(delete(BlobChunk).where(BlobChunk.blob_id == blob_id))
        self.session.execute(delete(Blob).where(Blob.id == blob_id))

    def delete_for_job(self, job_id: str, kind: str) -> None:
        for blob_id in self.session.scalars(
            select(Blob.id).where(Blob.job_id == job_id, Blob.kind == kind)
        ).all():
            self.delete(blob_id)


def iter_rows(
    chunks: Iterable[bytes], dtype: npt.DTypeLike, width: int, rows: int
) -> Iterator[np.ndarray]:
    """Re-block a raw row-major byte stream into arrays of ``(<= rows, width)``."""
    dt = np.dtype(dtype)
    block = rows * width * dt.itemsize
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= block:
            yield np.frombuffer(bytes(pending[:block]), dtype=dt).reshape(rows, width)
            del pending[:block]
    if pending:
        row_bytes = width * dt.itemsize
        if len(pending) % row_bytes:
            raise ValueError("stored array is truncated: its size is not a whole number of rows")
        yield np.frombuffer(bytes(pending), dtype=dt).reshape(-1, width)
