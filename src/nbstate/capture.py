"""The only module that knows IPython's hooks: it watches cells run and checkpoints after each.

Per cell: an AST transformer (run by IPython while it compiles the cell, and by %time/%timeit
for their code) records the names the code mentions, at no cost while the cell runs; after the
cell, names rebound behind the syntax's back are found by comparing identities with the last
commit; the co-variables that hold any of those names are handed to the Tracker; the result is
recorded as one commit. Nothing here may ever raise into the user's cell: every failure is
reported once as a warning, and the cell's result and output stay untouched.
"""

from __future__ import annotations

import ast
import ctypes
import importlib
import itertools
import json
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import __version__
from .analysis import CellNames, global_targets, globals_reached, names_in_source, names_in_tree
from .blobs import Chunk, digest
from .notebook import CodeState
from .remote import is_url
from .state import LiveCoVariable, Reloaded, RestoredFingerprints, Tracker, fingerprint_restored
from .store import DEFAULT_NOTEBOOK, Commit, PendingCommit, Store, StoreError

# IPython's own names: never user state, whatever they hold.
_IPYTHON_NAMES = frozenset({"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh", "_exit_code", "exit", "quit", "get_ipython"})
_OUTPUT_CACHE = re.compile(r"_i?\d+\Z")
_OWN_MAGIC = re.compile(r"\s*(%nbstate\b|%(re)?load_ext\s+nbstate\b|%unload_ext\s+nbstate\b)")
# IPython's own objects that IPython (and every %-magic) needs in the namespace: a cell that
# removes them (``globals().clear()``) gets them back, one that rebinds them is told how to undo it.
_IPYTHON_OWN = ("get_ipython", "In", "Out", "_ih", "_oh", "_dh", "exit", "quit")
# Names a user may well write (``_`` as a throwaway): assigning them is not worth a note.
_THROWAWAY = frozenset({"_", "__", "___"})
_RESET = re.compile(r"\s*%reset\b(?!_)")


def default_store_location(cwd: str | None = None) -> str:
    return os.environ.get("NBSTATE_STORE") or str(Path(cwd or os.getcwd()) / ".nbstate")


def random_states() -> dict[str, Any]:
    """A token of the state of each global random generator of a library already imported:
    Python's ``random``, NumPy's legacy global RandomState (``np.random.rand``...), torch's CPU
    generator (``torch.randn``, the weights ``nn.Linear`` draws...). Comparing the tokens taken
    after two cells tells whether the second drew from them (or seeded them). About 20 us in all;
    a generator that cannot be read is left out."""
    out: dict[str, Any] = {}
    mods = sys.modules
    if "numpy" in mods and "numpy.random" not in mods:  # (numpy imports it when first used)
        try:
            importlib.import_module("numpy.random")
        except Exception:  # noqa: BLE001 - a broken numpy: not watched
            pass
    for name, _, read, _ in _RANDOM_STATES:
        module = mods.get(name)
        if module is not None:
            try:
                out[name] = read(module)
            except Exception:  # noqa: BLE001 - a library's internals changed: not watched
                pass
    return out


_numpy_address: tuple[Any, int] | None = None  # (the global RandomState's bit generator, its state's address)


def _numpy_state(random: Any) -> bytes:
    """The global RandomState's Mersenne Twister state, its key and position, read in place
    (``get_state`` copies it into new objects: 50 us). A draw of one cached Gaussian changes
    only the RandomState's cache, which this does not see."""
    global _numpy_address
    bitgen = random.mtrand._rand._bit_generator
    if _numpy_address is None or _numpy_address[0] is not bitgen:
        _numpy_address = (bitgen, bitgen.ctypes.state_address)
    return ctypes.string_at(_numpy_address[1], _MT_STATE_BYTES)


_MT_STATE_BYTES = 624 * 4 + 4  # uint32 key[624]; int pos


def _numpy_position(state: bytes) -> int:
    return int.from_bytes(state[-4:], sys.byteorder, signed=True)


def _torch_state(torch: Any) -> bytes:
    return torch.random.get_rng_state().numpy().tobytes()


def _torch_seeded(torch: Any) -> bytes:
    g = torch.Generator()
    g.manual_seed(torch.initial_seed())
    return g.get_state().numpy().tobytes()


