#!/usr/bin/env python3
"""An OCI runtime for the dockerd the project starts: runc, after dropping from a container's capabilities those
this machine's bounding set does not hold.

Docker 20.10 (Debian 12's docker.io) gives a privileged container every capability it knows, not the daemon's own
(moby/moby#42906; Docker 23 takes the daemon's). Where root lacks one (a VM whose CapBnd has no CAP_SYS_RESOURCE),
runc then fails every privileged container with "unable to apply caps: operation not permitted", and kind's nodes
are privileged. This wrapper does what Docker 23 does: on `runc create|run` it trims process.capabilities in the
bundle's config.json, on `runc exec` those of the --process file, then runs runc with the same arguments. With
every capability present it changes nothing. images.start_docker registers it (`dockerd --add-runtime`,
`--default-runtime`) only where the bounding set lacks one.

    RUNC=<path>   the runc to run (default /usr/sbin/runc, Debian's)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Linux capabilities by number (linux/capability.h): the bit of each in /proc/<pid>/status's CapBnd.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)  # fmt: skip
# runc's options that take a value, global and per command: the value is not the command or the container.
VALUED = {"--root", "--log", "--log-format", "--criu", "--rootless", "--bundle", "-b", "--process", "-p"}


def bounding_set(status: str = "/proc/self/status") -> set[str]:
    """The capabilities this process may hold (CAP_ names without the prefix)."""
    line = next(line for line in Path(status).read_text().splitlines() if line.startswith("CapBnd:"))
    mask = int(line.split()[1], 16)
    return {name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1}


def missing(bounding: set[str]) -> list[str]:
    """The capabilities runc knows that ``bounding`` lacks: none on a machine where root holds them all."""
    return [f"CAP_{name}" for name in CAPABILITIES if name not in bounding]


def trim(process: dict, bounding: set[str]) -> bool:
    """Removes from an OCI process spec's capability sets what ``bounding`` lacks; True when it changed any."""
    changed = False
    for kind, names in (process.get("capabilities") or {}).items():
        kept = [name for name in names if name.removeprefix("CAP_") in bounding]
        if kept != names:
            process["capabilities"][kind] = kept
            changed = True
    return changed


def option(argv: list[str], *names: str) -> str | None:
    for index, word in enumerate(argv):
        for name in names:
            if word == name and index + 1 < len(argv):
                return argv[index + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def command(argv: list[str]) -> str | None:
    """runc's command: the first word that is neither an option nor an option's value."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def rewrite(path: Path, spec_of, bounding: set[str]) -> None:
    """Trims the process spec found in the JSON file ``path`` (``spec_of`` picks it out), in place."""
    document = json.loads(path.read_text())
    if trim(spec_of(document), bounding):
        path.write_text(json.dumps(document))


def main(argv: list[str]) -> None:
    runc = os.environ.get("RUNC", "/usr/sbin/runc")
    bounding = bounding_set()
    if missing(bounding):
        verb = command(argv)
        if verb in ("create", "run"):
            bundle = Path(option(argv, "--bundle", "-b") or ".")
            rewrite(bundle / "config.json", lambda spec: spec.get("process") or {}, bounding)
        elif verb == "exec" and (process := option(argv, "--process", "-p")):
            rewrite(Path(process), lambda spec: spec, bounding)
    os.execv(runc, [runc, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
