"""Delta policy updates: only changed files move, the swap is atomic, cuts are safe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading

import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.policy_update import PolicyUpdateError, update_policy
from client_agent.state import ClientState
from hub.masterfiles import build_manifest, manifest_path, release_dir, switch_current
from hubcluster.hub_session import open_hub
from hubcluster.messages import encode_manifest, release_id
from tests.sshsvc.harness import client_config


def tree(marker: str, count: int) -> dict[str, str]:
    return {f"d{i % 7}/f{i}.txt": f"{marker} file {i}\n" * 3 for i in range(count)}


def bootstrapped(hubs, tmp_path):
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    return config, ClientState(config.workdir)


async def update(hubs, state: ClientState, release: str, session_wrapper=None):
    async with open_hub(hubs.addresses[0], state.client_key(), hubs.hub_key, 5.0) as session:
        wrapped = session_wrapper(session) if session_wrapper else session
        return await update_policy(state, wrapped, release)


def test_delta_update_moves_only_changed_files(make_hubs, tmp_path):
    hubs = make_hubs()
    files = tree("A", 50)
    first = hubs.publish(files)
    config, state = bootstrapped(hubs, tmp_path)
    assert state.current_release() == first
    old_inode = (state.inputs / "d1" / "f1.txt").stat().st_ino

    files["d3/f3.txt"] = "changed\n"
    files["new/added.txt"] = "added\n"
    del files["d4/f4.txt"]
    second = hubs.publish(files)
    result = asyncio.run(run_agent(config))

    assert result.exit_code == 0, result.summary()
    assert result.update.release == second and result.update.changed
    assert result.update.files_fetched == 2
    assert result.update.files_reused == 49  # 48 unchanged + promises.toml
    # The manifest came as a delta against the release in force (recorded beside its tree):
    # everything on the wire is a few hundred bytes, far less than the manifest alone.
    hub_manifest = manifest_path(hubs.masterfiles(), second).read_bytes()
    assert result.update.bytes_moved < 400 < len(hub_manifest)
    assert (state.inputs_store / f"{second}.manifest.json").read_bytes() == hub_manifest
    assert state.current_release() == second
    assert (state.inputs / "d3" / "f3.txt").read_text() == "changed\n"
    assert not (state.inputs / "d4" / "f4.txt").exists()
    assert (state.inputs / "d1" / "f1.txt").stat().st_ino == old_inode  # linked, not copied
    assert build_manifest(state.inputs_store / second) == build_manifest(
        release_dir(hubs.masterfiles(), second)
    )

    again = asyncio.run(run_agent(config))
    assert again.update is None and "updated" not in again.summary()

    third = hubs.publish({**files, "d0/f0.txt": "third\n"})
    asyncio.run(run_agent(config))
    assert sorted(p.name for p in state.inputs_store.iterdir() if p.is_dir()) == sorted(
        [second, third]
    )


def read_whole_tree(inputs) -> tuple[set[str], int]:
    """Read every file of the release `inputs` points at, resolving it once (as a run does)."""
    fd = os.open(inputs, os.O_RDONLY | os.O_DIRECTORY)
    markers: set[str] = set()
    count = 0
    try:
        for sub in sorted(os.listdir(fd)):
            if sub == "promises.toml":
                continue
            sub_fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            try:
                for name in os.listdir(sub_fd):
                    file_fd = os.open(name, os.O_RDONLY, dir_fd=sub_fd)
                    with os.fdopen(file_fd, "rb") as fh:
                        markers.add(fh.read(1).decode())
                    count += 1
            finally:
                os.close(sub_fd)
    finally:
        os.close(fd)
    return markers, count


def test_swap_is_atomic_under_a_concurrent_reader(make_hubs, tmp_path):
    hubs = make_hubs()
    count = 150
    release_a = hubs.publish(tree("A", count))
    config, state = bootstrapped(hubs, tmp_path)
    release_b = hubs.publish(tree("B", count))
    stop = threading.Event()
    seen: list[tuple[set[str], int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.append(read_whole_tree(state.inputs))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for release in [release_b, release_a] * 3:
            result = asyncio.run(update(hubs, state, release))
            assert result.changed and state.current_release() == release
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert len(seen) > 5
    mixed = [s for s in seen if len(s[0]) != 1 or s[1] != count]
    assert mixed == [], f"a reader saw a mix or a partial tree: {mixed[:3]}"
    assert {next(iter(s[0])) for s in seen} == {"A", "B"}


def test_vanished_file_leaves_the_old_policy_and_the_retry_resumes(make_hubs, tmp_path):
    hubs = make_hubs()
    files = tree("A", 30)
    first = hubs.publish(files)
    config, state = bootstrapped(hubs, tmp_path)
    changed = {k: v.replace("A", "B") for k, v in files.items()}
    second = hubs.publish(changed)
    victim = hubs.release_file(second, "d5/f5.txt")
    saved = victim.read_bytes()
    victim.unlink()  # vanishes on the hub mid-release

    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3
    assert f"update to release {second} failed" in result.summary()
    assert f"kept release {first}" in result.summary()
    assert state.current_release() == first
    assert read_whole_tree(state.inputs) == ({"A"}, 30)
    assert (state.inputs_store / f"{second}.partial").is_dir()

    victim.write_bytes(saved)
    victim.chmod(0o644)
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 0, result.summary()
    assert state.current_release() == second
    assert result.update.files_fetched == 1  # the rest was kept from the cut attempt
    assert read_whole_tree(state.inputs) == ({"B"}, 30)
    assert not (state.inputs_store / f"{second}.partial").exists()


class CutAfter:
    """A hub session whose connection is cut once `n` bytes of a release transfer came in."""

    def __init__(self, session, n: int) -> None:
        self.address, self.conn, self._conn = session.address, self, session.conn
        self.n, self.got = n, 0

    @contextlib.asynccontextmanager
    async def create_process(self, *args, **kwargs):
        async with self._conn.create_process(*args, **kwargs) as process:
            real_read = process.stdout.read

            async def read(n: int = -1) -> bytes:
                data = await real_read(n)
                self.got += len(data)
                if self.got >= self.n:
                    self._conn.abort()
                return data

            process.stdout.read = read
            yield process


def incompressible_tree(marker: str, count: int) -> dict[str, str]:
    return {f"d{i % 7}/f{i}.txt": marker + os.urandom(24 * 1024).hex() for i in range(count)}


def test_connection_cut_mid_transfer_leaves_the_old_policy_and_the_retry_resumes(
    make_hubs, tmp_path
):
    hubs = make_hubs()
    first = hubs.publish(tree("A", 40))
    config, state = bootstrapped(hubs, tmp_path)
    second = hubs.publish(incompressible_tree("B", 40))  # about 1 MB on the wire

    cut = None

    def cutting(session):
        nonlocal cut
        cut = CutAfter(session, 400_000)
        return cut

    with pytest.raises(PolicyUpdateError, match=f"kept release {first}") as refused:
        asyncio.run(update(hubs, state, second, cutting))
    assert len(str(refused.value).splitlines()) == 1
    assert 400_000 <= cut.got < 1_000_000
    assert state.current_release() == first
    assert read_whole_tree(state.inputs) == ({"A"}, 40)
    assert not list(state.workdir.glob(".inputs*"))
    arrived = list((state.inputs_store / f"{second}.partial").rglob("f*.txt"))
    assert 5 < len(arrived) < 40

    result = asyncio.run(update(hubs, state, second))
    assert result.changed and state.current_release() == second
    # What arrived before the cut is kept (re-hashed, never trusted blindly), the rest fetched.
    assert result.files_fetched == 40 - len(arrived)
    assert result.files_fetched + result.files_reused == 41
    assert read_whole_tree(state.inputs) == ({"B"}, 40)
    assert build_manifest(state.inputs) == build_manifest(release_dir(hubs.masterfiles(), second))


def publish_by_hand(hubs, files: dict[str, str]) -> str:
    """Put a release on the hub without publish_release's checks (an older or broken hub)."""
    staging = hubs.root / "by-hand"
    for rel, content in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(content)
    entries = build_manifest(staging)
    rid = release_id(entries)
    os.rename(staging, release_dir(hubs.masterfiles(), rid))
    manifest_path(hubs.masterfiles(), rid).write_bytes(encode_manifest(entries))
    switch_current(hubs.masterfiles(), rid)
    return rid