# Per generator: its module, the library name recorded, how to read its state, and whether the
# state of a generator made since the last look (its module imported meanwhile: there is no state
# to compare with) shows that it drew: NumPy's is seeded from the system at import and has drawn
# once its position differs from a new RandomState's; torch's has drawn once it differs from a
# generator given the same seed; Python's cannot tell (it is imported before any cell).
_RANDOM_STATES: tuple[tuple[str, str, Any, Any], ...] = (
    ("random", "random", lambda m: hash(m.getstate()), None),
    ("numpy.random", "numpy", _numpy_state, lambda m, state: _numpy_position(state) != m.RandomState().get_state(legacy=True)[2]),
    ("torch", "torch", _torch_state, lambda m, state: state != _torch_seeded(m)),
)


def random_used(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The generators whose state in ``after`` differs from ``before`` (both random_states), by
    library name; a generator made in between counts when its state shows it drew."""
    used = []
    for module, library, _, fresh_drew in _RANDOM_STATES:
        if module not in after:
            continue
        if module in before:
            if before[module] != after[module]:
                used.append(library)
            continue
        try:
            if fresh_drew is not None and fresh_drew(sys.modules[module], after[module]):
                used.append(library)
        except Exception:  # noqa: BLE001 - cannot tell: not counted
            pass
    return sorted(used)


def is_own_magic_cell(raw: str) -> bool:
    """A cell that only runs nbstate's magics (those create no commits)."""
    lines = [ln for ln in raw.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return bool(lines) and all(_OWN_MAGIC.match(ln) for ln in lines)


def notebook_from_environment(namespace: dict[str, Any]) -> str | None:
    """The notebook's path, when a frontend says which notebook this kernel serves."""
    vsc = namespace.get("__vsc_ipynb_file__")
    if isinstance(vsc, str) and vsc:
        return vsc
    jpy = os.environ.get("JPY_SESSION_NAME")
    if jpy and jpy.endswith(".ipynb"):
        p = Path(jpy)
        if p.is_absolute() or p.exists():
            return jpy
        # A path relative to the server's root: the kernel runs in the notebook's directory.
        return str(Path.cwd() / p.name) if (Path.cwd() / p.name).exists() else jpy
    return None


class _NameRecorder(ast.NodeTransformer):
    """Registered in ``shell.ast_transformers``: sees every tree IPython compiles, changes none."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def visit(self, node: ast.AST) -> ast.AST:
        try:
            self.recorder.saw_code(names_in_tree(node))
        except Exception as exc:  # pragma: no cover - defensive: never disturb compilation
            self.recorder.report(exc)
            self.recorder.saw_code(CellNames(everything=True))
        return node


class Recorder:
    """Checkpoints one IPython shell's namespace after every cell."""

    def __init__(self, shell: Any, store_location: str | None = None, notebook: str | None = None) -> None:
        self.shell = shell
        self.namespace: dict[str, Any] = shell.user_ns
        self.hidden: dict[str, Any] = dict(getattr(shell, "user_ns_hidden", {}))
        location = store_location or default_store_location()
        self.mirror: Any = None  # the URL a store there is copied to after each cell (remote.py)
        if is_url(location):
            from .remote import Mirror, pull

            root = pull(location, for_writing=True)
            self.store = Store(root)
            self.mirror = Mirror(location, root)
        else:
            self.store = Store(location)
        self.notebook_path = notebook or notebook_from_environment(self.namespace)
        self.notebook_id = self._notebook_id(self.notebook_path)
        self.session_id = uuid.uuid4().hex
        self.code_state = CodeState(self.notebook_path) if self.notebook_path else None
        self._cell_id: str | None = None
        self.store.ensure_notebook(self.notebook_id, self.notebook_path)
        self.store.start_session(self.session_id, self.notebook_id, sys.version.split()[0], __version__)
        self.tracker = Tracker(self.namespace)
        self._pending = CellNames()
        self._depth = 0
        self._started = 0.0
        self._raw_cell = ""
        self._identities: dict[str, int] = {}
        # This session's last commit while the tracker's versions are still its state (None
        # after a checkout or a failed checkpoint): the next commit's changes are then exactly
        # what its checkpoint changed.
        self._base: str | None = None
        self._warned = False
        self._paused_until: float | None = None
        self._disabled: str | None = None  # why checkpoints stopped for good (a damaged database)
        self._never_user: set[str] = set()  # names that are IPython's whatever they hold
        self._plain_user: set[str] = set()  # names that are the user's whatever they hold
        # What user_names saw last: the namespace's size and newest keys (newest first), the
        # plain user names and the names to test each time (IPython hid a value under them).
        # None: scan it all.
        self._seen: tuple[int, tuple[str, ...], set[str], set[str]] | None = None
        self._scans = 0
        # The names user_names found added since the last commit (None: it looked at all of
        # them, or nothing was committed yet).
        self._fresh: set[str] | None = None
        # Which names a commit compares by identity (see _touched): those the syntax showed and
        # the names notebook functions declare `global`, every name every few cells, and every
        # name always once the namespace was seen changing where no syntax showed.
        self._declared: set[str] = set()
        self._behind = False
        self._since_all = 0
        # The namespace changed where no cell's syntax was seen (nbstate's own magics): the
        # next commit compares every name and learns nothing from what it finds.
        self._unwatched = True
        self._noted: set[str] = set()  # IPython names the user was told about
        self.last_deleted: list[str] = []
        self.last_error: str | None = None
        self.last_commit: Commit | None = None
        self._transformer = _NameRecorder(self)
        # Fingerprints of values a restore just loaded, being taken in the background (see
        # after_restore); finished before the next cell or checkpoint.
        self._fingerprinting: RestoredFingerprints | None = None
        # random_states() after the last cell (None: not taken yet): a cell drew from a global
        # random generator when the state after it differs. Between cells, only code outside
        # them (a widget's callback, a thread) can draw, and that is counted to the next cell.
        self._random_seen: dict[str, Any] | None = None

    def _notebook_id(self, path: str | None) -> str:
        if not path:
            return DEFAULT_NOTEBOOK
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.store.root.resolve().parent))
        except ValueError:
            return str(p.resolve()) if p.is_absolute() else str(p)

    # --- wiring --------------------------------------------------------------------------------

    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.shell.ast_transformers.append(self._transformer)
        # The state as it is now (often empty) is the root that the first cell's undo returns to;
        # in a restarted kernel it follows the old HEAD, so undo brings the old state back.
        self.commit(code="# the state when nbstate was loaded", everything=True, kind="baseline")
        self._randomness()  # the generators' states to compare the first cell's with

    def unregister(self) -> None:
        self.settle()
        for event, fn in (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell)):
            try:
                self.shell.events.unregister(event, fn)
            except ValueError:
                pass
        if self._transformer in self.shell.ast_transformers:
            self.shell.ast_transformers.remove(self._transformer)
        self.store.close()

    # --- events --------------------------------------------------------------------------------

    def saw_code(self, names: CellNames) -> None:
        self._pending.update(names)
        self._declared |= names.declared
        # Functions are looked at now, before the cell can rebind them.
        reached, wildcard = globals_reached(names.reads, self.namespace)
        self._pending.reads |= reached
        self._pending.everything |= wildcard

    def pre_run_cell(self, info: Any) -> None:
        self.settle()
        self._depth += 1
        if self._depth == 1:
            self._started = time.time()
            self._raw_cell = getattr(info, "raw_cell", "") or ""
            self._cell_id = getattr(info, "cell_id", None)

    def post_run_cell(self, result: Any) -> None:
        if self._depth == 0:  # the cell that loaded the extension: it had no pre_run_cell
            return
        self._depth -= 1
        if self._depth > 0:  # a cell run by a magic inside another cell
            return
        if is_own_magic_cell(self._raw_cell):
            self._unwatched = True  # a magic may have set names (`log --json`) or moved many
            self._send()  # checkout, undo, branch... moved refs
            if self._fingerprinting is not None:
                self._fingerprinting.begin()  # last: see after_restore
            return
        duration = time.time() - self._started
        error = result.error_in_exec or result.error_before_exec
        error_text = None if error is None else f"{type(error).__name__}: {error}"
        written = set(self._pending.writes)
        self.last_deleted = []
        randomness = self._randomness()
        commit = self.commit(
            code=self._raw_cell,
            execution_count=getattr(result, "execution_count", None),
            started=self._started,
            duration=duration,
            error=error_text,
            randomness=randomness,
        )
        self._send()
        try:
            self._check_ipython_names(written)
            if commit is not None and self.last_deleted and _RESET.match(self._raw_cell):
                _say(
                    f"nbstate: %reset removed {len(self.last_deleted)} variable(s); "
                    "`%nbstate undo` brings them back."
                )
        except Exception as exc:  # pragma: no cover - defensive: never disturb the cell
            self.report(exc)

    def _randomness(self) -> list[str] | None:
        """The global random generators the cell just run drew from (None: cannot tell)."""
        try:
            seen, self._random_seen = self._random_seen, random_states()
            return random_used(seen, self._random_seen) if seen is not None else None
        except Exception:  # pragma: no cover - defensive: never disturb the cell
            self._random_seen = None
            return None

    def _check_ipython_names(self, written: set[str]) -> None:
        """IPython's own names: put back those a cell removed (IPython's magics need them), and
        say once per name that a rebound one is not recorded and how to get IPython's back."""
        hidden = getattr(self.shell, "user_ns_hidden", {})
        restored, rebound = [], []
        for name in _IPYTHON_OWN:
            own = hidden.get(name, _MISSING)
            if own is _MISSING:
                continue
            current = self.namespace.get(name, _MISSING)
            if current is own:
                continue
            if current is _MISSING:
                self.namespace[name] = own
                restored.append(name)
            elif name not in self._noted:
                rebound.append(name)
        history = sorted(
            n for n in written
            if n not in _THROWAWAY and n not in self._noted and n not in rebound
            and (n in _IPYTHON_NAMES or _OUTPUT_CACHE.match(n)) and n not in _IPYTHON_OWN
        )
        if restored:
            _say(
                f"nbstate: this cell removed IPython's own {', '.join(restored)}; "
                f"{'it was' if len(restored) == 1 else 'they were'} put back, "
                "since IPython's magics (%nbstate included) need them. "
                "Variables the cell removed are recorded as deleted: `%nbstate undo` brings them back."
            )
        if rebound:
            self._noted.update(rebound)
            _say(
                f"nbstate: {', '.join(rebound)} {'is' if len(rebound) == 1 else 'are'} IPython's own "
                f"name{'s' if len(rebound) > 1 else ''}, which nbstate never records: undo and checkout leave "
                f"{'it' if len(rebound) == 1 else 'them'} as it is now. Keep your value under another name; "
                f"`del {', '.join(rebound)}` gives IPython's back."
            )
        if history:
            self._noted.update(history)
            _say(
                f"nbstate: {', '.join(history)} {'is a name' if len(history) == 1 else 'are names'} of IPython's "
                "input and output history, which IPython rebinds after cells and nbstate never records; "
                "keep your value under another name."
            )

    # --- the checkpoint ------------------------------------------------------------------------

    def is_user_name(self, name: str) -> bool:
        if name in _IPYTHON_NAMES or (name.startswith("__") and name.endswith("__")) or _OUTPUT_CACHE.match(name):
            return False
        hidden = self.hidden.get(name, _MISSING)
        return hidden is _MISSING or self.namespace.get(name, _MISSING) is not hidden

    def user_names(self, full: bool = False) -> set[str]:
        """The names of the user's variables (a set that may be kept and handed out again: not
        to be changed). ``full``: look at every name, not only those added since the last look."""
        # IPython adds `_iN` (and `_N`) after every cell: names whose form alone makes them
        # IPython's are set aside once, and so are names whose form makes them the user's (they
        # are, unless IPython hid a value under them). A dict keeps its keys in the order they
        # were added, so the names added since the last look are the newest keys, down to the
        # newest one seen then: when the size says nothing else came or went, only they are
        # looked at, and a long session does not pay for the thousands of names IPython keeps.
        ns = self.namespace
        self._scans += 1
        fresh = self._added_names() if self._scans % 100 and not full else None
        try:
            if fresh is None:
                plain, tested = self._classify(ns.keys() - self._never_user)
            else:
                _, _, plain, tested = self._seen  # type: ignore[misc]
                if fresh:
                    new_plain, new_tested = self._classify(fresh)  # (a copy only when it adds)
                    plain = plain | new_plain if new_plain else plain
                    tested = tested | new_tested if new_tested else tested
            self._seen = (len(ns), tuple(itertools.islice(reversed(ns), 2)), plain, tested) if ns else None
        except RuntimeError:  # another thread changed the namespace meanwhile: look again next time
            self._seen = None
            fresh = None
            plain, tested = self._classify(set(ns) - self._never_user)
        if fresh is None or self._fresh is None or len(self._fresh) > 1000:
            self._fresh = None
        else:
            self._fresh |= fresh
        if not tested:
            return plain
        return plain | {n for n in tested if self.is_user_name(n)}

    def _added_names(self) -> set[str] | None:
        """The names added to the namespace since user_names last looked, when nothing was
        removed meanwhile; None when that cannot be told (then everything is looked at).

        The newest keys seen then must still follow each other: a newest key deleted and bound
        again comes back at the end, after names added before it, which would not be looked at.
        (A removal that the additions balance and that this does not show is caught by commit:
        the identity comparison finds the name gone.)"""
        if self._seen is None:
            return None
        size, tail, _, _ = self._seen
        ns = self.namespace
        grown = len(ns) - size
        if grown < 0 or grown > 1000 or tail[0] not in ns:
            return None
        added: list[str] = []
        keys = reversed(ns)
        for n in keys:
            if n == tail[0]:
                break
            added.append(n)
            if len(added) > grown:
                return None
        if len(tail) > 1 and next(keys, None) != tail[1]:
            return None
        return set(added) if len(added) == grown else None

    def _classify(self, names: set[str]) -> tuple[set[str], set[str]]:
        """(names that are the user's, names to test each time) among ``names``."""
        never, plain = self._never_user, self._plain_user
        names = names - never
        for n in names - plain:
            if n in _IPYTHON_NAMES or (n.startswith("__") and n.endswith("__")) or _OUTPUT_CACHE.match(n):
                never.add(n)
            elif n not in self.hidden:
                plain.add(n)
        return names & plain, names - plain - never

    def commit(
        self,
        code: str,
        execution_count: int | None = None,
        started: float | None = None,
        duration: float = 0.0,
        error: str | None = None,
        everything: bool = False,
        kind: str = "auto",
        message: str | None = None,
        randomness: list[str] | None = None,
    ) -> Commit | None:
        """Checkpoint what changed since the last commit; never raises. ``randomness``: the
        global random generators the cell drew from (random_used)."""
        self.settle()
        if self._disabled is not None:
            return None
        if self._paused_until is not None and time.monotonic() < self._paused_until:
            return None  # the store cannot be written; what cells touch accumulates in _pending
        t0 = time.perf_counter()
        names = self._pending
        try:
            self._pending = CellNames()
            user = self.user_names()
            wide = everything or names.everything
            touched, compared_all = self._touched(names, user, wide)
            if any(n not in self.namespace for n in touched & user):
                # A name that the look at the newest names still counts is gone: the namespace
                # changed in a way its size and newest keys did not show. Look at all of it.
                user = self.user_names(full=True)
                touched, compared_all = self._touched(names, user, wide)
            with self.store.writing():  # gc waits until the commit names the blobs written
                # Unless every name was compared, only a name the cell touched can have gone.
                cp = self.tracker.checkpoint(touched, user, self.store.blobs, None if compared_all else touched)
                pending = PendingCommit(
                    notebook_id=self.notebook_id,
                    session_id=self.session_id,
                    code=code,
                    execution_count=execution_count,
                    started=started if started is not None else time.time(),
                    duration=duration,
                    reads=sorted(n for n in names.reads if n in user or n in self._identities),
                    writes=sorted({n for v, _ in cp.new for n in v.names}),
                    deletes=cp.deleted,
                    error=error,
                    kept=cp.kept,
                    new_versions=[v for v, _ in cp.new],
                    blobs=cp.blobs,
                    examined=cp.examined,
                    kind=kind,
                    message=message,
                    base=self._base,
                    randomness=randomness,
                )
                if self.code_state is not None:
                    pending.code_blob = self._record_code(pending, ran=kind == "auto")
                pending.capture_seconds = time.perf_counter() - t0
                commit = self.store.record(pending)
            for version, live in cp.new:
                self.tracker.recorded(live, version.id)  # type: ignore[arg-type]
            # Only touched names can hold other objects than at the last commit (_rebound saw
            # every name whose object changed): the others keep their entries.
            identities = self._identities
            for n in identities.keys() - user if compared_all else [n for n in touched if n in identities and n not in user]:
                del identities[n]
            for n in touched & user:
                identities[n] = id(self.namespace[n])
            self._fresh = set()
            self._unwatched = False
            self.last_commit = commit
            self._base = commit.id
            self.last_deleted = list(cp.deleted)
            if self._paused_until is not None:
                self._paused_until = None
                print("nbstate: the store can be written again; checkpoints resumed.", file=sys.stderr)
            return commit
        except (Exception, KeyboardInterrupt) as exc:  # an interrupt stops the checkpoint, not the cell
            # What this cell touched, and co-variables serialized but not recorded, are looked
            # at again next time; the store holds at worst unreferenced blobs.
            self._base = None
            names.update(self._pending)
            names.writes |= {n for n, cv in self.tracker.by_name.items() if cv.version_id is None}
            names.everything |= isinstance(exc, KeyboardInterrupt)  # it may have stopped anywhere
            self._pending = names
            if _damaged(exc):
                self._disable(exc)
            elif _cannot_write(exc):
                self._pause(exc)
            else:
                self.report(exc)
            return None

    def _send(self) -> None:
        """Have the mirror copy the store to its URL (in the background), when there is one."""
        if self.mirror is not None:
            try:
                self.mirror.schedule()
            except Exception as exc:  # pragma: no cover - defensive: never disturb the cell
                self.report(exc)

    def _disable(self, exc: BaseException) -> None:
        """The store's database is damaged: stop checkpointing for this session, say so once."""
        from .store import damaged_database_message

        why = str(exc) if isinstance(exc, StoreError) else damaged_database_message(self.store.root, exc)
        self._disabled = why
        self.last_error = why
        _say(f"nbstate: checkpoints are off for this session: {why} Your cells run normally.")

    def _pause(self, exc: BaseException) -> None:
        first = self._paused_until is None
        self._paused_until = time.monotonic() + PAUSE_SECONDS
        self.last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if first:
            print(
                f"nbstate: the store at {self.store.root} cannot be written ({self.last_error}). "
                f"Checkpoints are paused and retried every {PAUSE_SECONDS:g} s; your cells run normally, "
                "and what they change is recorded once space returns.",
                file=sys.stderr,
            )

    def _record_code(self, pending: PendingCommit, ran: bool) -> str:
        assert self.code_state is not None
        cells = self.code_state.cells(self._cell_id, self._raw_cell) if ran else self.code_state.cells()
        data = json.dumps(cells, sort_keys=True).encode()
        chunk = Chunk(digest(data), memoryview(data))
        written = self.store.blobs.put(chunk)
        if written is not None:
            pending.blobs.append(written)
        return chunk.hash

    def live_versions(self) -> dict[str, int]:
        """Each user name's version id as last recorded (names not yet recorded are absent)."""
        return dict(self.tracker.versions)

    def transform(self, code: str) -> str:
        """A cell's source as IPython would compile it (magics become calls)."""
        try:
            return self.shell.transform_cell(code)
        except Exception:
            return code

    def settle(self) -> None:
        """Wait for the fingerprints of restored values that are still being taken."""
        fingerprinting, self._fingerprinting = self._fingerprinting, None
        if fingerprinting is not None:
            fingerprinting.finish()

    def after_restore(self, restored: Iterable[LiveCoVariable], deleted: Iterable[str], reloaded: list[Reloaded] | None = None) -> None:
        """Bring the tracker in step with a namespace that a checkout just changed.

        ``reloaded``: the loaded co-variables whose fingerprints as restored are still to be
        taken. When the checkout is all its cell runs (``%nbstate checkout``, ``import``), no
        code can touch them before the next cell starts: they are taken in the background
        meanwhile, and the checkout returns that much sooner. The thread starts when the cell's
        own work is done (post_run_cell), not here: pickling the values needs the interpreter's
        lock, and taking turns with it slowed the rest of the cell (by 0.04-0.08 s after an EDA
        import). Otherwise they are taken now."""
        self.settle()
        if reloaded:
            if self._depth == 1 and is_own_magic_cell(self._raw_cell):
                self._fingerprinting = RestoredFingerprints(reloaded, self.namespace)
            else:
                fingerprint_restored(reloaded, self.namespace)
        self._base = None
        self.tracker.drop(set(deleted))
        for live in restored:
            self.tracker.adopt(live)
        self._seen = None  # a checkout adds and removes many names: look at all of them
        self._unwatched = True
        try:  # functions brought back may rebind names declared `global`, as the cells that made them did
            self._declared |= global_targets((self.namespace.get(n) for live in restored for n in live.names), self.namespace)
        except Exception as exc:  # pragma: no cover - defensive: then every name is compared from now on
            self._behind = True
            self.report(exc)
        untracked = self.user_names() - self.tracker.all_names()
        self.tracker.drop(untracked)
        # The names the cell's code showed stay pending: code after the checkout in the same
        # cell may change what was just restored.
        self._pending.update(CellNames(writes=untracked))
        self._identities = {n: id(self.namespace[n]) for n in self.user_names()}

    def _touched(self, names: CellNames, user: set[str], everything: bool) -> tuple[set[str], bool]:
        """The names the checkpoint examines, and whether every name was compared by identity."""
        if everything:
            return user | self.tracker.all_names(), True
        tracked = self.tracker.by_name
        syntax = names.touched
        touched = {n for n in syntax if n in user or n in tracked}
        identities = self._identities
        # Whatever a cell rebinds is found by comparing identities with the last commit's. Most
        # cells can rebind only the names their syntax shows (and what the notebook's functions
        # they reach name, which saw_code added) or a name some notebook function declares
        # `global` (called by a widget, a thread): only those are compared, so a cell's cost
        # does not grow with the number of variables. Every name is compared after a cell that
        # reaches the namespace by other means (a magic, IPython's API, `sys.modules`), when a
        # name came or went where no syntax showed, and every COMPARE_ALL_EVERY cells; and at
        # every cell from the first time such a comparison finds a name that no syntax showed
        # (code outside the notebook writes its namespace: a library, a thread).
        expected = syntax | self._declared
        fresh = self._fresh
        self._since_all += 1
        if fresh is not None and not (self._behind or names.opaque or self._unwatched or self._since_all >= COMPARE_ALL_EVERY):
            if (fresh & user) <= expected:
                candidates = {n for n in expected | fresh if n in user or n in identities}
                return touched | _rebound(identities, self.namespace, candidates, every=False), False
            self._behind = True
        self._since_all = 0
        rebound = _rebound(identities, self.namespace, user)
        if not (names.opaque or self._unwatched) and not rebound <= expected:
            self._behind = True
        return touched | rebound, True

    def report(self, exc: BaseException) -> None:
        self.last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if not self._warned:
            self._warned = True
            summary = " ".join(self.last_error.split())  # one line, whatever the error's text
            try:
                print(
                    f"nbstate: could not checkpoint this cell ({summary}). Your cell ran normally; "
                    "`%nbstate status` shows the last error. Further errors are not printed.",
                    file=sys.stderr,
                )
            except Exception:  # no usable stderr: the status still has the error
                pass


