"""pytest plugin (``pytest11`` entry point): LAIONet robustness assertions inside a test suite.

Registered for every pytest run in an environment where laionet-bench is installed, so it must stay
cheap to import: hooks and fixtures only; the work is done by ``_pytest.session.LaionetSession``
(created on first use, kept in ``config.stash``), and pandas is imported only when a test asks for
LAIONet results. See docs/pytest-plugin.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest

from ..checks.recorder import recording
from ..errors import ConfigError, LaionetBenchError
from .options import INI_OPTIONS, PluginSettings, add_plugin_options, resolve_settings

if TYPE_CHECKING:  # pragma: no cover
    from ..checks.baselines import BaselineComparison
    from ..checks.gap import RobustnessCheck
    from .session import LaionetHandle, LaionetSession

__all__ = ["laionet", "laionet_result"]

SETTINGS_KEY = pytest.StashKey[PluginSettings]()
SESSION_KEY = pytest.StashKey["LaionetSession"]()
CHECKS_KEY = pytest.StashKey[list]()
#: key of the check records an xdist worker sends to the controller
WORKER_RECORDS = "laionet_records"

MARKER = (
    "laionet(model=None, *, max_gap=None, min_accuracy=None, metric='top1', weighting='equi', tolerance='se', "
    "baseline=True): LAIONet robustness check of a model's stored (or --laionet-run) result"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("laionet-bench", "LAIONet robustness checks (laionet-bench)")
    add_plugin_options(group.addoption)
    for name, (kind, help_text) in INI_OPTIONS.items():
        parser.addini(name, help_text, type=kind)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    try:
        config.stash[SETTINGS_KEY] = resolve_settings(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _session(config: pytest.Config) -> LaionetSession:
    if SESSION_KEY not in config.stash:
        from .session import LaionetSession

        config.stash[SESSION_KEY] = LaionetSession(config.stash[SETTINGS_KEY])
    return config.stash[SESSION_KEY]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Validate ``@pytest.mark.laionet`` keywords before the test runs (a bad marker is an error)."""
    if item.get_closest_marker("laionet") is None:
        return
    from .session import marker_checks

    try:
        item.stash[CHECKS_KEY] = marker_checks(item)
        return
    except ConfigError as exc:
        message = f"{item.nodeid}: {exc}"
    pytest.fail(message, pytrace=False)  # outside the except block: no chained traceback


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Record every check the test body makes; then run the marker's checks."""
    # the recorder sends what the checks record: a RobustnessCheck or a BaselineComparison
    with recording(lambda check: _session(item.config).record(
            item.nodeid, cast("RobustnessCheck | BaselineComparison", check))):
        outcome = yield
    checks = item.stash.get(CHECKS_KEY, [])
    if checks:
        _run_marker_checks(item, checks)
    return outcome


def _run_marker_checks(item: pytest.Item, checks: list[dict]) -> None:
    from .session import LaionetHandle

    session = _session(item.config)
    handle = LaionetHandle(session)
    failures: list[str] = []
    for kwargs in checks:
        try:
            failures += session.check_marker(kwargs, handle.result(kwargs["model"]), item.nodeid)
        except LaionetBenchError as exc:  # e.g. a broken baseline file: its message says what to do
            failures.append(f"{kwargs['model']}: {exc}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the records a worker made."""
    records = getattr(node, "workeroutput", {}).get(WORKER_RECORDS)
    if records:
        _session(node.config).records.extend(records)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    records = config.stash[SESSION_KEY].records if SESSION_KEY in config.stash else []
    if hasattr(config, "workeroutput"):  # xdist worker: the controller reports
        config.workeroutput[WORKER_RECORDS] = records
        return
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is not None and settings.json_report is not None:
        from .report import write_json_report

        write_json_report(settings.json_report, records, settings.to_dict())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if SESSION_KEY not in config.stash or not config.stash[SESSION_KEY].records:
        return
    from .report import summary_table

    terminalreporter.write_sep("=", "LAIONet robustness")
    for line in summary_table(config.stash[SESSION_KEY].records).splitlines():
        terminalreporter.write_line(line)
    report = config.stash[SETTINGS_KEY].json_report
    if report is not None:
        terminalreporter.write_line(f"LAIONet report: {report}")


@pytest.fixture(scope="session")
def laionet(pytestconfig: pytest.Config) -> LaionetHandle:
    """Session-wide handle: ``result(model)``, ``evaluate(model)``, ``per_class(model)``, ``check(...)``."""
    from .session import LaionetHandle

    return LaionetHandle(_session(pytestconfig))


@pytest.fixture
def laionet_result(laionet: LaionetHandle):
    """Factory: ``laionet_result("resnet50.a1_in1k")`` returns that model's ``ModelResult``."""
    return laionet.result
