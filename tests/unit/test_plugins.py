"""The plugin face: hooks, built-ins, entry points, disabling, and the typed facade."""

from __future__ import annotations

import logging
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pluggy
import pytest

from autobuild.adapters.plugins import (
    DEFAULT_PLUGINS,
    PluginHooks,
    build_plugin_manager,
    hookimpl,
)
from autobuild.domain.artifacts import matches_any
from autobuild.domain.jobs import Job, JobStatus
from tests.fakes import FakeWorld
from tests.plugin_fixtures import plugin_manager, register_plugin  # noqa: F401  (fixtures)

EXAMPLE_PLUGIN_DIR = Path(__file__).resolve().parents[2] / "docs" / "example-plugin"
SEED_PATTERNS = {"*.bin", "*.mtd", "*.mtd.tar", "*.static.mtd*"}
SBOM_PATTERNS = {"*.manifest", "*.spdx.json", "*.spdx.index.json", "*.spdx.tar.zst"}
BUILTIN_PATTERNS = SEED_PATTERNS | SBOM_PATTERNS


def make_job(machine: str = "qemux86-64", status: JobStatus = JobStatus.PENDING) -> Job:
    return Job(owner="alice", repo_url="https://git.example.com/bsp/poky.git", ref="main",
               machine=machine, target="core-image-minimal",
               created_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC), id=7, status=status)


