"""runc-style logging: text or JSON lines ({"level","msg","time"}) to --log, errors to stderr."""

from __future__ import annotations

import os
import sys
import time


class Logger:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def _line(self, level: str, msg: str) -> str:
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        if self.fmt == "json":
            from .fastjson import dumps  # json.dumps's text, without json's imports

            return dumps({"level": level, "msg": msg, "time": now}, separators=(", ", ": ")) + "\n"
        quoted = msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'time="{now}" level={level} msg="{quoted}"\n'

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        line = self._line(level, msg).encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def debug(self, msg: str) -> None:
        if not self.debug_enabled:
            return
        if self.path:
            self.write("debug", msg)
        else:
            sys.stderr.write(self._line("debug", msg))

    def warn(self, msg: str) -> None:
        self.write("warning", msg)
        print(f"pyruntime: warning: {msg}", file=sys.stderr)

    def error(self, msg: str) -> None:
        self.write("error", msg)
        print(f"pyruntime: {msg}", file=sys.stderr)
