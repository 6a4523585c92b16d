"""A small evaluator of the Terraform language, enough to evaluate linker's module offline, for the tests.

python-hcl2 parses the files (every expression comes back as its source text); this module parses those
expressions and evaluates them with Terraform's semantics for the constructs and functions the module uses.
Anything else is an error (``HclError``), never a guess, so a construct added to the module without support here
fails the tests loudly instead of being skipped. Values known only after apply are ``Unknown`` unless the test
supplies them (``Context.known``); data sources come from ``Context.data``. ``templatefile`` renders through
linker.control.tftemplate, the CLI's own engine, whose agreement with real Terraform is tested apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from linker.control import tftemplate


class HclError(Exception):
    """The configuration uses something this evaluator does not support, or is wrong."""


@dataclass(frozen=True)
class Unknown:
    """A value known only after apply (an attribute a resource gets from AWS)."""

    what: str


@dataclass
class Context:
    """What the configuration reads from outside: data sources and the attributes AWS assigns.

    ``data(module, type, name)`` returns the data source's attributes; ``known(module, type, name, attr)`` the
    value of a resource attribute after apply, or None when the test does not know it (then it is ``Unknown``).
    """

    data: Callable[[Module, str, str], dict[str, Any]]
    known: Callable[[Module, str, str, str], Any] = field(default=lambda m, t, n, a: None)


# --- parsing expressions (python-hcl2 hands them over as text) ---

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OPS = ("==", "!=", "<=", ">=", "&&", "||", "=>", "...", "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", "=",
        ",", ".", "(", ")", "[", "]", "{", "}")
_BINARY = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def fail(self, what: str) -> HclError:
        return HclError(f"{what} at {self.i} in {self.s!r}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self, token: str) -> bool:
        self.ws()
        if not self.s.startswith(token, self.i):
            return False
        if _IDENT.fullmatch(token):  # a keyword: not the start of a longer identifier
            end = self.i + len(token)
            return end >= len(self.s) or not re.match(r"[A-Za-z0-9_-]", self.s[end])
        return True

    def eat(self, token: str) -> bool:
        if self.peek(token):
            self.i += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.eat(token):
            raise self.fail(f"expected {token!r}")

    def ident(self) -> str:
        self.ws()
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise self.fail("expected a name")
        self.i = m.end()
        return m.group()

    def parse(self) -> tuple:
        node = self.expr()
        self.ws()
        if self.i != len(self.s):
            raise self.fail("unexpected text")
        return node

    def expr(self) -> tuple:
        cond = self.binary(0)
        if self.eat("?"):
            yes = self.expr()
            self.expect(":")
            return ("cond", cond, yes, self.expr())
        return cond

    def binary(self, level: int) -> tuple:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            op = next((o for o in sorted(_BINARY[level], key=len, reverse=True) if self.peek(o)), None)
            if op is None:
                return left
            self.i += len(op)
            left = ("binop", op, left, self.binary(level + 1))

    def unary(self) -> tuple:
        if self.peek("!") and not self.peek("!="):
            self.i += 1
            return ("not", self.unary())
        if self.eat("-"):
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: tuple) -> tuple:
        while True:
            if self.peek("...") or not (self.peek(".") or self.peek("[")):
                return node
            if self.eat("."):
                self.ws()
                m = _NUMBER.match(self.s, self.i)
                if m:  # legacy index: a.0
                    self.i = m.end()
                    node = ("index", node, ("lit", int(m.group())))
                elif self.eat("*"):
                    raise self.fail("splat expressions are not supported")
                else:
                    node = ("attr", node, self.ident())
            else:
                self.expect("[")
                if self.eat("*"):
                    raise self.fail("splat expressions are not supported")
                index = self.expr()
                self.expect("]")
                node = ("index", node, index)

    def primary(self) -> tuple:
        self.ws()
        c = self.s[self.i:self.i + 1]
        if c == '"':
            return self.template()
        if self.s.startswith("<<", self.i):
            raise self.fail("heredocs are not supported")
        m = _NUMBER.match(self.s, self.i)
        if m:
            self.i = m.end()
            text = m.group()
            return ("lit", float(text) if any(x in text for x in ".eE") else int(text))
        if self.eat("("):
            node = self.expr()
            self.expect(")")
            return node
        if self.eat("["):
            if self.peek("for"):
                return self.for_expr("]")
            items = []
            while not self.eat("]"):
                items.append(self.expr())
                if not self.eat(","):
                    self.expect("]")
                    break
            return ("tuple", items)
        if self.eat("{"):
            if self.peek("for"):
                return self.for_expr("}")
            pairs = []
            while not self.eat("}"):
                self.ws()
                m = _IDENT.match(self.s, self.i)
                if m and re.match(r"\s*[=:]", self.s[m.end():]) and not self.s[m.end():].lstrip().startswith("=="):
                    self.i = m.end()
                    key: tuple = ("lit", m.group())
                else:
                    key = self.expr()
                if not (self.eat("=") or self.eat(":")):
                    raise self.fail("expected '=' in an object")
                pairs.append((key, self.expr()))
                self.eat(",")
            return ("object", pairs)
        name = self.ident()
        if name in ("true", "false"):
            return ("lit", name == "true")
        if name == "null":
            return ("lit", None)
        if self.peek("("):
            self.expect("(")
            args, expand = [], False
            while not self.eat(")"):
                args.append(self.expr())
                expand = self.eat("...")
                if not self.eat(","):
                    self.expect(")")
                    break
            return ("call", name, args, expand)
        return ("ref", name)

    def for_expr(self, close: str) -> tuple:
        self.expect("for")
        first = self.ident()
        second = self.ident() if self.eat(",") else None
        key_var, value_var = (first, second) if second else (None, first)
        self.expect("in")
        coll = self.expr()
        self.expect(":")
        if close == "}":
            key = self.expr()
            self.expect("=>")
            value = self.expr()
            group = self.eat("...")
        else:
            key, value, group = None, self.expr(), False
        cond = self.expr() if self.eat("if") else None
        self.expect(close)
        return ("for", close, key_var, value_var, coll, key, value, cond, group)

    def template(self) -> tuple:
        self.expect('"')
        parts: list[Any] = []
        text: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise self.fail("unterminated string")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\":
                nxt = self.s[self.i + 1]
                if nxt == "u":
                    text.append(chr(int(self.s[self.i + 2:self.i + 6], 16)))
                    self.i += 6
                elif nxt in _ESCAPES:
                    text.append(_ESCAPES[nxt])
                    self.i += 2
                else:
                    raise self.fail(f"unknown escape \\{nxt}")
            elif self.s.startswith("$${", self.i) or self.s.startswith("%%{", self.i):
                text.append(self.s[self.i + 1:self.i + 3])
                self.i += 3
            elif self.s.startswith("%{", self.i):
                raise self.fail("template directives are not supported")
            elif self.s.startswith("${", self.i):
                self.i += 2
                if text:
                    parts.append("".join(text))
                    text = []
                parts.append(self.expr())
                self.expect("}")
            else:
                text.append(c)
                self.i += 1
        if text:
            parts.append("".join(text))
        return ("template", parts)


def parse_expression(text: str) -> tuple:
    return _Parser(text).parse()


def _source_of(value: str) -> str:
    """python-hcl2 wraps an expression in ``${...}`` and keeps the quotes of a string: the expression's text."""
    if value.startswith("${") and value.endswith("}"):
        inner = value[2:-1]
        try:  # "${a}-${b}" is not one wrapped expression: then it is the text of a template
            parse_expression(inner)
            return inner
        except HclError:
            pass
    return value


