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
        self.error: str | None = None  # why nothing records, when the store could not be opened

    def start(self, store: str | None = None, notebook: str | None = None) -> Any:
        """Record into ``store``; when it cannot be opened, raise and keep recording as before."""
        from .capture import Recorder

        recorder = Recorder(self.shell, store_location=store, notebook=notebook)
        if self.recorder is not None:
            self.recorder.unregister()
        self.recorder = recorder
        self.error = None
        recorder.register()
        return recorder

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
    shell.register_magics(NbstateMagics(shell, ext))
    try:
        ext.start()
    except Exception as exc:  # a store that cannot be used must not stop the kernel or its cells
        ext.error = describe_failure(exc)
        import sys

        hint = "" if "init --store" in ext.error else " `%nbstate init --store PATH` records into another store."
        print(f"nbstate: not recording in this kernel: {ext.error} Your cells run normally.{hint}", file=sys.stderr)


def describe_failure(exc: BaseException) -> str:
    """One line saying why a store cannot be used (a StoreError's message says what to do)."""
    from .store import StoreError

    text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if text.endswith(".") else text + "."


def unload_ipython_extension(shell: Any) -> None:
    ext = _extensions.pop(id(shell), None)
    if ext is not None:
        ext.stop()


def recorder_of(shell: Any) -> Any:
    """The live Recorder of ``shell`` (None when nbstate is not loaded there)."""
    ext = _extensions.get(id(shell))
    return ext.recorder if ext else None
