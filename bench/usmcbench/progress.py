"""Progress display: on a terminal one line per step that updates while the
step runs (with its elapsed time) and then shows its result; otherwise one
plain line per finished step."""

import shutil
import sys
import threading
import time


class Progress:
    def __init__(self, total, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = total
        self.index = 0
        self.label = ""
        self.started = 0.0
        self.active = False
        self.lock = threading.Lock()
        if self.tty:
            threading.Thread(target=self._tick, daemon=True).start()

    def start(self, label):
        with self.lock:
            self.index += 1
            width = len(str(self.total))
            self.label = f"[{self.index:>{width}}/{self.total}] {label}"
            self.started = time.monotonic()
            self.active = True
            self._draw(f"{self.label} ...")

    def done(self, text):
        self._finish(f"{self.label}: {text}")

    def fail(self, text):
        self._finish(f"{self.label}: FAILED: {text}")

    def note(self, text):
        """A line of its own, between steps."""
        with self.lock:
            self._line(text)

    def _finish(self, text):
        with self.lock:
            self.active = False
            self._line(f"{text} ({time.monotonic() - self.started:.1f} s)")

    def _line(self, text):
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self, text):
        if not self.tty:
            return
        cols = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r\x1b[K" + text[:cols - 1])
        self.stream.flush()

    def _tick(self):
        while True:
            time.sleep(0.25)
            with self.lock:
                if self.active:
                    spent = time.monotonic() - self.started
                    self._draw(f"{self.label} ... {spent:.1f} s")
