"""gcloud, loaded once and forked per argv (tests/cli_parsers.py, parse_check).

Most of a gcloud call's second is Python importing gcloud (googlecloudsdk.gcloud_main and
what it pulls in) before any argument is looked at; the parse of one argv, and what the
command then does, take the rest. This script does the import once, then for each argv
forks, and the child runs gcloud's own entry point (lib/gcloud.py main) with that argv,
exactly as a fresh `gcloud ...` would from there on.

It is started by the real `gcloud` wrapper script, not by hand, so the interpreter, its
flags and the environment are the ones the wrapper chooses: tests/cli_parsers.py puts this
file's path in CLOUDSDK_PYTHON_ARGS (which the wrapper places before lib/gcloud.py on the
interpreter's command line), so the wrapper ends with
`exec $CLOUDSDK_PYTHON [flags] this-file .../lib/gcloud.py`. The whole thing runs under
`unshare -n` like a single call.

Protocol, one JSON line each way on stdin/stdout. First {"env": {...}}: the environment
the wrapper was started with, so that what the wrapper changed can be told apart (it
exports CLOUDSDK_ROOT_DIR, CLOUDSDK_ENCODING and the like). After the import this writes
{"ready": true}; then each request {"argv": [...], "env": {...}, "cwd": dir,
"stdout": file, "stderr": file} is answered with {"exit": code} once that child has
exited: it ran with the request's environment as the wrapper would have changed it
(CLOUDSDK_CONFIG included), in cwd, with empty stdin. EOF on stdin ends it.

Runs on gcloud's Python (3.8 or later), standard library only.
"""

import atexit
import importlib.util
import json
import os
import sys
import threading
import traceback


def _interpreter_flags_then_gcloud_py(argv):
    """The wrapper may add flags after ours (-S when it runs a Python without its own
    site-packages): they belong to the interpreter, so start again with them."""
    rest = argv[1:]
    flags = [a for a in rest[:-1] if a.startswith("-")]
    if flags:
        os.execv(sys.executable, [sys.executable, *flags, argv[0], rest[-1]])
    return rest[-1]


def _load_gcloud(gcloud_py):
    sys.path[0] = os.path.dirname(os.path.realpath(gcloud_py))  # where `python gcloud.py` starts, not this folder
    spec = importlib.util.spec_from_file_location("gcloud", gcloud_py)
    gcloud = importlib.util.module_from_spec(spec)
    sys.modules["gcloud"] = gcloud
    spec.loader.exec_module(gcloud)  # puts lib/ and lib/third_party on sys.path, as a run does
    # What gcloud.main() does before it parses anything; the child runs main() again.
    sys.path = gcloud.reorder_sys_path(sys.path)
    gcloud._fix_google_module()
    gcloud._import_gcloud_main()
    return gcloud


def _child(gcloud, gcloud_py, request, channel, wrapper_set, wrapper_unset):
    for fd in channel:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update({k: v for k, v in request["env"].items() if k not in wrapper_unset})
    os.environ.update(wrapper_set)
    # Importing gcloud made the default configuration of the (empty) config folder it was
    # started with and cached its properties (properties.VALUES reads the active
    # configuration while it is built). Drop the cache, as gcloud does when a configuration
    # changes, and make this folder's default configuration: this call then reads and
    # writes only its own folder, which ends up with the same files as after a fresh gcloud.
    from googlecloudsdk.core.configurations import named_configs
    named_configs.ActivePropertiesFile.Invalidate()
    named_configs.ConfigurationStore.ActiveConfig()
    sys.argv = [gcloud_py, *request["argv"]]
    code = 0
    try:
        gcloud.main()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    # What the interpreter does on its way out: wait for non-daemon threads, run atexit.
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream: nothing left to write
            pass
    os._exit(code & 0xFF)


def main():
    gcloud_py = _interpreter_flags_then_gcloud_py(sys.argv)
    # Flags for gcloud's own sub-invocations of Python: the wrapper's, without this file.
    os.environ["CLOUDSDK_PYTHON_ARGS"] = " ".join(
        a for a in os.environ.get("CLOUDSDK_PYTHON_ARGS", "").split() if a != os.path.abspath(sys.argv[0]))
    requests_fd, replies_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # nothing gcloud prints at import can reach the protocol
    requests, replies = os.fdopen(requests_fd, "r"), os.fdopen(replies_fd, "w")
    started_with = json.loads(requests.readline())["env"]
    wrapper_set = {k: v for k, v in os.environ.items() if started_with.get(k) != v}
    wrapper_unset = {k for k in started_with if k not in os.environ}
    gcloud = _load_gcloud(gcloud_py)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(gcloud, gcloud_py, request, (requests_fd, replies_fd), wrapper_set, wrapper_unset)
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
