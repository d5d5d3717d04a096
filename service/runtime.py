"""Process settings the services share."""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 20_000  # Python's default: 700


def tune_gc() -> None:
    """Run the cyclic garbage collector less often, and never over startup's objects.

    A persister batch in flight holds thousands of fresh dicts; at the default threshold
    the collector scanned them again and again (0.62 s of GC in a 7 s drain: 9 % of the
    persister's CPU; at this threshold, one pass). Reference counting still frees
    everything that is not a cycle at once; cycles are found later, not never.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
