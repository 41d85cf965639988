"""Imported only inside multiprocessing's fork server (a preload of parent.py), never by the server.

systemd (its default KillMode) and `kill -- -PGID` send SIGTERM to the whole process group: the
server, its fork server, every model's parent and every worker. Only the server may act on it: it
drains, then stops its workers itself. A fork server or parent that died of it would make the next
worker start load the model again, during the shutdown. So the fork server ignores SIGTERM, and the
parents it forks inherit that; it still exits when the server does (its `alive` pipe closes), and the
parents die with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
