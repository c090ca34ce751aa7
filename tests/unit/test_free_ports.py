"""Ports for the listeners a test or the benchmark starts: never the same one twice in a
process, even though each is free again the moment its probe socket closes."""

from __future__ import annotations

import socket

from extproc.envoy_runner import free_port, free_port_range


def test_ports_handed_out_one_after_another_are_all_different() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_range_overlaps_no_port_handed_out_before_and_can_be_listened_on() -> None:
    single = {free_port() for _ in range(50)}
    base = free_port_range(4)
    block = set(range(base, base + 4))
    assert not block & single
    after = free_port_range(4)
    assert not block & set(range(after, after + 4))
    listeners = []
    try:
        for port in sorted(block):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listeners.append(listener)
            listener.bind(("127.0.0.1", port))
            listener.listen()
    finally:
        for listener in listeners:
            listener.close()
