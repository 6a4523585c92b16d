"""Templates that Terraform's ``templatefile`` and jinja2 both read, rendered here with Terraform's semantics.

templates/ is the one source of truth for what lands on a gateway: the controller renders it with this module and
the Terraform module (terraform/modules/gateway-config) with ``templatefile``, from the very same files. They are
written in the subset both engines read alike:

- literal text, and ``${ expression }`` interpolations (jinja2 is configured with ``${`` and ``}`` as its
  variable delimiters and has no block or comment syntax left that could match);
- an expression is a variable, a string or number literal, an object ``{"key": value}`` (HCL accepts ``:`` as
  well as ``=``), a list ``[a, b]``, or a call of a function of ``FUNCTIONS``, each implemented here with
  Terraform's exact semantics (``indent`` pads every line after the first, blank ones too; ``jsonencode`` is
  compact, sorts keys and escapes ``<``, ``>`` and ``&`` as Go does);
- interpolated values are converted as Terraform converts them (``true``, not ``True``; null is an error).

What would be read differently is refused when a template is loaded (``TemplateSubsetError``): Terraform
directives (``%{ if }``), its escapes (``$${``), strip markers (``~``), jinja's whitespace control (``${-``,
``-}``) and carriage returns. Thread-safe: the environment is immutable once built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

_FORBIDDEN = (
    ("%{", "a Terraform directive (%{ ... }): jinja2 would not read it the same way; pass the value in instead"),
    ("$${", "Terraform's $${ escape: jinja2 has no such escape"),
    ("${~", "a Terraform strip marker (~)"),
    ("~}", "a Terraform strip marker (~)"),
    ("${-", "jinja2 whitespace control (${-): Terraform would read it as a minus sign"),
    ("-}", "jinja2 whitespace control (-}): Terraform would read it as a minus sign"),
    ("\r", "a carriage return: jinja2 turns CRLF into LF, Terraform keeps it"),
)


class TemplateSubsetError(Exception):
    """A template in templates/ uses syntax outside the subset both engines read alike (a bug in linker)."""


class TerraformValueError(ValueError):
    """A value Terraform would refuse at this place (null or a collection interpolated into text)."""


# --- Terraform's functions, with Terraform's semantics ---

def indent(spaces: int, text: str) -> str:
    """Terraform ``indent``: ``spaces`` blanks after every newline (blank lines and a final newline included)."""
    return _string_arg(text, "indent").replace("\n", "\n" + " " * _int_arg(spaces, "indent"))


_TRAILING_NEWLINES = re.compile(r"(?:\r\n?|\n)*\Z")


def chomp(text: str) -> str:
    """Terraform ``chomp``: every newline sequence (``\\n``, ``\\r\\n``, ``\\r``) at the end removed."""
    return _TRAILING_NEWLINES.sub("", _string_arg(text, "chomp"), count=1)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "<": "\\u003c", ">": "\\u003e",
                 "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_string(s: str) -> str:
    return '"' + "".join(_JSON_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in s) + '"'


def jsonencode(value: Any) -> str:
    """Terraform ``jsonencode``: compact JSON, object keys sorted, ``<>&`` and U+2028/9 escaped, other non-ASCII
    characters as they are."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TerraformValueError("jsonencode: object keys must be strings")
        return "{" + ",".join(f"{_json_string(k)}:{jsonencode(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(jsonencode(v) for v in value) + "]"
    raise TerraformValueError(f"jsonencode: a {type(value).__name__} has no Terraform equivalent")


def number(value: int | float) -> str:
    """A number as Terraform writes it: integers without a fraction, others in their shortest form."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


FUNCTIONS: dict[str, Callable[..., str]] = {"indent": indent, "chomp": chomp, "jsonencode": jsonencode}


def _string_arg(value: Any, fn: str) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: raises, naming the variable
    if isinstance(value, bool | int | float):
        return interpolate(value)
    if not isinstance(value, str):
        raise TerraformValueError(f"{fn}: a string is required, not a {type(value).__name__}")
    return value


def _int_arg(value: Any, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TerraformValueError(f"{fn}: a whole number of spaces is required, not {value!r}")
    return value


def interpolate(value: Any) -> Any:
    """A value put into text, converted as Terraform converts it to a string."""
    if isinstance(value, jinja2.Undefined):
        return value  # jinja2 turns it into text, and StrictUndefined raises there, naming the variable
    if value is None:
        raise TerraformValueError("a null value cannot be interpolated into a template")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        return value
    raise TerraformValueError(f"a {type(value).__name__} cannot be interpolated into a template: "
                              "pass it through jsonencode()")


# --- the environment ---

class _SubsetLoader(jinja2.FileSystemLoader):
    """Loads a template and refuses it when it leaves the shared subset."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None,
                                                                                    Callable[[], bool] | None]:
        source, filename, uptodate = super().get_source(environment, template)
        # the file as Terraform reads it: jinja2's text mode has already turned CRLF into LF
        if filename:
            with open(filename, encoding=self.encoding, newline="") as f:
                source = f.read()
        check_subset(source, template)
        return source, filename, uptodate


def check_subset(source: str, name: str = "<template>") -> None:
    """Raise ``TemplateSubsetError`` when ``source`` uses syntax the two engines would read differently."""
    for token, why in _FORBIDDEN:
        at = source.find(token)
        if at >= 0:
            line = source.count("\n", 0, at) + 1
            raise TemplateSubsetError(f"{name}:{line}: {why}")


@lru_cache(maxsize=8)
def environment(directory: str) -> jinja2.Environment:
    """The jinja2 environment reading templates of ``directory`` as Terraform's ``templatefile`` does."""
    env = jinja2.Environment(
        loader=_SubsetLoader(directory),
        undefined=jinja2.StrictUndefined,
        variable_start_string="${", variable_end_string="}",
        # no block or comment syntax: these delimiters cannot appear in a template that passed check_subset
        block_start_string="%{jinja", block_end_string="jinja}%",
        comment_start_string="%{#jinja", comment_end_string="jinja#}%",
        keep_trailing_newline=True, autoescape=False, finalize=interpolate)  # noqa: S701 (not HTML)
    env.globals.clear()  # only Terraform's functions: no range(), dict(), lipsum() a template could lean on
    env.globals.update(FUNCTIONS)
    env.filters.clear()  # Terraform has no filters (`x | f`)
    env.tests.clear()
    return env


def render_file(directory: Path, name: str, variables: dict[str, Any]) -> str:
    """``templatefile("<directory>/<name>", variables)``, as Terraform renders it."""
    return environment(str(directory)).get_template(name).render(**variables)
