"""Every fenced example in ``docs/*.md`` is exercised, and the reference docs name everything the
code defines. The marker convention is in ``tests/support/docs.py``; a block without a marker
fails, so no example goes untested."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import shutil
import sys
import threading
import time
import typing
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf import struct_pb2
from ruamel.yaml import YAML

from extproc import decision, metrics
from extproc.app import build_authz, build_processor
from extproc.audit.event import EVENT_FIELDS, RECORD_FIELDS
from extproc.audit.files import chain_files
from extproc.audit.recording import RecordingConfig
from extproc.audit.sink import AuditSinks
from extproc.audit.store import ChainFiles
from extproc.audit.writer import AuditWriter, WriterSettings
from extproc.cli import _parser, main
from extproc.clock import Clock
from extproc.decision import Decision, Effect, to_metadata
from extproc.demo.state import init_demo_state
from extproc.envoy_runner import validate_config
from extproc.errors import Code, ConfigError
from extproc.masking.detectors import DETECTOR_NAMES
from extproc.masking.operators import ACTIONS
from extproc.policy.when import WhenSettings
from extproc.policytest.runner import run_suite
from extproc.processor.mapping import AUTHZ_NAMESPACE
from extproc.processor.service import ExternalProcessorService
from extproc.reload import RuntimeHolder
from extproc.settings import load_config
from tests.support.docs import (
    KINDS,
    REQUIRED,
    Block,
    blocks,
    commands,
    excerpt_found,
    output_matches,
    parse_marker,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
BLOCKS = [block for doc in DOCS for block in blocks(doc)]
# Fixed keys, so the tokens and hashes the docs show are the ones the harness gets.
MASKING_KEY = "docs-masking-key-" + "m" * 32
AUDIT_KEY = "docs-audit-key-" + "a" * 32
_yaml = YAML(typ="safe", pure=True)


# -- the workspace: a demo state, the docs' configs and suites, audit trails ---
def _merge(base: Any, fragment: Any) -> Any:
    if isinstance(base, dict) and isinstance(fragment, dict):
        merged = dict(base)
        for key, value in fragment.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return fragment


def _dump(data: Any) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue()


def _config_texts(state: Path) -> dict[str, str]:
    """Every config the docs name, by name, as written to the demo state (fragments merged)."""
    texts = {"demo": (state / "config.yaml").read_text(encoding="utf-8")}
    for block in BLOCKS:
        if block.kind == "config":
            texts[block.options["name"]] = block.text
        elif block.kind == "fragment":
            base = texts[block.options["of"]]
            merged = _merge(_yaml.load(base), _yaml.load(block.text))
            texts[block.options["name"]] = _dump(merged)
    return texts


def _event(n: int, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "time": f"2026-11-02T10:00:{n:02d}.000000Z",
        "service": "processor",
        "worker": 0,
        "request_id": f"9b2d6c1e-0000-4000-8000-00000000000{n}",
        "decision_id": f"dec-0000{n}",
        "effect": "allow",
        "outcome": "allowed",
        "enforced": True,
        "rule": "eu-team-to-eu",
        "reason": "ml-eu may reach eu models from the EU",
        "subject": "alice",
        "issuer": "demo",
        "groups": ["ml-eu"],
        "source_address": "192.0.2.10",
        "source_country": "DE",
        "source_region": "eu",
        "declared_region": "",
        "target_region": "eu",
        "method": "POST",
        "path": "/eu/v1/chat/completions",
        "model": "demo-echo",
        "upstream_status": 200,
        "request_bytes": 96,
        "response_bytes": 412,
        "findings": {"request.CARD": 1, "request.EMAIL": 1},
        "masking_profile": "standard",
        "masking_mode": "enforce",
        "duration_ms": 41.7,
        "policy_revision": "63eba2c14115",
    }
    event.update(fields)
    return event


def _write_trail(directory: Path) -> None:
    processor = AuditWriter(directory, "processor-0", AUDIT_KEY.encode())
    for n in range(3):
        assert processor.submit(_event(n))
    assert processor.submit(
        _event(
            3,
            outcome="denied",
            rule="reveal-instructions",
            reason="attempts to make the model ignore or reveal its instructions are blocked",
            error="prompt_blocked",
            status=403,
            findings={},
            upstream_status=0,
            response_bytes=0,
        )
    )
    processor.close()
    authz = AuditWriter(directory, "authz-0", AUDIT_KEY.encode())
    denied = _event(
        4,
        service="authz",
        effect="deny",
        outcome="denied",
        rule="source-region-not-allowed",
        reason="the caller's groups may reach this target region, but not from this source region",
        error="forbidden",
        status=403,
        source_address="198.51.100.7",
        source_country="US",
        source_region="us",
    )
    for name in ("upstream_status", "request_bytes", "response_bytes", "findings"):
        denied.pop(name)
    for name in ("masking_profile", "masking_mode", "duration_ms"):
        denied.pop(name)
    assert authz.submit(denied)
    authz.close()


class _FullDisk:
    """Chain files whose first append after ``full`` is set fails with ENOSPC; the retries wait
    for ``room``, so the trail always shows exactly one failed write."""

    def __init__(self, directory: Path) -> None:
        self.files = ChainFiles(directory, "processor-0", AUDIT_KEY.encode())
        self.full = threading.Event()
        self.room = threading.Event()
        self.failed = 0
        self.chain = "processor-0"

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self.full.is_set() and not self.room.is_set():
            if self.failed == 0:
                self.failed += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room.wait(10)
        self.files.append(records)

    def keep_note(self, note: Mapping[str, Any]) -> None:
        self.files.keep_note(note)

    def clear_note(self) -> None:
        self.files.clear_note()

    def close(self) -> None:
        self.files.close()


def _until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.002)


def _write_full_disk_trail(directory: Path) -> None:
    """One event written, one whose write fails (the disk is full), one refused meanwhile, then
    the disk has room again: the chain records the failure and the refusal."""
    disk = _FullDisk(directory)
    writer = AuditWriter.over(disk, WriterSettings(when_full="deny", block_timeout=0))
    assert writer.submit(_event(0))
    _until(lambda: writer.written >= 1)
    disk.full.set()
    assert writer.submit(_event(1))
    _until(lambda: disk.failed >= 1 and not writer.accepting())
    assert writer.submit_durable(_event(2)).result(timeout=10) is False
    disk.room.set()
    _until(lambda: writer.written >= 2)
    writer.close()


def _tamper(directory: Path) -> None:
    """Edit one record of a copy of the trail: another source region, nothing else."""
    path = chain_files(directory, "processor-0")[0]
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"source_region":"eu"', b'"source_region":"us"')
    path.write_bytes(b"".join(lines))


# -- recorded exchanges: the processor servicer, fed as Envoy feeds it, with recording on ---
CARD, EMAIL = "4111 1111 1111 1111", "jane.doe@example.com"
RECORDED_JSON = "3f6c2a9e-5b1d-4c8e-9a27-0d4e8b1f6a01"  # a chat completion, one body each way
RECORDED_SSE = "62d39cc5-d05f-46a9-9876-e72425aaea4c"  # a streamed (SSE) chat completion


class _Ticks:
    """The processor's clock, set by hand: fixed timestamps and offsets, so the recordings and
    the replay printouts the docs show are the same on every run."""

    def __init__(self) -> None:
        self.wall_at = 0.0
        self.now = 0.0

    def wall(self) -> float:
        return self.wall_at

    def monotonic(self) -> float:
        return self.now


def _headers(values: Mapping[str, str]) -> ep.HttpHeaders:
    return ep.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
        )
    )


def _decision(decision_id: str, request_id: str, model: str) -> Decision:
    return Decision(
        decision_id, request_id, "allow", "eu-team-to-eu", "ml-eu may reach eu models from the EU",
        subject="alice", issuer="demo", groups=("ml-eu",), source_address="192.0.2.10",
        source_country="DE", source_region="eu", target_region="eu", model=model,
        policy_revision="63eba2c14115",
    )  # fmt: skip


def _chat_request(request_id: str, body: bytes, **extra: str) -> ep.ProcessingRequest:
    headers = {
        ":method": "POST",
        ":path": "/eu/v1/chat/completions",
        ":authority": "gateway.example",
        "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.the-caller.token",
        "content-type": "application/json",
        "content-length": str(len(body)),
        "user-agent": "python-httpx/0.27",
        "x-request-id": request_id,
        **extra,
    }
    return ep.ProcessingRequest(request_headers=_headers(headers))


def _body(data: bytes, *, request: bool = False, last: bool = True) -> ep.ProcessingRequest:
    body = ep.HttpBody(body=data, end_of_stream=last)
    return (
        ep.ProcessingRequest(request_body=body)
        if request
        else ep.ProcessingRequest(response_body=body)
    )


def _response(headers: Mapping[str, str]) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(response_headers=_headers({":status": "200", **headers}))


def _chat(content: str, **extra: Any) -> bytes:
    return orjson.dumps({"messages": [{"role": "user", "content": content}], **extra})


def _sse(content: str) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"delta": {"content": content}}]}) + b"\n\n"


def _exchanges() -> list[tuple[str, Decision, list[tuple[float, ep.ProcessingRequest]]]]:
    """(start, decision, [(ms after the start, message)]) of each recorded exchange. They
    began more than 30 days before these docs were written, so that retention's ``max_age: 30d``
    removes them whenever the examples run."""
    json_body = _chat(f"card {CARD}, mail {EMAIL}", model="demo-echo")
    sse_body = _chat(f"look up the customer with card {CARD}", model="demo-leaky", stream=True)
    reply = {"choices": [{"message": {"role": "assistant", "content": f"You sent card {CARD}"}}]}
    json_reply_headers = {
        "content-type": "application/json",
        "date": "Thu, 01 Oct 2026 09:14:05 GMT",
        "server": "demo-model",
        "set-cookie": "upstream-session=abc123",
    }
    return [
        (
            "2026-10-01T09:14:05.250000+00:00",
            _decision("5d0e3c7a91b24f6e8c1a2b3c4d5e6f70", RECORDED_JSON, "demo-echo"),
            [
                (0.0, _chat_request(RECORDED_JSON, json_body)),
                (0.4, _body(json_body, request=True)),
                (12.5, _response(json_reply_headers)),
                (12.9, _body(orjson.dumps(reply))),
            ],
        ),
        (
            "2026-10-01T09:15:41.500000+00:00",
            _decision("8a41f2e6c3d94b7a9e0f1a2b3c4d5e6f", RECORDED_SSE, "demo-leaky"),
            [
                (0.0, _chat_request(RECORDED_SSE, sse_body, accept="text/event-stream")),
                (0.3, _body(sse_body, request=True)),
                (
                    7.912,
                    _response({"content-type": "text/event-stream", "cache-control": "no-cache"}),
                ),
                (8.084, _body(_sse(f"Customer record: card {CARD} (Visa). "), last=False)),
                (31.5, _body(_sse(f"Contact {EMAIL} for details."), last=False)),
                (33.2, _body(b"data: [DONE]\n\n")),
            ],
        ),
    ]


def _write_recorded_trail(state: Path, directory: Path) -> None:
    """The demo config with recording on, its processor writing to ``directory``: each exchange
    goes through the real servicer (write-ahead opening record, masking, the recording written
    and bound to the closing event). No retention limits here: its thread must not race this."""
    config = load_config(state / "config.yaml")
    assert config.audit is not None
    audit = dataclasses.replace(
        config.audit, directory=directory, recording=RecordingConfig(enabled=True)
    )
    config = dataclasses.replace(config, audit=audit)
    ticks = _Ticks()
    sinks = AuditSinks()
    runtime = build_processor(config, sinks=sinks, clock=Clock(ticks.wall, ticks.monotonic))
    service = ExternalProcessorService(RuntimeHolder(runtime, lambda: runtime))

    async def exchange(decided: Decision, steps: list[tuple[float, ep.ProcessingRequest]]) -> None:
        struct = struct_pb2.Struct()
        struct.update(to_metadata(decided))
        context = base_pb2.Metadata(filter_metadata={AUTHZ_NAMESPACE: struct})
        queue: asyncio.Queue[ep.ProcessingRequest | None] = asyncio.Queue()

        async def messages() -> AsyncIterator[ep.ProcessingRequest]:
            while (message := await queue.get()) is not None:
                yield message

        replies = service.Process(messages(), typing.cast(Any, None))
        for at_ms, message in steps:  # one message after each answer, as Envoy sends them
            ticks.now = 1000.0 + at_ms / 1000
            message.metadata_context.CopyFrom(context)
            await queue.put(message)
            reply = await anext(replies)
            assert not reply.HasField("immediate_response"), reply
        await queue.put(None)
        async for _rest in replies:  # the stream ends: the exchange is recorded and closed
            pass

    try:
        for start, decided, steps in _exchanges():
            ticks.wall_at, ticks.now = datetime.fromisoformat(start).timestamp(), 1000.0
            asyncio.run(exchange(decided, steps))
    finally:
        sinks.close_all()


def _recording_of(directory: Path, request_id: str) -> Path:
    (path,) = (directory / "recordings").glob(f"*/*_{request_id}.json")
    return path


def _tamper_recordings(directory: Path) -> None:
    """A copy of the recorded trail: one recording edited to show a card number the gateway
    had masked, the other deleted."""
    edited = _recording_of(directory, RECORDED_JSON)
    text = edited.read_bytes()
    assert text.count(b"[REDACTED:CARD]") == 2
    edited.write_bytes(text.replace(b"[REDACTED:CARD]", CARD.encode(), 1))
    _recording_of(directory, RECORDED_SSE).unlink()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("docs")
    state = root / "demo"
    (state / "keys").mkdir(parents=True, mode=0o700)
    (state / "keys" / "masking.key").write_text(MASKING_KEY)
    (state / "keys" / "audit.key").write_text(AUDIT_KEY)
    init_demo_state(state)
    for name, text in _config_texts(state).items():
        if name != "demo":
            (state / f"{name}.yaml").write_text(text, encoding="utf-8")
    for block in BLOCKS:
        if block.kind == "suite" and "name" in block.options:
            (state / f"{block.options['name']}.yaml").write_text(block.text, encoding="utf-8")
    _write_trail(state / "audit")
    shutil.copytree(state / "audit", root / "tampered")
    _tamper(root / "tampered")
    _write_full_disk_trail(root / "full-disk")
    _write_recorded_trail(state, root / "audit")
    shutil.copytree(root / "audit", root / "edited")
    _tamper_recordings(root / "edited")
    shutil.copytree(root / "audit", root / "archive")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXTPROC_AUDIT_KEY", AUDIT_KEY)  # --key-env EXTPROC_AUDIT_KEY, as auditors run
        yield root


# -- the examples ---
def test_the_docs_have_examples() -> None:
    names = {doc.name for doc in DOCS}
    assert {"sre.md", "security.md", "auditors.md"} <= names
    assert len(BLOCKS) > 20


def test_markers_name_what_their_kind_needs_and_names_are_unique() -> None:
    names: dict[str, str] = {"demo": "the demo config"}
    for block in BLOCKS:
        missing = [key for key in REQUIRED.get(block.kind or "", ()) if key not in block.options]
        assert not missing, f"{block.id}: a {block.kind} marker needs {', '.join(missing)}="
        if block.kind in ("config", "fragment") or (
            block.kind == "suite" and "name" in block.options
        ):
            name = block.options["name"]
            assert name not in names, f"{block.id}: {name!r} is already {names[name]}"
            names[name] = block.id
        if block.kind in ("fragment", "suite"):
            assert block.options["of"] in names, (
                f"{block.id}: no config {block.options['of']!r} above"
            )


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_every_example_is_exercised(block: Block, workspace: Path) -> None:
    assert block.kind is not None, (
        f"{block.id}: a fenced block without a test marker (<!-- test: KIND ... --> on the line "
        "before it; the kinds are in tests/support/docs.py)"
    )
    assert block.kind in KINDS, f"{block.id}: unknown test kind {block.kind!r}"
    globals()[f"_check_{block.kind}"](block, workspace)


def _check_none(block: Block, _workspace: Path) -> None:
    assert block.options.get("reason", "").strip(), f"{block.id}: 'none' needs reason=\"...\""


def _check_config(block: Block, workspace: Path) -> None:
    path = workspace / "demo" / f"{block.options['name']}.yaml"
    if block.options.get("expect") == "invalid":
        with pytest.raises(ConfigError):
            load_config(path)
        return
    config = load_config(path)  # what `extproc check` does: load, then open the GeoIP database
    build_authz(config, load_keys=False).close()


_check_fragment = _check_config


def _check_suite(block: Block, workspace: Path) -> None:
    suite = workspace / "demo" / f"{block.options.get('name', 'docs-suite')}.yaml"
    suite.write_text(block.text, encoding="utf-8")
    config = (
        workspace / "demo" / ("config" if block.options["of"] == "demo" else block.options["of"])
    )
    results = run_suite(suite, config.with_suffix(".yaml"))
    if block.options.get("expect") == "fail":
        assert any(not r.passed for r in results), f"{block.id}: meant to fail, yet passes"
        return
    failed = [
        f"{r.name}: {'; '.join(r.mismatches)} {' / '.join(r.why)}" for r in results if not r.passed
    ]
    assert not failed, "\n".join(failed)


def _check_envoy(block: Block, workspace: Path) -> None:
    path = workspace / f"envoy-{block.line}.yaml"
    path.write_text(block.text, encoding="utf-8")
    validate_config(path)


def _check_excerpt(block: Block, _workspace: Path) -> None:
    source = REPO / block.options["of"]
    assert excerpt_found(block.text, source.read_text(encoding="utf-8")), (
        f"{block.id}: these lines are not in {block.options['of']} as shown"
    )
    if source.parent.name == "envoy":
        _validated_envoy(source)


_validated: set[Path] = set()


def _validated_envoy(path: Path) -> None:
    if path not in _validated:
        validate_config(path)
        _validated.add(path)


def _check_event(block: Block, _workspace: Path) -> None:
    record = json.loads(block.text)
    unknown = set(record) - EVENT_FIELDS - RECORD_FIELDS
    assert not unknown, f"{block.id}: fields no audit record has: {sorted(unknown)}"
    if "hash" in record:  # a record as the writer sealed it, not edited for the docs
        content = {k: v for k, v in record.items() if k not in ("hash", "mac")}
        sealed = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
        assert record["hash"] == sealed, f"{block.id}: the record's hash does not match it"


def _check_argv(block: Block, _workspace: Path) -> None:
    parser = _parser()
    for command in commands(block.text):
        assert command.argv[0] == "extproc", f"{block.id}: only extproc commands: {command.argv}"
        parser.parse_args(command.argv[1:])


def _check_cli(block: Block, workspace: Path) -> None:
    exit_code = int(block.options.get("exit", "0"))
    variables: dict[str, str] = {}
    with contextlib.chdir(workspace):
        steps = commands(block.text)
        for index, command in enumerate(steps):
            wanted = exit_code if index == len(steps) - 1 else 0
            argv = [_expand(word, variables) for word in command.argv]
            assert argv[0] == "extproc", f"{block.id}: only extproc commands run here: {argv}"
            code, out, err = _run(argv[1:], command.stdin)
            if command.assign:
                variables[command.assign] = out.strip()
            assert code == wanted, f"{block.id}: {' '.join(argv)} exited {code}\n{out}{err}"
            actual = out.splitlines() + err.splitlines()
            while actual and not actual[-1].strip():  # a block cannot show trailing blank lines
                actual.pop()
            if command.output:
                assert output_matches(command.output, actual), (
                    f"{block.id}: {' '.join(argv)} printed:\n" + "\n".join(actual)
                )


def _expand(word: str, variables: Mapping[str, str]) -> str:
    return re.sub(r"\$([A-Z_][A-Z0-9_]*)", lambda m: variables[m.group(1)], word)


def _run(argv: list[str], stdin: bytes | None) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    streams = (
        io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    # The docs show a reader with extproc on PATH (an activated virtualenv): the commands
    # extproc prints then name it as "extproc".
    on_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    try:
        with mock.patch.dict(os.environ, {"PATH": on_path}):
            code = main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    return code, out.getvalue().decode(), err.getvalue().decode()


# -- the references name everything the code defines ---
def _text(name: str) -> str:
    return (REPO / "docs" / name).read_text(encoding="utf-8")


def _missing(names: Iterator[str] | Sequence[str], text: str) -> list[str]:
    return [name for name in names if f"`{name}`" not in text]


def test_security_names_every_condition_effect_detector_and_action() -> None:
    text = _text("security.md")
    conditions = [f.alias or name for name, f in WhenSettings.model_fields.items()]
    assert not _missing(conditions, text), "conditions"
    assert not _missing(typing.get_args(Effect), text), "effects"
    assert not _missing(DETECTOR_NAMES, text), "detectors"
    assert not _missing(ACTIONS, text), "actions"


def _metric_names() -> list[str]:
    names = []
    for value in vars(metrics).values():
        if hasattr(value, "_type") and hasattr(value, "_name"):
            suffix = "_total" if value._type == "counter" else ""
            names.append(value._name + suffix)
    return names


def test_sre_names_every_metric_family() -> None:
    names = _metric_names()
    assert len(names) >= 12
    assert not _missing(names, _text("sre.md"))


def test_sre_troubleshooting_table_has_every_error_code() -> None:
    text = _text("sre.md")
    section = text.split("## Troubleshooting", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    listed = {code for row in rows for code in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    assert not [str(code) for code in Code if code not in listed]


def test_the_readme_links_the_guides_and_keeps_its_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for guide in ("docs/sre.md", "docs/security.md", "docs/auditors.md"):
        assert f"]({guide})" in readme
    assert "make up      #" in readme
    assert "make test    #" in readme


def test_doc_links_point_at_files_that_exist_or_are_announced() -> None:
    announced = {"replay.md", "tracing.md"}  # written separately
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text(encoding="utf-8")):
            if target.startswith("http"):
                continue
            path = (doc.parent / target).resolve()
            assert path.exists() or path.name in announced, f"{doc.name}: broken link {target}"


def test_auditors_names_every_audit_event_field() -> None:
    text = _text("auditors.md")
    assert not _missing(sorted(EVENT_FIELDS), text)
    assert not _missing(
        ["chain", "seq", "prev", "hash", "mac", "genesis", "kind", "recovery"], text
    )


# -- the harness itself ---
def test_a_block_without_a_marker_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "Text.\n\n```yaml\na: 1\n```\n\n"
        '<!-- test: none reason="output only" -->\n\n```text\nb\n```\n'
        "<!-- test: cli exit=3 -->\nA sentence between.\n```console\n$ extproc check\n```\n"
    )
    found = blocks(doc)
    assert [(b.kind, b.options) for b in found] == [
        (None, {}),
        ("none", {"reason": "output only"}),
        (None, {}),  # a marker applies only to the block right after it
    ]
    assert found[0].text == "a: 1\n"
    assert parse_marker("none, a diagram") == ("none", {"reason": "a diagram"})
    assert parse_marker("suite of=x name=y") == ("suite", {"of": "x", "name": "y"})
    with pytest.raises(AssertionError, match="without a test marker"):
        test_every_example_is_exercised(found[0], tmp_path)
    with pytest.raises(AssertionError, match="needs reason"):
        _check_none(Block(doc, 1, "", "", "none"), tmp_path)


def test_commands_and_their_output() -> None:
    steps = commands(
        "$ T=$(extproc token --sub a)\n$ echo 'x y' | extproc mask --report\nx\n  y\n\n"
    )
    assert steps[0].assign == "T"
    assert steps[0].argv == ["extproc", "token", "--sub", "a"]
    assert steps[1].stdin == b"x y\n"
    assert steps[1].output == ["x", "  y"]
    assert output_matches(["a ... c"], ["a b b c  "])
    assert not output_matches(["a ... c"], ["a b b d"])
    assert not output_matches(["a"], ["a", "b"])


def test_an_excerpt_must_be_in_the_file_in_order() -> None:
    text = "a: 1   # one\n# a comment\nb:  2\nc: 3\nd: 4\n"
    assert excerpt_found("a: 1\nb: 2\n", text)
    assert excerpt_found("a: 1\n...\nd: 4\n", text)
    assert not excerpt_found("a: 1\nc: 3\n", text)
    assert not excerpt_found("d: 4\n...\na: 1\n", text)


def test_sre_names_every_metadata_key() -> None:
    source = (REPO / "extproc" / "decision.py").read_text(encoding="utf-8")
    keys = set(decision._TEXT_FIELDS)
    keys |= set(re.findall(r'values\["(\w+)"\] =', source))
    keys |= set(re.findall(r'^\s+"(\w+)": decision\.', source, re.M))
    assert len(keys) >= 22
    assert not _missing(sorted(keys), _text("sre.md"))
