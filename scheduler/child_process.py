"""Starting one of commtest's own child processes, which talks to its parent over a private
socket pair: the acknowledgement writer (``scheduler.ack_process``) and the dispatch helper
(``scheduler.prepare_process``). Each reads its settings first, then works until end-of-file:
it ends when its parent closes the socket or ends, however that ends."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from commtest.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def spawn(module: str, settings: Settings) -> tuple[subprocess.Popen[bytes], Connection]:
    """``python -m module <fd>`` with this checkout on its path, and the parent's end of the
    socket pair, over which ``settings`` are already sent."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
            cwd=REPO, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
        conn = Connection(os.dup(ours.fileno()))
    conn.send(settings)
    return proc, conn
