"""What the Dockerfile says, read from the Dockerfile itself: ARG defaults, stages, ENV, COPY, the pip line.

tests/image checks these promises against the file, and tests/image/test_image.py against the image Docker builds
from it, so a drift between the two shows.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from scripts.paths import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, rest of the line)


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARG defaults, ${VAR} references expanded
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m[1] or m[2], m[0]), text)

    def final_values(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.final.instructions if name == instruction]

    @property
    def env(self) -> dict[str, str]:
        env = {}
        for rest in self.final_values("ENV"):
            key, _, value = rest.partition("=")
            env[key.strip()] = self.expand(value.strip().strip('"'))
        return env

    @property
    def labels(self) -> dict[str, str]:
        labels = {}
        for rest in self.final_values("LABEL"):
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                labels[key] = self.expand(value)
        return labels

    @property
    def copies(self) -> list[tuple[list[str], str, dict[str, str]]]:
        """(sources, target, flags) of the final stage's COPY instructions."""
        result = []
        for rest in self.final_values("COPY"):
            words = shlex.split(rest)
            flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            result.append((paths[:-1], paths[-1], flags))
        return result

    @property
    def user(self) -> str:
        return self.final_values("USER")[-1]

    @property
    def runs(self) -> list[str]:
        return [self.expand(rest) for stage in self.stages for name, rest in stage.instructions if name == "RUN"]

    def pip_install(self) -> PipInstall:
        """The single ``pip install`` of the final stage, with bind-mounted files mapped to the build context."""
        lines = [rest for rest in self.final_values("RUN") if "pip install" in rest]
        if len(lines) != 1:
            raise AssertionError(f"expected exactly one RUN ... pip install in the final stage, found {len(lines)}")
        words = shlex.split(self.expand(lines[0]))
        mounts = {}
        for word in words:
            if word.startswith("--mount="):
                spec = dict(part.partition("=")[::2] for part in word[len("--mount=") :].split(","))
                if spec.get("type") == "bind":
                    mounts[spec["target"]] = spec["source"]
        pip = words[words.index("pip") :]
        requirements, constraints = [], []
        for option, value in itertools.pairwise(pip):
            if option in ("-r", "--requirement"):
                requirements.append(mounts.get(value, value))
            elif option in ("-c", "--constraint"):
                constraints.append(value)
        return PipInstall(words=pip, requirements=requirements, constraints=constraints, mounts=mounts)


@dataclass
class PipInstall:
    words: list[str]
    requirements: list[str]  # paths in the build context
    constraints: list[str]  # as written (a path in the build container or a URL)
    mounts: dict[str, str]  # bind-mount target -> build-context source


def join_continuations(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


def parse(path: Path = DOCKERFILE) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    dockerfile = Dockerfile(args=args, stages=stages)
    for line in join_continuations(path.read_text()):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            words = rest.split()
            stages.append(Stage(base=dockerfile.expand(words[0]), name=words[2] if len(words) > 2 else None))
            continue
        if instruction == "ARG":
            name, has_default, default = rest.partition("=")
            if has_default:
                args.setdefault(name, dockerfile.expand(default.strip('"')))
        if stages:
            stages[-1].instructions.append((instruction, rest))
    return dockerfile


def requirement_pins(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """name (lower case, extras dropped) -> version of every ``name[extras]==version`` line of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#\\]+).*", line):
            found[match[1].lower()] = match[2]
    return found
