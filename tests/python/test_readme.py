"""Every command block of README.md runs as written on the example project.

The blocks run in document order in one copy of the example (so the quick
start's pipeline is there for the sections after it):

- ```sh blocks: each command, with `cargo run --` (and `sluice`) meaning the
  built binary. `serve` starts in the background for the blocks after it; the
  S3 block runs against the test S3 server (tests/run.sh starts it).
- ```sql blocks: each statement through `sluice sql`, except model files
  (blocks that start with `-- sql/...`: those are files, not statements).
- ```python blocks: run against the server the README started.

Commands that are about the repository rather than the example (building,
the test and fuzz commands, regenerating data) are listed in NOT_RUN with
the reason; anything else that fails fails this test, naming the line.
"""
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, copy_project

README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"^```(sh|sql|python)\n(.*?)^```", re.S | re.M)

# Commands not run here, each with why (matched on the command's start).
NOT_RUN = {
    "bash tests/run.sh": "the test command itself",
    "bash tests/fuzz/run.sh": "CI runs the fuzz targets after the tests",
    "FUZZ_SECONDS=": "a longer fuzz run",
    "python3 catalog/generate_data.py": "rewrites the repository's example data",
}


def readme_blocks():
    text = README.read_text()
    for m in BLOCK.finditer(text):
        line = text[: m.start()].count("\n") + 2
        yield m.group(1), m.group(2), line


