"""Writes docs/config.md, every config key with its default and meaning, from the dataclasses.

    python scripts/config_reference.py          # rewrite docs/config.md
    python scripts/config_reference.py --check  # exit 1 if docs/config.md is not current (a test runs this)

Each default and its documentation live in one place, the dataclass field: its value, and the
comment right above it (or after it on the same line). The YAMLs in conf/ only name the schema and
set what deliberately differs, so this file is where a user sees every knob.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "config.md"


def field_docs(cls: type) -> dict[str, str]:
    """{field: the comment above it, or after it on its line} for each field `cls` declares itself.
    Comments that open with `>` head a group of fields (TRL's habit) and document none of them."""
    lines = inspect.getsource(cls).splitlines()
    tree = ast.parse(textwrap.dedent("\n".join(lines)))
    docs = {}
    for node in tree.body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        row = node.lineno - 1
        above = []
        for line in reversed(lines[:row]):
            text = line.strip()
            if not text.startswith("#") or text.startswith("# >"):
                break
            above.insert(0, text.lstrip("# ").rstrip())
        trailing = lines[node.end_lineno - 1].split("  # ", 1)[1].strip() if "  # " in lines[node.end_lineno - 1] else ""
        docs[node.target.id] = " ".join(above + ([trailing] if trailing else []))
    return docs


def documented(cls: type) -> dict[str, str]:
    """field_docs for every field of dataclass `cls`, from the nearest class that documents it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and "__annotations__" in vars(klass):
            # a subclass that only changes a default keeps its parent's documentation
            docs.update({name: doc for name, doc in field_docs(klass).items() if doc})
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


def default_text(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if value == "???":  # OmegaConf's MISSING: a config group's option fills it
        return f"`{field.name}=` option"
    if dataclasses.is_dataclass(value):
        return "its own table"
    return f"`{value!r}`"


def groups() -> list[tuple[str, type]]:
    """(the key prefix a user types, dataclass) for every config group."""
    from rlexp import algos, envs
    from rlexp.schema import DiscoverConfig, EvalConfig, GenerationConfig, LauncherConfig, LoggerConfig, ModelConfig, RunConfig

    return ([("top level", RunConfig), ("eval", EvalConfig), ("discover", DiscoverConfig), ("model", ModelConfig),
             ("launcher", LauncherConfig), ("logger", LoggerConfig), ("generation", GenerationConfig)]
            + [(f"algo={name}", algos.algo_class(name)) for name in algos.names()]
            + [(f"env={name}", envs.env_class(name)) for name in envs.names()])  # fmt: skip


def reference() -> str:
    parts = ["# Config reference", "",
             "Every key, its default and its meaning, generated from the dataclasses by "
             "`python scripts/config_reference.py`; do not edit by hand. A key is set on the command line as "
             "`<group>.<key>=<value>` (`algo.learning_rate=1e-5`, `env.num_cards=3`), top-level keys as `<key>=<value>`.", ""]  # fmt: skip
    for title, cls in groups():
        parts += [f"## {title}", "", f"`{cls.__module__}.{cls.__qualname__}`", "", "| key | default | meaning |", "|---|---|---|"]
        for field in dataclasses.fields(cls):
            if field.name == "name":
                continue
            doc, default = documented(cls)[field.name], default_text(field)
            parts.append("| " + " | ".join(cell.replace("|", "\\|") for cell in (f"`{field.name}`", default, doc)) + " |")
        parts.append("")
    return "\n".join(parts)


def main() -> None:
    text = reference()
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is not current: run python scripts/config_reference.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
