"""Registering processes for the fault and concurrency tests (run as a script).

registry_worker.py loop ROOT BUNDLE NAME COUNT WORKER
    register BUNDLE under NAME COUNT times; after each, move NAME@production to the
    new version; print each version number on its own line.

registry_worker.py pause ROOT BUNDLE NAME
    register BUNDLE under NAME, but print "holding" once the copy is staged (the
    registry lock held) and wait for a line on stdin before verifying it; print the
    version number at the end. The test stops this process (SIGSTOP) while it holds the
    lock.

registry_worker.py forkserver ROOT BUNDLE NAME
    import everything once, then for each line "go DELAY" on stdin: fork a child that
    registers BUNDLE in a loop, SIGKILL it after DELAY seconds, and print
    "killed SIGNAL V1,V2,..." (the versions the child finished before it died).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from modelkeep import _bundle as bundle
from modelkeep.registry import Registry


def loop(root: str, path: str, name: str, count: int, worker: str) -> None:
    with Registry(root) as registry:
        for _ in range(count):
            version = registry.register(path, name)
            registry.set_alias(name, "production", version.version, reason=worker, by=worker)
            print(version.version, flush=True)


def pause(root: str, path: str, name: str) -> None:
    from modelkeep.registry import api

    verify = api._verify

    def held_verify(*args: object, **kwargs: object) -> None:
        print("holding", flush=True)
        sys.stdin.readline()
        verify(*args, **kwargs)  # type: ignore[arg-type]

    api._verify = held_verify  # type: ignore[assignment]
    with Registry(root) as registry:
        print(registry.register(path, name).version, flush=True)


def _child(root: str, path: str, name: str, report: int) -> None:
    registry = Registry(root)
    while True:
        version = registry.register(path, name)
        os.write(report, f"{version.version}\n".encode())


def forkserver(root: str, path: str, name: str) -> None:
    import modelkeep.registry.store  # noqa: F401  (SQLAlchemy: imported once, not per child)

    if "://" in root:  # a team registry: its drivers too
        import psycopg  # noqa: F401
        import s3fs  # noqa: F401

    bundle.load(path)  # import and warm everything the children use
    print("ready", flush=True)
    for line in sys.stdin:
        delay = float(line.split()[1])
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: register until killed
            os.close(read_end)
            try:
                _child(root, path, name, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        finished = b""
        while chunk := os.read(read_end, 65536):
            finished += chunk
        os.close(read_end)
        killed_by = os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1
        versions = ",".join(finished.decode().split())
        print(f"killed {killed_by} {versions}", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "loop":
        loop(args[0], args[1], args[2], int(args[3]), args[4])
    elif mode == "pause":
        pause(args[0], args[1], args[2])
    else:
        forkserver(args[0], args[1], args[2])