def _unquote(label: str) -> str:
    return label[1:-1] if label.startswith('"') and label.endswith('"') else label


def _is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__")
                                                          for v in value)


# --- Terraform's functions ---

def _regexall(pattern: str, text: str) -> list[Any]:
    rx = re.compile(pattern)
    return [m.group() if not rx.groups else list(m.groups()) for m in rx.finditer(text)]


def _regex(pattern: str, text: str) -> Any:
    found = _regexall(pattern, text)
    if not found:
        raise HclError(f"regex: no match for {pattern!r}")
    return found[0]


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None and a != "":
            return a
    raise HclError("coalesce: no non-null, non-empty argument")


def _merge(*maps: dict) -> dict:
    out: dict = {}
    for m in maps:
        out.update(m or {})
    return out


def _flatten(items: list) -> list:
    out: list = []
    for x in items:
        out.extend(_flatten(x) if isinstance(x, list) else [x])
    return out


def _setproduct(*lists: list) -> list:
    out: list = [[]]
    for items in lists:
        out = [[*prefix, x] for prefix in out for x in dict.fromkeys(items)]
    return out


def _substr(text: str, offset: int, length: int) -> str:
    return text[offset:] if length == -1 else text[offset:offset + length]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "length": len, "regexall": _regexall, "regex": _regex, "coalesce": _coalesce, "merge": _merge,
    "concat": lambda *ls: [x for lst in ls for x in lst], "flatten": _flatten, "setproduct": _setproduct,
    "split": lambda sep, s: s.split(sep), "join": lambda sep, items: sep.join(items), "substr": _substr,
    "basename": os.path.basename, "values": lambda m: [m[k] for k in sorted(m)], "keys": lambda m: sorted(m),
    "sort": sorted, "contains": lambda items, v: v in items, "lookup": lambda m, k, d=None: m.get(k, d),
    "alltrue": lambda items: all(x is True for x in items), "anytrue": lambda items: any(x is True for x in items),
    "sha256": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "filesha256": lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest(),
    "file": lambda p: Path(p).read_text(), "jsonencode": tftemplate.jsonencode, "jsondecode": json.loads,
    "tostring": lambda v: tftemplate.interpolate(v), "indent": tftemplate.indent, "chomp": tftemplate.chomp,
    "templatefile": lambda p, v: tftemplate.render_file(Path(p).resolve().parent, Path(p).name, v),
}


