"""`--help` for a 12-factor service: every setting with its default, unit and meaning, read off the settings code.

The loader of a service's settings is run once on an example environment (the
least a service needs to start, e.g. a webhook URL) through an `Env`, which
records a SettingDoc at every read: name, default, unit, the `help=` text and
what a value may be. So the list cannot drift from what the code reads, and the
README's tables and .env.example are checked against the same list in tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from shared.config import ConfigError, Env, SettingDoc

WIDTH = 100


def describe(load: Callable[[Env], object], examples: Mapping[str, str] | None = None) -> list[SettingDoc]:
    """The settings `load` reads, in reading order, each once; `examples` stand for what has no default."""
    env = Env(dict(examples or {}))
    try:
        load(env)
    except ConfigError as error:  # an example that no longer satisfies the loader is the code's bug, not the user's
        raise RuntimeError(f"settings cannot be described: {error}") from None
    return list(env.docs.values())


def format_settings(docs: Sequence[SettingDoc]) -> str:
    """One block per setting: `NAME=default  (unit)`, what it does, what it accepts."""
    lines = ["settings (environment variables; the environment wins over a .env file in the working directory):"]
    for doc in docs:
        head = f"  {doc.name}={doc.default}" + (f"  ({doc.unit})" if doc.unit else "")
        lines.append(head)
        body = doc.help or "(undocumented)"
        if doc.accepts:
            body += f"; accepts {doc.accepts}"
        lines += textwrap.wrap(body, WIDTH, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


class SettingsHelp(argparse.Action):
    """`--help` that appends the settings, described only when asked for (describing runs the loader once)."""

    def __init__(self, option_strings: Sequence[str], dest: str, describe: Callable[[], list[SettingDoc]]) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")
        self._describe = describe

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        try:
            sys.stdout.write(parser.format_help() + "\n" + format_settings(self._describe()) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `--help | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        parser.exit()


class ServiceParser(argparse.ArgumentParser):
    """A service's command line: a bad option is a ConfigError (one line, exit 2), `--help` lists the settings."""

    def __init__(self, prog: str, description: str, describe: Callable[[], list[SettingDoc]]) -> None:
        super().__init__(prog=prog, description=description, add_help=False)
        self.add_argument("-h", "--help", action=SettingsHelp, describe=describe)

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (usage: {self.format_usage().removeprefix('usage: ').strip()}; see --help)")


def markdown_table(docs: Sequence[SettingDoc]) -> str:
    """The README's table of the same settings: variable, default, what it does and accepts."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for doc in docs:
        default = f"`{doc.default}`" if doc.default else "unset"
        unit = f" ({doc.unit})" if doc.unit and doc.unit != "duration" else ""
        meaning = doc.help + (f"; accepts {doc.accepts}" if doc.accepts else "")
        rows.append(f"| `{doc.name}` | {default}{unit} | {meaning.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def replace_marked(text: str, marker: str, content: str) -> str:
    """`text` with what stands between `<!-- marker -->` and `<!-- /marker -->` replaced by `content`."""
    start, end = f"<!-- {marker} -->\n", f"<!-- /{marker} -->"
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"no {start.strip()} ... {end} block")
    return head + start + content + "\n" + end + rest.split(end, 1)[1]
