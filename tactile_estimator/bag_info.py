"""``tactile-estimator info BAG``: what a recording holds, and whether replay and train can use it.

Like ``ros2 bag info``: the storage, duration, message count and every topic with its type, count
and rate; then the object (the bag's object_info topic, or the configured shape) and, for replay
and train, the topics each needs and which of them the bag lacks. Reading goes through io.bags, so
a path that is not a bag is the same one-line BagError every other command gives. The raw bytes are
read (to time each topic) but not deserialised, and torch is never imported.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import bags, messages
from tactile_estimator.objects import Shape


@dataclass
class TopicTiming:
    msgtype: str
    count: int  # from the bag's index
    first_ns: int | None = None  # log times, None where the type cannot be read
    last_ns: int | None = None
    read: int = 0

    @property
    def rate_hz(self) -> float | None:
        if self.read < 2 or self.first_ns is None or self.last_ns is None or self.last_ns <= self.first_ns:
            return None
        return (self.read - 1) / ((self.last_ns - self.first_ns) * 1e-9)


@dataclass
class Need:
    """What a command needs of a bag: groups of alternative topics, and the object."""

    command: str
    groups: list[list[str]]
    found: list[str | None]
    object_ok: bool

    @property
    def ok(self) -> bool:
        return self.object_ok and all(f is not None for f in self.found)

    def missing(self) -> list[str]:
        return [" or ".join(g) for g, f in zip(self.groups, self.found, strict=True) if f is None]


@dataclass
class BagSummary:
    path: Path
    storage: str
    size_bytes: int
    topics: dict[str, TopicTiming]
    shape: Shape | None
    object_source: str
    needs: list[Need] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # topic -> type the typestore cannot read

    @property
    def messages(self) -> int:
        return sum(t.count for t in self.topics.values())

    @property
    def start_ns(self) -> int | None:
        firsts = [t.first_ns for t in self.topics.values() if t.first_ns is not None]
        return min(firsts) if firsts else None

    @property
    def end_ns(self) -> int | None:
        lasts = [t.last_ns for t in self.topics.values() if t.last_ns is not None]
        return max(lasts) if lasts else None

    @property
    def duration_s(self) -> float:
        start, end = self.start_ns, self.end_ns
        return 0.0 if start is None or end is None else (end - start) * 1e-9


def _storage(location: Path) -> tuple[str, int]:
    files = [location] if location.is_file() else [p for p in location.iterdir() if p.suffix in (".mcap", ".db3")]
    kinds = sorted({"mcap" if p.suffix == ".mcap" else "sqlite3" for p in files})
    return ", ".join(kinds) or "unknown", sum(p.stat().st_size for p in files if p.is_file())


def requirements(config: EstimatorConfig) -> dict[str, list[list[str]]]:
    """The topic groups replay and train require (one topic of each group with messages), as
    playback.required_topics and learning.datasets.training_topics give them (importing those would
    load torch); a test holds the two equal."""
    t = config.topics
    tactile = [t.tactile, t.tactile.rstrip("/") + "/compressed"]
    ee = [t.tf] if config.ee_source == "tf" else [t.ee_pose]
    replay = [tactile, ee]
    if not config.initial_object_pose:
        replay.append([t.camera])
    return {"replay": replay, "train": [tactile, ee, [t.ground_truth]]}


def _object(path: Path, config: EstimatorConfig) -> tuple[Shape | None, str]:
    if config.object.shape != "from_bag":
        try:
            return Shape(config.object.shape, tuple(config.object.size)), "the config's object"
        except ValueError as error:
            return None, f"the config's object is invalid: {error}"
    topic = config.topics.object_info
    for message in bags.read_messages(path, [topic], warn=lambda _: None):
        try:
            return Shape.from_info(messages.object_info_from_text(message.msg.data, topic)), topic
        except (messages.InputRejected, ValueError, AttributeError) as error:
            return None, f"{topic} does not describe an object: {error}"
    return None, f"no {topic}; set object.shape and object.size in the config"


def summarise(path: str | os.PathLike[str], config: EstimatorConfig) -> BagSummary:
    """Read ``path`` once (raw) and say what it holds; a path that is no bag raises BagError."""
    location = bags.resolve_bag(path)
    index = bags.bag_info(location)
    topics = {name: TopicTiming(s.msgtype, s.count) for name, s in index.items()}
    skipped: dict[str, str] = {}

    def warn(_: str) -> None:
        pass

    for topic, msgtype, stamp, _ in bags.read_raw(location, warn=warn):
        timing = topics.setdefault(topic, TopicTiming(msgtype, 0))
        timing.read += 1
        timing.first_ns = stamp if timing.first_ns is None else min(timing.first_ns, stamp)
        timing.last_ns = stamp if timing.last_ns is None else max(timing.last_ns, stamp)
    for name, timing in topics.items():
        if timing.count and not timing.read:
            skipped[name] = timing.msgtype
    storage, size = _storage(location)
    shape, source = _object(location, config)
    summary = BagSummary(Path(path), storage, size, topics, shape, source, skipped=skipped)
    for command, groups in requirements(config).items():
        found = [next((t for t in g if topics.get(t) is not None and topics[t].count > 0), None) for g in groups]
        summary.needs.append(Need(command, groups, found, shape is not None))
    return summary


def _stamp(ns: int | None) -> str:
    if ns is None:
        return "-"
    when = datetime.datetime.fromtimestamp(ns // 1_000_000_000, tz=datetime.UTC)
    return f"{when:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000 // 1_000_000:03d} UTC ({ns} ns)"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def describe_shape(shape: Shape) -> str:
    names = {"rect": ("length x", "length y"), "disc": ("radius",), "ellipse": ("a", "b")}[shape.kind]
    return f"{shape.kind} (" + ", ".join(f"{n} {s * 1e3:.1f} mm" for n, s in zip(names, shape.size, strict=True)) + ")"


def format_summary(summary: BagSummary) -> str:
    lines = [
        f"bag:       {summary.path}",
        f"storage:   {summary.storage}, {_size(summary.size_bytes)}",
        f"duration:  {summary.duration_s:.3f} s",
        f"start:     {_stamp(summary.start_ns)}",
        f"end:       {_stamp(summary.end_ns)}",
        f"messages:  {summary.messages}",
        f"object:    {describe_shape(summary.shape) + ' from ' + summary.object_source if summary.shape else '-'}"
        + ("" if summary.shape else f" ({summary.object_source})"),
        "topics:",
    ]
    rows = [("topic", "type", "count", "rate")]
    for name, t in summary.topics.items():
        rate = t.rate_hz
        if name in summary.skipped:
            shown = "type not readable"
        else:
            shown = "-" if rate is None else f"{rate:.1f} Hz"
        rows.append((name, t.msgtype, str(t.count), shown))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i != 2 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    if not summary.topics:
        lines.append("  (none)")
    for need in summary.needs:
        if need.ok:
            verdict = "yes (" + ", ".join(f for f in need.found if f) + ")"
        else:
            lacks = need.missing() + ([] if need.object_ok else ["an object"])
            verdict = "no: lacks " + "; ".join(lacks)
        lines.append(f"{need.command + ':':10} {verdict}")
    return "\n".join(lines)


def summary_json(summary: BagSummary) -> dict[str, Any]:
    return {
        "bag": str(summary.path),
        "storage": summary.storage,
        "size_bytes": summary.size_bytes,
        "duration_s": summary.duration_s,
        "start_ns": summary.start_ns,
        "end_ns": summary.end_ns,
        "messages": summary.messages,
        "object": None if summary.shape is None else {"shape": summary.shape.kind, "size": list(summary.shape.size),
                                                      "from": summary.object_source},
        "object_problem": None if summary.shape is not None else summary.object_source,
        "topics": {name: {"type": t.msgtype, "count": t.count, "rate_hz": t.rate_hz,
                          "readable": name not in summary.skipped} for name, t in summary.topics.items()},
        "usable": {n.command: {"ok": n.ok, "missing": n.missing() + ([] if n.object_ok else ["object"])}
                   for n in summary.needs},
    }


def dumps(summaries: list[BagSummary]) -> str:
    return json.dumps([summary_json(s) for s in summaries], indent=2)