_MISSING = object()
# How long checkpoints wait after the store could not be written (disk full, read-only).
PAUSE_SECONDS = 30.0
# Every how many commits every name is compared by identity, not only those a cell's syntax showed.
COMPARE_ALL_EVERY = 20


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except Exception:  # pragma: no cover - no usable stderr
        pass


def _damaged(exc: BaseException) -> bool:
    """Whether ``exc`` says the store's database is damaged (not merely busy or read-only)."""
    import sqlite3

    from .store import DamagedStore, _is_corruption

    if isinstance(exc, DamagedStore):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError) and _is_corruption(exc)


def _cannot_write(exc: BaseException) -> bool:
    import errno
    import sqlite3

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("disk is full" in text or "readonly" in text or "read-only" in text)


def _rebound(identities: dict[str, int], namespace: dict[str, Any], names: Iterable[str], every: bool = True) -> set[str]:
    """Which of ``names`` were bound, rebound or unbound since the last commit, whatever the
    syntax showed; ``every``: ``names`` are all the user's names, and every name the last
    commit had but the namespace lacks now counts too."""
    changed = {n for n in names if identities.get(n) != id(namespace.get(n, _MISSING))}
    if every:
        changed |= {n for n in identities if n not in namespace}
    return changed


__all__ = ["Recorder", "default_store_location", "is_own_magic_cell", "names_in_source"]