@pytest.fixture
def clean_modules():
    """Forget modules a test imported from a temporary sys.path entry."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.fixture
def install_entry_point(tmp_path, monkeypatch, clean_modules):
    """Fake an installed distribution declaring ``entry_points`` in the ``autobuild`` group.

    ``modules`` maps module name -> source; everything goes on sys.path for this test only.
    """
    def install(entry_points: dict[str, str], modules: dict[str, str] | None = None,
                extra_path: Path | None = None) -> None:
        site = tmp_path / "site"
        dist_info = site / "fake_autobuild_plugin-1.0.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: fake-autobuild-plugin\nVersion: 1.0\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (dist_info / "entry_points.txt").write_text(f"[autobuild]\n{lines}")
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(site))
        if extra_path is not None:
            monkeypatch.syspath_prepend(str(extra_path))
    return install


# --- one test per hook (tests/unit/test_plugin_docs.py insists on it) --------------------------


def test_hook_autobuild_artifact_patterns(plugin_manager, register_plugin):
    class DiskImages:
        @hookimpl
        def autobuild_artifact_patterns(self, job):
            return ["*.wic.gz"] if job.machine.startswith("raspberrypi") else []

    register_plugin(DiskImages(), name="disk_images")
    hooks = PluginHooks(plugin_manager)

    assert set(hooks.artifact_patterns(make_job("raspberrypi4"))) == BUILTIN_PATTERNS | {"*.wic.gz"}
    assert set(hooks.artifact_patterns(make_job("qemux86-64"))) == BUILTIN_PATTERNS


def test_hook_autobuild_job_status_changed(plugin_manager, register_plugin):
    told = []

    class Recorder:
        @hookimpl
        def autobuild_job_status_changed(self, job, old, new):
            told.append((job.id, old, new))

    register_plugin(Recorder())
    job = make_job(status=JobStatus.RUNNING)
    PluginHooks(plugin_manager).job_status_changed(job, JobStatus.PENDING, JobStatus.RUNNING)

    assert told == [(7, JobStatus.PENDING, JobStatus.RUNNING)]


def test_register_plugin_fixture_unregisters_after_the_test(plugin_manager, register_plugin):
    class Temporary:
        @hookimpl
        def autobuild_artifact_patterns(self, job):
            return ["*.tmp"]

    plugin = register_plugin(Temporary())
    assert plugin_manager.is_registered(plugin)
    # The fresh manager of another test never sees it: each test builds its own.
    assert "*.tmp" not in PluginHooks(build_plugin_manager(load_entry_points=False)) \
        .artifact_patterns(make_job())


def test_the_service_asks_plugins_for_patterns_and_tells_them_every_change(
        plugin_manager, register_plugin):
    seen = []

    class Watcher:
        @hookimpl
        def autobuild_artifact_patterns(self, job):
            return ["*.wic.gz"]

        @hookimpl
        def autobuild_job_status_changed(self, job, old, new):
            seen.append((old, new, job.status))

    register_plugin(Watcher())
    world = FakeWorld()
    world.events = PluginHooks(plugin_manager)
    world.restart()  # the core now talks to the real plugin facade

    job = world.commands.submit("alice", "https://git.example.com/bsp/poky.git", "main",
                                "qemux86-64", "core-image-minimal")
    world.supervisor.tick()
    world.runner.finish(job.id, 0)
    world.supervisor.tick()

    decided = world.repo.get(job.id).artifact_patterns
    assert set(decided) == BUILTIN_PATTERNS | {"*.wic.gz"} and len(decided) == len(set(decided))
    assert world.runner.orders[job.id][0] == decided  # the runner got what plugins said
    assert seen == [(JobStatus.PENDING, JobStatus.RUNNING, JobStatus.RUNNING),
                    (JobStatus.RUNNING, JobStatus.SUCCESS, JobStatus.SUCCESS)]


def test_the_notification_of_an_ended_build_carries_the_commit_it_built(
        plugin_manager, register_plugin):
    from autobuild_plugins.email_notify import SmtpConfig, build_message
    from autobuild_plugins.webhook import job_payload
    sha = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"
    told = []

    class Watcher:
        @hookimpl
        def autobuild_job_status_changed(self, job, old, new):
            told.append((new, job_payload(job)["commit"],
                         build_message(SmtpConfig(mail_domain="example.com"), job)
                         .get_content()))

    register_plugin(Watcher())
    world = FakeWorld()
    world.events = PluginHooks(plugin_manager)
    world.restart()
    job = world.commands.submit("alice", "https://git.example.com/bsp/poky.git", "main",
                                "qemux86-64", "core-image-minimal")
    world.supervisor.tick()
    world.files.logs[job.id] = f"==> Checking out main\n==> Commit {sha}\n".encode()
    world.runner.finish(job.id, 0)
    world.supervisor.tick()

    (started, no_commit, _), (ended, commit, mail) = told
    assert (started, no_commit) == (JobStatus.RUNNING, None)  # not known before the end
    assert (ended, commit) == (JobStatus.SUCCESS, sha)
    assert f"Ref: main\nCommit: {sha}\n" in mail


# --- built-ins, entry points, disabling -------------------------------------------------------


def test_builtin_plugins_give_the_seed_and_sbom_patterns():
    hooks = PluginHooks(build_plugin_manager(load_entry_points=False))
    patterns = hooks.artifact_patterns(make_job())
    assert sorted(patterns) == sorted(BUILTIN_PATTERNS)
    assert len(patterns) == len(set(patterns))


def test_builtin_plugins_are_registered_under_their_module_name():
    pm = build_plugin_manager(load_entry_points=False)
    assert {name for name, _ in pm.list_name_plugin()} == {
        "default_artifacts", "mtd_extras", "sbom", "webhook", "email_notify"}
    assert DEFAULT_PLUGINS == ("autobuild_plugins.default_artifacts",
                               "autobuild_plugins.mtd_extras", "autobuild_plugins.sbom",
                               "autobuild_plugins.webhook", "autobuild_plugins.email_notify")


def test_a_disabled_builtin_plugin_is_not_called():
    pm = build_plugin_manager(disabled=frozenset({"mtd_extras"}), load_entry_points=False)
    assert set(PluginHooks(pm).artifact_patterns(make_job())) == \
        {"*.bin", "*.mtd"} | SBOM_PATTERNS
    assert pm.get_plugin("mtd_extras") is None


def test_the_sbom_plugin_collects_what_yocto_names_and_can_be_disabled():
    patterns = PluginHooks(build_plugin_manager(load_entry_points=False)).artifact_patterns(
        make_job())
    for name in ("core-image-minimal-qemux86-64.rootfs.manifest",  # nanbield and later
                 "core-image-minimal-qemux86-64.rootfs-20260101120000.manifest",
                 "core-image-minimal-qemux86-64.manifest",  # kirkstone
                 "core-image-minimal-qemux86-64.spdx.json",  # SPDX 2.2
                 "core-image-minimal-qemux86-64.spdx.index.json",
                 "core-image-minimal-qemux86-64.spdx.tar.zst",
                 "core-image-minimal-qemux86-64.rootfs.spdx.json"):  # SPDX 3
        assert matches_any(name, patterns), name
    assert not matches_any("core-image-minimal-qemux86-64.testdata.json", patterns)
    pm = build_plugin_manager(disabled=frozenset({"sbom"}), load_entry_points=False)
    assert set(PluginHooks(pm).artifact_patterns(make_job())) == SEED_PATTERNS


def test_entry_point_plugins_are_loaded(install_entry_point):
    install_entry_point({"wic_images": "fake_wic_plugin"}, {"fake_wic_plugin": (
        "from autobuild.adapters.plugins import hookimpl\n"
        "@hookimpl\n"
        "def autobuild_artifact_patterns(job):\n"
        "    return ['*.wic']\n")})

    pm = build_plugin_manager()

    assert pm.get_plugin("wic_images") is sys.modules["fake_wic_plugin"]
    assert "*.wic" in PluginHooks(pm).artifact_patterns(make_job())
    assert build_plugin_manager(load_entry_points=False).get_plugin("wic_images") is None


def test_a_disabled_entry_point_plugin_is_never_imported(install_entry_point, caplog):
    install_entry_point({"wic_images": "fake_wic_plugin"}, {"fake_wic_plugin": (
        "raise RuntimeError('a disabled plugin must not even be imported')\n")})

    pm = build_plugin_manager(disabled=frozenset({"wic_images", "no_such_plugin"}))

    assert pm.get_plugin("wic_images") is None
    assert "fake_wic_plugin" not in sys.modules
    assert "no_such_plugin" in caplog.text  # a typo in the setting is pointed out


def test_a_misspelled_hookimpl_fails_check_pending(register_plugin):
    class Misspelled:
        @hookimpl
        def autobuild_artifact_pattern(self, job):
            return ["*.img"]

    with pytest.raises(pluggy.PluginValidationError, match="autobuild_artifact_pattern"):
        register_plugin(Misspelled(), name="misspelled")


def test_a_misspelled_installed_plugin_stops_the_plugin_manager(install_entry_point):
    install_entry_point({"typo": "fake_typo_plugin"}, {"fake_typo_plugin": (
        "from autobuild.adapters.plugins import hookimpl\n"
        "@hookimpl\n"
        "def autobuild_job_status_change(job, old, new):\n"
        "    pass\n")})

    with pytest.raises(pluggy.PluginValidationError, match="autobuild_job_status_change"):
        build_plugin_manager()


# --- the facade protects the service ----------------------------------------------------------


def test_a_plugin_that_raises_on_status_change_is_logged_and_the_others_still_run(
        plugin_manager, register_plugin, caplog):
    told = []

    class Broken:
        @hookimpl
        def autobuild_job_status_changed(self, job, old, new):
            raise ConnectionError("mail server down")

    class Recorder:
        @hookimpl
        def autobuild_job_status_changed(self, job, old, new):
            told.append(new)

    register_plugin(Recorder(), name="recorder")
    register_plugin(Broken(), name="broken_notifier")  # registered last, so called first

    with caplog.at_level(logging.ERROR):
        PluginHooks(plugin_manager).job_status_changed(make_job(), JobStatus.RUNNING,
                                                       JobStatus.FAILED)

    assert told == [JobStatus.FAILED]
    assert "broken_notifier" in caplog.text and "mail server down" in caplog.text


def test_a_plugin_that_raises_for_patterns_loses_only_its_own_patterns(
        plugin_manager, register_plugin, caplog):
    class Broken:
        @hookimpl
        def autobuild_artifact_patterns(self, job):
            raise KeyError("oops")

    register_plugin(Broken(), name="broken_patterns")
    patterns = PluginHooks(plugin_manager).artifact_patterns(make_job())

    assert set(patterns) == BUILTIN_PATTERNS
    assert "broken_patterns" in caplog.text


def test_invalid_patterns_are_dropped_with_a_warning(plugin_manager, register_plugin, caplog):
    class Sloppy:
        @hookimpl
        def autobuild_artifact_patterns(self, job):
            return ["../x", "-rf", "a/b", ".hidden", "", 42, "*.ok"]

    class NotAList:
        @hookimpl
        def autobuild_artifact_patterns(self, job):
            return "*.img"  # a string, not a list: would otherwise become "*", ".", ...

    register_plugin(Sloppy(), name="sloppy")
    register_plugin(NotAList(), name="not_a_list")
    with caplog.at_level(logging.WARNING):
        patterns = PluginHooks(plugin_manager).artifact_patterns(make_job())

    assert set(patterns) == BUILTIN_PATTERNS | {"*.ok"}
    for bad in ("'../x'", "'-rf'", "'a/b'", "'.hidden'", "not_a_list"):
        assert bad in caplog.text


# --- the worked example of docs/example-plugin ------------------------------------------------


def test_the_example_plugin_imports_registers_and_works(
        plugin_manager, register_plugin, monkeypatch, tmp_path, clean_modules):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    import autobuild_example_plugin

    register_plugin(autobuild_example_plugin, name="example_notify")
    hooks = PluginHooks(plugin_manager)
    notify_file = tmp_path / "changes.log"
    monkeypatch.setenv("EXAMPLE_NOTIFY_FILE", str(notify_file))

    assert set(hooks.artifact_patterns(make_job())) == BUILTIN_PATTERNS | {"*.wic.gz"}
    assert "*.wic.bmap" in hooks.artifact_patterns(make_job("raspberrypi4-64"))
    hooks.job_status_changed(make_job(), JobStatus.PENDING, JobStatus.RUNNING)
    hooks.job_status_changed(make_job(), JobStatus.RUNNING, JobStatus.SUCCESS)
    assert notify_file.read_text() == (
        "job 7 of alice (qemux86-64 core-image-minimal): PENDING -> RUNNING\n"
        "job 7 of alice (qemux86-64 core-image-minimal): RUNNING -> SUCCESS\n")


def test_the_example_plugin_loads_through_its_declared_entry_point(install_entry_point):
    project = tomllib.loads((EXAMPLE_PLUGIN_DIR / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["autobuild"]
    assert entry_points == {"example_notify": "autobuild_example_plugin"}
    install_entry_point(entry_points, extra_path=EXAMPLE_PLUGIN_DIR)

    pm = build_plugin_manager()
    assert "*.wic.gz" in PluginHooks(pm).artifact_patterns(make_job())
    blocked = build_plugin_manager(disabled=frozenset({"example_notify"}))
    assert "*.wic.gz" not in PluginHooks(blocked).artifact_patterns(make_job())
