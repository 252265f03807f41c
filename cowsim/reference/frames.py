"""The physical frame allocator (csrc/frames.c).

Frames are numbered 1 .. nframes - 1 (frame 0 is the zero page, never counted).  Free
frames form a LIFO list -- the last freed frame comes out first, so the order in which
frames are freed is observable -- and frames never handed out lie above ``_next_never``
and are taken in increasing order.

Huge pages take 512-aligned blocks of 512 frames (a buddy allocator's order-9 block):
``_find_block`` / ``_alloc_block`` give the lowest fully free-listed block, else the
first aligned block above the never-used frames, whose skipped frames go onto the free
list lowest on top.
"""
from __future__ import annotations

from typing import Dict, List

from cowsim import OutOfMemory

from .internal import ANON, EXCLUSIVE, HPAGE_NR, HUGE


class Frames:
    """The frame table of a machine: reference count, map count, flags and (with
    ``store_data``) the bytes of every frame.  ``RefMachine`` is one."""

    def __init__(self, nframes: int, page_size: int, store_data: bool) -> None:
        self.nframes = nframes
        self.page_size = page_size
        self.store_data = store_data
        n = nframes
        self._ref = [0] * n
        self._map = [0] * n
        self._flags = [0] * n
        self._used = [False] * n
        self._data: Dict[int, bytearray] = {}
        self._free_list: List[int] = []        # LIFO: the last freed frame comes out first
        self._next_never = 1                    # lowest frame never handed out
        self._nused = 0
        self._peak = 0
        self._allocated = 0
        self._freed = 0

    def _nfree(self) -> int:
        return self.nframes - 1 - self._nused

    def _need(self, nframes: int) -> None:
        """Raise OutOfMemory, before anything changes, unless ``nframes`` are free."""
        if nframes > self._nfree():
            raise OutOfMemory(f"{nframes} frames needed, {self._nfree()} free")

    def _alloc(self, flags: int) -> int:
        if self._free_list:
            f = self._free_list.pop()
        elif self._next_never < self.nframes:
            f = self._next_never
            self._next_never += 1
        else:  # pragma: no cover - every caller counts first
            raise AssertionError("model bug: allocation without counting")
        assert not self._used[f]
        self._used[f] = True
        self._ref[f], self._map[f], self._flags[f] = 1, 0, flags
        if self.store_data:
            self._data[f] = bytearray(self.page_size)
        self._count_alloc(1)
        return f

    def _free(self, f: int) -> None:
        assert f != 0 and self._used[f]
        self._used[f] = False
        self._ref[f] = self._map[f] = self._flags[f] = 0
        self._data.pop(f, None)
        self._free_list.append(f)
        self._nused -= 1
        self._freed += 1

    def _put(self, f: int) -> None:
        """Drop one reference of frame ``f``; free it at 0."""
        self._ref[f] -= 1
        if self._ref[f] == 0:
            self._free(f)

    def _count_alloc(self, n: int) -> None:
        self._nused += n
        self._peak = max(self._peak, self._nused)
        self._allocated += n

    def _find_block(self) -> int:
        """A free block for a huge page (its first frame), or 0: the lowest-numbered block
        all of whose frames are on the free list, else the first aligned block at or above
        the never-used frames.  Block 0 holds the zero page and is never free."""
        free = set(self._free_list)
        for b in range(HPAGE_NR, self._next_never - self._next_never % HPAGE_NR, HPAGE_NR):
            if all(f in free for f in range(b, b + HPAGE_NR)):
                return b
        b = -(-self._next_never // HPAGE_NR) * HPAGE_NR
        return b if b + HPAGE_NR <= self.nframes else 0

    def _alloc_block(self, b: int) -> None:
        """Take block ``b`` (from _find_block) for a huge page: each frame ANON, EXCLUSIVE,
        HUGE, refcount 1, mapcount 1.  A block above the never-used frames skips the frames
        below it: they go onto the free list, the lowest on top, so that single frames
        still come out in increasing order."""
        if b >= self._next_never:
            for f in range(b - 1, self._next_never - 1, -1):
                self._free_list.append(f)
            self._next_never = b + HPAGE_NR
        else:
            block = set(range(b, b + HPAGE_NR))
            self._free_list = [f for f in self._free_list if f not in block]
        for f in range(b, b + HPAGE_NR):
            assert not self._used[f]
            self._used[f] = True
            self._ref[f], self._map[f], self._flags[f] = 1, 1, ANON | EXCLUSIVE | HUGE
            if self.store_data:
                self._data[f] = bytearray(self.page_size)
        self._count_alloc(HPAGE_NR)

    def _bytes(self, f: int) -> bytes:
        if f == 0:
            return bytes(self.page_size)
        return bytes(self._data[f])
