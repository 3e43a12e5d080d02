"""Free ports for a chaos scenario's processes, from the range its group owns (so two groups run side by
side without taking each other's ports)."""

import contextlib
import socket


def free_ports(host: str, count: int, ports: range) -> list[int]:
    """``count`` ports of ``ports`` that nothing listens on at ``host`` (each probe held until all are found)."""
    with contextlib.ExitStack() as probes:
        found = []
        for port in ports:
            probe = probes.enter_context(socket.socket())
            try:
                probe.bind((host, port))
            except OSError:
                continue
            found.append(port)
            if len(found) == count:
                return found
    raise RuntimeError(f"not {count} free ports in {ports.start}-{ports.stop - 1} on {host}")
