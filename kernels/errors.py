"""The two error types every input check raises, kernel or not (no dependencies).

core/runtime/validation.py re-exports both under the same names, so pages catching
``core.runtime.validation.ValidationError`` also catch what kernels/ raises: one class
each, defined here because kernels/ imports nothing from core/.
Does not handle: formatting messages for a page (app/ui.py shows ``str(err)``).
"""

from __future__ import annotations


class ValidationError(ValueError):
    """A user input was rejected; ``str(err)`` is a message fit for the page."""


class ResourceError(RuntimeError):
    """A run did not fit the device (out of memory, over a time or size limit).

    The message says what to lower; ``str(err)`` is shown on the page.
    """
