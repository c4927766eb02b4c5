"""Bundles from elsewhere are not trusted: import checks an HMAC made with the user's key over
bundle.json and every file of the bundle, refuses unsigned, foreign and altered bundles with
what to do, and --trust overrides it. Stores are private to their owner, credentials never land
in a store, and nothing nbstate runs in a kernel listens beyond the loopback interface."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nbstate import trust
from nbstate.bundle import BundleError, redact

NBSTATE = str(Path(sys.executable).with_name("nbstate"))


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([NBSTATE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)


def resign(bundle: Path) -> None:
    """Sign a bundle again with the tests' key, after a test changed it on purpose."""
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest.pop("signature", None)
    manifest["signature"] = trust.sign(bundle, manifest, trust.load_key(create=True))
    (bundle / "bundle.json").write_text(json.dumps(manifest))


@pytest.fixture
def exported(start_kernel, tmp_path):
    """A session in ./a exported to ./bundle by the CLI (signed with the tests' key), and a
    fresh kernel in ./b to import it; returns (bundle, kernel b)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("data = {'rows': [1, 2, 3]}\ndef total():\n    return sum(data['rows'])")
    a.ok("data['rows'].append(4)")
    a.shutdown()
    done = cli("export", "--store", str(tmp_path / "a" / ".nbstate"), str(tmp_path / "bundle"))
    assert done.returncode == 0, done.stderr
    return tmp_path / "bundle", start_kernel(tmp_path / "b")


def unchanged(kernel, before: list) -> bool:
    return [e["commit"] for e in kernel.log()] == before


def test_export_signs_with_a_private_key_made_on_first_use(tmp_path, start_kernel):
    home = tmp_path / "config"
    (tmp_path / "a").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("x = [1, 2]")
    a.shutdown()
    done = cli("export", "--store", str(tmp_path / "a" / ".nbstate"), str(tmp_path / "bundle"), env={"XDG_CONFIG_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    key_file = home / "nbstate" / "key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    signature = json.loads((tmp_path / "bundle" / "bundle.json").read_text())["signature"]
    assert signature["alg"] == "hmac-sha256+blake3"
    assert signature["key_id"] == trust.key_id(bytes.fromhex(key_file.read_text().strip()))
    assert set(signature["files"]) >= {"nbstate.sqlite"} and any(f.startswith("objects/packs/") for f in signature["files"])
    assert key_file.read_text().strip() not in (tmp_path / "bundle" / "bundle.json").read_text()
    # A second export reuses the key.
    done = cli("export", "--store", str(tmp_path / "a" / ".nbstate"), str(tmp_path / "bundle2"), env={"XDG_CONFIG_HOME": str(home)})
    assert json.loads((tmp_path / "bundle2" / "bundle.json").read_text())["signature"]["key_id"] == signature["key_id"]


def test_an_unsigned_bundle_is_refused_until_trusted(exported):
    bundle, b = exported
    manifest = json.loads((bundle / "bundle.json").read_text())
    del manifest["signature"]
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    before = [e["commit"] for e in b.log()]
    r = b.run(f"%nbstate import {bundle}")
    assert "UsageError" in r.stderr and "not signed" in r.stderr and "--trust" in r.stderr
    assert unchanged(b, before) and b.value("'data' in globals()") is False
    assert "import" not in b.ok("%nbstate branch").stdout
    # --plan-only says what an import would do, and that the bundle is not trusted.
    plan = b.ok(f"%nbstate import {bundle} --plan-only").stdout
    assert "load:" in plan or "replay:" in plan
    assert "not trusted" in plan
    r = b.ok(f"%nbstate import {bundle} --trust")
    assert "not checked (--trust)" in r.stdout
    assert b.value("[data, total()]") == [{"rows": [1, 2, 3, 4]}, 10]


def test_a_bundle_signed_with_another_key_or_where_there_is_none_is_refused(exported, tmp_path):
    bundle, b = exported
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["signature"] = trust.sign(bundle, {k: v for k, v in manifest.items() if k != "signature"}, b"someone else's key")
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    before = [e["commit"] for e in b.log()]
    r = b.run(f"%nbstate import {bundle}")
    assert "signed with key" in r.stderr and "not with yours" in r.stderr and "--trust" in r.stderr
    assert unchanged(b, before)
    # The CLI, on a machine that has no key at all, says so too (and how to share one).
    done = cli("import", str(bundle), "--plan-only", env={"XDG_CONFIG_HOME": str(tmp_path / "nokey")})
    assert done.returncode == 0 and "this machine has no nbstate key" in done.stdout
    assert not (tmp_path / "nokey" / "nbstate" / "key").exists()  # importing never makes a key


def test_a_bundle_signed_with_sha256_digests_before_still_imports_and_a_change_to_it_is_still_found(exported):
    bundle, b = exported
    manifest = json.loads((bundle / "bundle.json").read_text())
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    manifest["signature"] = trust.sign(bundle, unsigned, trust.load_key(), alg="hmac-sha256")
    assert manifest["signature"]["files"]["nbstate.sqlite"] == hashlib.sha256((bundle / "nbstate.sqlite").read_bytes()).hexdigest()
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert trust.verify(bundle, manifest, str(bundle)).startswith("signature: made with your key")
    pack = next((bundle / "objects" / "packs").glob("*.pack"))
    original = pack.read_bytes()
    pack.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(trust.UntrustedBundle, match="does not match its signature"):
        trust.verify(bundle, manifest, str(bundle))
    pack.write_bytes(original)
    r = b.ok(f"%nbstate import {bundle}")
    assert "made with your key" in r.stdout
    assert b.value("[data, total()]") == [{"rows": [1, 2, 3, 4]}, 10]


@pytest.mark.parametrize("change", ["cell code", "manifest", "extra file", "pack bytes"])
def test_a_bundle_changed_after_export_is_refused(exported, change):
    bundle, b = exported
    if change == "cell code":  # what a replay would run
        con = sqlite3.connect(bundle / "nbstate.sqlite")
        con.execute("UPDATE cell_runs SET code = 'import os; os.system(\"true\")' WHERE code LIKE 'data = %'")
        con.commit()
        con.close()
    elif change == "manifest":
        manifest = json.loads((bundle / "bundle.json").read_text())
        manifest["history"] = True
        (bundle / "bundle.json").write_text(json.dumps(manifest))
    elif change == "extra file":
        (bundle / "objects" / "packs" / "pack-0000000000000000.pack").write_bytes(b"NBpack2\n" + b"\0" * 64)
    else:
        pack = next((bundle / "objects" / "packs").glob("*.pack"))
        data = bytearray(pack.read_bytes())
        data[len(data) // 2] ^= 0xFF
        pack.write_bytes(bytes(data))
    before = [e["commit"] for e in b.log()]
    r = b.run(f"%nbstate import {bundle}")
    assert "does not match its signature" in r.stderr and "--trust" in r.stderr, r.stderr
    assert unchanged(b, before) and b.value("'data' in globals()") is False


def test_stores_are_private_to_their_owner(kernel, tmp_path):
    kernel.ok("import numpy as np\nbig = np.random.default_rng(0).random(200_000)")
    root = tmp_path / ".nbstate"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for name in ("nbstate.sqlite", "lock"):
        assert stat.S_IMODE((root / name).stat().st_mode) & 0o077 == 0, name
    packs = list((root / "objects" / "packs").glob("*.pack"))
    assert packs and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in packs)
    assert stat.S_IMODE((root / "objects" / "packs").stat().st_mode) == 0o700


def test_credentials_in_a_url_never_reach_the_store(kernel, tmp_path):
    assert redact("s3://AKIA:sEcReT@bucket/prefix?token=abc&region=eu") == "s3://bucket/prefix?token=***&region=eu"
    assert redact("/local/path") == "/local/path"
    kernel.ok("x = [1, 2, 3]")
    url = "memory://user:sEcReT@host/bundle"
    r = kernel.ok(f"%nbstate export {url}")
    assert "sEcReT" not in r.stdout
    kernel.ok("x.append(4)")
    r = kernel.ok(f"%nbstate import {url}")
    assert "sEcReT" not in r.stdout + r.stderr
    assert kernel.value("x") == [1, 2, 3]
    for path in (tmp_path / ".nbstate").rglob("*"):
        if path.is_file():
            assert b"sEcReT" not in path.read_bytes(), path


def test_nothing_nbstate_does_in_a_kernel_listens_beyond_loopback(kernel, tmp_path):
    psutil = pytest.importorskip("psutil")
    kernel.ok("import numpy as np\na = np.arange(10)")
    kernel.ok(f"%nbstate export {tmp_path / 'b1'}")
    kernel.ok("a[0] = 5")
    kernel.ok(f"%nbstate import {tmp_path / 'b1'}")
    kernel.ok("%nbstate undo\n")
    kernel.ok("%nbstate log --graph")
    proc = psutil.Process(kernel.km.provisioner.process.pid)
    listening = [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening  # the kernel's own message sockets
    assert all(c.laddr.ip in ("127.0.0.1", "::1") for c in listening), listening


def test_the_web_view_binds_to_loopback_only():
    web = pytest.importorskip("nbstate.web")
    with pytest.raises(ValueError):
        web.make_server(web.App.__new__(web.App), host="0.0.0.0")


# --- malformed input to the readers: only clear errors, never a crash or a hang ------------------


def test_the_bundle_readers_reject_malformed_input_with_a_clear_error(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from nbstate.bundle import opened, read_manifest

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    )
    base = {"kind": "nbstate-bundle", "format_version": 2, "notebook": "default", "commit": "a" * 40, "python": "3.11.0"}
    counter = iter(range(10**6))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from(sorted(base) + ["packages", "history", "signature"]), json_values, max_size=6), st.binary(max_size=300))
    def check(fields, noise):
        root = tmp_path / f"b{next(counter)}"
        root.mkdir()
        (root / "bundle.json").write_text(json.dumps({**base, **fields}))
        (root / "nbstate.sqlite").write_bytes(noise)
        try:
            read_manifest(root)
            with opened(str(root), trust=None) as (_, _, _, note):
                assert note
        except BundleError as exc:
            assert str(exc)

    check()

    @settings(max_examples=40, deadline=None)
    @given(st.binary(min_size=0, max_size=2000))
    def check_tar(blob):
        path = tmp_path / f"t{next(counter)}.nbstate"
        path.write_bytes(blob)
        try:
            with opened(str(path)):
                pass
        except BundleError as exc:
            assert str(exc)

    check_tar()
    assert hypothesis
