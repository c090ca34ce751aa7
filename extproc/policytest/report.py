"""A suite's results as text for people and as JUnit XML for CI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from xml.etree import ElementTree

from extproc.policytest.runner import CaseResult


def write_text(suite: Path, results: Sequence[CaseResult], out: TextIO) -> None:
    out.write(f"{suite}\n")
    for result in results:
        out.write(f"  {'PASS' if result.passed else 'FAIL'}  {result.name}\n")
        for mismatch in result.mismatches:
            out.write(f"        {mismatch}\n")
        if result.why:
            out.write("        why, rule by rule:\n")
            for line in result.why:
                out.write(f"          {line}\n")


def summary(results: Sequence[CaseResult]) -> str:
    failed = sum(1 for r in results if not r.passed)
    return f"{len(results) - failed} passed, {failed} failed"


def write_junit(suites: Sequence[tuple[Path, Sequence[CaseResult]]], path: Path) -> None:
    root = ElementTree.Element("testsuites")
    for suite, results in suites:
        element = ElementTree.SubElement(
            root,
            "testsuite",
            name=str(suite),
            tests=str(len(results)),
            failures=str(sum(1 for r in results if not r.passed)),
        )
        for result in results:
            case = ElementTree.SubElement(
                element, "testcase", name=result.name, classname=suite.stem
            )
            if not result.passed:
                failure = ElementTree.SubElement(
                    case, "failure", message="; ".join(result.mismatches)
                )
                failure.text = "\n".join([*result.mismatches, *result.why])
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
