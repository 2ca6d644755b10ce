"""Run tasks in long-lived worker processes, one per library family.

A worker that crashes (a segfault in a peer, say) or exceeds its time limit is
replaced; the task is recorded with status "crash" or "timeout" and the run
goes on. Only one task runs at a time (the machine has two cores).
"""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _describe_exit(rc):
    if rc is None:
        return "worker killed"
    if rc < 0:
        import signal

        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return f"worker killed by signal {name}"
    return f"worker exited with code {rc}"


class Worker:
    def __init__(self, family, log_dir, env=None):
        self.family = family
        self.env = env
        self.log_path = Path(log_dir) / f"worker-{family}.log"
        self.proc = None
        self.lines = None

    def _start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
            bufsize=1,
            env=self.env,
        )
        self.lines = queue.Queue()
        proc, lines = self.proc, self.lines

        def read():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def _stop(self, kill=False):
        if self.proc is None:
            return None
        if kill:
            self.proc.kill()
        else:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        self.proc = None
        return rc

    def run(self, task, timeout):
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self._stop()
            self._start()
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # the worker died: read() below sees the end of its output
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self._stop(kill=True)
            return {
                "id": task["id"],
                "status": "timeout",
                "error": f"no answer within {timeout:.0f} s; worker killed",
            }
        if line is None:
            rc = self._stop()
            return {
                "id": task["id"],
                "status": "crash",
                "error": _describe_exit(rc),
                "stderr_tail": _tail(self.log_path),
            }
        return json.loads(line)

    def close(self):
        self._stop()


class Pool:
    def __init__(self, log_dir, env=None):
        self.log_dir = log_dir
        self.env = env
        self.workers = {}

    def run(self, family, task, timeout):
        if family not in self.workers:
            self.workers[family] = Worker(family, self.log_dir, self.env)
        return self.workers[family].run(task, timeout)

    def close(self):
        for worker in self.workers.values():
            worker.close()


def run_once(task, timeout, log_dir, env=None):
    """Run one task in a fresh process (memory measurements)."""
    log_path = Path(log_dir) / "worker-once.log"
    with open(log_path, "a") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks._worker", "--once"],
                input=json.dumps(task) + "\n",
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=ROOT,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return {"id": task["id"], "status": "timeout", "error": f"> {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        return {
            "id": task["id"],
            "status": "crash",
            "error": _describe_exit(proc.returncode),
            "stderr_tail": _tail(log_path),
        }
    return json.loads(lines[-1])
