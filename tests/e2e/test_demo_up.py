"""`extproc up` as a user runs it: the demo answers as the README says, the official openai SDK
works through Envoy (plain and streamed), and Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from extproc.envoy_runner import free_port, free_port_range

pytestmark = pytest.mark.e2e


@dataclass
class Demo:
    process: subprocess.Popen[str]
    state_dir: Path
    port: int
    ports: list[int]
    output: str
    command: list[str]

    def token(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "extproc", "token", "--state-dir", str(self.state_dir), *args],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        return result.stdout.strip()

    def post(
        self, path: str, token: str | None, source: str, content: str = "Hi"
    ) -> tuple[int, dict[str, Any]]:
        headers = {"content-type": "application/json", "x-forwarded-for": source}
        if token:
            headers["authorization"] = f"Bearer {token}"
        body = json.dumps(
            {"model": "demo-echo", "messages": [{"role": "user", "content": content}]}
        )
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


def up_arguments(state_dir: Path, workers: int = 2) -> tuple[list[str], dict[str, int]]:
    """``extproc up`` on free ports (the demo's own, their metrics ports + 100 too)."""
    ports = {"--port": free_port(), "--admin-port": free_port(), "--model-port": free_port()}
    ports["--issuer-port"] = free_port()
    for option in ("--authz-port", "--processor-port", "--approvals-port"):
        while True:  # the service's ports and its metrics port (+ 100) all free
            base = free_port_range(workers)
            if free_metrics_port(base + 100):
                break
        ports[option] = base
    command = [sys.executable, "-m", "extproc", "up", "--state-dir", str(state_dir)]
    for option, port in ports.items():
        command += [option, str(port)]
    return [*command, "--workers", str(workers)], ports


def free_metrics_port(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def without_extproc_on_path() -> dict[str, str]:
    """The environment of ``make up``: ``.venv/bin`` (with the extproc script) not on PATH."""
    keep = [
        directory
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if directory and not (Path(directory) / "extproc").exists()
    ]
    return dict(os.environ, PATH=os.pathsep.join(keep))


def start_up(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``extproc up`` and wait for its welcome text (fail if it never comes)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=without_extproc_on_path(),
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "Ctrl-C stops everything" in line:
            break
    if "Ctrl-C stops everything" not in "".join(output):
        stop_group(process)
        pytest.fail("extproc up did not come up:\n" + "".join(output[-40:]))
    return process, "".join(output)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    state_dir = tmp_path_factory.mktemp("demo") / ".extproc"
    command, options = up_arguments(state_dir)
    process, output = start_up(command)
    authz, processor = options["--authz-port"], options["--processor-port"]
    ports = [
        options["--port"], options["--admin-port"], options["--model-port"],
        options["--issuer-port"], authz, authz + 1, processor, processor + 1,
        options["--approvals-port"],
    ]  # fmt: skip
    demo = Demo(process, state_dir, options["--port"], ports, output, command)
    yield demo
    stop_group(process)


def stop_group(process: subprocess.Popen[str]) -> None:
    """Ctrl-C first, as a user would; then make sure no child (Envoy, workers) outlives it."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_alice_from_germany_reaches_the_eu_model(demo: Demo) -> None:
    token = demo.token("--sub", "alice", "--groups", "ml-eu")
    status, body = demo.post("/eu/v1/chat/completions", token, "192.0.2.10")
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "Hi"


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        ("/eu/v1/chat/completions", "198.51.100.7", "source-region-not-allowed"),
        ("/us/v1/chat/completions", "192.0.2.10", "target-region-not-allowed"),
        ("/eu/v1/chat/completions", "203.0.113.9", "source-region-not-allowed"),
        ("/eu/v1/chat/completions", "127.0.0.1", "unknown-source"),
    ],
)
def test_the_demo_policy_denies_with_a_reason(
    demo: Demo, path: str, source: str, rule: str
) -> None:
    token = demo.token("--sub", "alice", "--groups", "ml-eu")
    status, body = demo.post(path, token, source)
    assert (status, body["rule"]) == (403, rule)


def test_no_token_or_a_forged_one_is_401(demo: Demo) -> None:
    assert demo.post("/eu/v1/chat/completions", None, "192.0.2.10")[0] == 401
    forged = demo.token("--sub", "alice", "--groups", "ml-eu")[:-4] + "AAAA"
    status, body = demo.post("/eu/v1/chat/completions", forged, "192.0.2.10")
    assert (status, body["error"]) == (401, "invalid_signature")


def test_a_declared_region_claim_must_match_the_source(demo: Demo) -> None:
    token = demo.token("--sub", "alice", "--groups", "ml-eu", "--claim", "region=US")
    status, body = demo.post("/eu/v1/chat/completions", token, "192.0.2.10")
    assert (status, body["rule"]) == (403, "declared-region-mismatch")


def test_the_official_openai_sdk_works_through_the_gateway(demo: Demo) -> None:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{demo.port}/eu/v1",
        api_key=demo.token("--sub", "alice", "--groups", "ml-eu"),
        default_headers={"x-forwarded-for": "192.0.2.10"},
        max_retries=0,
    )
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "Where does my data go?"}
    ]
    completion = client.chat.completions.create(model="demo-echo", messages=messages)
    assert completion.choices[0].message.content == "Where does my data go?"
    stream = client.chat.completions.create(model="demo-echo", messages=messages, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == "Where does my data go?"
    assert len(pieces) > 3
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="demo-echo", messages=messages, extra_headers={"x-forwarded-for": "198.51.100.7"}
        )


PROMPT = "My card is 4111 1111 1111 1111, mail jane.doe@example.com, SSN 123-45-6789"


def test_a_prompt_with_a_card_an_email_and_an_ssn_comes_back_masked(demo: Demo) -> None:
    token = demo.token("--sub", "alice", "--groups", "ml-eu")
    status, body = demo.post("/eu/v1/chat/completions", token, "192.0.2.10", PROMPT)
    assert status == 200
    answer = body["choices"][0]["message"]["content"]
    assert answer.startswith("My card is [REDACTED:CARD], mail <EMAIL:")
    assert answer.endswith(", SSN [REDACTED:US_SSN]")
    seen = (demo.state_dir / "model-requests.jsonl").read_text()
    for raw in ("4111 1111 1111 1111", "jane.doe@example.com", "123-45-6789"):
        assert raw not in seen


def test_a_streamed_answer_comes_back_masked_through_the_sdk(demo: Demo) -> None:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{demo.port}/eu/v1",
        api_key=demo.token("--sub", "alice", "--groups", "ml-eu"),
        default_headers={"x-forwarded-for": "192.0.2.10"},
        max_retries=0,
    )
    stream = client.chat.completions.create(
        model="demo-leaky", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "[REDACTED:CARD]" in text
    assert "4111" not in text
    assert "123-45-6789" not in text


def test_audit_verify_passes_and_fails_once_an_event_is_edited(demo: Demo) -> None:
    time.sleep(0.3)
    args = [sys.executable, "-m", "extproc", "audit", "verify", str(demo.state_dir / "audit"),
            "--key-file", str(demo.state_dir / "keys" / "audit.key")]  # fmt: skip
    ok = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "processor-" in ok.stdout
    chain = next(
        p
        for p in sorted((demo.state_dir / "audit").glob("processor-*.jsonl"))
        if p.read_text().count("\n") > 1
    )
    chain.write_text(chain.read_text().replace('"subject":"alice"', '"subject":"eve"', 1))
    bad = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1
    assert "FAILED" in bad.stdout
    assert chain.name in bad.stdout


def test_the_printed_commands_run_as_printed_without_extproc_on_path(demo: Demo) -> None:
    line = next(
        line.strip() for line in demo.output.splitlines() if line.strip().startswith("TOKEN=$(")
    )
    assert not line.startswith("TOKEN=$(extproc ")  # not on PATH: the script's own path
    result = subprocess.run(
        ["sh", "-c", f'{line} && printf %s "$TOKEN"'],
        capture_output=True, text=True, timeout=30, env=without_extproc_on_path(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # a JWT


def test_a_second_up_on_the_same_ports_fails_naming_the_port(demo: Demo, tmp_path: Path) -> None:
    command = list(demo.command)
    command[command.index("--state-dir") + 1] = str(tmp_path / "second")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "extproc demo is up" not in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert f"port {demo.port} (Envoy's listener) is already in use" in result.stderr
    assert "choose another port with --port" in result.stderr
    assert demo.process.poll() is None  # the first one serves on


def test_ctrl_c_stops_everything(demo: Demo) -> None:
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    for port in demo.ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is still served"


@pytest.mark.parametrize(
    ("taken", "named"),
    [
        ("--issuer-port", "(the demo OIDC issuer)"),
        ("--model-port", "(the demo model)"),
        ("--admin-port", "(Envoy's admin interface)"),
        ("--authz-port", "(authz worker 0)"),
        ("authz metrics", "(authz metrics, --authz-port + 100)"),
    ],
)
def test_a_taken_port_stops_up_before_anything_starts(
    tmp_path: Path, taken: str, named: str
) -> None:
    command, ports = up_arguments(tmp_path / "st", workers=1)
    port = ports["--authz-port"] + 100 if taken == "authz metrics" else ports[taken]
    option = "--authz-port" if taken == "authz metrics" else taken
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "extproc demo is up" not in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"port {port} {named} is already in use by pid {os.getpid()}" in result.stderr
    assert f"choose another port with {option}" in result.stderr
    assert not (tmp_path / "st" / "logs").exists()  # nothing was started


def test_a_service_that_exits_makes_up_stop_and_exit_non_zero(tmp_path: Path) -> None:
    from tests.support.processes import descendants, kill_all

    command, _ports = up_arguments(tmp_path / "st", workers=1)
    process, _output = start_up(command)
    children = descendants(process.pid)
    try:
        authz = next(
            pid
            for pid in children
            if b"serve\0authz" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            == str(process.pid)
        )
        os.kill(authz, signal.SIGKILL)
        assert process.wait(timeout=30) == 1
        assert process.stdout is not None
        rest = process.stdout.read()
        assert "authz exited unexpectedly" in rest, rest
    finally:
        stop_group(process)
        kill_all(children)


def test_a_killed_up_leaves_no_process_and_no_port_behind(tmp_path: Path) -> None:
    from tests.support.processes import descendants, kill_all, wait_until_gone

    command, ports = up_arguments(tmp_path / "st", workers=1)
    process, _output = start_up(command)
    children = descendants(process.pid)
    try:
        # Envoy (in a session of its own), and a supervisor and a worker per service.
        assert len(children) >= 7
        process.kill()  # SIGKILL: up runs no cleanup at all
        process.wait()
        assert wait_until_gone(children, timeout=20) == set()
        for port in ports.values():
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is still served"
    finally:
        kill_all(children)
        stop_group(process)
