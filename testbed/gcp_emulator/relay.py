"""Run one command inside a fresh network namespace that can still reach the emulator.

    python3 relay.py UNIX_SOCKET PORT -- COMMAND ARGS...

Started under `unshare -n sh -c 'ip link set lo up && exec "$0" "$@"'` (testbed/engine_chain.py
`network_cut_argv`): only loopback exists, so nothing can leave the machine. This process
listens on 127.0.0.1:PORT *inside* the namespace and pipes every connection to the emulator's
Unix socket (a filesystem socket is reachable across network namespaces), then runs the
command with stdin/stdout/stderr inherited and exits with its status. Stdlib only, no
imports from the project (it runs as a plain script).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve(listener: socket.socket, unix_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(unix_path)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def main(argv: list[str]) -> int:
    unix_path, port, separator, *command = argv
    assert separator == "--" and command, "usage: relay.py UNIX_SOCKET PORT -- COMMAND..."
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, unix_path), daemon=True).start()
    try:
        return subprocess.run(command, check=False).returncode
    except FileNotFoundError:
        print(f"relay: {command[0]}: not found", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