def _has_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False


# --- modules ---

_META = {"source", "providers", "depends_on", "count", "for_each", "lifecycle", "provider", "version"}


class Module:
    """One instance of a module: its directory, its inputs (evaluated lazily in the caller) and what it reads."""

    def __init__(self, directory: Path, inputs: dict[str, Callable[[], Any]], ctx: Context, address: str = "",
                 providers: dict[str, Any] | None = None) -> None:
        self.directory, self.ctx, self.address = directory.resolve(), ctx, address
        self.providers = providers or {}
        self.variables: dict[str, dict] = {}
        self.locals: dict[str, Any] = {}
        self.outputs: dict[str, dict] = {}
        self.resources: dict[tuple[str, str], dict] = {}
        self.data_blocks: dict[tuple[str, str], dict] = {}
        self.module_blocks: dict[str, dict] = {}
        self.provider_blocks: list[dict] = []
        for path in sorted(self.directory.glob("*.tf")):
            with path.open() as f:
                self._add(hcl2.load(f))
        undeclared = set(inputs) - set(self.variables)
        if undeclared:
            raise HclError(f"{self.directory}: inputs {sorted(undeclared)} are not variables of the module")
        self._inputs = inputs
        self._cache: dict[str, Any] = {}
        self._children: dict[str, Module] = {}
        self._busy: set[str] = set()

    def _add(self, doc: dict) -> None:
        for block in doc.get("variable", []):
            for name, body in block.items():
                self.variables[_unquote(name)] = body
        for block in doc.get("locals", []):
            self.locals.update({k: v for k, v in block.items() if not k.startswith("__")})
        for block in doc.get("output", []):
            for name, body in block.items():
                self.outputs[_unquote(name)] = body
        for kind, target in (("resource", self.resources), ("data", self.data_blocks)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        target[(_unquote(rtype), _unquote(name))] = body
        for block in doc.get("module", []):
            for name, body in block.items():
                self.module_blocks[_unquote(name)] = body
        for block in doc.get("provider", []):
            for name, body in block.items():
                self.provider_blocks.append({"name": _unquote(name), **body})

    # --- values ---

    def value(self, raw: Any, scope: dict[str, Any] | None = None) -> Any:
        """The value of an attribute as python-hcl2 returned it."""
        if isinstance(raw, str):
            return self.eval(parse_expression(_source_of(raw)), scope or {})
        if isinstance(raw, list):
            return [self.value(v, scope) for v in raw]
        if isinstance(raw, dict):
            return {self._key(k, scope): self.value(v, scope) for k, v in raw.items() if not k.startswith("__")}
        return raw

    def _key(self, raw: str, scope: dict[str, Any] | None) -> Any:
        """An object key: a name, a quoted string, or ``(expression)`` (python-hcl2 gives ``${(expression)}``)."""
        if raw.startswith("${(") and raw.endswith(")}"):
            return self.eval(parse_expression(raw[3:-2]), scope or {})
        return _unquote(raw)

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            if key in self._busy:
                raise HclError(f"{self.directory}: {key} refers to itself")
            self._busy.add(key)
            try:
                self._cache[key] = compute()
            finally:
                self._busy.discard(key)
        return self._cache[key]

    def var(self, name: str) -> Any:
        if name not in self.variables:
            raise HclError(f"{self.directory}: no variable {name!r}")
        if name in self._inputs:
            return self._memo(f"var.{name}", lambda: self._validated(name, self._inputs[name]()))
        if "default" not in self.variables[name]:
            raise HclError(f"{self.directory}: variable {name!r} is required and not given")
        return self.value(self.variables[name]["default"])

    def _validated(self, name: str, value: Any) -> Any:
        """``value`` if every validation block of the variable accepts it, else HclError with its message."""
        for rule in self.variables[name].get("validation", []):
            ok = self.eval(parse_expression(_source_of(rule["condition"])), {"var": {name: value}})
            if ok is not True:
                raise HclError(f"var.{name}: {self.value(rule['error_message'])}")
        return value

    def local(self, name: str) -> Any:
        if name not in self.locals:
            raise HclError(f"{self.directory}: no local {name!r}")
        return self._memo(f"local.{name}", lambda: self.value(self.locals[name]))

    def output(self, name: str) -> Any:
        if name not in self.outputs:
            raise HclError(f"{self.directory}: no output {name!r}")
        return self._memo(f"output.{name}", lambda: self.value(self.outputs[name]["value"]))

    def child(self, name: str) -> Module:
        if name not in self._children:
            if name not in self.module_blocks:
                raise HclError(f"{self.directory}: no module {name!r}")
            body = self.module_blocks[name]
            source = self.value(body["source"])
            providers = {k: self.value(v) for k, v in (body.get("providers") or {}).items()} or self.providers
            inputs = {k: (lambda raw=v: self.value(raw)) for k, v in body.items()
                      if k not in _META and not k.startswith("__")}
            self._children[name] = Module(self.directory / source, inputs, self.ctx,
                                          f"{self.address}module.{name}.", providers)
        return self._children[name]

    def provider(self, local_name: str, alias: str | None) -> dict[str, Any]:
        for block in self.provider_blocks:
            if block["name"] == local_name and self.value(block.get("alias")) == alias:
                return {k: self.value(v) for k, v in block.items() if k not in ("name", "alias", "__is_block__")}
        raise HclError(f"{self.directory}: no provider {local_name}.{alias}")

    def resource(self, rtype: str, name: str) -> dict:
        if (rtype, name) not in self.resources:
            raise HclError(f"{self.directory}: no resource {rtype}.{name}")
        return self.resources[(rtype, name)]

    def attributes(self, rtype: str, name: str, scope: dict[str, Any] | None = None) -> dict[str, Any]:
        """The evaluated arguments of a resource (blocks and meta-arguments left out)."""
        body = self.resource(rtype, name)
        return {k: self.value(v, scope) for k, v in body.items()
                if k not in _META and k != "dynamic" and not k.startswith("__") and not _is_block_list(v)}

    def blocks(self, rtype: str, name: str, block: str) -> list[dict[str, Any]]:
        """Every ``block`` of the resource, static and generated by ``dynamic`` blocks, evaluated."""
        body = self.resource(rtype, name)
        out = [self.value({k: v for k, v in b.items() if not k.startswith("__")}) for b in body.get(block, [])]
        for dyn in body.get("dynamic", []):
            for label, spec in dyn.items():
                if _unquote(label) != block:
                    continue
                iterator = self.value(spec["iterator"]) if "iterator" in spec else block
                items = self.value(spec["for_each"])
                pairs = items.items() if isinstance(items, dict) else enumerate(items)
                for key, value in pairs:
                    for content in spec["content"]:
                        out.append(self.value({k: v for k, v in content.items() if not k.startswith("__")},
                                              {iterator: {"key": key, "value": value}}))
        return out

    def present(self, rtype: str, name: str) -> bool:
        """Whether the resource has an instance for these inputs: its ``count`` is not 0, its ``for_each`` not
        empty."""
        body = self.resource(rtype, name)
        if "count" in body:
            count = self.value(body["count"])
            if not isinstance(count, int):
                raise HclError(f"{rtype}.{name}: count is not known: {count!r}")
            return count > 0
        return "for_each" not in body or bool(self.value(body["for_each"]))

    def instances(self, rtype: str, name: str) -> dict[Any, dict[str, Any]]:
        """A resource's instances by key (``for_each``), or {None: attributes} without for_each."""
        body = self.resource(rtype, name)
        if "count" in body:
            raise HclError("count is not supported")
        if "for_each" not in body:
            return {None: self.attributes(rtype, name)}
        each = self.value(body["for_each"])
        if isinstance(each, list):
            each = {k: k for k in each}
        return {k: self.attributes(rtype, name, {"each": {"key": k, "value": v}}) for k, v in each.items()}

    # --- expressions ---

    def eval(self, node: tuple, scope: dict[str, Any]) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "template":
            parts = [p if isinstance(p, str) else self.eval(p, scope) for p in node[1]]
            if len(parts) == 1 and not isinstance(node[1][0], str):
                return parts[0]  # "${x}" alone keeps x's type, as in Terraform
            if any(isinstance(p, Unknown) for p in parts):
                return Unknown("string")
            return "".join(tftemplate.interpolate(p) for p in parts)
        if kind == "ref":
            return self.reference(node[1], scope)
        if kind == "attr":
            base = node[1]
            if base[0] == "ref" and base[1] not in scope and base[1] in {b["name"] for b in self.provider_blocks}:
                return {"provider": base[1], **self.provider(base[1], node[2])}  # providers = { aws = aws.east }
            if base[0] == "ref" and base[1] not in scope and base[1] in {"var", "local", "path", "module", "data",
                                                                           "each"} | self._resource_types():
                return self.reference(base[1], scope, node[2])
            if base[0] == "attr" and base[1][0] == "ref" and base[1][1] not in scope:
                root = base[1][1]
                if root == "module":
                    return self.child(base[2]).output(node[2])
                if root in self._resource_types():
                    return self.resource_attr(root, base[2], node[2])
                if root == "data":
                    raise HclError(f"data.{base[2]}.{node[2]} needs an attribute")
            if base[0] == "attr" and base[1][0] == "attr" and base[1][1] == ("ref", "data"):
                return self._get(self.ctx.data(self, base[1][2], base[2]), node[2])
            if base[0] == "index" and self._counted(base[1], scope):  # x.y[0].attr: the one instance of a count
                return self.eval(("attr", base[1], node[2]), scope)
            return self._get(self.eval(base, scope), node[2])
        if kind == "index":
            return self._get(self.eval(node[1], scope), self.eval(node[2], scope))
        if kind == "tuple":
            return [self.eval(n, scope) for n in node[1]]
        if kind == "object":
            return {self.eval(k, scope): self.eval(v, scope) for k, v in node[1]}
        if kind == "call":
            return self.call(node[1], node[2], node[3], scope)
        if kind == "cond":
            cond = self.eval(node[1], scope)
            if isinstance(cond, Unknown):
                return Unknown("conditional")
            return self.eval(node[2] if cond else node[3], scope)
        if kind == "not":
            return not self.eval(node[1], scope)
        if kind == "neg":
            return -self.eval(node[1], scope)
        if kind == "binop":
            return self.binop(node[1], self.eval(node[2], scope), self.eval(node[3], scope))
        if kind == "for":
            return self.for_expr(node, scope)
        raise HclError(f"cannot evaluate {kind}")

    def _counted(self, node: tuple, scope: dict[str, Any]) -> bool:
        """Whether ``node`` names a resource (``type.name``) or data source (``data.type.name``) with ``count``:
        the module's are 0 or 1 (an optional resource), so ``[0]`` is that one instance."""
        if node[0] != "attr" or node[1][0] not in ("ref", "attr"):
            return False
        if node[1][0] == "ref" and node[1][1] not in scope and node[1][1] in self._resource_types():
            return "count" in self.resource(node[1][1], node[2])
        if node[1][0] == "attr" and node[1][1] == ("ref", "data"):
            return "count" in self.data_blocks.get((node[1][2], node[2]), {})
        return False

    def _resource_types(self) -> set[str]:
        return {t for t, _ in self.resources}

    def reference(self, root: str, scope: dict[str, Any], attr: str | None = None) -> Any:
        if root in scope:
            value = scope[root]
            return self._get(value, attr) if attr is not None else value
        if attr is None:
            raise HclError(f"{self.directory}: unknown name {root!r}")
        if root == "var":
            return self.var(attr)
        if root == "local":
            return self.local(attr)
        if root == "path":
            if attr != "module":
                raise HclError(f"path.{attr} is not supported")
            return str(self.directory)
        if root == "each":
            raise HclError("each is only valid inside a resource with for_each")
        return {"__ref__": f"{root}.{attr}"}  # module.x / data.x / resource type: completed by the caller

    def resource_attr(self, rtype: str, name: str, attr: str) -> Any:
        known = self.ctx.known(self, rtype, name, attr)
        return Unknown(f"{self.address}{rtype}.{name}.{attr}") if known is None else known

    def _get(self, value: Any, key: Any) -> Any:
        if isinstance(value, Unknown):
            return Unknown(value.what)
        if isinstance(value, dict) and "__ref__" in value:
            raise HclError(f"{value['__ref__']}.{key}: incomplete reference")
        try:
            return value[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise HclError(f"no element {key!r} in {value!r}") from exc

    def call(self, name: str, args: list[tuple], expand: bool, scope: dict[str, Any]) -> Any:
        if name in ("can", "try"):
            for arg in args:
                try:
                    value = self.eval(arg, scope)
                    return True if name == "can" else value
                except (HclError, ValueError, TypeError):
                    if name == "can":
                        return False
            raise HclError("try: no argument could be evaluated")
        if name not in FUNCTIONS:
            raise HclError(f"function {name}() is not supported by the test evaluator")
        values = [self.eval(a, scope) for a in args]
        if expand:
            values = [*values[:-1], *values[-1]]
        if any(_has_unknown(v) for v in values) and name not in ("merge", "concat", "jsonencode", "flatten",
                                                                  "values"):
            return Unknown(f"{name}()")
        if name == "jsonencode" and _has_unknown(values[0]):
            return Unknown("jsonencode()")
        return FUNCTIONS[name](*values)

    def binop(self, op: str, a: Any, b: Any) -> Any:
        if isinstance(a, Unknown) or isinstance(b, Unknown):
            return Unknown(op)
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "==": lambda x, y: x == y, "!=": lambda x, y: x != y, "<": lambda x, y: x < y,
            ">": lambda x, y: x > y, "<=": lambda x, y: x <= y, ">=": lambda x, y: x >= y,
            "&&": lambda x, y: x and y, "||": lambda x, y: x or y, "+": lambda x, y: x + y,
            "-": lambda x, y: x - y, "*": lambda x, y: x * y, "/": lambda x, y: x / y, "%": lambda x, y: x % y}
        return ops[op](a, b)

    def for_expr(self, node: tuple, scope: dict[str, Any]) -> Any:
        _, close, key_var, value_var, coll, key, value, cond, group = node
        items = self.eval(coll, scope)
        if isinstance(items, Unknown):
            return Unknown("for")
        pairs = sorted(items.items()) if isinstance(items, dict) else list(enumerate(items))
        out_list: list = []
        out_map: dict = {}
        for k, v in pairs:
            inner = {**scope, value_var: v, **({key_var: k} if key_var else {})}
            if cond is not None and not self.eval(cond, inner):
                continue
            if close == "]":
                out_list.append(self.eval(value, inner))
                continue
            name = self.eval(key, inner)
            if group:
                out_map.setdefault(name, []).append(self.eval(value, inner))
            elif name in out_map:
                raise HclError(f"duplicate key {name!r} in a for expression")
            else:
                out_map[name] = self.eval(value, inner)
        return out_list if close == "]" else out_map
