"""nbstate: a memory of a notebook kernel's state.

``%load_ext nbstate`` in any IPython kernel; after every cell the session's variables are
checkpointed incrementally, at the granularity of co-variables. See README.md.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


class _Extension:
    """The loaded extension of one shell: holds its Recorder, swaps it on `%nbstate init`."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.recorder: Any = None

    def start(self, store: str | None = None, notebook: str | None = None) -> Any:
        from .capture import Recorder

        if self.recorder is not None:
            self.recorder.unregister()
        self.recorder = Recorder(self.shell, store_location=store, notebook=notebook)
        self.recorder.register()
        return self.recorder

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.unregister()
            self.recorder = None


_extensions: dict[int, _Extension] = {}


def load_ipython_extension(shell: Any) -> None:
    from .magics import NbstateMagics

    if id(shell) in _extensions:
        return
    ext = _Extension(shell)
    _extensions[id(shell)] = ext
    ext.start()
    shell.register_magics(NbstateMagics(shell, ext))


def unload_ipython_extension(shell: Any) -> None:
    ext = _extensions.pop(id(shell), None)
    if ext is not None:
        ext.stop()


def recorder_of(shell: Any) -> Any:
    """The live Recorder of ``shell`` (None when nbstate is not loaded there)."""
    ext = _extensions.get(id(shell))
    return ext.recorder if ext else None
