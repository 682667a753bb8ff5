"""``DataStream``: a dataset as an infinite stream of global batches whose order depends only on
(seed, position), never on the number of workers; resumable."""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from transgan_lab.trainers.data.base import DatasetError, ImageDataset, to_unit


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the parts, identical in every process and on every platform."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class DataStream:
    """Infinite stream of global batches, resumable and identical for any number of ranks.

    The global order is the concatenation of per-epoch permutations, each drawn from
    (seed, epoch) with a ``torch.Generator``. Global batch k is positions
    ``[k * global_batch, (k + 1) * global_batch)`` of that order; it runs across epoch boundaries
    without dropping or repeating images. Rank r returns rows
    ``[r * global_batch / world_size, (r + 1) * global_batch / world_size)`` of it, so the ranks'
    batches concatenated in rank order are the same global batch for every world size.
    Horizontal flips are decided per (seed, epoch, dataset index), so they too are independent of
    world size and survive resume. ``state_dict()`` is ``{"position": images consumed globally,
    ...}``; ``load_state_dict`` continues with exactly the next batch.

    In-memory datasets are indexed directly (their tensor is moved to ``device`` once); file-backed
    ones are decoded in one background thread, ``prefetch`` batches ahead (results depend only on
    the position, so prefetching does not change them).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        global_batch: int,  # images per global batch, summed over ranks
        seed: int,  # order and flips are functions of (seed, epoch, index)
        rank: int = 0,  # this worker's rank
        world_size: int = 1,  # number of data-parallel ranks
        hflip: bool = False,  # random horizontal flips (photos; never digits)
        device: str | torch.device = "cpu",  # where next_batch() puts its tensor
        prefetch: int = 2,  # batches decoded ahead for file-backed datasets (0 = none)
    ):
        n = len(dataset)
        if n < 1:
            raise DatasetError("DataStream: the dataset is empty")
        if global_batch < 1 or world_size < 1 or global_batch % world_size:
            raise ValueError(
                f"DataStream: global_batch={global_batch} must be a positive multiple of world_size={world_size} "
                "(each rank takes an equal slice)"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"DataStream: rank={rank} must be in [0, world_size={world_size})")
        self.dataset, self.n = dataset, n
        self.global_batch, self.seed, self.rank, self.world_size = global_batch, int(seed), rank, world_size
        self.local_batch = global_batch // world_size
        self.hflip, self.device = hflip, torch.device(device)
        self.position = 0  # images consumed globally (all ranks), i.e. global_batch x batches served
        self._epochs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._epochs_lock = threading.Lock()  # the prefetch thread and the caller share the cache
        images = getattr(dataset, "images", None)  # any dataset holding an (N, C, H, W) tensor is indexed directly
        self._store = images.to(self.device) if images is not None else None
        self._prefetch = 0 if self._store is not None else max(0, int(prefetch))
        self._pool: ThreadPoolExecutor | None = None
        self._queue: deque[tuple[int, Future]] = deque()

    # -- order -----------------------------------------------------------------------------
    def _epoch_tables(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(permutation, flip flags by dataset index) of one epoch; a few epochs are cached."""
        with self._epochs_lock:
            return self._epoch_tables_locked(epoch)

    def _epoch_tables_locked(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        tables = self._epochs.get(epoch)
        if tables is None:
            g = torch.Generator().manual_seed(derive_seed("order", self.seed, epoch))
            perm = torch.randperm(self.n, generator=g)
            flips = None
            if self.hflip:
                g = torch.Generator().manual_seed(derive_seed("hflip", self.seed, epoch))
                flips = torch.randint(0, 2, (self.n,), generator=g, dtype=torch.uint8).bool()
            if len(self._epochs) >= 3:
                self._epochs.pop(min(self._epochs))
            tables = self._epochs[epoch] = (perm, flips)
        return tables

    def indices(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dataset indices and flip flags of global positions [start, start + count)."""
        idx = torch.empty(count, dtype=torch.long)
        flip = torch.zeros(count, dtype=torch.bool)
        j = 0
        while j < count:
            epoch, off = divmod(start + j, self.n)
            take = min(count - j, self.n - off)
            perm, flips = self._epoch_tables(epoch)
            idx[j : j + take] = perm[off : off + take]
            if flips is not None:
                flip[j : j + take] = flips[idx[j : j + take]]
            j += take
        return idx, flip

    def _local(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.indices(position + self.rank * self.local_batch, self.local_batch)

    def _load(self, position: int) -> torch.Tensor:
        idx, flip = self._local(position)
        x = self.dataset.get_batch(idx)  # (local_batch, C, H, W) float in [-1, 1]
        if flip.any():
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x

    # -- API -------------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        """This rank's rows of the next global batch: (global_batch / world_size, C, H, W)."""
        pos = self.position
        if self._store is not None:
            idx, flip = self._local(pos)
            x = to_unit(self._store[idx.to(self.device)])
            if flip.any():
                x = torch.where(flip.to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        elif self._prefetch:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datastream")
            while self._queue and self._queue[0][0] != pos:  # stale after load_state_dict
                self._queue.popleft()[1].cancel()
            while len(self._queue) < self._prefetch + 1:
                nxt = self._queue[-1][0] + self.global_batch if self._queue else pos
                self._queue.append((nxt, self._pool.submit(self._load, nxt)))
            x = self._queue.popleft()[1].result().to(self.device, non_blocking=True)
        else:
            x = self._load(pos).to(self.device)
        self.position = pos + self.global_batch
        return x

    def __iter__(self):
        while True:
            yield self.next_batch()

    @property
    def epoch(self) -> int:
        """Completed passes over the dataset (global): position // len(dataset)."""
        return self.position // self.n

    @property
    def epoch_progress(self) -> float:
        """Epochs as a float, e.g. 2.5 halfway through the third pass."""
        return self.position / self.n

    def state_dict(self) -> dict:
        return {"position": int(self.position), "seed": self.seed, "dataset_len": self.n, "hflip": bool(self.hflip)}

    def load_state_dict(self, sd: dict) -> None:
        """Continue at ``sd["position"]``; refuses a state from another seed or dataset size."""
        if int(sd.get("seed", self.seed)) != self.seed:
            raise ValueError(f"DataStream state has seed {sd['seed']}, this stream {self.seed}: the order would differ")
        if int(sd.get("dataset_len", self.n)) != self.n:
            raise ValueError(
                f"DataStream state was saved on a dataset of {sd['dataset_len']} images, this one has {self.n}: "
                "resuming would not continue the same order; use the same data"
            )
        self.position = int(sd["position"])
        while self._queue:
            self._queue.popleft()[1].cancel()

    def settle(self) -> None:
        """Wait for the batches being decoded in the background (a CUDA graph capture forbids CUDA
        calls from other threads while it runs, and decoding pins memory); errors stay for next_batch."""
        for _, fut in self._queue:
            fut.exception()

    def close(self) -> None:
        """Stop the prefetch thread (also happens at interpreter exit)."""
        while self._queue:
            self._queue.popleft()[1].cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> DataStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
