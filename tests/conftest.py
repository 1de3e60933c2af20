from __future__ import annotations

import faulthandler
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.gui_helpers import ScriptedDialogs  # noqa: E402
from tests.helpers import write_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the cache, settings, autosaves and run records of tests away from the real user's folders."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("DIGIT_STUDIO_DATA", raising=False)
    monkeypatch.delenv("DIGIT_STUDIO_RUNS", raising=False)  # runs go to XDG_DATA_HOME's runs folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 320 + 100 image data set in gzip IDX files (read-only by convention: copy before changing)."""
    return write_dataset(tmp_path_factory.mktemp("tiny") / "mnist")


@pytest.fixture(scope="session")
def tiny_dataset(tiny_data: Path):
    from engine.data import load_folder

    return load_folder(tiny_data)


@pytest.fixture
def no_leftover_threads():
    """Fail a test that leaves a QThread or a Python thread running."""
    import threading

    before = set(threading.enumerate())
    yield
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    running = [t for t in (app.findChildren(QThread) if app else []) if t.isRunning()]
    extra = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not running and not extra, f"threads left running: {running} {extra}"


@pytest.fixture
def window(qtbot, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftover_threads):
    """The full main window on the tiny data set (via DIGIT_STUDIO_DATA), with private settings."""
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow

    monkeypatch.setenv("DIGIT_STUDIO_DATA", str(tiny_data.parent))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    # Modal dialogs would wait for a click forever here: they are answered by script (Yes; Discard for an
    # unsaved model), and what they would have said is kept, in win.dialogs.
    win = MainWindow(settings=settings, dialogs=ScriptedDialogs())
    win.training_panel.select_dataset("mnist")  # the tiny set, through $DIGIT_STUDIO_DATA (not the sample)

    def answer_yes_and_discard(window) -> None:
        window.dialogs.confirm_answer, window.dialogs.unsaved_answer = True, "discard"

    # pytest-qt closes the window before this fixture's teardown, then deletes it: whatever a test answered,
    # that close must be accepted, so that the window waits for its workers before it is deleted.
    qtbot.addWidget(win, before_close_func=answer_yes_and_discard)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.session.stop(wait=True)
    win.evaluation.shutdown()

    def busy() -> list[str]:
        jobs = {
            "training": win.session.running,
            "loading data": win.loader.loading,
            "warm-up": win.warm_up.running,
            "opening": win.document.opening.running,
            "teaching": win.teacher.running,
            "reading runs": win.runs_view.busy,
        }
        return [name for name, running in jobs.items() if running]

    try:
        qtbot.waitUntil(lambda: not busy(), timeout=60000)
    except Exception as error:  # say which job never ended, and where every thread is
        faulthandler.dump_traceback(all_threads=True)
        raise AssertionError(f"still running after 60 s: {', '.join(busy())}") from error
    assert not win.garbage_collector.active


class _Server:
    """State of the local HTTP server: files by name (any folder prefix), requests seen, Range support."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.delay = 0.0  # seconds before each response body, to test cancelling mid-download
        self.drop_after: int | None = None  # send only this many bytes of the next body, then hang up
        self.url = ""


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 serving generated files (with Range support)."""
    import http.server
    import threading

    state = _Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            state.requests.append((self.path, self.headers.get("Range")))
            body = state.files.get(self.path.rsplit("/", 1)[-1])
            if body is None or "/missing/" in self.path:
                self.send_error(404)
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and state.honour_range:
                start = int(rng.split("=")[1].split("-")[0])
                self.send_response(206)
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if state.delay:
                import time

                time.sleep(state.delay)
            if state.drop_after is not None:
                self.wfile.write(body[start : start + state.drop_after])
                state.drop_after = None
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield state
    httpd.shutdown()
    httpd.server_close()
