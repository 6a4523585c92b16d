"""The template engine the CLI shares with Terraform: Terraform's results (as Terraform 1.0.3 gives them, see
test_terraform.py for the live comparison) and a refusal of what the two engines would read differently."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from linker.control import render, tftemplate
from linker.control.tftemplate import TemplateSubsetError, TerraformValueError, chomp, indent, jsonencode


def test_indent_pads_every_line_after_the_first_blank_ones_too() -> None:
    assert indent(3, "a\n\nb\n") == "a\n   \n   b\n   "  # what `terraform console` prints


def test_chomp_removes_every_trailing_newline_sequence() -> None:
    assert chomp("a\r\n\n\r\n") == "a" and chomp("a\nb") == "a\nb" and chomp("a\r") == "a"


def test_jsonencode_is_compact_sorted_and_escapes_like_go() -> None:
    assert jsonencode({"b": 7, "a": "<&>é", "n": 51820, "t": True, "f": 1.5, "l": ["x", 2]}) == (
        '{"a":"\\u003c\\u0026\\u003eé","b":7,"f":1.5,"l":["x",2],"n":51820,"t":true}')
    assert jsonencode("\t\b\x01\u2028") == '"\\t\\u0008\\u0001\\u2028"'


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "t.tftpl").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text", ["%{ if x }y%{ endif }", "$${x}", "${~ x}", "${x ~}", "${- x}", "a\r\n"])
def test_syntax_the_engines_read_differently_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(TemplateSubsetError, match=r"t\.tftpl:1:"):
        tftemplate.render_file(_write(tmp_path, text), "t.tftpl", {"x": "1"})


def test_values_are_converted_as_terraform_converts_them(tmp_path: Path) -> None:
    directory = _write(tmp_path, "${b} ${n} ${f} ${s}")
    assert tftemplate.render_file(directory, "t.tftpl", {"b": False, "n": 7, "f": 2.0, "s": "x"}) == "false 7 2 x"
    with pytest.raises(TerraformValueError, match="null"):
        tftemplate.render_file(directory, "t.tftpl", {"b": None, "n": 1, "f": 1, "s": ""})
    with pytest.raises(TerraformValueError, match="jsonencode"):
        tftemplate.render_file(directory, "t.tftpl", {"b": [1], "n": 1, "f": 1, "s": ""})


def test_only_terraforms_functions_exist(tmp_path: Path) -> None:
    with pytest.raises(jinja2.UndefinedError):
        tftemplate.render_file(_write(tmp_path, "${range(3)}"), "t.tftpl", {})
    with pytest.raises(jinja2.TemplateError):
        tftemplate.render_file(_write(tmp_path, "${x | upper}"), "t.tftpl", {"x": "a"})


def test_every_shipped_template_is_in_the_shared_subset() -> None:
    # files only: templates/systemd/ holds static unit files for the standalone daemon, not rendered by Terraform
    names = sorted(p.name for p in render.TEMPLATES.glob("*") if p.is_file())
    assert [n for n in names if n != "README.md" and not n.endswith(".tftpl")] == []
    for name in names:
        if name.endswith(".tftpl"):
            tftemplate.check_subset((render.TEMPLATES / name).read_text(), name)