def test_bad_promises_in_a_release_keep_the_last_good_policy(make_hubs, tmp_path):
    hubs = make_hubs()
    first = hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    bad = publish_by_hand(hubs, {"promises.toml": '[[promise]]\nname = "x"\n\ncheck = 5\n'})
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3
    assert state.current_release() == first
    assert f"update to release {bad} failed: its promises file is bad" in result.summary()
    assert "promises.toml:4: 'check' must be a string" in result.summary()
    assert result.outcomes and result.outcomes[0].status == "kept"  # the old policy ran


def test_tampered_file_on_the_hub_is_refused(make_hubs, tmp_path):
    hubs = make_hubs()
    first = hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    second = hubs.publish({"a.txt": "b"})
    hubs.release_file(second, "a.txt").write_text("evil")
    with pytest.raises(PolicyUpdateError, match="a.txt: fetched content does not match"):
        asyncio.run(update(hubs, state, second))
    assert state.current_release() == first
    assert (state.inputs / "a.txt").read_text() == "a"


def test_a_lost_tree_is_fetched_again(make_hubs, tmp_path):
    hubs = make_hubs()
    rid = hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    shutil.rmtree(state.inputs_store / rid)
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 0, result.summary()
    assert result.update.files_fetched == 2 and (state.inputs / "a.txt").read_text() == "a"
