"""The device a run uses: the path the project's brief names (core/device.py).

The code lives in core/runtime/device.py (the runtime group); this module is that module,
so ``from core.device import pick_device`` and ``from core.runtime.device import
pick_device`` give the same objects. Code inside the project imports core.runtime.device.
"""

import sys

from core.runtime import device as _device

sys.modules[__name__] = _device