def sh_commands(body: str):
    """The commands of a shell block: continuation lines joined, comments
    dropped, `a && b` split."""
    joined = re.sub(r"\\\n\s*", " ", body)
    pending = ""
    for raw in joined.splitlines():
        # A quoted argument may span lines, as in a shell.
        pending = f"{pending}\n{raw}" if pending else raw
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:
            continue
        pending = ""
        if not words:
            continue
        cmd = []
        for w in words + ["&&"]:
            if w == "&&":
                if cmd:
                    yield cmd
                cmd = []
            else:
                cmd.append(w)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Readme:
    def __init__(self, sluice_bin, project, tmp, s3_endpoint):
        self.bin = sluice_bin
        self.project = project
        self.tmp = tmp
        self.s3_endpoint = s3_endpoint
        self.server = None
        self.port = free_port()
        # The README's worker ports (a local cluster), each a free port here.
        self.worker_ports = {"50052": str(free_port()), "50053": str(free_port())}
        self.background = []
        self.ran = []

    def rewrite(self, words):
        """The command with the binary for `cargo run --`, a temporary folder
        for /tmp paths and a free port for the README's."""
        env = {}
        i = 0
        while i < len(words) and re.match(r"^[A-Z_]+=", words[i]):
            k, v = words[i].split("=", 1)
            env[k] = v
            i += 1
        rest = words[i:]
        if rest[:3] == ["cargo", "run", "--"]:
            rest = rest[3:]
        elif rest[:1] == ["sluice"]:
            rest = rest[1:]
        else:
            return env, rest
        out = [self.bin]
        for w in rest:
            if w.startswith("/tmp/"):
                w = f"{self.tmp}/{w[len('/tmp/'):]}"
            w = w.replace("50051", str(self.port))
            for readme_port, port in self.worker_ports.items():
                w = w.replace(readme_port, port)
            out.append(w)
        return env, out

    def run_sh(self, words, where):
        text = " ".join(words)
        for prefix, why in NOT_RUN.items():
            if text.startswith(prefix):
                self.ran.append(f"skipped ({why}): {text}")
                return
        if words[0] == "export":
            return  # the S3 block's credentials: the test server's are set
        background = words[-1] == "&"
        if background:
            words = words[:-1]
        env, cmd = self.rewrite(words)
        assert cmd[0] == self.bin, f"{where}: a command the README test does not know: {text}"
        full_env = dict(os.environ)
        full_env.update(env)
        full_env.pop("SLUICE_WAREHOUSE", None)
        if "--warehouse" in cmd and any(a.startswith("s3://") for a in cmd):
            self.s3_bucket(cmd)
        if "serve" in cmd:
            self.start_server(cmd, full_env, where)
            return
        if background:
            self.start_background(cmd, full_env, where)
            return
        proc = subprocess.run(cmd, cwd=self.project, env=full_env,
                              capture_output=True, text=True, timeout=600)
        self.ran.append(text)
        assert proc.returncode == 0, (
            f"{where}: `{text}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )

    def s3_bucket(self, cmd):
        import boto3

        uri = next(a for a in cmd if a.startswith("s3://"))
        bucket = uri[len("s3://"):].split("/")[0]
        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint)
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass

    def start_server(self, cmd, env, where):
        assert self.server is None, f"{where}: a second server"
        self.server = subprocess.Popen(cmd, cwd=self.project, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                if self.server.poll() is not None:
                    pytest.fail(f"{where}: the server exited: {self.server.stderr.read()}")
                time.sleep(0.2)
        pytest.fail(f"{where}: the server did not listen on {self.port}")

    def start_background(self, cmd, env, where):
        """A command ending in `&` (a worker): started, and running once it
        prints its first line (`... listening on ...`)."""
        proc = subprocess.Popen(cmd, cwd=self.project, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.background.append(proc)
        line = proc.stdout.readline()
        if "listening" not in line:
            pytest.fail(f"{where}: `{' '.join(cmd)}` did not start: {line}{proc.stderr.read()}")
        self.ran.append(" ".join(cmd) + " &")

    def run_sql(self, body, where):
        if body.lstrip().startswith("-- sql/"):
            return  # a model file
        for stmt in split_sql(body):
            proc = subprocess.run([self.bin, "sql", "--", stmt], cwd=self.project,
                                  capture_output=True, text=True, timeout=600)
            self.ran.append(stmt)
            assert proc.returncode == 0, (
                f"{where}: the statement\n{stmt}\nexited {proc.returncode}\n{proc.stderr}"
            )

    def run_python(self, body, where):
        assert self.server is not None, f"{where}: a Python block before `serve`"
        code = body.replace("50051", str(self.port))
        proc = subprocess.run(["python", "-c", code], cwd=self.project,
                              capture_output=True, text=True, timeout=300)
        self.ran.append(f"python block at {where}")
        assert proc.returncode == 0, f"{where}: the Python block failed\n{proc.stdout}\n{proc.stderr}"

    def stop(self):
        for proc in self.background:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()


def split_sql(body: str):
    """Statements of a block: comments dropped (the README's SQL has no `--`
    inside strings), then `;`-separated."""
    text = re.sub(r"--[^\n]*", "", body)
    return [piece.strip() for piece in text.split(";") if piece.strip()]


def test_every_readme_block_runs_on_the_example(sluice_bin, s3_endpoint, tmp_path):
    project = copy_project(tmp_path / "example")
    # The example's singular data tests (sluice.toml: tests = "tests/data").
    shutil.copytree(REPO_ROOT / "tests" / "data", project / "tests" / "data")
    if (REPO_ROOT / "seeds").is_dir():
        shutil.copytree(REPO_ROOT / "seeds", project / "seeds")
    readme = Readme(sluice_bin, project, tmp_path, s3_endpoint)
    try:
        blocks = list(readme_blocks())
        assert blocks, "no blocks found in README.md"
        for kind, body, line in blocks:
            where = f"README.md:{line}"
            if kind == "sh":
                for words in sh_commands(body):
                    readme.run_sh(words, where)
            elif kind == "sql":
                readme.run_sql(body, where)
            else:
                readme.run_python(body, where)
    finally:
        readme.stop()
    # The quick start ran, and so did the Flight SQL snippet.
    assert any(" run" in r or r.endswith("run") for r in readme.ran), readme.ran
    assert any(r.startswith("python block") for r in readme.ran), readme.ran
