"""Start-up of the `ptm` process: garbage collection off while torch and the model load.

Importing torch and torchvision allocates hundreds of thousands of objects, and every few hundred
allocations the cyclic collector walks them all: about 0.4 s of a 3.5 s cold start, for nothing,
since none of it is garbage. Commands that then loop over many inputs call `loaded()` to freeze
what start-up made (never scanned again) and turn the collector back on for the per-image work.
Commands that do one thing and exit leave it off.
"""

from __future__ import annotations

import gc


def starting() -> None:
    gc.disable()


def loaded() -> None:
    gc.freeze()
    gc.enable()
